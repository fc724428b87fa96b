#include "crypto.h"

#include <string.h>

#include <mbedtls/constant_time.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/entropy_poll.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "err.h"

void kd3_wipe(void *p, size_t n)
{
	mbedtls_platform_zeroize(p, n);
}

int kd3_ct_equal(const void *a, const void *b, size_t n)
{
	return mbedtls_ct_memcmp(a, b, n) == 0;
}

int kd3_suite_supported(uint8_t suite)
{
	return suite == KD3_SUITE_AES256GCM || suite == KD3_SUITE_CHACHAPOLY;
}

const char *kd3_suite_name(uint8_t suite)
{
	switch (suite) {
	case KD3_SUITE_AES256GCM:
		return "aes-256-gcm";
	case KD3_SUITE_CHACHAPOLY:
		return "chacha20-poly1305";
	default:
		return "unknown";
	}
}

/* The DRBG's seed (and reseed): the operating system's generator (getrandom on Linux)
 * through Mbed TLS's own poll. Not an mbedtls_entropy_context: that one is 37 KiB, and
 * every libkd3 session has a kd3_crypto of its own. */
static int system_entropy(void *unused, unsigned char *out, size_t len)
{
	(void)unused;
	while (len > 0) {
		size_t got = 0;
		if (mbedtls_platform_entropy_poll(NULL, out, len, &got) != 0 || got == 0 ||
		    got > len)
			return MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
		out += got;
		len -= got;
	}
	return 0;
}

int kd3_crypto_init(kd3_crypto *c, const char *pers, int with_drbg)
{
	int ret = KD3_E_CRYPTO;

	memset(c, 0, sizeof(*c));
	c->initialized = 1;
	if ((ret = kd3_aead_init(&c->aead[0], KD3_SUITE_AES256GCM)) != KD3_OK)
		goto out;
	if ((ret = kd3_aead_init(&c->aead[1], KD3_SUITE_CHACHAPOLY)) != KD3_OK)
		goto out;
	if (with_drbg) {
		mbedtls_ctr_drbg_init(&c->drbg);
		c->drbg_ready = 1;
		if (mbedtls_ctr_drbg_seed(&c->drbg, system_entropy, NULL,
		                          (const unsigned char *)pers, strlen(pers)) != 0) {
			ret = KD3_E_RNG;
			goto out;
		}
	}
	ret = KD3_OK;
out:
	if (ret != KD3_OK)
		kd3_crypto_free(c);
	return ret;
}

void kd3_crypto_free(kd3_crypto *c)
{
	kd3_aead_free(&c->aead[0]);
	kd3_aead_free(&c->aead[1]);
	if (c->drbg_ready) {
		mbedtls_ctr_drbg_free(&c->drbg);
	}
	kd3_wipe(c, sizeof(*c));
}

int kd3_crypto_rng(void *ctx, uint8_t *out, size_t len)
{
	kd3_crypto *c = ctx;
	if (!c->drbg_ready)
		return KD3_E_RNG;
	while (len > 0) {
		size_t n = len > MBEDTLS_CTR_DRBG_MAX_REQUEST ? MBEDTLS_CTR_DRBG_MAX_REQUEST : len;
		if (mbedtls_ctr_drbg_random(&c->drbg, out, n) != 0)
			return KD3_E_RNG;
		out += n;
		len -= n;
	}
	return KD3_OK;
}

/* ---- HMAC-SHA-256 over kept pad states --------------------------------------------- */

#define SHA256_BLOCK 64

/* The SHA-256 state after one block: key ^ pad, the key zero-filled to a block. */
static int pad_state(const uint8_t *key, size_t key_len, uint8_t pad, uint32_t state[8])
{
	uint8_t block[SHA256_BLOCK];
	mbedtls_sha256_context s;
	int ret = KD3_E_CRYPTO;

	memset(block, pad, sizeof(block));
	for (size_t i = 0; i < key_len; i++)
		block[i] ^= key[i];
	mbedtls_sha256_init(&s);
	if (mbedtls_sha256_starts_ret(&s, 0) == 0 &&
	    mbedtls_sha256_update_ret(&s, block, sizeof(block)) == 0) {
		memcpy(state, s.state, sizeof(s.state));
		ret = KD3_OK;
	}
	mbedtls_sha256_free(&s); /* zeroizes */
	kd3_wipe(block, sizeof(block));
	return ret;
}

