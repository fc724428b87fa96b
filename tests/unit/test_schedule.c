/* Key schedule: subkeys, authenticators, TH, sealed blobs, session secrets and traffic
 * keys against the values of docs/PROTOCOL.md's vectors (suite 0x02; every value here
 * was also recomputed from the design note with Python's hmac/hashlib and the
 * "cryptography" package), then every way a blob must fail to open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "unit_frames.h"
#include "unit_hex.h"

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "schedule.h"
#include "wire.h"

static const char ki_auth_hex[] =
    "fadc09f0dfa4a03edf350478aa8baf39df1f7eacfc65ee07de337d85794e0d11";
static const char ki_wrap_hex[] =
    "ba2a70cb8d08eb1dd7b5a9206ade12877267ee5d112b83ab3f7e0778a8d9b896";
static const char kr_auth_hex[] =
    "f31b28d50ec8337ab9bc05fa59796c1e68588e8e602d671542a6d91acf41d2c9";
static const char kr_wrap_hex[] =
    "a085e39c2d4afef393e2807e177dea9a6fc1ba9f726d98d81cb2502da9fd8e24";

/* The session schedule from the vectors' TH (and X25519 result) with SK = 0xc0..0xdf,
 * a fixed SK (not the KDC-derived one), checked in Python from the design note. */
static const struct session_vector {
	const char *dh; /* NULL: forward secrecy off */
	const char *th, *confirm_r, *confirm_i, *ts_i2r, *ts_r2i, *key_i2r, *iv_i2r, *next_i2r;
} sessions[2] = {
    {NULL, "e62bf0f4fa57055645470b918e204a0760c494dc714c57e31a42b2205ed7245e",
     "c465e036cbb8239af1aeb94832e6cf3a51c15c6ece577ea6a11ac4bd1ab9441a",
     "7cf67176fbf398a73d8dce1e2cf96800246196cbc7ccdb4d2672a47f2275e43b",
     "90cecf61b3cc00a9868fb31e88bb2195afd8ba511896b5a68411d0ea52fba734",
     "edb68429522408c37d8299362c9dfe5cd925c2761d88866577cec879a1a2adf1",
     "35175adf8cd2412266b53b77753a87863ffeba6656b6bc732c49be715edec0cf", "1d83a19577c8a0f1ca2636ac",
     "00f31c0eb68155abc61fe7b204ba900c7ac1c9f1f03a4a3affe67c39d4e20088"},
    {"d6fb939511b2381bc8599b4b8edc5968829450dfd7a87aebe78a703cd04cd54e",
     "d4196761ba6c69b894f340f5c0beb8665e0e09d51c503b599201074536fbeeef",
     "0e73ecdfdc2426a6bd7fd2a5f44beace443104ed83e02590ee1e8a099a65b632",
     "8b39b9121fdbc00aa855722904e644649e2d89a4a38a8bb8d97d72bcb9e4ef03",
     "38f32c29cd05621af00d708e80a1e8db77aaf5b34f8c29b057de821d0c02db97",
     "2fac91c026904fd55486d4fb13145467ea235f65be1039cf0940ad91853ac584",
     "a21f2bde91b43373fe1b960ea03b868acc79808e3725df3195913b21798307b5", "f7b67caf9f60485e330ffa77",
     "607d7db70ae98ac3fe4430392b70fd868be9d3dfbc9b8ada59061ffb4aedbe1d"},
};

static int setup(void **state)
{
	static kd3_crypto c;
	if (kd3_crypto_init(&c, "test_schedule", 0) != KD3_OK)
		return -1;
	*state = &c;
	return 0;
}

static int teardown(void **state)
{
	kd3_crypto_free(*state);
	return 0;
}

/* ---- long-term keys and authenticators ------------------------------------------ */

