#include "schedule.h"

#include <string.h>

#include "buf.h"
#include "err.h"

#define IOV_STR(s) ((kd3_iov){(s), sizeof(s) - 1})

static const char *role_label(kd3_role role)
{
	return role == KD3_ROLE_INITIATOR ? KD3_ROLE_I : KD3_ROLE_R;
}

/* prk = HKDF-Extract("kd3/1 principal", K); K.auth, K.wrap = HKDF-Expand(prk, ...). */
int kd3_derive_subkeys(kd3_crypto *c, const uint8_t key[KD3_KEY_LEN], kd3_subkeys *out)
{
	uint8_t prk[KD3_HASH_LEN];
	kd3_iov ikm = {key, KD3_KEY_LEN};
	kd3_iov auth = IOV_STR(KD3_LABEL_AUTH);
	kd3_iov wrap = IOV_STR(KD3_LABEL_WRAP);
	int ret;

	ret = kd3_hkdf_extract(c, (const uint8_t *)KD3_LABEL_PRINCIPAL,
	                       sizeof(KD3_LABEL_PRINCIPAL) - 1, &ikm, 1, prk);
	if (ret == KD3_OK)
		ret = kd3_hkdf_expand(c, prk, &auth, 1, out->auth, sizeof(out->auth));
	if (ret == KD3_OK)
		ret = kd3_hkdf_expand(c, prk, &wrap, 1, out->wrap, sizeof(out->wrap));
	if (ret == KD3_OK)
		ret = kd3_subkeys_rekey(out);
	kd3_wipe(prk, sizeof(prk));
	if (ret != KD3_OK)
		kd3_wipe(out, sizeof(*out));
	return ret;
}

int kd3_subkeys_rekey(kd3_subkeys *s)
{
	int ret = kd3_hmac_key_init(&s->auth_key, s->auth, sizeof(s->auth));
	if (ret == KD3_OK)
		ret = kd3_hmac_key_init(&s->wrap_key, s->wrap, sizeof(s->wrap));
	return ret;
}

int kd3_authenticator_with(const kd3_hmac_key *auth, const char *label, const uint8_t *signed_bytes,
                           size_t signed_len, uint8_t out[KD3_MAC_LEN])
{
	kd3_iov parts[2] = {{label, strlen(label)}, {signed_bytes, signed_len}};
	return kd3_hmac_with(auth, parts, 2, out);
}

int kd3_authenticator_check_with(const kd3_hmac_key *auth, const char *label,
                                 const uint8_t *signed_bytes, size_t signed_len,
                                 const uint8_t received[KD3_MAC_LEN])
{
	uint8_t expect[KD3_MAC_LEN];
	int ret = kd3_authenticator_with(auth, label, signed_bytes, signed_len, expect);
	if (ret == KD3_OK && !kd3_ct_equal(expect, received, KD3_MAC_LEN))
		ret = KD3_E_BAD_AUTH;
	kd3_wipe(expect, sizeof(expect));
	return ret;
}

int kd3_authenticator(kd3_crypto *c, const uint8_t auth_key[KD3_KEY_LEN], const char *label,
                      const uint8_t *signed_bytes, size_t signed_len, uint8_t out[KD3_MAC_LEN])
{
	kd3_hmac_key k;
	int ret = kd3_hmac_key_init(&k, auth_key, KD3_KEY_LEN);

	(void)c;
	if (ret == KD3_OK)
		ret = kd3_authenticator_with(&k, label, signed_bytes, signed_len, out);
	kd3_wipe(&k, sizeof(k));
	return ret;
}

int kd3_authenticator_check(kd3_crypto *c, const uint8_t auth_key[KD3_KEY_LEN], const char *label,
                            const uint8_t *signed_bytes, size_t signed_len,
                            const uint8_t received[KD3_MAC_LEN])
{
	kd3_hmac_key k;
	int ret = kd3_hmac_key_init(&k, auth_key, KD3_KEY_LEN);

	(void)c;
	if (ret == KD3_OK)
		ret = kd3_authenticator_check_with(&k, label, signed_bytes, signed_len, received);
	kd3_wipe(&k, sizeof(k));
	return ret;
}

int kd3_transcript_hash(const kd3_iov *m2_prefix, size_t nparts, uint8_t th[KD3_HASH_LEN])
{
	kd3_iov parts[8];
	if (nparts > 7)
		return KD3_E_CRYPTO;
	parts[0] = IOV_STR(KD3_LABEL_TH);
	memcpy(&parts[1], m2_prefix, nparts * sizeof(*m2_prefix));
	return kd3_sha256(parts, nparts + 1, th);
}

/* The sealing key and the blob's associated data (docs/PROTOCOL.md, "Sealing").
 * The key is unique per (principal, role, TH, lifetime), and the KDC's SK is a
 * function of TH, so even an M2 processed twice seals the same SK under the same
 * key and AD: the zero nonce never covers two different messages. */