int kd3_hmac_key_init(kd3_hmac_key *k, const uint8_t *key, size_t key_len)
{
	uint8_t hashed[KD3_HASH_LEN];
	int ret = KD3_OK;

	if (key_len > SHA256_BLOCK) {
		if (mbedtls_sha256_ret(key, key_len, hashed, 0) != 0)
			ret = KD3_E_CRYPTO;
		key = hashed;
		key_len = sizeof(hashed);
	}
	if (ret == KD3_OK)
		ret = pad_state(key, key_len, 0x36, k->inner);
	if (ret == KD3_OK)
		ret = pad_state(key, key_len, 0x5c, k->outer);
	kd3_wipe(hashed, sizeof(hashed));
	if (ret != KD3_OK)
		kd3_wipe(k, sizeof(*k));
	return ret;
}

/* A SHA-256 context resumed from a kept state: one block (the pad) already hashed.
 * Mbed TLS 2.28's context fields are public API. */
static void resume(mbedtls_sha256_context *s, const uint32_t state[8])
{
	memcpy(s->state, state, sizeof(s->state));
	s->total[0] = SHA256_BLOCK;
	s->total[1] = 0;
}

int kd3_hmac_with(const kd3_hmac_key *k, const kd3_iov *parts, size_t nparts,
                  uint8_t out[KD3_MAC_LEN])
{
	uint8_t inner[KD3_HASH_LEN];
	mbedtls_sha256_context s;
	int ok;

	mbedtls_sha256_init(&s);
	ok = mbedtls_sha256_starts_ret(&s, 0) == 0;
	resume(&s, k->inner);
	for (size_t i = 0; ok && i < nparts; i++)
		ok = parts[i].len == 0 ||
		     mbedtls_sha256_update_ret(&s, parts[i].p, parts[i].len) == 0;
	ok = ok && mbedtls_sha256_finish_ret(&s, inner) == 0 &&
	     mbedtls_sha256_starts_ret(&s, 0) == 0;
	if (ok)
		resume(&s, k->outer);
	ok = ok && mbedtls_sha256_update_ret(&s, inner, sizeof(inner)) == 0 &&
	     mbedtls_sha256_finish_ret(&s, out) == 0;
	mbedtls_sha256_free(&s);
	kd3_wipe(inner, sizeof(inner));
	return ok ? KD3_OK : KD3_E_CRYPTO;
}

int kd3_hmac(kd3_crypto *c, const uint8_t *key, size_t key_len, const kd3_iov *parts, size_t nparts,
             uint8_t out[KD3_MAC_LEN])
{
	kd3_hmac_key k;
	int ret = kd3_hmac_key_init(&k, key, key_len);

	(void)c;
	if (ret == KD3_OK)
		ret = kd3_hmac_with(&k, parts, nparts, out);
	kd3_wipe(&k, sizeof(k));
	return ret;
}

/* RFC 5869 section 2.2: PRK = HMAC(salt, IKM). */
int kd3_hkdf_extract(kd3_crypto *c, const uint8_t *salt, size_t salt_len, const kd3_iov *ikm,
                     size_t nikm, uint8_t prk[KD3_HASH_LEN])
{
	return kd3_hmac(c, salt, salt_len, ikm, nikm, prk);
}

/* RFC 5869 section 2.3: T(i) = HMAC(PRK, T(i-1) || info || i). Written over our own
 * HMAC (PRK keyed once for every block; no allocation); tests check it against
 * mbedtls_hkdf and RFC 5869's vectors. */
int kd3_hkdf_expand_with(const kd3_hmac_key *prk, const kd3_iov *info, size_t ninfo, uint8_t *out,
                         size_t out_len)
{
	uint8_t t[KD3_HASH_LEN];
	size_t t_len = 0;
	int ret = KD3_E_CRYPTO;

	if (out_len > 255 * KD3_HASH_LEN || ninfo > 6)
		return KD3_E_CRYPTO;
	for (uint8_t i = 1; out_len > 0; i++) {
		kd3_iov parts[8];
		size_t n = 0;
		parts[n++] = (kd3_iov){t, t_len};
		for (size_t j = 0; j < ninfo; j++)
			parts[n++] = info[j];
		parts[n++] = (kd3_iov){&i, 1};
		if ((ret = kd3_hmac_with(prk, parts, n, t)) != KD3_OK)
			goto out;
		t_len = KD3_HASH_LEN;
		size_t take = out_len < KD3_HASH_LEN ? out_len : KD3_HASH_LEN;
		memcpy(out, t, take);
		out += take;
		out_len -= take;
	}
	ret = KD3_OK;
out:
	kd3_wipe(t, sizeof(t));
	return ret;
}