static void test_subkeys_golden(void **state)
{
	kd3_crypto *c = *state;
	uint8_t k_i[KD3_KEY_LEN], k_r[KD3_KEY_LEN];
	kd3_subkeys s;

	range(k_i, sizeof(k_i), 0x00);
	range(k_r, sizeof(k_r), 0x20);
	assert_int_equal(kd3_derive_subkeys(c, k_i, &s), KD3_OK);
	assert_memory_equal(s.auth, unhex(ki_auth_hex).b, KD3_KEY_LEN);
	assert_memory_equal(s.wrap, unhex(ki_wrap_hex).b, KD3_KEY_LEN);
	assert_int_equal(kd3_derive_subkeys(c, k_r, &s), KD3_OK);
	assert_memory_equal(s.auth, unhex(kr_auth_hex).b, KD3_KEY_LEN);
	assert_memory_equal(s.wrap, unhex(kr_wrap_hex).b, KD3_KEY_LEN);
	/* The two subkeys of one key are independent. */
	assert_memory_not_equal(s.auth, s.wrap, KD3_KEY_LEN);
}

static void test_authenticators_golden(void **state)
{
	kd3_crypto *c = *state;
	hexbuf m1 = unhex(m1_hex), m2 = unhex(m2_hex);
	hexbuf ki_auth = unhex(ki_auth_hex), kr_auth = unhex(kr_auth_hex);
	const uint8_t *m1_body = m1.b + KD3_HDR_LEN, *m2_body = m2.b + KD3_HDR_LEN;
	size_t m1_signed = m1.len - KD3_HDR_LEN - KD3_MAC_LEN;
	size_t m2_signed = m2.len - KD3_HDR_LEN - KD3_MAC_LEN;
	uint8_t mac[KD3_MAC_LEN];

	assert_int_equal(kd3_authenticator(c, ki_auth.b, KD3_LABEL_M1, m1_body, m1_signed, mac),
	                 KD3_OK);
	assert_memory_equal(mac, m1_body + m1_signed, KD3_MAC_LEN);
	assert_int_equal(kd3_authenticator_check(c, ki_auth.b, KD3_LABEL_M1, m1_body, m1_signed,
	                                         m1_body + m1_signed),
	                 KD3_OK);
	assert_int_equal(kd3_authenticator_check(c, kr_auth.b, KD3_LABEL_M2, m2_body, m2_signed,
	                                         m2_body + m2_signed),
	                 KD3_OK);
}

static void test_authenticator_check_refuses(void **state)
{
	kd3_crypto *c = *state;
	hexbuf m1 = unhex(m1_hex);
	hexbuf ki_auth = unhex(ki_auth_hex), kr_auth = unhex(kr_auth_hex);
	uint8_t *body = m1.b + KD3_HDR_LEN;
	size_t signed_len = m1.len - KD3_HDR_LEN - KD3_MAC_LEN;
	uint8_t auth[KD3_MAC_LEN];

	memcpy(auth, body + signed_len, sizeof(auth));
	/* The responder's key on the initiator's authenticator. */
	assert_int_equal(
	    kd3_authenticator_check(c, kr_auth.b, KD3_LABEL_M1, body, signed_len, auth),
	    KD3_E_BAD_AUTH);
	/* The right key under the other message's label (no reflection M1 <-> M2). */
	assert_int_equal(
	    kd3_authenticator_check(c, ki_auth.b, KD3_LABEL_M2, body, signed_len, auth),
	    KD3_E_BAD_AUTH);
	/* One bit of the signed bytes: the suite byte (a downgrade) and the last byte. */
	body[0] ^= 0x03;
	assert_int_equal(
	    kd3_authenticator_check(c, ki_auth.b, KD3_LABEL_M1, body, signed_len, auth),
	    KD3_E_BAD_AUTH);
	body[0] ^= 0x03;
	body[signed_len - 1] ^= 0x01;
	assert_int_equal(
	    kd3_authenticator_check(c, ki_auth.b, KD3_LABEL_M1, body, signed_len, auth),
	    KD3_E_BAD_AUTH);
	body[signed_len - 1] ^= 0x01;
	/* One signed byte fewer. */
	assert_int_equal(
	    kd3_authenticator_check(c, ki_auth.b, KD3_LABEL_M1, body, signed_len - 1, auth),
	    KD3_E_BAD_AUTH);
	/* Each byte of the received authenticator. */
	for (size_t i = 0; i < KD3_MAC_LEN; i++) {
		auth[i] ^= 0x40;
		assert_int_equal(
		    kd3_authenticator_check(c, ki_auth.b, KD3_LABEL_M1, body, signed_len, auth),
		    KD3_E_BAD_AUTH);
		auth[i] ^= 0x40;
	}
	assert_int_equal(
	    kd3_authenticator_check(c, ki_auth.b, KD3_LABEL_M1, body, signed_len, auth), KD3_OK);
}

