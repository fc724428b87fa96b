/* Crypto wrappers against published vectors: SHA-256 (FIPS 180-2 "abc"), HMAC-SHA256
 * (RFC 4231 case 2), HKDF-SHA256 (RFC 5869 cases 1-3, and Mbed TLS's own HKDF for
 * random lengths), X25519 (RFC 7748 sections 5.2 and 6.1), ChaCha20-Poly1305 (RFC 8439
 * section 2.8.2), AES-256-GCM (McGrew-Viega test case 16). Each vector has a negative
 * twin: one changed input must change the output, so a comparison that passes
 * anything would show. Then the AEAD failure paths, ct_equal and the DRBG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "unit_hex.h"

#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>

#include "crypto.h"
#include "err.h"

/* A small deterministic generator for the cross-checks (not for keys). */
static uint32_t xs_state = 0x12345678;
static uint32_t xs_next(void)
{
	xs_state ^= xs_state << 13;
	xs_state ^= xs_state >> 17;
	xs_state ^= xs_state << 5;
	return xs_state;
}
static void xs_fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)xs_next();
}

static int setup(void **state)
{
	static kd3_crypto c;
	if (kd3_crypto_init(&c, "test_crypto", 1) != KD3_OK)
		return -1;
	*state = &c;
	return 0;
}

static int teardown(void **state)
{
	kd3_crypto_free(*state);
	return 0;
}

/* ---- SHA-256 and HMAC ------------------------------------------------------------ */

static void test_sha256_abc(void **state)
{
	(void)state;
	hexbuf want = unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	uint8_t out[KD3_HASH_LEN];
	kd3_iov one = {"abc", 3};
	kd3_iov split[3] = {{"a", 1}, {"", 0}, {"bc", 2}};
	kd3_iov twin = {"abd", 3};

	assert_int_equal(kd3_sha256(&one, 1, out), KD3_OK);
	assert_memory_equal(out, want.b, KD3_HASH_LEN);
	assert_int_equal(kd3_sha256(split, 3, out), KD3_OK);
	assert_memory_equal(out, want.b, KD3_HASH_LEN);
	assert_int_equal(kd3_sha256(&twin, 1, out), KD3_OK);
	assert_memory_not_equal(out, want.b, KD3_HASH_LEN);
}

static void test_hmac_rfc4231_case2(void **state)
{
	kd3_crypto *c = *state;
	hexbuf want = unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	uint8_t out[KD3_MAC_LEN];
	kd3_iov data = {"what do ya want for nothing?", 28};
	kd3_iov split[2] = {{"what do ya", 10}, {" want for nothing?", 18}};

	assert_int_equal(kd3_hmac(c, (const uint8_t *)"Jefe", 4, &data, 1, out), KD3_OK);
	assert_memory_equal(out, want.b, KD3_MAC_LEN);
	assert_int_equal(kd3_hmac(c, (const uint8_t *)"Jefe", 4, split, 2, out), KD3_OK);
	assert_memory_equal(out, want.b, KD3_MAC_LEN);
	/* Negative twin: another key. */
	assert_int_equal(kd3_hmac(c, (const uint8_t *)"Jeff", 4, &data, 1, out), KD3_OK);
	assert_memory_not_equal(out, want.b, KD3_MAC_LEN);
}

/* kd3_hmac (pad states kept, then resumed) against Mbed TLS's own HMAC: keys of every
 * length around the block size (hashed above 64 bytes), messages across block edges,
 * in one part or split at a random point, and the same key state reused. */
