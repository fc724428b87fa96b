/* kd3 KDC request handler, sans I/O: one M2 frame in, one M3 or ERROR frame out.
 *
 * The caller owns the principal table (loaded once from the database) and one
 * kd3_kdc per worker thread. kd3_kdc_handle allocates nothing and touches no disk.
 * docs/PROTOCOL.md, "KDC processing". */
#ifndef KD3_KDC_CORE_H
#define KD3_KDC_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "schedule.h"
#include "wire.h"

#define KD3_KVNOS_MAX 8 /* live key versions per principal */

/* name (NUL-terminated, name_len bytes) and keys point into storage the table owns: the
 * KDC keeps every name in one pool and every key version in one array, so a principal
 * costs its own bytes, not the largest name's and KD3_KVNOS_MAX keys'. nkeys keys, at
 * most KD3_KVNOS_MAX, newest first. */
typedef struct kd3_principal {
	const char *name;
	uint8_t name_len;
	uint8_t enabled;
	uint8_t nkeys;
	kd3_kvno_key *keys;
} kd3_principal;

/* Looks a principal up by name (bytes, not NUL-terminated); NULL when unknown. */
typedef const kd3_principal *(*kd3_lookup_fn)(void *ctx, const uint8_t *name, size_t len);

/* Policy hook: KD3_OK to allow id_i to reach id_r, KD3_E_POLICY_DENIED otherwise.
 * May also set *lifetime for the pair. NULL allows every pair. */
typedef int (*kd3_policy_fn)(void *ctx, const kd3_principal *i, const kd3_principal *r,
                             uint32_t *lifetime);

typedef struct kd3_kdc_config {
	uint8_t realm_secret[KD3_KEY_LEN]; /* SK = HKDF-Expand(realm_secret, "kd3/1 SK" || TH) */
	uint8_t suites_allowed;            /* bit (1 << suite) */
	uint8_t require_fs;                /* refuse requests without forward-secret mode */
	uint32_t lifetime;                 /* default session key lifetime, seconds */
	uint32_t cache_window_ms; /* lookaside cache: an identical M2 within this is not redone */
} kd3_kdc_config;

#define KD3_KDC_CACHE_SLOTS 256

/* The shortest M2 frame: one-byte names, no forward secrecy. */
#define KD3_M2_FRAME_MIN (KD3_HDR_LEN + 2 + 74 + KD3_NONCE_LEN + 4 + KD3_MAC_LEN)

typedef struct kd3_kdc_cache_slot {
	uint8_t th[KD3_HASH_LEN];
	uint8_t auth_r[KD3_MAC_LEN]; /* with TH, identifies the whole M2 */
	uint64_t stored_ms;
	uint16_t reply_len;
	uint8_t reply[KD3_HDR_LEN + KD3_M3_BODY_LEN];
	uint8_t used;
} kd3_kdc_cache_slot;

typedef struct kd3_kdc {
	kd3_crypto *crypto;
	kd3_lookup_fn lookup;
	void *lookup_ctx;
	kd3_policy_fn policy;
	void *policy_ctx;
	kd3_kdc_config cfg;
	kd3_hmac_key realm_key; /* cfg.realm_secret, keyed for HMAC */
	int realm_key_ok;
	kd3_kdc_cache_slot cache[KD3_KDC_CACHE_SLOTS];
} kd3_kdc;

/* What happened, for the log line (never a key). Names point into the request. */
typedef struct kd3_kdc_result {
	int err;        /* KD3_OK when an M3 was produced */
	int reply;      /* 0: send nothing (input was not a kd3 frame at all) */
	int from_cache; /* the M3 came from the lookaside cache */
	const uint8_t *id_i, *id_r;
	size_t id_i_len, id_r_len;
	uint32_t kvno_i, kvno_r;
	uint8_t suite, flags;
	const char *detail; /* static text naming the failed check */
	uint8_t have_th;    /* th was computed (the M2 parsed) */
	uint8_t th[KD3_HASH_LEN];
} kd3_kdc_result;

void kd3_kdc_init(kd3_kdc *k, kd3_crypto *crypto, kd3_lookup_fn lookup, void *lookup_ctx,
                  const kd3_kdc_config *cfg);
/* Wipes the realm secret and the cache. */
void kd3_kdc_free(kd3_kdc *k);

/* now_ms: a monotonic clock, for the lookaside cache window. out must hold
 * KD3_HDR_LEN + KD3_ERROR_BODY_MAX bytes at least (an M3 is smaller).
 * Only a frame of type M2, at least as long as the shortest M2, is ever answered,
 * and never with more bytes than it had: no reflection, no ping-pong between two
 * servers, no amplification. Everything else gets res->reply == 0. */
int kd3_kdc_handle(kd3_kdc *k, const uint8_t *in, size_t in_len, uint64_t now_ms, uint8_t *out,
                   size_t out_cap, size_t *out_len, kd3_kdc_result *res);

#endif
