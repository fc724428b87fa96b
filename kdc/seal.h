/* kdc keys at rest: every principal key and the realm secret is stored sealed under the
 * realm's master key (docs/OPERATIONS.md, "Keys at rest").
 *
 *   seal key  = HKDF-Expand(master, "kd3/1 kdc seal key", 32)
 *   check     = HMAC-SHA256(master, "kd3/1 kdc master check")   (stored in the database)
 *   key id    = hex of the first 8 bytes of check                  (shown to people)
 *   dump key  = HKDF-Expand(master, "kd3/1 kdc dump mac key", 32)
 *   sealed    = 0x01 || nonce (12, random) || ChaCha20-Poly1305(seal key, nonce, AD, key)
 *   AD        = "kd3/1 kdc sealed key" || 0x01 || kvno (u32 BE) || name
 *               "kd3/1 kdc sealed realm secret" || 0x01            (the realm secret)
 *
 * The AD binds each blob to its row: a blob copied to another principal or kvno does
 * not open. The master key itself never enters the database; the check lets kdc refuse
 * a database whose master key is not in the stash before anything is opened. */
#ifndef KDC_SEAL_H
#define KDC_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

#define KDC_SEAL_VERSION   1
#define KDC_SEALED_LEN     (1 + KD3_IV_LEN + KD3_KEY_LEN + KD3_TAG_LEN) /* 61 */
#define KDC_MASTER_ID_LEN  8
#define KDC_MASTER_ID_TEXT (2 * KDC_MASTER_ID_LEN + 1)

typedef struct kdc_master {
	uint8_t check[KD3_HASH_LEN];
	char id[KDC_MASTER_ID_TEXT];
	uint8_t dump_key[KD3_KEY_LEN];
	uint8_t seal_key[KD3_KEY_LEN]; /* for kdc_master_opener */
	kd3_crypto c; /* HMAC, the AEAD keyed with the seal key, the DRBG for nonces */
	int ready;
} kdc_master;

/* The check value of a master key, and its id as text. */
int kdc_master_check(const uint8_t master[KD3_KEY_LEN], uint8_t check[KD3_HASH_LEN]);
void kdc_master_id_text(const uint8_t check[KD3_HASH_LEN], char out[KDC_MASTER_ID_TEXT]);

/* Derives the seal and dump keys from master (which the caller wipes). can_seal = 0
 * skips the DRBG: such a context only opens. */
int kdc_master_init(kdc_master *m, const uint8_t master[KD3_KEY_LEN], int can_seal);
void kdc_master_free(kdc_master *m);
/* A context of its own that only opens, with src's seal key: one per thread that opens
 * keys beside another (an AEAD context is not shared between threads). */
int kdc_master_opener(kdc_master *dst, const kdc_master *src);

/* name NULL: the realm secret (kvno ignored). */
int kdc_master_seal(kdc_master *m, const char *name, uint32_t kvno, const uint8_t key[KD3_KEY_LEN],
                    uint8_t out[KDC_SEALED_LEN]);
/* KD3_E_BLOB_AUTH (key wiped) when the blob does not open: the wrong master key, a blob
 * moved to another row, or damage. */
int kdc_master_open(kdc_master *m, const char *name, uint32_t kvno,
                    const uint8_t in[KDC_SEALED_LEN], uint8_t key[KD3_KEY_LEN]);

/* The error for a key of path's database that did not open under m: err gets "PATH: the
 * key NAME:KVNO does not open under master key ID (...)". Returns KD3_E_BLOB_AUTH. */
int kdc_master_open_failed(const kdc_master *m, const char *path, const char *name, uint32_t kvno,
                           char *err, size_t err_len);

/* HMAC-SHA256 under the dump key, over a digest of a dump's content. */
int kdc_master_dump_mac(kdc_master *m, const uint8_t digest[KD3_HASH_LEN],
                        uint8_t mac[KD3_MAC_LEN]);

#endif
