/* Message codec: frame headers, every message's round trip and golden bytes (the
 * frames of docs/PROTOCOL.md's vectors, printed by tests/vectors/gen_vectors), and
 * the strictness of every decoder: truncation at every length, trailing bytes,
 * unknown flags and suites, bad names, inner lengths off by one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "unit_frames.h"
#include "unit_hex.h"

#include "buf.h"
#include "err.h"
#include "msg.h"
#include "wire.h"

/* A whole frame, big enough for the largest legal one plus a trailing byte. */
typedef struct frame_buf {
	uint8_t b[KD3_FRAME_MAX + 16];
	size_t len;
} frame_buf;

static void unhex_frame(const char *hex, frame_buf *f)
{
	f->len = hex_decode(hex, f->b, sizeof(f->b));
}

static uint8_t *body_of(frame_buf *f)
{
	return f->b + KD3_HDR_LEN;
}

static size_t body_len(const frame_buf *f)
{
	return f->len - KD3_HDR_LEN;
}

static void fill(uint8_t *p, size_t n, uint8_t first)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(first + i);
}

static kd3_view cview(const char *s)
{
	return (kd3_view){(const uint8_t *)s, strlen(s)};
}

/* An M1 body from its fields with a zero authenticator (the codec never checks it). */
static size_t build_m1(uint8_t *out, size_t cap, uint8_t suite, uint8_t flags, kd3_view id_i,
                       kd3_view id_r)
{
	static const uint8_t zero[KD3_MAC_LEN];
	uint8_t n_i[KD3_NONCE_LEN], e_i[KD3_DH_LEN];
	kd3_writer w;

	fill(n_i, sizeof(n_i), 0xa0);
	fill(e_i, sizeof(e_i), 0x40);
	kd3_wr_init(&w, out, cap);
	kd3_m1_encode_signed(&w, suite, flags, id_i, id_r, n_i, 7, e_i);
	assert_int_equal(kd3_wr_bytes(&w, zero, sizeof(zero)), KD3_OK);
	return w.len;
}

/* ---- frame header ------------------------------------------------------------ */

static void test_frame_decode_golden(void **state)
{
	(void)state;
	frame_buf f;
	kd3_frame fr;

	unhex_frame(m1_hex, &f);
	assert_int_equal(kd3_frame_decode(f.b, f.len, &fr), KD3_OK);
	assert_int_equal(fr.version, KD3_VERSION);
	assert_int_equal(fr.type, KD3_T_M1);
	assert_ptr_equal(fr.body.p, f.b + KD3_HDR_LEN);
	assert_int_equal(fr.body.len, 80);
}

static void test_frame_bad_version(void **state)
{
	(void)state;
	static const uint8_t versions[] = {0, 2, 0x81, 0xff};
	frame_buf f;
	kd3_frame fr;

	unhex_frame(m1_hex, &f);
	for (size_t i = 0; i < sizeof(versions); i++) {
		f.b[0] = versions[i];
		assert_int_equal(kd3_frame_decode(f.b, f.len, &fr), KD3_E_UNSUPPORTED);
		assert_int_equal(kd3_frame_size(f.b, f.len), -KD3_E_UNSUPPORTED);
	}
}

static void test_frame_unknown_type(void **state)
{
	(void)state;
	static const uint8_t known[] = {KD3_T_M1, KD3_T_M2,     KD3_T_M3,
	                                KD3_T_M4, KD3_T_RECORD, KD3_T_ERROR};
	uint8_t f[KD3_HDR_LEN + 4] = {KD3_VERSION, 0, 0, 4};
	kd3_frame fr;

	for (int t = 0; t < 256; t++) {
		f[1] = (uint8_t)t;
		if (memchr(known, t, sizeof(known)))
			continue;
		assert_int_equal(kd3_frame_decode(f, sizeof(f), &fr), KD3_E_MALFORMED);
		assert_true(kd3_frame_size(f, sizeof(f)) < 0);
	}
}

static void test_frame_length_mismatch(void **state)
{
	(void)state;
	frame_buf f;
	kd3_frame fr;

	unhex_frame(m1_hex, &f);
	/* One byte missing, one byte extra. */
	assert_int_equal(kd3_frame_decode(f.b, f.len - 1, &fr), KD3_E_MALFORMED);
	f.b[f.len] = 0;
	assert_int_equal(kd3_frame_decode(f.b, f.len + 1, &fr), KD3_E_MALFORMED);
	/* The length field itself one off both ways. */
	kd3_put_u16(f.b + 2, (uint16_t)(body_len(&f) + 1));
	assert_int_equal(kd3_frame_decode(f.b, f.len, &fr), KD3_E_MALFORMED);
	kd3_put_u16(f.b + 2, (uint16_t)(body_len(&f) - 1));
	assert_int_equal(kd3_frame_decode(f.b, f.len, &fr), KD3_E_MALFORMED);
	/* Not even a header. */
	for (size_t n = 0; n < KD3_HDR_LEN; n++)
		assert_int_equal(kd3_frame_decode(f.b, n, &fr), KD3_E_MALFORMED);
}