static void test_hmac_vs_mbedtls(void **state)
{
	kd3_crypto *c = *state;
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	uint8_t key[140], msg[300], got[KD3_MAC_LEN], want[KD3_MAC_LEN];

	for (size_t key_len = 0; key_len < sizeof(key); key_len++) {
		kd3_hmac_key k;
		xs_fill(key, key_len);
		assert_int_equal(kd3_hmac_key_init(&k, key, key_len), KD3_OK);
		for (int round = 0; round < 4; round++) {
			size_t msg_len = xs_next() % sizeof(msg),
			       cut = msg_len ? xs_next() % msg_len : 0;
			xs_fill(msg, msg_len);
			kd3_iov one = {msg, msg_len},
			        two[2] = {{msg, cut}, {msg + cut, msg_len - cut}};
			assert_int_equal(mbedtls_md_hmac(md, key, key_len, msg, msg_len, want), 0);
			assert_int_equal(kd3_hmac(c, key, key_len, &one, 1, got), KD3_OK);
			assert_memory_equal(got, want, KD3_MAC_LEN);
			assert_int_equal(kd3_hmac_with(&k, two, 2, got), KD3_OK);
			assert_memory_equal(got, want, KD3_MAC_LEN);
		}
		kd3_wipe(&k, sizeof(k));
	}
}

/* ---- HKDF ------------------------------------------------------------------------ */

struct hkdf_vector {
	const char *name;
	size_t ikm_len;
	uint8_t ikm_first; /* 0 with ikm_0b: 22 bytes of 0x0b */
	int ikm_0b;
	size_t salt_len;
	uint8_t salt_first;
	size_t info_len;
	uint8_t info_first;
	size_t L;
	const char *prk;
	const char *okm;
};