/* ---- transcript hash ----------------------------------------------------------- */

static void test_transcript_hash_golden(void **state)
{
	(void)state;
	hexbuf m1 = unhex(m1_hex), m2 = unhex(m2_hex);
	hexbuf want = unhex(sessions[0].th);
	size_t m2_signed = m2.len - KD3_HDR_LEN - KD3_MAC_LEN;
	uint8_t th[KD3_HASH_LEN];

	kd3_iov whole = {m2.b + KD3_HDR_LEN, m2_signed};
	assert_int_equal(kd3_transcript_hash(&whole, 1, th), KD3_OK);
	assert_memory_equal(th, want.b, KD3_HASH_LEN);

	/* The initiator's way: its own M1 body, then n_r and kvno_r from M4. */
	uint8_t len16[2], n_r[KD3_NONCE_LEN], kvno[4];
	kd3_put_u16(len16, (uint16_t)(m1.len - KD3_HDR_LEN));
	range(n_r, sizeof(n_r), 0xb0);
	kd3_put_u32(kvno, 2);
	kd3_iov parts[4] = {
	    {len16, 2}, {m1.b + KD3_HDR_LEN, m1.len - KD3_HDR_LEN}, {n_r, 32}, {kvno, 4}};
	assert_int_equal(kd3_transcript_hash(parts, 4, th), KD3_OK);
	assert_memory_equal(th, want.b, KD3_HASH_LEN);

	/* Negative twin: kvno_r 3. */
	kd3_put_u32(kvno, 3);
	assert_int_equal(kd3_transcript_hash(parts, 4, th), KD3_OK);
	assert_memory_not_equal(th, want.b, KD3_HASH_LEN);

	/* Up to 7 parts; more is refused. */
	kd3_iov many[8] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}, {"e", 1}, {"f", 1}, {"g", 1}};
	assert_int_equal(kd3_transcript_hash(many, 7, th), KD3_OK);
	assert_int_equal(kd3_transcript_hash(many, 8, th), KD3_E_CRYPTO);
}

/* ---- sealed blobs ------------------------------------------------------------- */

static void test_blob_golden(void **state)
{
	kd3_crypto *c = *state;
	hexbuf m3 = unhex(m3_hex);
	hexbuf th = unhex(sessions[0].th);
	hexbuf ki_wrap = unhex(ki_wrap_hex), kr_wrap = unhex(kr_wrap_hex);
	const uint8_t *blob_r = m3.b + KD3_HDR_LEN + 36, *blob_i = blob_r + KD3_BLOB_LEN;
	uint8_t want_sk[KD3_KEY_LEN], sk[KD3_KEY_LEN], blob[KD3_BLOB_LEN];

	uint8_t realm_secret[KD3_KEY_LEN];
	range(realm_secret, sizeof(realm_secret), 0xc0); /* the vectors' KDC secret */
	assert_int_equal(kd3_derive_sk(c, realm_secret, th.b, want_sk), KD3_OK);
	assert_int_equal(kd3_blob_open(c, KD3_SUITE_CHACHAPOLY, kr_wrap.b, KD3_ROLE_RESPONDER, th.b,
	                               3600, blob_r, sk),
	                 KD3_OK);
	assert_memory_equal(sk, want_sk, KD3_KEY_LEN);
	assert_int_equal(kd3_blob_open(c, KD3_SUITE_CHACHAPOLY, ki_wrap.b, KD3_ROLE_INITIATOR, th.b,
	                               3600, blob_i, sk),
	                 KD3_OK);
	assert_memory_equal(sk, want_sk, KD3_KEY_LEN);

	/* Sealing is deterministic (a key per exchange and lifetime, zero nonce): the same
	 * bytes again. */
	assert_int_equal(kd3_blob_seal(c, KD3_SUITE_CHACHAPOLY, kr_wrap.b, KD3_ROLE_RESPONDER, th.b,
	                               3600, want_sk, blob),
	                 KD3_OK);
	assert_memory_equal(blob, blob_r, KD3_BLOB_LEN);
	assert_int_equal(kd3_blob_seal(c, KD3_SUITE_CHACHAPOLY, ki_wrap.b, KD3_ROLE_INITIATOR, th.b,
	                               3600, want_sk, blob),
	                 KD3_OK);
	assert_memory_equal(blob, blob_i, KD3_BLOB_LEN);
}