static void test_frame_oversize_per_type(void **state)
{
	(void)state;
	static const struct {
		uint8_t type;
		size_t max;
	} limits[] = {
	    {KD3_T_M1, 614},
	    {KD3_T_M2, 2 + 614 + 32 + 4 + 32 + 32},
	    {KD3_T_M3, 132},
	    {KD3_T_M4, 32 + 4 + 32 + 4 + 48 + 32},
	    {KD3_T_ERROR, 2 + 1 + 255},
	    {KD3_T_RECORD, 8 + 1 + 16384 + 16},
	};
	static uint8_t f[KD3_FRAME_MAX + 2];
	kd3_frame fr;

	assert_int_equal(KD3_FRAME_MAX, 4 + 16409);
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		size_t max = limits[i].max;
		f[0] = KD3_VERSION;
		f[1] = limits[i].type;
		kd3_put_u16(f + 2, (uint16_t)max);
		assert_int_equal(kd3_frame_decode(f, KD3_HDR_LEN + max, &fr), KD3_OK);
		assert_int_equal(kd3_frame_size(f, KD3_HDR_LEN), (long)(KD3_HDR_LEN + max));
		kd3_put_u16(f + 2, (uint16_t)(max + 1));
		assert_int_equal(kd3_frame_decode(f, KD3_HDR_LEN + max + 1, &fr), KD3_E_MALFORMED);
		assert_int_equal(kd3_frame_size(f, KD3_HDR_LEN), -KD3_E_MALFORMED);
		kd3_put_u16(f + 2, 0xffff);
		assert_int_equal(kd3_frame_size(f, KD3_HDR_LEN), -KD3_E_MALFORMED);
	}
}

static void test_frame_size_stream(void **state)
{
	(void)state;
	frame_buf f;

	unhex_frame(m2_hex, &f);
	/* Fewer than a header: "need more". */
	for (size_t n = 0; n < KD3_HDR_LEN; n++)
		assert_int_equal(kd3_frame_size(f.b, n), 0);
	/* From the header on, the whole frame's size, whether the body is there or not. */
	for (size_t n = KD3_HDR_LEN; n <= f.len; n++)
		assert_int_equal(kd3_frame_size(f.b, n), (long)f.len);
	/* Bytes of a next frame do not change the answer. */
	f.b[f.len] = KD3_VERSION;
	assert_int_equal(kd3_frame_size(f.b, f.len + 1), (long)f.len);
	/* An empty body is a whole frame of 4 bytes (the decoders judge the body). */
	uint8_t empty[KD3_HDR_LEN] = {KD3_VERSION, KD3_T_M3, 0, 0};
	assert_int_equal(kd3_frame_size(empty, sizeof(empty)), KD3_HDR_LEN);
}

/* ---- M1 ------------------------------------------------------------------------ */

static void check_m1_fields(const kd3_m1 *m, const uint8_t *body, size_t len, int fs)
{
	uint8_t n_i[KD3_NONCE_LEN];
	fill(n_i, sizeof(n_i), 0xa0);
	assert_int_equal(m->suite, KD3_SUITE_CHACHAPOLY);
	assert_int_equal(m->flags, fs ? KD3_FLAG_FS : 0);
	assert_int_equal(m->id_i.len, 5);
	assert_memory_equal(m->id_i.p, "alice", 5);
	assert_int_equal(m->id_r.len, 3);
	assert_memory_equal(m->id_r.p, "bob", 3);
	assert_ptr_equal(m->n_i, body + 2 + 6 + 4);
	assert_memory_equal(m->n_i, n_i, sizeof(n_i));
	assert_int_equal(m->kvno_i, 1);
	if (fs)
		assert_ptr_equal(m->e_i, body + 2 + 6 + 4 + 32 + 4);
	else
		assert_null(m->e_i);
	assert_ptr_equal(m->auth_i, body + len - KD3_MAC_LEN);
	assert_int_equal(m->signed_len, len - KD3_MAC_LEN);
	assert_ptr_equal(m->body.p, body);
	assert_int_equal(m->body.len, len);
}

static void test_m1_decode_golden(void **state)
{
	(void)state;
	frame_buf f;
	kd3_m1 m;

	unhex_frame(m1_hex, &f);
	assert_int_equal(kd3_m1_decode(body_of(&f), body_len(&f), &m), KD3_OK);
	check_m1_fields(&m, body_of(&f), body_len(&f), 0);

	unhex_frame(m1_fs_hex, &f);
	assert_int_equal(kd3_m1_decode(body_of(&f), body_len(&f), &m), KD3_OK);
	check_m1_fields(&m, body_of(&f), body_len(&f), 1);
	/* X25519(e_i priv = 40..5f, 9), as printed by gen_vectors. */
	frame_buf e;
	unhex_frame("79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a", &e);
	assert_memory_equal(m.e_i, e.b, KD3_DH_LEN);
}