/* RFC 5869 appendix A.1-A.3 (SHA-256). Salt and info are runs of consecutive bytes. */
static const struct hkdf_vector hkdf_vectors[] = {
    {"A.1", 22, 0, 1, 13, 0x00, 10, 0xf0, 42,
     "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
    {"A.2", 80, 0x00, 0, 80, 0x60, 80, 0xb0, 82,
     "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
     "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
     "cc30c58179ec3e87c14c01d5c1f3434f1d87"},
    {"A.3", 22, 0, 1, 0, 0, 0, 0, 42,
     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
};

static void test_hkdf_rfc5869(void **state)
{
	kd3_crypto *c = *state;
	for (size_t v = 0; v < sizeof(hkdf_vectors) / sizeof(hkdf_vectors[0]); v++) {
		const struct hkdf_vector *t = &hkdf_vectors[v];
		uint8_t ikm[80], salt[80], info[80], prk[KD3_HASH_LEN], okm[82];
		hexbuf want_prk = unhex(t->prk), want_okm = unhex(t->okm);

		if (t->ikm_0b)
			memset(ikm, 0x0b, t->ikm_len);
		else
			range(ikm, t->ikm_len, t->ikm_first);
		range(salt, t->salt_len, t->salt_first);
		range(info, t->info_len, t->info_first);
		assert_int_equal(want_okm.len, t->L);

		kd3_iov ikm_iov = {ikm, t->ikm_len};
		kd3_iov info_iov = {info, t->info_len};
		assert_int_equal(kd3_hkdf_extract(c, salt, t->salt_len, &ikm_iov, 1, prk), KD3_OK);
		if (memcmp(prk, want_prk.b, KD3_HASH_LEN) != 0)
			fail_msg("RFC 5869 %s: PRK differs", t->name);
		assert_int_equal(kd3_hkdf_expand(c, prk, &info_iov, 1, okm, t->L), KD3_OK);
		if (memcmp(okm, want_okm.b, t->L) != 0)
			fail_msg("RFC 5869 %s: OKM differs", t->name);

		/* The same info given in three parts. */
		size_t a = t->info_len / 3, b = t->info_len / 2;
		kd3_iov parts[3] = {{info, a}, {info + a, b - a}, {info + b, t->info_len - b}};
		memset(okm, 0, sizeof(okm));
		assert_int_equal(kd3_hkdf_expand(c, prk, parts, 3, okm, t->L), KD3_OK);
		assert_memory_equal(okm, want_okm.b, t->L);

		/* Negative twins: one more info byte; one salt bit. */
		uint8_t more[81];
		memcpy(more, info, t->info_len);
		more[t->info_len] = 0;
		kd3_iov more_iov = {more, t->info_len + 1};
		assert_int_equal(kd3_hkdf_expand(c, prk, &more_iov, 1, okm, t->L), KD3_OK);
		if (memcmp(okm, want_okm.b, t->L) == 0)
			fail_msg("RFC 5869 %s: longer info gave the same OKM", t->name);
		/* (An empty salt's twin is 0x01: a lone 0x00 would equal the empty HMAC key.) */
		uint8_t salt_twin[80] = {0};
		memcpy(salt_twin, salt, t->salt_len);
		salt_twin[0] ^= 0x01;
		assert_int_equal(
		    kd3_hkdf_extract(c, salt_twin, t->salt_len ? t->salt_len : 1, &ikm_iov, 1, prk),
		    KD3_OK);
		if (memcmp(prk, want_prk.b, KD3_HASH_LEN) == 0)
			fail_msg("RFC 5869 %s: another salt gave the same PRK", t->name);
	}
}

static void test_hkdf_vs_mbedtls(void **state)
{
	kd3_crypto *c = *state;
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	static uint8_t got[255 * KD3_HASH_LEN], want[255 * KD3_HASH_LEN];
	uint8_t salt[100], ikm[100], info[100], prk[KD3_HASH_LEN], prk_ref[KD3_HASH_LEN];

	for (int round = 0; round < 200; round++) {
		size_t salt_len = xs_next() % sizeof(salt), ikm_len = 1 + xs_next() % 99;
		size_t info_len = xs_next() % sizeof(info);
		/* Every length from 1 to 70 (block edges), then random ones up to the limit. */
		size_t out_len = round < 70 ? (size_t)round + 1 : 1 + xs_next() % sizeof(got);
		xs_fill(salt, salt_len);
		xs_fill(ikm, ikm_len);
		xs_fill(info, info_len);

		kd3_iov ikm_iov = {ikm, ikm_len}, info_iov = {info, info_len};
		assert_int_equal(kd3_hkdf_extract(c, salt, salt_len, &ikm_iov, 1, prk), KD3_OK);
		assert_int_equal(mbedtls_hkdf_extract(md, salt, salt_len, ikm, ikm_len, prk_ref),
		                 0);
		assert_memory_equal(prk, prk_ref, KD3_HASH_LEN);

		memset(got, 0, out_len);
		assert_int_equal(kd3_hkdf_expand(c, prk, &info_iov, 1, got, out_len), KD3_OK);
		assert_int_equal(
		    mbedtls_hkdf_expand(md, prk, KD3_HASH_LEN, info, info_len, want, out_len), 0);
		if (memcmp(got, want, out_len) != 0)
			fail_msg("HKDF-Expand differs from mbedtls_hkdf_expand: info %zu, L %zu",
			         info_len, out_len);
	}
}

static void test_hkdf_limits(void **state)
{
	kd3_crypto *c = *state;
	static uint8_t out[255 * KD3_HASH_LEN + 1];
	uint8_t prk[KD3_HASH_LEN] = {1};
	kd3_iov info[7] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}, {"e", 1}, {"f", 1}, {"g", 1}};

	assert_int_equal(kd3_hkdf_expand(c, prk, info, 1, out, 255 * KD3_HASH_LEN), KD3_OK);
	assert_int_equal(kd3_hkdf_expand(c, prk, info, 1, out, 255 * KD3_HASH_LEN + 1),
	                 KD3_E_CRYPTO);
	assert_int_equal(kd3_hkdf_expand(c, prk, info, 6, out, 32), KD3_OK);
	assert_int_equal(kd3_hkdf_expand(c, prk, info, 7, out, 32), KD3_E_CRYPTO);
	assert_int_equal(kd3_hkdf_expand(c, prk, info, 0, out, 0), KD3_OK);
}

/* ---- X25519 ---------------------------------------------------------------------- */