int kd3_hkdf_expand(kd3_crypto *c, const uint8_t prk[KD3_HASH_LEN], const kd3_iov *info,
                    size_t ninfo, uint8_t *out, size_t out_len)
{
	kd3_hmac_key k;
	int ret = kd3_hmac_key_init(&k, prk, KD3_HASH_LEN);

	(void)c;
	if (ret == KD3_OK)
		ret = kd3_hkdf_expand_with(&k, info, ninfo, out, out_len);
	kd3_wipe(&k, sizeof(k));
	return ret;
}

int kd3_sha256(const kd3_iov *parts, size_t nparts, uint8_t out[KD3_HASH_LEN])
{
	mbedtls_sha256_context sha;
	int ret = KD3_E_CRYPTO;

	mbedtls_sha256_init(&sha);
	if (mbedtls_sha256_starts_ret(&sha, 0) != 0)
		goto out;
	for (size_t i = 0; i < nparts; i++)
		if (mbedtls_sha256_update_ret(&sha, parts[i].p, parts[i].len) != 0)
			goto out;
	if (mbedtls_sha256_finish_ret(&sha, out) != 0)
		goto out;
	ret = KD3_OK;
out:
	mbedtls_sha256_free(&sha);
	return ret;
}

int kd3_aead_init(kd3_aead *a, uint8_t suite)
{
	mbedtls_cipher_type_t type;

	memset(a, 0, sizeof(*a));
	mbedtls_cipher_init(&a->cipher);
	if (suite == KD3_SUITE_AES256GCM)
		type = MBEDTLS_CIPHER_AES_256_GCM;
	else if (suite == KD3_SUITE_CHACHAPOLY)
		type = MBEDTLS_CIPHER_CHACHA20_POLY1305;
	else
		return KD3_E_UNSUPPORTED;
	if (mbedtls_cipher_setup(&a->cipher, mbedtls_cipher_info_from_type(type)) != 0)
		return KD3_E_CRYPTO;
	a->suite = suite;
	a->ready = 1;
	return KD3_OK;
}

int kd3_aead_setkey(kd3_aead *a, const uint8_t key[KD3_KEY_LEN])
{
	/* Both suites use the encrypt key schedule for sealing and opening. */
	if (!a->ready ||
	    mbedtls_cipher_setkey(&a->cipher, key, KD3_KEY_LEN * 8, MBEDTLS_ENCRYPT) != 0)
		return KD3_E_CRYPTO;
	return KD3_OK;
}

void kd3_aead_free(kd3_aead *a)
{
	/* mbedtls_cipher_free wipes the key schedule. */
	mbedtls_cipher_free(&a->cipher);
	a->ready = 0;
}

kd3_aead *kd3_crypto_aead(kd3_crypto *c, uint8_t suite)
{
	if (!kd3_suite_supported(suite))
		return NULL;
	return &c->aead[suite - 1];
}

int kd3_aead_seal(kd3_aead *a, const uint8_t iv[KD3_IV_LEN], const uint8_t *ad, size_t ad_len,
                  const uint8_t *pt, size_t pt_len, uint8_t *out)
{
	size_t out_len = 0;
	if (!a->ready)
		return KD3_E_CRYPTO;
	if (mbedtls_cipher_auth_encrypt_ext(&a->cipher, iv, KD3_IV_LEN, ad, ad_len, pt, pt_len, out,
	                                    pt_len + KD3_TAG_LEN, &out_len, KD3_TAG_LEN) != 0 ||
	    out_len != pt_len + KD3_TAG_LEN)
		return KD3_E_CRYPTO;
	return KD3_OK;
}