/* Encoding the golden fields gives the golden bytes. */
static void check_m1_encode(const char *hex)
{
	frame_buf g, out;
	kd3_m1 m;
	kd3_writer w;
	size_t start;

	unhex_frame(hex, &g);
	assert_int_equal(kd3_m1_decode(body_of(&g), body_len(&g), &m), KD3_OK);
	kd3_wr_init(&w, out.b, sizeof(out.b));
	assert_int_equal(kd3_frame_begin(&w, KD3_T_M1, &start), KD3_OK);
	assert_int_equal(
	    kd3_m1_encode_signed(&w, m.suite, m.flags, m.id_i, m.id_r, m.n_i, m.kvno_i, m.e_i),
	    KD3_OK);
	assert_int_equal(w.len - start - KD3_HDR_LEN, m.signed_len);
	assert_int_equal(kd3_wr_bytes(&w, m.auth_i, KD3_MAC_LEN), KD3_OK);
	assert_int_equal(kd3_frame_end(&w, start), KD3_OK);
	assert_int_equal(w.len, g.len);
	assert_memory_equal(out.b, g.b, g.len);
}

static void test_m1_encode_golden(void **state)
{
	(void)state;
	check_m1_encode(m1_hex);
	check_m1_encode(m1_fs_hex);
}

/* Every proper prefix of a valid body is MALFORMED. */
static void check_truncations(const char *hex, int (*decode)(const uint8_t *, size_t))
{
	frame_buf f;
	unhex_frame(hex, &f);
	assert_int_equal(decode(body_of(&f), body_len(&f)), KD3_OK);
	for (size_t n = 0; n < body_len(&f); n++) {
		int ret = decode(body_of(&f), n);
		if (ret != KD3_E_MALFORMED)
			fail_msg("%.8s... cut to %zu bytes: %d, want MALFORMED", hex, n, ret);
	}
	/* And one byte more is MALFORMED too. */
	f.b[f.len] = 0;
	assert_int_equal(decode(body_of(&f), body_len(&f) + 1), KD3_E_MALFORMED);
}

static int decode_m1(const uint8_t *p, size_t n)
{
	kd3_m1 m;
	return kd3_m1_decode(p, n, &m);
}

static int decode_m2(const uint8_t *p, size_t n)
{
	kd3_m2 m;
	return kd3_m2_decode(p, n, &m);
}

static int decode_m3(const uint8_t *p, size_t n)
{
	kd3_m3 m;
	return kd3_m3_decode(p, n, &m);
}

static int decode_m4(const uint8_t *p, size_t n)
{
	kd3_m4 m;
	return kd3_m4_decode(p, n, 0, &m);
}

static int decode_m4_fs(const uint8_t *p, size_t n)
{
	kd3_m4 m;
	return kd3_m4_decode(p, n, 1, &m);
}

static int decode_error(const uint8_t *p, size_t n)
{
	kd3_error_msg m;
	return kd3_error_decode(p, n, &m);
}

static void test_m1_truncations_and_trailing(void **state)
{
	(void)state;
	check_truncations(m1_hex, decode_m1);
	check_truncations(m1_fs_hex, decode_m1);
}

static void test_m1_unknown_flags(void **state)
{
	(void)state;
	frame_buf f;
	kd3_m1 m;

	unhex_frame(m1_hex, &f);
	for (int bit = 1; bit < 8; bit++) {
		body_of(&f)[1] = (uint8_t)(1u << bit);
		assert_int_equal(kd3_m1_decode(body_of(&f), body_len(&f), &m), KD3_E_UNSUPPORTED);
		body_of(&f)[1] = (uint8_t)(1u << bit | KD3_FLAG_FS);
		assert_int_equal(kd3_m1_decode(body_of(&f), body_len(&f), &m), KD3_E_UNSUPPORTED);
	}
	/* The FS flag on a body without e_i is a length error, not a success. */
	body_of(&f)[1] = KD3_FLAG_FS;
	assert_int_equal(kd3_m1_decode(body_of(&f), body_len(&f), &m), KD3_E_MALFORMED);
	/* And the FS body with the flag cleared has 32 bytes too many. */
	unhex_frame(m1_fs_hex, &f);
	body_of(&f)[1] = 0;
	assert_int_equal(kd3_m1_decode(body_of(&f), body_len(&f), &m), KD3_E_MALFORMED);
}

static void test_m1_unknown_suite(void **state)
{
	(void)state;
	static const uint8_t bad[] = {0x00, 0x03, 0x04, 0x7f, 0x80, 0xff};
	frame_buf f;
	kd3_m1 m;

	unhex_frame(m1_hex, &f);
	for (size_t i = 0; i < sizeof(bad); i++) {
		body_of(&f)[0] = bad[i];
		assert_int_equal(kd3_m1_decode(body_of(&f), body_len(&f), &m), KD3_E_UNSUPPORTED);
	}
	body_of(&f)[0] = KD3_SUITE_AES256GCM;
	assert_int_equal(kd3_m1_decode(body_of(&f), body_len(&f), &m), KD3_OK);
	assert_int_equal(m.suite, KD3_SUITE_AES256GCM);
}