static void x25519_check(const char *k_hex, const char *u_hex, const char *out_hex)
{
	hexbuf k = unhex(k_hex), u = unhex(u_hex), want = unhex(out_hex);
	uint8_t out[KD3_DH_LEN];

	assert_int_equal(kd3_x25519_shared(k.b, u.b, out), KD3_OK);
	assert_memory_equal(out, want.b, KD3_DH_LEN);
	/* RFC 7748 section 5: the top bit of u is masked, so setting it changes nothing. */
	u.b[31] |= 0x80;
	assert_int_equal(kd3_x25519_shared(k.b, u.b, out), KD3_OK);
	assert_memory_equal(out, want.b, KD3_DH_LEN);
	u.b[31] &= 0x7f;
	/* Negative twin: a scalar bit that clamping keeps (bit 3). */
	k.b[0] ^= 0x08;
	assert_int_equal(kd3_x25519_shared(k.b, u.b, out), KD3_OK);
	assert_memory_not_equal(out, want.b, KD3_DH_LEN);
	/* Clamped bits do not count: bits 0-2 and bit 255 (and bit 254 is forced on). */
	k.b[0] ^= 0x08 | 0x07;
	k.b[31] ^= 0x80 | 0x40;
	k.b[31] |= 0x40; /* whatever it was, forcing bit 254 on gives the same key */
	assert_int_equal(kd3_x25519_shared(k.b, u.b, out), KD3_OK);
	assert_memory_equal(out, want.b, KD3_DH_LEN);
}