int kd3_aead_open(kd3_aead *a, const uint8_t iv[KD3_IV_LEN], const uint8_t *ad, size_t ad_len,
                  const uint8_t *ct, size_t ct_len, uint8_t *out)
{
	size_t out_len = 0;
	if (!a->ready || ct_len < KD3_TAG_LEN)
		return KD3_E_RECORD_AUTH;
	int r = mbedtls_cipher_auth_decrypt_ext(&a->cipher, iv, KD3_IV_LEN, ad, ad_len, ct, ct_len,
	                                        out, ct_len - KD3_TAG_LEN, &out_len, KD3_TAG_LEN);
	if (r != 0 || out_len != ct_len - KD3_TAG_LEN) {
		/* Release nothing that did not verify. */
		kd3_wipe(out, ct_len - KD3_TAG_LEN);
		return r == MBEDTLS_ERR_CIPHER_AUTH_FAILED ? KD3_E_RECORD_AUTH : KD3_E_CRYPTO;
	}
	return KD3_OK;
}

/* X25519 over Mbed TLS's Montgomery ladder. With f_rng NULL, Mbed TLS 2.28 blinds
 * the ladder with its own internal DRBG (MBEDTLS_ECP_NO_INTERNAL_RNG is not set in
 * Debian's build); the blinding never changes the result. */
static int x25519_mul(const uint8_t priv[KD3_DH_LEN], const uint8_t *u_in, uint8_t out[KD3_DH_LEN])
{
	mbedtls_ecp_group grp;
	mbedtls_ecp_point P, R;
	mbedtls_mpi d;
	uint8_t k[KD3_DH_LEN], u[KD3_DH_LEN] = {0};
	int ret = KD3_E_CRYPTO;

	mbedtls_ecp_group_init(&grp);
	mbedtls_ecp_point_init(&P);
	mbedtls_ecp_point_init(&R);
	mbedtls_mpi_init(&d);

	/* RFC 7748 section 5: clamp the scalar, mask the top bit of u. */
	memcpy(k, priv, sizeof(k));
	k[0] &= 248;
	k[31] &= 127;
	k[31] |= 64;
	if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_CURVE25519) != 0 ||
	    mbedtls_mpi_read_binary_le(&d, k, sizeof(k)) != 0)
		goto out;
	if (u_in) {
		memcpy(u, u_in, sizeof(u));
		u[31] &= 127;
		if (mbedtls_mpi_read_binary_le(&P.X, u, sizeof(u)) != 0 ||
		    mbedtls_mpi_lset(&P.Z, 1) != 0)
			goto out;
	} else if (mbedtls_ecp_copy(&P, &grp.G) != 0) {
		goto out;
	}
	if (mbedtls_ecp_mul(&grp, &R, &d, &P, NULL, NULL) != 0) {
		ret = u_in ? KD3_E_WEAK_KEY : KD3_E_CRYPTO; /* Mbed TLS refuses bad points */
		goto out;
	}
	if (mbedtls_mpi_write_binary_le(&R.X, out, KD3_DH_LEN) != 0)
		goto out;
	ret = KD3_OK;
out:
	kd3_wipe(k, sizeof(k));
	kd3_wipe(u, sizeof(u));
	mbedtls_mpi_free(&d); /* mbedtls_mpi_free wipes the limbs */
	mbedtls_ecp_point_free(&P);
	mbedtls_ecp_point_free(&R);
	mbedtls_ecp_group_free(&grp);
	return ret;
}

int kd3_x25519_public(const uint8_t priv[KD3_DH_LEN], uint8_t pub[KD3_DH_LEN])
{
	return x25519_mul(priv, NULL, pub);
}

int kd3_x25519_shared(const uint8_t priv[KD3_DH_LEN], const uint8_t peer_pub[KD3_DH_LEN],
                      uint8_t shared[KD3_DH_LEN])
{
	static const uint8_t zero[KD3_DH_LEN];
	int ret = x25519_mul(priv, peer_pub, shared);
	if (ret == KD3_OK && kd3_ct_equal(shared, zero, KD3_DH_LEN))
		ret = KD3_E_WEAK_KEY; /* a low-order point: RFC 7748 section 6.1 */
	if (ret != KD3_OK)
		kd3_wipe(shared, KD3_DH_LEN);
	return ret;
}