static void test_m1_bad_names(void **state)
{
	(void)state;
	static const char *bad[] = {"al ice",  "alice:", "al+ice",    "al\\ice",    "al,ice",
	                            "al\nice", "al~ice", "al\x7fice", "al\xc3\xa9", "a#"};
	uint8_t body[KD3_M1_BODY_MAX + 8];
	kd3_m1 m;
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = build_m1(body, sizeof(body), KD3_SUITE_CHACHAPOLY, 0, cview(bad[i]),
		             cview("bob"));
		assert_int_equal(kd3_m1_decode(body, n, &m), KD3_E_MALFORMED);
		n = build_m1(body, sizeof(body), KD3_SUITE_CHACHAPOLY, 0, cview("alice"),
		             cview(bad[i]));
		assert_int_equal(kd3_m1_decode(body, n, &m), KD3_E_MALFORMED);
	}
	/* A NUL inside a name. */
	n = build_m1(body, sizeof(body), KD3_SUITE_CHACHAPOLY, 0,
	             (kd3_view){(const uint8_t *)"al\0ce", 5}, cview("bob"));
	assert_int_equal(kd3_m1_decode(body, n, &m), KD3_E_MALFORMED);
	/* Empty names. */
	n = build_m1(body, sizeof(body), KD3_SUITE_CHACHAPOLY, 0, cview(""), cview("bob"));
	assert_int_equal(kd3_m1_decode(body, n, &m), KD3_E_MALFORMED);
	n = build_m1(body, sizeof(body), KD3_SUITE_CHACHAPOLY, 0, cview("alice"), cview(""));
	assert_int_equal(kd3_m1_decode(body, n, &m), KD3_E_MALFORMED);
	/* The builder itself makes a good M1 from good names. */
	n = build_m1(body, sizeof(body), KD3_SUITE_CHACHAPOLY, 0, cview("alice"), cview("bob"));
	assert_int_equal(kd3_m1_decode(body, n, &m), KD3_OK);
}

static void test_m1_longest(void **state)
{
	(void)state;
	char name_i[KD3_NAME_MAX + 1], name_r[KD3_NAME_MAX + 1];
	uint8_t body[KD3_M1_BODY_MAX + 8];
	kd3_m1 m;

	memset(name_i, 'i', KD3_NAME_MAX);
	memset(name_r, 'r', KD3_NAME_MAX);
	name_i[KD3_NAME_MAX] = name_r[KD3_NAME_MAX] = '\0';
	size_t n = build_m1(body, sizeof(body), KD3_SUITE_CHACHAPOLY, KD3_FLAG_FS, cview(name_i),
	                    cview(name_r));
	assert_int_equal(n, KD3_M1_BODY_MAX);
	assert_int_equal(kd3_m1_decode(body, n, &m), KD3_OK);
	assert_int_equal(m.id_i.len, KD3_NAME_MAX);
	assert_int_equal(m.id_r.len, KD3_NAME_MAX);
	assert_non_null(m.e_i);
}

/* ---- M2 ------------------------------------------------------------------------ */

static void check_m2_golden(const char *m2hex, const char *m1hex, int fs)
{
	frame_buf g, g1, out;
	uint8_t n_r[KD3_NONCE_LEN];
	kd3_m2 m;
	kd3_writer w;
	size_t start;

	unhex_frame(m2hex, &g);
	unhex_frame(m1hex, &g1);
	fill(n_r, sizeof(n_r), 0xb0);
	assert_int_equal(kd3_m2_decode(body_of(&g), body_len(&g), &m), KD3_OK);
	/* The inner M1 is the M1 frame's body verbatim. */
	assert_ptr_equal(m.m1.body.p, body_of(&g) + 2);
	assert_int_equal(m.m1.body.len, body_len(&g1));
	assert_memory_equal(m.m1.body.p, body_of(&g1), body_len(&g1));
	check_m1_fields(&m.m1, body_of(&g) + 2, body_len(&g1), fs);
	assert_memory_equal(m.n_r, n_r, sizeof(n_r));
	assert_int_equal(m.kvno_r, 2);
	if (fs)
		assert_ptr_equal(m.e_r, m.n_r + 32 + 4);
	else
		assert_null(m.e_r);
	assert_ptr_equal(m.auth_r, body_of(&g) + body_len(&g) - KD3_MAC_LEN);
	assert_int_equal(m.signed_len, body_len(&g) - KD3_MAC_LEN);
	assert_ptr_equal(m.body.p, body_of(&g));
	assert_int_equal(m.body.len, body_len(&g));

	kd3_wr_init(&w, out.b, sizeof(out.b));
	kd3_frame_begin(&w, KD3_T_M2, &start);
	assert_int_equal(kd3_m2_encode_signed(&w, m.m1.body, m.n_r, m.kvno_r, m.e_r), KD3_OK);
	assert_int_equal(w.len - start - KD3_HDR_LEN, m.signed_len);
	kd3_wr_bytes(&w, m.auth_r, KD3_MAC_LEN);
	assert_int_equal(kd3_frame_end(&w, start), KD3_OK);
	assert_int_equal(w.len, g.len);
	assert_memory_equal(out.b, g.b, g.len);
}