static int blob_key_ad(const kd3_hmac_key *wrap, kd3_role role, const uint8_t th[KD3_HASH_LEN],
                       uint32_t lifetime, uint8_t key[KD3_KEY_LEN], kd3_writer *ad)
{
	const char *r = role_label(role);
	uint8_t life[4];
	kd3_put_u32(life, lifetime);
	kd3_iov info[4] = {IOV_STR(KD3_LABEL_SEAL), {r, strlen(r)}, {th, KD3_HASH_LEN}, {life, 4}};
	int ret = kd3_hkdf_expand_with(wrap, info, 4, key, KD3_KEY_LEN);
	if (ret != KD3_OK)
		return ret;
	kd3_wr_bytes(ad, KD3_LABEL_M3, sizeof(KD3_LABEL_M3) - 1);
	kd3_wr_bytes(ad, r, strlen(r));
	kd3_wr_bytes(ad, th, KD3_HASH_LEN);
	return kd3_wr_u32(ad, lifetime);
}

int kd3_derive_sk_with(const kd3_hmac_key *realm, const uint8_t th[KD3_HASH_LEN],
                       uint8_t sk[KD3_KEY_LEN])
{
	kd3_iov info[2] = {IOV_STR(KD3_LABEL_SK), {th, KD3_HASH_LEN}};
	return kd3_hkdf_expand_with(realm, info, 2, sk, KD3_KEY_LEN);
}

int kd3_derive_sk(kd3_crypto *c, const uint8_t realm_secret[KD3_KEY_LEN],
                  const uint8_t th[KD3_HASH_LEN], uint8_t sk[KD3_KEY_LEN])
{
	kd3_hmac_key k;
	int ret = kd3_hmac_key_init(&k, realm_secret, KD3_KEY_LEN);

	(void)c;
	if (ret == KD3_OK)
		ret = kd3_derive_sk_with(&k, th, sk);
	kd3_wipe(&k, sizeof(k));
	return ret;
}

/* The thread's AEAD context keeps the key schedule of the last blob key, which
 * opens that blob: overwrite it with a key that opens nothing. */
static void aead_scrub(kd3_aead *aead)
{
	static const uint8_t zero_key[KD3_KEY_LEN];
	if (aead)
		(void)kd3_aead_setkey(aead, zero_key);
}

#define BLOB_AD_MAX (sizeof(KD3_LABEL_M3) + sizeof(KD3_ROLE_I) + KD3_HASH_LEN + 4)

/* Seal (sealing = 1) or open one blob: the per-exchange key and AD, then the AEAD
 * over the thread's context, which is scrubbed again on every path. */
static int blob_crypt(kd3_crypto *c, uint8_t suite, const kd3_hmac_key *wrap, kd3_role role,
                      const uint8_t th[KD3_HASH_LEN], uint32_t lifetime, int sealing,
                      const uint8_t *in, uint8_t *out)
{
	static const uint8_t zero_iv[KD3_IV_LEN];
	uint8_t key[KD3_KEY_LEN], ad_buf[BLOB_AD_MAX];
	kd3_writer ad;
	kd3_aead *aead = kd3_crypto_aead(c, suite);
	int ret = KD3_E_UNSUPPORTED;

	kd3_wr_init(&ad, ad_buf, sizeof(ad_buf));
	if (!aead)
		goto out;
	if ((ret = blob_key_ad(wrap, role, th, lifetime, key, &ad)) != KD3_OK)
		goto out;
	if ((ret = kd3_aead_setkey(aead, key)) != KD3_OK)
		goto out;
	if (sealing)
		ret = kd3_aead_seal(aead, zero_iv, ad.p, ad.len, in, KD3_KEY_LEN, out);
	else
		ret = kd3_aead_open(aead, zero_iv, ad.p, ad.len, in, KD3_BLOB_LEN, out);
out:
	kd3_wipe(key, sizeof(key));
	aead_scrub(aead);
	return ret;
}

int kd3_blob_seal_with(kd3_crypto *c, uint8_t suite, const kd3_hmac_key *wrap, kd3_role role,
                       const uint8_t th[KD3_HASH_LEN], uint32_t lifetime,
                       const uint8_t sk[KD3_KEY_LEN], uint8_t blob[KD3_BLOB_LEN])
{
	return blob_crypt(c, suite, wrap, role, th, lifetime, 1, sk, blob);
}