/* Opening must fail with BLOB_AUTH (or want) and leave sk all zero. */
static void blob_open_must_fail(kd3_crypto *c, uint8_t suite, const uint8_t *wrap, kd3_role role,
                                const uint8_t *th, uint32_t lifetime, const uint8_t *blob, int want,
                                const char *what)
{
	uint8_t sk[KD3_KEY_LEN];
	memset(sk, 0xaa, sizeof(sk));
	int ret = kd3_blob_open(c, suite, wrap, role, th, lifetime, blob, sk);
	if (ret != want)
		fail_msg("%s: %d, want %d", what, ret, want);
	if (!all_zero(sk, sizeof(sk)))
		fail_msg("%s: sk not wiped", what);
}

static void blob_suite(kd3_crypto *c, uint8_t suite)
{
	uint8_t wrap[KD3_KEY_LEN], other_wrap[KD3_KEY_LEN], th[KD3_HASH_LEN],
	    other_th[KD3_HASH_LEN];
	uint8_t sk[KD3_KEY_LEN], back[KD3_KEY_LEN], blob[KD3_BLOB_LEN], blob2[KD3_BLOB_LEN];
	const uint8_t other_suite =
	    suite == KD3_SUITE_AES256GCM ? KD3_SUITE_CHACHAPOLY : KD3_SUITE_AES256GCM;

	range(wrap, sizeof(wrap), 0x10);
	memcpy(other_wrap, wrap, sizeof(wrap));
	other_wrap[0] ^= 1;
	range(th, sizeof(th), 0x30);
	memcpy(other_th, th, sizeof(th));
	other_th[31] ^= 1;
	range(sk, sizeof(sk), 0x50);

	assert_int_equal(kd3_blob_seal(c, suite, wrap, KD3_ROLE_INITIATOR, th, 600, sk, blob),
	                 KD3_OK);
	assert_memory_not_equal(blob, sk, KD3_KEY_LEN);
	assert_int_equal(kd3_blob_open(c, suite, wrap, KD3_ROLE_INITIATOR, th, 600, blob, back),
	                 KD3_OK);
	assert_memory_equal(back, sk, KD3_KEY_LEN);

	/* The two roles' blobs of one exchange differ (different keys). */
	assert_int_equal(kd3_blob_seal(c, suite, wrap, KD3_ROLE_RESPONDER, th, 600, sk, blob2),
	                 KD3_OK);
	assert_memory_not_equal(blob, blob2, KD3_BLOB_LEN);

	blob_open_must_fail(c, suite, wrap, KD3_ROLE_RESPONDER, th, 600, blob, KD3_E_BLOB_AUTH,
	                    "wrong role");
	blob_open_must_fail(c, suite, wrap, KD3_ROLE_INITIATOR, other_th, 600, blob,
	                    KD3_E_BLOB_AUTH, "wrong TH");
	blob_open_must_fail(c, suite, wrap, KD3_ROLE_INITIATOR, th, 601, blob, KD3_E_BLOB_AUTH,
	                    "wrong lifetime");
	blob_open_must_fail(c, suite, wrap, KD3_ROLE_INITIATOR, th, 0x80000000u | 600, blob,
	                    KD3_E_BLOB_AUTH, "lifetime high bit");
	blob_open_must_fail(c, other_suite, wrap, KD3_ROLE_INITIATOR, th, 600, blob,
	                    KD3_E_BLOB_AUTH, "wrong suite");
	blob_open_must_fail(c, suite, other_wrap, KD3_ROLE_INITIATOR, th, 600, blob,
	                    KD3_E_BLOB_AUTH, "wrong wrap key");
	blob_open_must_fail(c, 3, wrap, KD3_ROLE_INITIATOR, th, 600, blob, KD3_E_UNSUPPORTED,
	                    "unknown suite");
	for (size_t i = 0; i < KD3_BLOB_LEN; i++) {
		blob[i] ^= 0x01;
		blob_open_must_fail(c, suite, wrap, KD3_ROLE_INITIATOR, th, 600, blob,
		                    KD3_E_BLOB_AUTH, "blob byte flipped");
		blob[i] ^= 0x01;
	}
	/* Unharmed after all that. */
	assert_int_equal(kd3_blob_open(c, suite, wrap, KD3_ROLE_INITIATOR, th, 600, blob, back),
	                 KD3_OK);
	assert_memory_equal(back, sk, KD3_KEY_LEN);
	assert_int_equal(kd3_blob_seal(c, 0, wrap, KD3_ROLE_INITIATOR, th, 600, sk, blob),
	                 KD3_E_UNSUPPORTED);
}