static void test_m2_golden(void **state)
{
	(void)state;
	check_m2_golden(m2_hex, m1_hex, 0);
	check_m2_golden(m2_fs_hex, m1_fs_hex, 1);
}

static void test_m2_truncations_and_trailing(void **state)
{
	(void)state;
	check_truncations(m2_hex, decode_m2);
	check_truncations(m2_fs_hex, decode_m2);
}

static void test_m2_inner_length_off_by_one(void **state)
{
	(void)state;
	frame_buf f;
	kd3_m2 m;

	unhex_frame(m2_hex, &f);
	uint16_t inner = kd3_get_u16(body_of(&f));
	assert_int_equal(inner, 80);
	kd3_put_u16(body_of(&f), (uint16_t)(inner + 1));
	assert_int_equal(kd3_m2_decode(body_of(&f), body_len(&f), &m), KD3_E_MALFORMED);
	kd3_put_u16(body_of(&f), (uint16_t)(inner - 1));
	assert_int_equal(kd3_m2_decode(body_of(&f), body_len(&f), &m), KD3_E_MALFORMED);
	kd3_put_u16(body_of(&f), 0xffff);
	assert_int_equal(kd3_m2_decode(body_of(&f), body_len(&f), &m), KD3_E_MALFORMED);
	kd3_put_u16(body_of(&f), 0);
	assert_int_equal(kd3_m2_decode(body_of(&f), body_len(&f), &m), KD3_E_MALFORMED);
}

static void test_m2_inner_m1_checked(void **state)
{
	(void)state;
	frame_buf f;
	kd3_m2 m;

	/* The inner M1's suite, flags and names are judged as in a bare M1. */
	unhex_frame(m2_hex, &f);
	body_of(&f)[2] = 0x03;
	assert_int_equal(kd3_m2_decode(body_of(&f), body_len(&f), &m), KD3_E_UNSUPPORTED);
	unhex_frame(m2_hex, &f);
	body_of(&f)[3] = 0x80;
	assert_int_equal(kd3_m2_decode(body_of(&f), body_len(&f), &m), KD3_E_UNSUPPORTED);
	unhex_frame(m2_hex, &f);
	body_of(&f)[2 + 2 + 1] = ' '; /* first byte of "alice" */
	assert_int_equal(kd3_m2_decode(body_of(&f), body_len(&f), &m), KD3_E_MALFORMED);

	/* The inner FS flag decides whether e_r is there: an FS M2 without e_r is short. */
	unhex_frame(m2_fs_hex, &f);
	size_t blen = body_len(&f);
	memmove(body_of(&f) + blen - 64, body_of(&f) + blen - 32, 32);
	assert_int_equal(kd3_m2_decode(body_of(&f), blen - 32, &m), KD3_E_MALFORMED);
}

/* ---- M3 ------------------------------------------------------------------------ */

static void test_m3_golden(void **state)
{
	(void)state;
	frame_buf g, out;
	uint8_t n_r[KD3_NONCE_LEN];
	kd3_m3 m;
	kd3_writer w;

	unhex_frame(m3_hex, &g);
	fill(n_r, sizeof(n_r), 0xb0);
	assert_int_equal(body_len(&g), KD3_M3_BODY_LEN);
	assert_int_equal(kd3_m3_decode(body_of(&g), body_len(&g), &m), KD3_OK);
	assert_memory_equal(m.n_r, n_r, sizeof(n_r));
	assert_int_equal(m.lifetime, 3600);
	assert_ptr_equal(m.blob_r, body_of(&g) + 36);
	assert_ptr_equal(m.blob_i, body_of(&g) + 36 + KD3_BLOB_LEN);

	kd3_wr_init(&w, out.b, sizeof(out.b));
	assert_int_equal(kd3_m3_encode(&w, &m), KD3_OK);
	assert_int_equal(w.len, g.len);
	assert_memory_equal(out.b, g.b, g.len);

	check_truncations(m3_hex, decode_m3);
}

/* ---- M4 ------------------------------------------------------------------------ */

static void check_m4_golden(const char *hex, int fs)
{
	frame_buf g, out;
	kd3_m4 m;
	kd3_writer w;

	unhex_frame(hex, &g);
	assert_int_equal(kd3_m4_decode(body_of(&g), body_len(&g), fs, &m), KD3_OK);
	assert_ptr_equal(m.n_r, body_of(&g));
	assert_int_equal(m.kvno_r, 2);
	if (fs)
		assert_ptr_equal(m.e_r, body_of(&g) + 36);
	else
		assert_null(m.e_r);
	assert_int_equal(m.lifetime, 3600);
	assert_ptr_equal(m.confirm_r, body_of(&g) + body_len(&g) - KD3_MAC_LEN);
	assert_ptr_equal(m.blob_i, m.confirm_r - KD3_BLOB_LEN);

	kd3_wr_init(&w, out.b, sizeof(out.b));
	assert_int_equal(kd3_m4_encode(&w, &m), KD3_OK);
	assert_int_equal(w.len, g.len);
	assert_memory_equal(out.b, g.b, g.len);
}