int kd3_blob_open_with(kd3_crypto *c, uint8_t suite, const kd3_hmac_key *wrap, kd3_role role,
                       const uint8_t th[KD3_HASH_LEN], uint32_t lifetime,
                       const uint8_t blob[KD3_BLOB_LEN], uint8_t sk[KD3_KEY_LEN])
{
	int ret = blob_crypt(c, suite, wrap, role, th, lifetime, 0, blob, sk);
	if (ret == KD3_E_RECORD_AUTH)
		ret = KD3_E_BLOB_AUTH;
	if (ret != KD3_OK)
		kd3_wipe(sk, KD3_KEY_LEN);
	return ret;
}

int kd3_blob_seal(kd3_crypto *c, uint8_t suite, const uint8_t wrap[KD3_KEY_LEN], kd3_role role,
                  const uint8_t th[KD3_HASH_LEN], uint32_t lifetime, const uint8_t sk[KD3_KEY_LEN],
                  uint8_t blob[KD3_BLOB_LEN])
{
	kd3_hmac_key k;
	int ret = kd3_hmac_key_init(&k, wrap, KD3_KEY_LEN);
	if (ret == KD3_OK)
		ret = kd3_blob_seal_with(c, suite, &k, role, th, lifetime, sk, blob);
	kd3_wipe(&k, sizeof(k));
	return ret;
}

int kd3_blob_open(kd3_crypto *c, uint8_t suite, const uint8_t wrap[KD3_KEY_LEN], kd3_role role,
                  const uint8_t th[KD3_HASH_LEN], uint32_t lifetime,
                  const uint8_t blob[KD3_BLOB_LEN], uint8_t sk[KD3_KEY_LEN])
{
	kd3_hmac_key k;
	int ret = kd3_hmac_key_init(&k, wrap, KD3_KEY_LEN);
	if (ret == KD3_OK)
		ret = kd3_blob_open_with(c, suite, &k, role, th, lifetime, blob, sk);
	else
		kd3_wipe(sk, KD3_KEY_LEN);
	kd3_wipe(&k, sizeof(k));
	return ret;
}

int kd3_derive_session(kd3_crypto *c, const uint8_t th[KD3_HASH_LEN], const uint8_t sk[KD3_KEY_LEN],
                       const uint8_t *dh, kd3_session_secrets *out)
{
	uint8_t prk[KD3_HASH_LEN];
	kd3_iov secret[2] = {{sk, KD3_KEY_LEN}, {dh, KD3_DH_LEN}};
	kd3_iov l_cr = IOV_STR(KD3_LABEL_CONFIRM_R), l_ci = IOV_STR(KD3_LABEL_CONFIRM_I);
	kd3_iov l_i2r = IOV_STR(KD3_LABEL_TS_I2R), l_r2i = IOV_STR(KD3_LABEL_TS_R2I);
	int ret;

	/* secret = SK, or SK || X25519(e_i, e_r) in forward-secret mode. */
	ret = kd3_hkdf_extract(c, th, KD3_HASH_LEN, secret, dh ? 2 : 1, prk);
	if (ret == KD3_OK)
		ret = kd3_hkdf_expand(c, prk, &l_cr, 1, out->confirm_r, KD3_MAC_LEN);
	if (ret == KD3_OK)
		ret = kd3_hkdf_expand(c, prk, &l_ci, 1, out->confirm_i, KD3_MAC_LEN);
	if (ret == KD3_OK)
		ret = kd3_hkdf_expand(c, prk, &l_i2r, 1, out->ts_i2r, KD3_KEY_LEN);
	if (ret == KD3_OK)
		ret = kd3_hkdf_expand(c, prk, &l_r2i, 1, out->ts_r2i, KD3_KEY_LEN);
	kd3_wipe(prk, sizeof(prk));
	if (ret != KD3_OK)
		kd3_wipe(out, sizeof(*out));
	return ret;
}

int kd3_traffic_key_iv(kd3_crypto *c, const uint8_t ts[KD3_KEY_LEN], uint8_t key[KD3_KEY_LEN],
                       uint8_t iv[KD3_IV_LEN])
{
	kd3_iov l_key = IOV_STR(KD3_LABEL_KEY), l_iv = IOV_STR(KD3_LABEL_IV);
	int ret = kd3_hkdf_expand(c, ts, &l_key, 1, key, KD3_KEY_LEN);
	if (ret == KD3_OK)
		ret = kd3_hkdf_expand(c, ts, &l_iv, 1, iv, KD3_IV_LEN);
	return ret;
}

int kd3_traffic_next(kd3_crypto *c, uint8_t ts[KD3_KEY_LEN])
{
	uint8_t next[KD3_KEY_LEN];
	kd3_iov l_up = IOV_STR(KD3_LABEL_UPDATE);
	int ret = kd3_hkdf_expand(c, ts, &l_up, 1, next, sizeof(next));
	if (ret == KD3_OK)
		memcpy(ts, next, sizeof(next));
	kd3_wipe(next, sizeof(next));
	return ret;
}