static void test_blob_round_trip_and_refusals(void **state)
{
	kd3_crypto *c = *state;
	blob_suite(c, KD3_SUITE_AES256GCM);
	blob_suite(c, KD3_SUITE_CHACHAPOLY);
}

/* ---- session secrets and traffic keys ----------------------------------------- */

static void check_session(kd3_crypto *c, const struct session_vector *v)
{
	uint8_t sk[KD3_KEY_LEN], key[KD3_KEY_LEN], iv[KD3_IV_LEN];
	hexbuf th = unhex(v->th), dh = v->dh ? unhex(v->dh) : unhex("");
	kd3_session_secrets s;

	range(sk, sizeof(sk), 0xc0);
	assert_int_equal(kd3_derive_session(c, th.b, sk, v->dh ? dh.b : NULL, &s), KD3_OK);
	assert_memory_equal(s.confirm_r, unhex(v->confirm_r).b, KD3_MAC_LEN);
	assert_memory_equal(s.confirm_i, unhex(v->confirm_i).b, KD3_MAC_LEN);
	assert_memory_equal(s.ts_i2r, unhex(v->ts_i2r).b, KD3_KEY_LEN);
	assert_memory_equal(s.ts_r2i, unhex(v->ts_r2i).b, KD3_KEY_LEN);
	assert_int_equal(kd3_traffic_key_iv(c, s.ts_i2r, key, iv), KD3_OK);
	assert_memory_equal(key, unhex(v->key_i2r).b, KD3_KEY_LEN);
	assert_memory_equal(iv, unhex(v->iv_i2r).b, KD3_IV_LEN);
	assert_int_equal(kd3_traffic_next(c, s.ts_i2r), KD3_OK);
	assert_memory_equal(s.ts_i2r, unhex(v->next_i2r).b, KD3_KEY_LEN);
}

static void test_session_golden(void **state)
{
	kd3_crypto *c = *state;
	check_session(c, &sessions[0]);
	check_session(c, &sessions[1]);
}