static void test_m4_golden(void **state)
{
	(void)state;
	check_m4_golden(m4_hex, 0);
	check_m4_golden(m4_fs_hex, 1);
	check_truncations(m4_hex, decode_m4);
	check_truncations(m4_fs_hex, decode_m4_fs);
}

static void test_m4_fs_mismatch(void **state)
{
	(void)state;
	frame_buf f;
	kd3_m4 m;

	unhex_frame(m4_hex, &f);
	assert_int_equal(kd3_m4_decode(body_of(&f), body_len(&f), 1, &m), KD3_E_MALFORMED);
	unhex_frame(m4_fs_hex, &f);
	assert_int_equal(kd3_m4_decode(body_of(&f), body_len(&f), 0, &m), KD3_E_MALFORMED);
}

/* ---- ERROR ---------------------------------------------------------------------- */

static void test_error_round_trip(void **state)
{
	(void)state;
	static const uint8_t golden[] = {0x01, 0x7f, 0x00, 0x0b, 0x00, 0x04, 0x08, 'b',
	                                 'a',  'd',  ' ',  'a',  'u',  't',  'h'};
	uint8_t out[KD3_HDR_LEN + KD3_ERROR_BODY_MAX];
	kd3_writer w;
	kd3_frame fr;
	kd3_error_msg m;

	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_error_encode(&w, KD3_E_BAD_AUTH, "bad auth"), KD3_OK);
	assert_int_equal(w.len, sizeof(golden));
	assert_memory_equal(out, golden, sizeof(golden));
	assert_int_equal(kd3_frame_decode(out, w.len, &fr), KD3_OK);
	assert_int_equal(fr.type, KD3_T_ERROR);
	assert_int_equal(kd3_error_decode(fr.body.p, fr.body.len, &m), KD3_OK);
	assert_int_equal(m.code, KD3_E_BAD_AUTH);
	assert_int_equal(m.text.len, 8);
	assert_memory_equal(m.text.p, "bad auth", 8);

	check_truncations("017f000b0004086261642061757468", decode_error);
}

static void test_error_codes(void **state)
{
	(void)state;
	uint8_t body[3] = {0, 0, 0}; /* code, empty text */
	kd3_error_msg m;

	for (unsigned code = 0; code <= 12; code++) {
		kd3_put_u16(body, (uint16_t)code);
		int want = code >= 1 && code <= 9 ? KD3_OK : KD3_E_MALFORMED;
		assert_int_equal(kd3_error_decode(body, sizeof(body), &m), want);
	}
	static const uint16_t local[] = {KD3_E_UNEXPECTED, KD3_E_NO_SPACE, 0x0100, 0xffff};
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		kd3_put_u16(body, local[i]);
		assert_int_equal(kd3_error_decode(body, sizeof(body), &m), KD3_E_MALFORMED);
	}
}

static void test_error_text_cleaned(void **state)
{
	(void)state;
	uint8_t out[KD3_HDR_LEN + KD3_ERROR_BODY_MAX];
	char long_text[400];
	kd3_writer w;
	kd3_error_msg m;

	/* Only printable ASCII goes out. */
	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_error_encode(&w, KD3_E_BUSY,
	                                  "a\x01"
	                                  "b\x7f\xc3\xa9\n"),
	                 KD3_OK);
	assert_int_equal(kd3_error_decode(out + KD3_HDR_LEN, w.len - KD3_HDR_LEN, &m), KD3_OK);
	assert_int_equal(m.text.len, 7);
	assert_memory_equal(m.text.p, "a?b????", 7);

	/* Long texts are cut to 255 bytes; the frame is then exactly the largest ERROR. */
	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_error_encode(&w, KD3_E_INTERNAL, long_text), KD3_OK);
	assert_int_equal(w.len, sizeof(out));
	assert_int_equal(kd3_error_decode(out + KD3_HDR_LEN, w.len - KD3_HDR_LEN, &m), KD3_OK);
	assert_int_equal(m.text.len, 255);

	/* No text at all. */
	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_error_encode(&w, KD3_E_TIMEOUT, NULL), KD3_OK);
	assert_int_equal(w.len, KD3_HDR_LEN + 3);
}

/* ---- RECORD --------------------------------------------------------------------- */

static void test_record_golden(void **state)
{
	(void)state;
	frame_buf g;
	kd3_frame fr;
	kd3_record r;

	unhex_frame(finished_hex, &g);
	assert_int_equal(kd3_frame_decode(g.b, g.len, &fr), KD3_OK);
	assert_int_equal(fr.type, KD3_T_RECORD);
	assert_int_equal(kd3_record_decode(g.b, fr.body.p, fr.body.len, &r), KD3_OK);
	assert_true(r.seq == 0);
	assert_ptr_equal(r.sealed.p, g.b + KD3_HDR_LEN + KD3_SEQ_LEN);
	assert_int_equal(r.sealed.len, 1 + KD3_MAC_LEN + KD3_TAG_LEN);
	assert_ptr_equal(r.ad.p, g.b);
	assert_int_equal(r.ad.len, KD3_HDR_LEN + KD3_SEQ_LEN);
}