static void test_x25519_rfc7748_5_2(void **state)
{
	(void)state;
	x25519_check("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
	             "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
	             "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
	x25519_check("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
	             "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
	             "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
}

static void test_x25519_rfc7748_6_1(void **state)
{
	(void)state;
	hexbuf a = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
	hexbuf a_pub = unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
	hexbuf b = unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
	hexbuf b_pub = unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
	hexbuf k = unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
	uint8_t pub[KD3_DH_LEN], shared[KD3_DH_LEN];

	assert_int_equal(kd3_x25519_public(a.b, pub), KD3_OK);
	assert_memory_equal(pub, a_pub.b, KD3_DH_LEN);
	assert_int_equal(kd3_x25519_public(b.b, pub), KD3_OK);
	assert_memory_equal(pub, b_pub.b, KD3_DH_LEN);
	assert_int_equal(kd3_x25519_shared(a.b, b_pub.b, shared), KD3_OK);
	assert_memory_equal(shared, k.b, KD3_DH_LEN);
	assert_int_equal(kd3_x25519_shared(b.b, a_pub.b, shared), KD3_OK);
	assert_memory_equal(shared, k.b, KD3_DH_LEN);
	/* Negative twin: Alice with her own public key is not K. */
	assert_int_equal(kd3_x25519_shared(a.b, a_pub.b, shared), KD3_OK);
	assert_memory_not_equal(shared, k.b, KD3_DH_LEN);
	/* The public key is X25519(priv, 9). */
	uint8_t nine[KD3_DH_LEN] = {9};
	assert_int_equal(kd3_x25519_shared(a.b, nine, shared), KD3_OK);
	assert_memory_equal(shared, a_pub.b, KD3_DH_LEN);
}

/* The points of small order (RFC 7748 section 6.1; the list libsodium refuses):
 * each makes the shared secret all zero, whatever the scalar. */
static void test_x25519_low_order(void **state)
{
	(void)state;
	static const char *points[] = {
	    "0000000000000000000000000000000000000000000000000000000000000000", /* 0 */
	    "0100000000000000000000000000000000000000000000000000000000000000", /* 1 */
	    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", /* order 8 */
	    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", /* order 8 */
	    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* p - 1 */
	    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* p */
	    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* p + 1 */
	    "0000000000000000000000000000000000000000000000000000000000000080", /* 0, top bit */
	};
	uint8_t priv[KD3_DH_LEN], shared[KD3_DH_LEN];

	range(priv, sizeof(priv), 0x40);
	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		hexbuf u = unhex(points[i]);
		memset(shared, 0xaa, sizeof(shared));
		int ret = kd3_x25519_shared(priv, u.b, shared);
		if (ret != KD3_E_WEAK_KEY)
			fail_msg("low-order point %zu: %d, want KD3_E_WEAK_KEY", i, ret);
		/* Nothing of a failed computation is left behind. */
		assert_true(all_zero(shared, sizeof(shared)));
	}
}

/* ---- AEAD ------------------------------------------------------------------------ */

static void test_aead_rfc8439_2_8_2(void **state)
{
	kd3_crypto *c = *state;
	static const char pt[] = "Ladies and Gentlemen of the class of '99: If I could offer you "
	                         "only one tip for the future, sunscreen would be it.";
	hexbuf want = unhex("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
	                    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
	                    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
	                    "3ff4def08e4b7a9de576d26586cec64b6116"
	                    "1ae10b594f09e26a7e902ecbd0600691");
	hexbuf iv = unhex("070000004041424344454647");
	hexbuf ad = unhex("50515253c0c1c2c3c4c5c6c7");
	uint8_t key[KD3_KEY_LEN], out[sizeof(pt) + KD3_TAG_LEN], back[sizeof(pt)];
	size_t pt_len = sizeof(pt) - 1;
	kd3_aead *a = kd3_crypto_aead(c, KD3_SUITE_CHACHAPOLY);

	assert_int_equal(pt_len, 114);
	assert_int_equal(want.len, pt_len + KD3_TAG_LEN);
	range(key, sizeof(key), 0x80);
	assert_non_null(a);
	assert_int_equal(kd3_aead_setkey(a, key), KD3_OK);
	assert_int_equal(kd3_aead_seal(a, iv.b, ad.b, ad.len, (const uint8_t *)pt, pt_len, out),
	                 KD3_OK);
	assert_memory_equal(out, want.b, want.len);
	assert_int_equal(kd3_aead_open(a, iv.b, ad.b, ad.len, want.b, want.len, back), KD3_OK);
	assert_memory_equal(back, pt, pt_len);
	/* Negative twin: the AD's last byte. */
	ad.b[ad.len - 1] ^= 1;
	assert_int_equal(kd3_aead_open(a, iv.b, ad.b, ad.len, want.b, want.len, back),
	                 KD3_E_RECORD_AUTH);
}

static void test_aead_gcm_test_case_16(void **state)
{
	kd3_crypto *c = *state;
	hexbuf key = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
	hexbuf pt = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	                  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
	hexbuf ad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
	hexbuf iv = unhex("cafebabefacedbaddecaf888");
	hexbuf want = unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	                    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
	                    "76fc6ece0f4e1768cddf8853bb2d551b");
	uint8_t out[128], back[128];
	kd3_aead *a = kd3_crypto_aead(c, KD3_SUITE_AES256GCM);

	assert_int_equal(pt.len, 60);
	assert_non_null(a);
	assert_int_equal(kd3_aead_setkey(a, key.b), KD3_OK);
	assert_int_equal(kd3_aead_seal(a, iv.b, ad.b, ad.len, pt.b, pt.len, out), KD3_OK);
	assert_memory_equal(out, want.b, want.len);
	assert_int_equal(kd3_aead_open(a, iv.b, ad.b, ad.len, want.b, want.len, back), KD3_OK);
	assert_memory_equal(back, pt.b, pt.len);
	/* Negative twin: the tag's first bit. */
	want.b[pt.len] ^= 0x80;
	assert_int_equal(kd3_aead_open(a, iv.b, ad.b, ad.len, want.b, want.len, back),
	                 KD3_E_RECORD_AUTH);
}