static void test_session_inputs_matter(void **state)
{
	kd3_crypto *c = *state;
	uint8_t th[KD3_HASH_LEN], sk[KD3_KEY_LEN], dh[KD3_DH_LEN];
	kd3_session_secrets plain, with_dh, other_dh, other_th, other_sk;

	range(th, sizeof(th), 0x01);
	range(sk, sizeof(sk), 0x21);
	range(dh, sizeof(dh), 0x41);
	assert_int_equal(kd3_derive_session(c, th, sk, NULL, &plain), KD3_OK);
	assert_int_equal(kd3_derive_session(c, th, sk, dh, &with_dh), KD3_OK);
	dh[0] ^= 1;
	assert_int_equal(kd3_derive_session(c, th, sk, dh, &other_dh), KD3_OK);
	th[0] ^= 1;
	assert_int_equal(kd3_derive_session(c, th, sk, NULL, &other_th), KD3_OK);
	th[0] ^= 1;
	sk[31] ^= 1;
	assert_int_equal(kd3_derive_session(c, th, sk, NULL, &other_sk), KD3_OK);

	/* With and without the X25519 secret differ in every output. */
	assert_memory_not_equal(plain.confirm_r, with_dh.confirm_r, KD3_MAC_LEN);
	assert_memory_not_equal(plain.confirm_i, with_dh.confirm_i, KD3_MAC_LEN);
	assert_memory_not_equal(plain.ts_i2r, with_dh.ts_i2r, KD3_KEY_LEN);
	assert_memory_not_equal(plain.ts_r2i, with_dh.ts_r2i, KD3_KEY_LEN);
	assert_memory_not_equal(with_dh.ts_i2r, other_dh.ts_i2r, KD3_KEY_LEN);
	assert_memory_not_equal(plain.ts_i2r, other_th.ts_i2r, KD3_KEY_LEN);
	assert_memory_not_equal(plain.ts_i2r, other_sk.ts_i2r, KD3_KEY_LEN);
	/* The four outputs of one derivation are distinct (no direction or role shares). */
	const uint8_t *outs[4] = {plain.confirm_r, plain.confirm_i, plain.ts_i2r, plain.ts_r2i};
	for (size_t i = 0; i < 4; i++)
		for (size_t j = i + 1; j < 4; j++)
			assert_memory_not_equal(outs[i], outs[j], 32);
}

static void test_traffic_next(void **state)
{
	kd3_crypto *c = *state;
	uint8_t ts[KD3_KEY_LEN], copy[KD3_KEY_LEN], orig[KD3_KEY_LEN];
	uint8_t key0[KD3_KEY_LEN], iv0[KD3_IV_LEN], key1[KD3_KEY_LEN], iv1[KD3_IV_LEN];

	range(ts, sizeof(ts), 0x70);
	memcpy(orig, ts, sizeof(ts));
	memcpy(copy, ts, sizeof(ts));
	assert_int_equal(kd3_traffic_key_iv(c, ts, key0, iv0), KD3_OK);
	assert_int_equal(kd3_traffic_next(c, ts), KD3_OK);
	assert_memory_not_equal(ts, orig, KD3_KEY_LEN);
	/* Deterministic: the same secret steps to the same next one. */
	assert_int_equal(kd3_traffic_next(c, copy), KD3_OK);
	assert_memory_equal(ts, copy, KD3_KEY_LEN);
	/* New keys and IVs after the step, and another step moves on again. */
	assert_int_equal(kd3_traffic_key_iv(c, ts, key1, iv1), KD3_OK);
	assert_memory_not_equal(key0, key1, KD3_KEY_LEN);
	assert_memory_not_equal(iv0, iv1, KD3_IV_LEN);
	assert_memory_not_equal(key1, ts, KD3_KEY_LEN);
	assert_int_equal(kd3_traffic_next(c, copy), KD3_OK);
	assert_memory_not_equal(ts, copy, KD3_KEY_LEN);
	assert_memory_not_equal(orig, copy, KD3_KEY_LEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_subkeys_golden),
	    cmocka_unit_test(test_authenticators_golden),
	    cmocka_unit_test(test_authenticator_check_refuses),
	    cmocka_unit_test(test_transcript_hash_golden),
	    cmocka_unit_test(test_blob_golden),
	    cmocka_unit_test(test_blob_round_trip_and_refusals),
	    cmocka_unit_test(test_session_golden),
	    cmocka_unit_test(test_session_inputs_matter),
	    cmocka_unit_test(test_traffic_next),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