/* A RECORD frame with seq and sealed_len bytes of "ciphertext || tag". */
static size_t build_record(uint8_t *out, size_t cap, uint64_t seq, size_t sealed_len)
{
	kd3_writer w;
	size_t start;
	kd3_wr_init(&w, out, cap);
	kd3_frame_begin(&w, KD3_T_RECORD, &start);
	kd3_wr_u64(&w, seq);
	uint8_t *p = kd3_wr_reserve(&w, sealed_len);
	if (p)
		memset(p, 0x5a, sealed_len);
	return kd3_frame_end(&w, start) == KD3_OK ? w.len : 0;
}

static void test_record_round_trip_and_bounds(void **state)
{
	(void)state;
	static uint8_t f[KD3_FRAME_MAX + 16];
	kd3_frame fr;
	kd3_record r;
	size_t n;

	n = build_record(f, sizeof(f), 0x0102030405060708ull, 1 + 5 + KD3_TAG_LEN);
	assert_int_equal(kd3_frame_decode(f, n, &fr), KD3_OK);
	assert_int_equal(kd3_record_decode(f, fr.body.p, fr.body.len, &r), KD3_OK);
	assert_true(r.seq == 0x0102030405060708ull);
	assert_int_equal(r.sealed.len, 1 + 5 + KD3_TAG_LEN);

	/* Smallest: the inner type byte and a tag. One less is refused. */
	n = build_record(f, sizeof(f), 1, 1 + KD3_TAG_LEN);
	assert_int_equal(kd3_record_decode(f, f + KD3_HDR_LEN, n - KD3_HDR_LEN, &r), KD3_OK);
	n = build_record(f, sizeof(f), 1, KD3_TAG_LEN);
	assert_int_equal(kd3_record_decode(f, f + KD3_HDR_LEN, n - KD3_HDR_LEN, &r),
	                 KD3_E_MALFORMED);
	for (size_t body = 0; body <= KD3_SEQ_LEN; body++)
		assert_int_equal(kd3_record_decode(f, f + KD3_HDR_LEN, body, &r), KD3_E_MALFORMED);

	/* Largest: a full payload. One more byte is refused by the record decoder itself. */
	n = build_record(f, sizeof(f), 2, 1 + KD3_PAYLOAD_MAX + KD3_TAG_LEN);
	assert_int_equal(n, KD3_FRAME_MAX);
	assert_int_equal(kd3_frame_decode(f, n, &fr), KD3_OK);
	assert_int_equal(kd3_record_decode(f, fr.body.p, fr.body.len, &r), KD3_OK);
	assert_int_equal(kd3_record_decode(f, fr.body.p, fr.body.len + 1, &r), KD3_E_MALFORMED);

	/* The AD is the header and seq as they sit in the frame; a body elsewhere is refused. */
	static uint8_t copy[64];
	n = build_record(f, sizeof(f), 3, 1 + KD3_TAG_LEN);
	memcpy(copy, f + KD3_HDR_LEN, n - KD3_HDR_LEN);
	assert_int_equal(kd3_record_decode(f, copy, n - KD3_HDR_LEN, &r), KD3_E_MALFORMED);
}

/* ---- names ---------------------------------------------------------------------- */

static int allowed_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '@' || c == '/' || c == '-';
}

static void test_name_table(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		int valid;
	} table[] = {
	    {"a", 1},           {"alice", 1}, {"Bob-2", 1}, {"svc/host.example@REALM", 1},
	    {"under_score", 1}, {"..", 1},    {"-", 1},     {"", 0},
	    {" ", 0},           {"a b", 0},   {"a:b", 0},   {"a+b", 0},
	    {"a\\b", 0},        {"a%b", 0},   {"a*", 0},    {"\xc3\xa9", 0},
	    {"a\tb", 0},        {"bob\n", 0}, {"[::1]", 0},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const char *s = table[i].name;
		if (kd3_name_valid((const uint8_t *)s, strlen(s)) != table[i].valid ||
		    kd3_name_valid_cstr(s) != table[i].valid)
			fail_msg("name \"%s\": want %s", s, table[i].valid ? "valid" : "invalid");
	}
	/* Every single byte. */
	for (int c = 0; c < 256; c++) {
		uint8_t b = (uint8_t)c;
		assert_int_equal(kd3_name_valid(&b, 1), allowed_char(c));
	}
	/* Lengths 255 and 256; a NUL inside; NULL. */
	char longest[KD3_NAME_MAX + 2];
	memset(longest, 'n', sizeof(longest) - 1);
	longest[KD3_NAME_MAX + 1] = '\0';
	assert_false(kd3_name_valid((const uint8_t *)longest, KD3_NAME_MAX + 1));
	assert_false(kd3_name_valid_cstr(longest));
	longest[KD3_NAME_MAX] = '\0';
	assert_true(kd3_name_valid((const uint8_t *)longest, KD3_NAME_MAX));
	assert_true(kd3_name_valid_cstr(longest));
	assert_false(kd3_name_valid((const uint8_t *)"a\0b", 3));
	assert_false(kd3_name_valid_cstr(NULL));
}

