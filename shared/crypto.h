/* kd3 crypto wrappers over Mbed TLS 2.28.
 *
 * A kd3_crypto holds what one thread needs, set up once: an HMAC-SHA256 context,
 * one AEAD context per suite, and a CTR_DRBG seeded from the system entropy. After
 * kd3_crypto_init nothing here allocates, so the KDC's request path does not
 * either (except AES-GCM key setup, where Mbed TLS 2.28 itself allocates; see
 * docs/PROTOCOL.md, "Implementation notes"). Not thread-safe: one per thread. */
#ifndef KD3_CRYPTO_H
#define KD3_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/cipher.h>
#include <mbedtls/ctr_drbg.h>

#include "wire.h"

/* A piece of a message made of several parts (label || field || ...). */
typedef struct kd3_iov {
	const void *p;
	size_t len;
} kd3_iov;

/* The RNG the state machines are given: fills out[len], returns KD3_OK or KD3_E_RNG.
 * Tests pass a deterministic one to reproduce the vectors. */
typedef int (*kd3_rng_fn)(void *rng_ctx, uint8_t *out, size_t len);

typedef struct kd3_aead {
	mbedtls_cipher_context_t cipher;
	uint8_t suite;
	int ready;
} kd3_aead;

typedef struct kd3_crypto {
	int initialized;  /* kd3_crypto_init ran (kd3_crypto_free undoes it, even a partial one) */
	kd3_aead aead[2]; /* index suite - 1 */
	mbedtls_ctr_drbg_context drbg;
	int drbg_ready;
} kd3_crypto;

/* pers names the thread or role (bound into the DRBG seed). with_drbg = 0 skips the
 * DRBG (tests that bring their own RNG). */
int kd3_crypto_init(kd3_crypto *c, const char *pers, int with_drbg);
void kd3_crypto_free(kd3_crypto *c);

/* kd3_rng_fn over the context's DRBG. */
int kd3_crypto_rng(void *c, uint8_t *out, size_t len);

int kd3_suite_supported(uint8_t suite);
const char *kd3_suite_name(uint8_t suite);

/* HMAC-SHA-256 with the key's pad blocks already hashed. HMAC(K, m) is
 * H((K ^ opad) || H((K ^ ipad) || m)); the SHA-256 state after the one block K ^ ipad,
 * and after K ^ opad, depends on the key alone, so a key used for many MACs (a
 * principal's subkeys, the realm secret, an HKDF PRK over several blocks) keeps both
 * states and each MAC saves two compressions. The states stand for the key: wipe them
 * like one (kd3_wipe). */
typedef struct kd3_hmac_key {
	uint32_t inner[8]; /* SHA-256 state after K ^ ipad */
	uint32_t outer[8]; /* SHA-256 state after K ^ opad */
} kd3_hmac_key;

/* Keys longer than a SHA-256 block are hashed first (RFC 2104). */
int kd3_hmac_key_init(kd3_hmac_key *k, const uint8_t *key, size_t key_len);
int kd3_hmac_with(const kd3_hmac_key *k, const kd3_iov *parts, size_t nparts,
                  uint8_t out[KD3_MAC_LEN]);
/* HKDF-Expand with the PRK as a kd3_hmac_key. */
int kd3_hkdf_expand_with(const kd3_hmac_key *prk, const kd3_iov *info, size_t ninfo, uint8_t *out,
                         size_t out_len);

/* HMAC-SHA256 over the concatenation of the parts. */
int kd3_hmac(kd3_crypto *c, const uint8_t *key, size_t key_len, const kd3_iov *parts, size_t nparts,
             uint8_t out[KD3_MAC_LEN]);
/* HKDF (RFC 5869) with SHA-256 over the context's HMAC (no allocation). */
int kd3_hkdf_extract(kd3_crypto *c, const uint8_t *salt, size_t salt_len, const kd3_iov *ikm,
                     size_t nikm, uint8_t prk[KD3_HASH_LEN]);
int kd3_hkdf_expand(kd3_crypto *c, const uint8_t prk[KD3_HASH_LEN], const kd3_iov *info,
                    size_t ninfo, uint8_t *out, size_t out_len);
/* SHA-256 over the concatenation of the parts. */
int kd3_sha256(const kd3_iov *parts, size_t nparts, uint8_t out[KD3_HASH_LEN]);

/* AEAD contexts for the record layer (one per direction, keyed once per key). */
int kd3_aead_init(kd3_aead *a, uint8_t suite);
int kd3_aead_setkey(kd3_aead *a, const uint8_t key[KD3_KEY_LEN]);
void kd3_aead_free(kd3_aead *a);
/* out gets pt_len + KD3_TAG_LEN bytes (ciphertext || tag). out may equal pt. */
int kd3_aead_seal(kd3_aead *a, const uint8_t iv[KD3_IV_LEN], const uint8_t *ad, size_t ad_len,
                  const uint8_t *pt, size_t pt_len, uint8_t *out);
/* Opens ct_len bytes (ciphertext || tag) into out (ct_len - KD3_TAG_LEN bytes). On a
 * bad tag out is wiped and KD3_E_RECORD_AUTH returned. */
int kd3_aead_open(kd3_aead *a, const uint8_t iv[KD3_IV_LEN], const uint8_t *ad, size_t ad_len,
                  const uint8_t *ct, size_t ct_len, uint8_t *out);
/* Seal or open with a one-shot key, using the thread's context for the suite. */
kd3_aead *kd3_crypto_aead(kd3_crypto *c, uint8_t suite);

/* X25519 (RFC 7748). Private keys are 32 random bytes, clamped on use. */
int kd3_x25519_public(const uint8_t priv[KD3_DH_LEN], uint8_t pub[KD3_DH_LEN]);
int kd3_x25519_shared(const uint8_t priv[KD3_DH_LEN], const uint8_t peer_pub[KD3_DH_LEN],
                      uint8_t shared[KD3_DH_LEN]);

/* Constant-time equality of two secrets or tags: 1 when equal. */
int kd3_ct_equal(const void *a, const void *b, size_t n);
/* Wipe a secret (never optimised away). */
void kd3_wipe(void *p, size_t n);

#endif