/* Opens a tampered message; it must fail with the output buffer all zero. */
static void open_must_fail(kd3_aead *a, const uint8_t *iv, const uint8_t *ad, size_t ad_len,
                           const uint8_t *ct, size_t ct_len, const char *what)
{
	uint8_t out[256];
	memset(out, 0xaa, sizeof(out));
	int ret = kd3_aead_open(a, iv, ad, ad_len, ct, ct_len, out);
	if (ret != KD3_E_RECORD_AUTH)
		fail_msg("suite %u, %s: %d, want KD3_E_RECORD_AUTH", a->suite, what, ret);
	if (ct_len >= KD3_TAG_LEN && !all_zero(out, ct_len - KD3_TAG_LEN))
		fail_msg("suite %u, %s: output not wiped", a->suite, what);
}

static void aead_suite(uint8_t suite)
{
	uint8_t key[KD3_KEY_LEN], other_key[KD3_KEY_LEN], iv[KD3_IV_LEN], ad[12];
	uint8_t pt[100], ct[100 + KD3_TAG_LEN], back[100];
	kd3_aead a;

	range(key, sizeof(key), 0x11);
	memcpy(other_key, key, sizeof(key));
	other_key[31] ^= 1;
	range(iv, sizeof(iv), 0x22);
	range(ad, sizeof(ad), 0x33);
	range(pt, sizeof(pt), 0x44);

	assert_int_equal(kd3_aead_init(&a, suite), KD3_OK);
	assert_int_equal(kd3_aead_setkey(&a, key), KD3_OK);
	assert_int_equal(kd3_aead_seal(&a, iv, ad, sizeof(ad), pt, sizeof(pt), ct), KD3_OK);
	assert_memory_not_equal(ct, pt, sizeof(pt));
	assert_int_equal(kd3_aead_open(&a, iv, ad, sizeof(ad), ct, sizeof(ct), back), KD3_OK);
	assert_memory_equal(back, pt, sizeof(pt));

	/* Each bit of the tag, a ciphertext byte, the AD, the IV. */
	for (size_t i = 0; i < KD3_TAG_LEN * 8; i++) {
		ct[sizeof(pt) + i / 8] ^= (uint8_t)(1u << (i % 8));
		open_must_fail(&a, iv, ad, sizeof(ad), ct, sizeof(ct), "tag bit flipped");
		ct[sizeof(pt) + i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	ct[0] ^= 1;
	open_must_fail(&a, iv, ad, sizeof(ad), ct, sizeof(ct), "ciphertext flipped");
	ct[0] ^= 1;
	ad[5] ^= 1;
	open_must_fail(&a, iv, ad, sizeof(ad), ct, sizeof(ct), "AD flipped");
	open_must_fail(&a, iv, ad, 0, ct, sizeof(ct), "AD missing");
	ad[5] ^= 1;
	iv[11] ^= 1;
	open_must_fail(&a, iv, ad, sizeof(ad), ct, sizeof(ct), "IV changed");
	iv[11] ^= 1;
	open_must_fail(&a, iv, ad, sizeof(ad), ct, sizeof(ct) - 1, "one byte short");
	open_must_fail(&a, iv, ad, sizeof(ad), ct, KD3_TAG_LEN - 1, "shorter than a tag");
	assert_int_equal(kd3_aead_setkey(&a, other_key), KD3_OK);
	open_must_fail(&a, iv, ad, sizeof(ad), ct, sizeof(ct), "wrong key");

	/* In place, and the empty message (a tag only). */
	assert_int_equal(kd3_aead_setkey(&a, key), KD3_OK);
	memcpy(back, pt, sizeof(pt));
	uint8_t inplace[100 + KD3_TAG_LEN];
	memcpy(inplace, pt, sizeof(pt));
	assert_int_equal(kd3_aead_seal(&a, iv, ad, sizeof(ad), inplace, sizeof(pt), inplace),
	                 KD3_OK);
	assert_memory_equal(inplace, ct, sizeof(ct));
	uint8_t tag_only[KD3_TAG_LEN];
	assert_int_equal(kd3_aead_seal(&a, iv, ad, sizeof(ad), NULL, 0, tag_only), KD3_OK);
	assert_int_equal(kd3_aead_open(&a, iv, ad, sizeof(ad), tag_only, KD3_TAG_LEN, back),
	                 KD3_OK);
	tag_only[0] ^= 1;
	open_must_fail(&a, iv, ad, sizeof(ad), tag_only, KD3_TAG_LEN, "empty, tag flipped");
	kd3_aead_free(&a);
}

static void test_aead_round_trip_and_tamper(void **state)
{
	(void)state;
	aead_suite(KD3_SUITE_AES256GCM);
	aead_suite(KD3_SUITE_CHACHAPOLY);
}

static void test_aead_suites_differ(void **state)
{
	kd3_crypto *c = *state;
	uint8_t key[KD3_KEY_LEN] = {7}, iv[KD3_IV_LEN] = {0}, pt[32] = {1};
	uint8_t ct1[32 + KD3_TAG_LEN], ct2[32 + KD3_TAG_LEN], back[32];
	kd3_aead *gcm = kd3_crypto_aead(c, KD3_SUITE_AES256GCM);
	kd3_aead *cp = kd3_crypto_aead(c, KD3_SUITE_CHACHAPOLY);

	assert_int_equal(kd3_aead_setkey(gcm, key), KD3_OK);
	assert_int_equal(kd3_aead_setkey(cp, key), KD3_OK);
	assert_int_equal(kd3_aead_seal(gcm, iv, NULL, 0, pt, sizeof(pt), ct1), KD3_OK);
	assert_int_equal(kd3_aead_seal(cp, iv, NULL, 0, pt, sizeof(pt), ct2), KD3_OK);
	assert_memory_not_equal(ct1, ct2, sizeof(ct1));
	/* One suite's message does not open under the other. */
	assert_int_equal(kd3_aead_open(cp, iv, NULL, 0, ct1, sizeof(ct1), back), KD3_E_RECORD_AUTH);
	assert_int_equal(kd3_aead_open(gcm, iv, NULL, 0, ct2, sizeof(ct2), back),
	                 KD3_E_RECORD_AUTH);
}

static void test_suites(void **state)
{
	kd3_crypto *c = *state;
	kd3_aead a;

	assert_true(kd3_suite_supported(KD3_SUITE_AES256GCM));
	assert_true(kd3_suite_supported(KD3_SUITE_CHACHAPOLY));
	assert_false(kd3_suite_supported(0));
	assert_false(kd3_suite_supported(3));
	assert_false(kd3_suite_supported(0xff));
	assert_string_equal(kd3_suite_name(KD3_SUITE_AES256GCM), "aes-256-gcm");
	assert_string_equal(kd3_suite_name(KD3_SUITE_CHACHAPOLY), "chacha20-poly1305");
	assert_string_equal(kd3_suite_name(0), "unknown");
	assert_null(kd3_crypto_aead(c, 0));
	assert_null(kd3_crypto_aead(c, 3));
	assert_int_equal(kd3_crypto_aead(c, KD3_SUITE_AES256GCM)->suite, KD3_SUITE_AES256GCM);
	assert_int_equal(kd3_crypto_aead(c, KD3_SUITE_CHACHAPOLY)->suite, KD3_SUITE_CHACHAPOLY);
	assert_int_equal(kd3_aead_init(&a, 3), KD3_E_UNSUPPORTED);
	kd3_aead_free(&a);
	/* A freed context neither seals nor opens. */
	uint8_t key[KD3_KEY_LEN] = {0}, iv[KD3_IV_LEN] = {0}, buf[KD3_TAG_LEN + 1] = {0};
	assert_int_equal(kd3_aead_init(&a, KD3_SUITE_CHACHAPOLY), KD3_OK);
	kd3_aead_free(&a);
	assert_int_equal(kd3_aead_setkey(&a, key), KD3_E_CRYPTO);
	assert_int_equal(kd3_aead_seal(&a, iv, NULL, 0, buf, 1, buf), KD3_E_CRYPTO);
	assert_int_equal(kd3_aead_open(&a, iv, NULL, 0, buf, sizeof(buf), buf), KD3_E_RECORD_AUTH);
}

/* ---- ct_equal, wipe, RNG --------------------------------------------------------- */

static void test_ct_equal(void **state)
{
	(void)state;
	uint8_t a[32], b[32];
	range(a, sizeof(a), 1);
	memcpy(b, a, sizeof(b));
	assert_int_equal(kd3_ct_equal(a, b, sizeof(a)), 1);
	b[0] ^= 1;
	assert_int_equal(kd3_ct_equal(a, b, sizeof(a)), 0);
	b[0] ^= 1;
	b[31] ^= 0x80;
	assert_int_equal(kd3_ct_equal(a, b, sizeof(a)), 0);
	/* Only the first n bytes count. */
	assert_int_equal(kd3_ct_equal(a, b, 31), 1);
	assert_int_equal(kd3_ct_equal(a, b, 0), 1);
}

static void test_wipe(void **state)
{
	(void)state;
	uint8_t secret[40];
	memset(secret, 0x5a, sizeof(secret));
	kd3_wipe(secret + 4, 32);
	assert_true(all_zero(secret + 4, 32));
	assert_int_equal(secret[3], 0x5a);
	assert_int_equal(secret[36], 0x5a);
}

static void test_rng(void **state)
{
	kd3_crypto *c = *state;
	uint8_t a[32], b[32];
	static uint8_t big[5000];

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	assert_int_equal(kd3_crypto_rng(c, a, sizeof(a)), KD3_OK);
	assert_int_equal(kd3_crypto_rng(c, b, sizeof(b)), KD3_OK);
	assert_false(all_zero(a, sizeof(a)));
	assert_memory_not_equal(a, b, sizeof(a));
	/* More than one DRBG request's worth: the tail is filled too. */
	assert_int_equal(kd3_crypto_rng(c, big, sizeof(big)), KD3_OK);
	assert_false(all_zero(big + sizeof(big) - 64, 64));
	assert_memory_not_equal(big + 1024, big + 2048, 1024);
	/* Two contexts seeded with the same personalisation still differ. */
	kd3_crypto other;
	assert_int_equal(kd3_crypto_init(&other, "test_crypto", 1), KD3_OK);
	assert_int_equal(kd3_crypto_rng(&other, b, sizeof(b)), KD3_OK);
	assert_memory_not_equal(a, b, sizeof(a));
	kd3_crypto_free(&other);
	/* Without a DRBG there is no randomness, never silent zeros. */
	assert_int_equal(kd3_crypto_init(&other, "none", 0), KD3_OK);
	assert_int_equal(kd3_crypto_rng(&other, b, sizeof(b)), KD3_E_RNG);
	kd3_crypto_free(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256_abc),
	    cmocka_unit_test(test_hmac_rfc4231_case2),
	    cmocka_unit_test(test_hmac_vs_mbedtls),
	    cmocka_unit_test(test_hkdf_rfc5869),
	    cmocka_unit_test(test_hkdf_vs_mbedtls),
	    cmocka_unit_test(test_hkdf_limits),
	    cmocka_unit_test(test_x25519_rfc7748_5_2),
	    cmocka_unit_test(test_x25519_rfc7748_6_1),
	    cmocka_unit_test(test_x25519_low_order),
	    cmocka_unit_test(test_aead_rfc8439_2_8_2),
	    cmocka_unit_test(test_aead_gcm_test_case_16),
	    cmocka_unit_test(test_aead_round_trip_and_tamper),
	    cmocka_unit_test(test_aead_suites_differ),
	    cmocka_unit_test(test_suites),
	    cmocka_unit_test(test_ct_equal),
	    cmocka_unit_test(test_wipe),
	    cmocka_unit_test(test_rng),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