/* ---- encoders ------------------------------------------------------------------- */

static void test_encoders_no_space(void **state)
{
	(void)state;
	frame_buf g;
	uint8_t out[KD3_HDR_LEN + KD3_M3_BODY_LEN];
	kd3_m3 m3;
	kd3_writer w;

	unhex_frame(m3_hex, &g);
	assert_int_equal(kd3_m3_decode(body_of(&g), body_len(&g), &m3), KD3_OK);
	kd3_wr_init(&w, out, sizeof(out) - 1);
	assert_int_equal(kd3_m3_encode(&w, &m3), KD3_E_NO_SPACE);
	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_m3_encode(&w, &m3), KD3_OK);

	kd3_wr_init(&w, out, 5);
	assert_int_equal(kd3_error_encode(&w, 1, "x"), KD3_E_NO_SPACE);
}

static void test_frame_end_refuses_oversize(void **state)
{
	(void)state;
	static uint8_t out[KD3_FRAME_MAX + 16];
	kd3_writer w;
	size_t start;

	/* A body longer than its type allows is not sent. */
	kd3_wr_init(&w, out, sizeof(out));
	kd3_frame_begin(&w, KD3_T_M3, &start);
	kd3_wr_reserve(&w, KD3_M3_BODY_LEN + 1);
	assert_int_equal(kd3_frame_end(&w, start), KD3_E_NO_SPACE);

	kd3_wr_init(&w, out, sizeof(out));
	kd3_frame_begin(&w, KD3_T_M1, &start);
	kd3_wr_reserve(&w, KD3_M1_BODY_MAX);
	assert_int_equal(kd3_frame_end(&w, start), KD3_OK);
	assert_int_equal(kd3_get_u16(out + 2), KD3_M1_BODY_MAX);

	/* A frame after another starts where the first ended. */
	kd3_wr_init(&w, out, sizeof(out));
	kd3_wr_bytes(&w, "xyz", 3);
	kd3_frame_begin(&w, KD3_T_M1, &start);
	assert_int_equal(start, 3);
	kd3_wr_u8(&w, 9);
	assert_int_equal(kd3_frame_end(&w, start), KD3_OK);
	assert_int_equal(kd3_get_u16(out + 3 + 2), 1);
}

static void test_type_names(void **state)
{
	(void)state;
	assert_string_equal(kd3_type_name(KD3_T_M1), "M1");
	assert_string_equal(kd3_type_name(KD3_T_M2), "M2");
	assert_string_equal(kd3_type_name(KD3_T_M3), "M3");
	assert_string_equal(kd3_type_name(KD3_T_M4), "M4");
	assert_string_equal(kd3_type_name(KD3_T_RECORD), "RECORD");
	assert_string_equal(kd3_type_name(KD3_T_ERROR), "ERROR");
	assert_string_equal(kd3_type_name(0x05), "UNKNOWN");
	assert_string_equal(kd3_inner_name(KD3_R_FINISHED), "FINISHED");
	assert_string_equal(kd3_inner_name(KD3_R_DATA), "DATA");
	assert_string_equal(kd3_inner_name(KD3_R_KEY_UPDATE), "KEY_UPDATE");
	assert_string_equal(kd3_inner_name(KD3_R_CLOSE), "CLOSE");
	assert_string_equal(kd3_inner_name(0), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frame_decode_golden),
	    cmocka_unit_test(test_frame_bad_version),
	    cmocka_unit_test(test_frame_unknown_type),
	    cmocka_unit_test(test_frame_length_mismatch),
	    cmocka_unit_test(test_frame_oversize_per_type),
	    cmocka_unit_test(test_frame_size_stream),
	    cmocka_unit_test(test_m1_decode_golden),
	    cmocka_unit_test(test_m1_encode_golden),
	    cmocka_unit_test(test_m1_truncations_and_trailing),
	    cmocka_unit_test(test_m1_unknown_flags),
	    cmocka_unit_test(test_m1_unknown_suite),
	    cmocka_unit_test(test_m1_bad_names),
	    cmocka_unit_test(test_m1_longest),
	    cmocka_unit_test(test_m2_golden),
	    cmocka_unit_test(test_m2_truncations_and_trailing),
	    cmocka_unit_test(test_m2_inner_length_off_by_one),
	    cmocka_unit_test(test_m2_inner_m1_checked),
	    cmocka_unit_test(test_m3_golden),
	    cmocka_unit_test(test_m4_golden),
	    cmocka_unit_test(test_m4_fs_mismatch),
	    cmocka_unit_test(test_error_round_trip),
	    cmocka_unit_test(test_error_codes),
	    cmocka_unit_test(test_error_text_cleaned),
	    cmocka_unit_test(test_record_golden),
	    cmocka_unit_test(test_record_round_trip_and_bounds),
	    cmocka_unit_test(test_name_table),
	    cmocka_unit_test(test_encoders_no_space),
	    cmocka_unit_test(test_frame_end_refuses_oversize),
	    cmocka_unit_test(test_type_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
