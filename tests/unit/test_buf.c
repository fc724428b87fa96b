/* kd3_reader / kd3_writer: every getter at its exact size and one byte short, sticky
 * errors, trailing bytes, length prefixes longer than the input, writer boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"

static const uint8_t bytes8[8] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};

/* ---- reader: exact sizes --------------------------------------------------- */

static void test_rd_ints_exact(void **state)
{
	(void)state;
	kd3_reader r;
	uint8_t v8 = 0;
	uint16_t v16 = 0;
	uint32_t v32 = 0;
	uint64_t v64 = 0;

	kd3_rd_init(&r, bytes8, 1);
	assert_int_equal(kd3_rd_u8(&r, &v8), KD3_OK);
	assert_int_equal(v8, 0x01);
	assert_int_equal(kd3_rd_end(&r), KD3_OK);

	kd3_rd_init(&r, bytes8, 2);
	assert_int_equal(kd3_rd_u16(&r, &v16), KD3_OK);
	assert_int_equal(v16, 0x0102);
	assert_int_equal(kd3_rd_end(&r), KD3_OK);

	kd3_rd_init(&r, bytes8, 4);
	assert_int_equal(kd3_rd_u32(&r, &v32), KD3_OK);
	assert_int_equal(v32, 0x01020304);
	assert_int_equal(kd3_rd_end(&r), KD3_OK);

	kd3_rd_init(&r, bytes8, 8);
	assert_int_equal(kd3_rd_u64(&r, &v64), KD3_OK);
	assert_true(v64 == 0x0102030405060708ull);
	assert_int_equal(kd3_rd_left(&r), 0);
	assert_int_equal(kd3_rd_end(&r), KD3_OK);
}

static void test_rd_ints_high_bits(void **state)
{
	(void)state;
	static const uint8_t ff[8] = {0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8};
	kd3_reader r;
	uint32_t v32 = 0;
	uint64_t v64 = 0;

	/* No sign extension anywhere. */
	kd3_rd_init(&r, ff, 4);
	assert_int_equal(kd3_rd_u32(&r, &v32), KD3_OK);
	assert_true(v32 == 0xfffefdfcu);
	kd3_rd_init(&r, ff, 8);
	assert_int_equal(kd3_rd_u64(&r, &v64), KD3_OK);
	assert_true(v64 == 0xfffefdfcfbfaf9f8ull);
}

static void test_rd_view_fixed_exact(void **state)
{
	(void)state;
	kd3_reader r;
	kd3_view v = {0};
	const uint8_t *p = NULL;

	kd3_rd_init(&r, bytes8, 8);
	assert_int_equal(kd3_rd_view(&r, 3, &v), KD3_OK);
	assert_ptr_equal(v.p, bytes8);
	assert_int_equal(v.len, 3);
	assert_int_equal(kd3_rd_fixed(&r, 5, &p), KD3_OK);
	assert_ptr_equal(p, bytes8 + 3);
	assert_int_equal(kd3_rd_end(&r), KD3_OK);

	/* A zero-length view at the very end is fine. */
	assert_int_equal(kd3_rd_view(&r, 0, &v), KD3_OK);
	assert_int_equal(v.len, 0);
	assert_int_equal(kd3_rd_end(&r), KD3_OK);
}

static void test_rd_str_blob16_exact(void **state)
{
	(void)state;
	static const uint8_t str[] = {3, 'a', 'b', 'c'};
	static const uint8_t blob[] = {0, 2, 'x', 'y'};
	static const uint8_t empty_str[] = {0};
	kd3_reader r;
	kd3_view v = {0};

	kd3_rd_init(&r, str, sizeof(str));
	assert_int_equal(kd3_rd_str(&r, &v), KD3_OK);
	assert_int_equal(v.len, 3);
	assert_memory_equal(v.p, "abc", 3);
	assert_int_equal(kd3_rd_end(&r), KD3_OK);

	kd3_rd_init(&r, blob, sizeof(blob));
	assert_int_equal(kd3_rd_blob16(&r, &v), KD3_OK);
	assert_int_equal(v.len, 2);
	assert_memory_equal(v.p, "xy", 2);
	assert_int_equal(kd3_rd_end(&r), KD3_OK);

	kd3_rd_init(&r, empty_str, sizeof(empty_str));
	assert_int_equal(kd3_rd_str(&r, &v), KD3_OK);
	assert_int_equal(v.len, 0);
	assert_int_equal(kd3_rd_end(&r), KD3_OK);
}

static void test_rd_rest(void **state)
{
	(void)state;
	kd3_reader r;
	kd3_view v = {0};
	uint16_t v16 = 0;

	kd3_rd_init(&r, bytes8, 8);
	assert_int_equal(kd3_rd_u16(&r, &v16), KD3_OK);
	assert_int_equal(kd3_rd_rest(&r, &v), KD3_OK);
	assert_ptr_equal(v.p, bytes8 + 2);
	assert_int_equal(v.len, 6);
	assert_int_equal(kd3_rd_end(&r), KD3_OK);
	/* The rest of nothing is empty, not an error. */
	assert_int_equal(kd3_rd_rest(&r, &v), KD3_OK);
	assert_int_equal(v.len, 0);
}

/* ---- reader: one byte short ------------------------------------------------ */

static void test_rd_ints_one_short(void **state)
{
	(void)state;
	kd3_reader r;
	uint8_t v8 = 0xaa;
	uint16_t v16 = 0xaaaa;
	uint32_t v32 = 0xaaaaaaaa;
	uint64_t v64 = 0xaaaaaaaaaaaaaaaaull;

	kd3_rd_init(&r, bytes8, 0);
	assert_int_equal(kd3_rd_u8(&r, &v8), KD3_E_MALFORMED);
	assert_int_equal(v8, 0xaa);

	kd3_rd_init(&r, bytes8, 1);
	assert_int_equal(kd3_rd_u16(&r, &v16), KD3_E_MALFORMED);
	assert_int_equal(v16, 0xaaaa);

	kd3_rd_init(&r, bytes8, 3);
	assert_int_equal(kd3_rd_u32(&r, &v32), KD3_E_MALFORMED);
	assert_true(v32 == 0xaaaaaaaa);

	for (size_t n = 0; n < 8; n++) {
		kd3_rd_init(&r, bytes8, n);
		assert_int_equal(kd3_rd_u64(&r, &v64), KD3_E_MALFORMED);
		assert_true(v64 == 0xaaaaaaaaaaaaaaaaull);
		assert_int_equal(r.err, KD3_E_MALFORMED);
	}
}

static void test_rd_view_fixed_one_short(void **state)
{
	(void)state;
	kd3_reader r;
	kd3_view v = {NULL, 77};
	const uint8_t *p = bytes8;

	kd3_rd_init(&r, bytes8, 4);
	assert_int_equal(kd3_rd_view(&r, 5, &v), KD3_E_MALFORMED);
	assert_null(v.p);
	assert_int_equal(v.len, 77);

	kd3_rd_init(&r, bytes8, 4);
	assert_int_equal(kd3_rd_fixed(&r, 5, &p), KD3_E_MALFORMED);
	assert_ptr_equal(p, bytes8);

	/* A length that would wrap a naive off + n check. */
	kd3_rd_init(&r, bytes8, 4);
	assert_int_equal(kd3_rd_u8(&r, &(uint8_t){0}), KD3_OK);
	assert_int_equal(kd3_rd_view(&r, SIZE_MAX, &v), KD3_E_MALFORMED);
}

static void test_rd_str_longer_than_left(void **state)
{
	(void)state;
	static const uint8_t str[] = {4, 'a', 'b', 'c'};
	static const uint8_t blob[] = {0, 3, 'x', 'y'};
	static const uint8_t blob_big[] = {0xff, 0xff, 'x', 'y'};
	static const uint8_t len_only_half[] = {0};
	kd3_reader r;
	kd3_view v = {NULL, 77};

	kd3_rd_init(&r, str, sizeof(str));
	assert_int_equal(kd3_rd_str(&r, &v), KD3_E_MALFORMED);
	assert_null(v.p);

	kd3_rd_init(&r, blob, sizeof(blob));
	assert_int_equal(kd3_rd_blob16(&r, &v), KD3_E_MALFORMED);
	assert_null(v.p);

	kd3_rd_init(&r, blob_big, sizeof(blob_big));
	assert_int_equal(kd3_rd_blob16(&r, &v), KD3_E_MALFORMED);
	assert_null(v.p);

	/* The blob16 length itself cut in half. */
	kd3_rd_init(&r, len_only_half, sizeof(len_only_half));
	assert_int_equal(kd3_rd_blob16(&r, &v), KD3_E_MALFORMED);
	assert_null(v.p);

	/* An empty input has no str length byte. */
	kd3_rd_init(&r, str, 0);
	assert_int_equal(kd3_rd_str(&r, &v), KD3_E_MALFORMED);
	assert_null(v.p);
}

/* ---- reader: sticky errors and the end check ------------------------------- */

static void test_rd_sticky(void **state)
{
	(void)state;
	kd3_reader r;
	uint8_t v8 = 0xaa;
	uint16_t v16 = 0xaaaa;
	uint32_t v32 = 0xaaaaaaaa;
	uint64_t v64 = 1;
	kd3_view v = {NULL, 77};
	const uint8_t *p = NULL;

	kd3_rd_init(&r, bytes8, 8);
	assert_int_equal(kd3_rd_fixed(&r, 9, &p), KD3_E_MALFORMED);
	/* Every byte is still there, yet nothing reads any more. */
	assert_int_equal(r.off, 0);
	assert_int_equal(kd3_rd_left(&r), 0);
	assert_int_equal(kd3_rd_u8(&r, &v8), KD3_E_MALFORMED);
	assert_int_equal(kd3_rd_u16(&r, &v16), KD3_E_MALFORMED);
	assert_int_equal(kd3_rd_u32(&r, &v32), KD3_E_MALFORMED);
	assert_int_equal(kd3_rd_u64(&r, &v64), KD3_E_MALFORMED);
	assert_int_equal(kd3_rd_view(&r, 0, &v), KD3_E_MALFORMED);
	assert_int_equal(kd3_rd_fixed(&r, 1, &p), KD3_E_MALFORMED);
	assert_int_equal(kd3_rd_str(&r, &v), KD3_E_MALFORMED);
	assert_int_equal(kd3_rd_blob16(&r, &v), KD3_E_MALFORMED);
	assert_int_equal(kd3_rd_rest(&r, &v), KD3_E_MALFORMED);
	assert_int_equal(kd3_rd_end(&r), KD3_E_MALFORMED);
	assert_int_equal(v8, 0xaa);
	assert_int_equal(v16, 0xaaaa);
	assert_true(v32 == 0xaaaaaaaa);
	assert_true(v64 == 1);
	assert_null(v.p);
	assert_null(p);
	assert_int_equal(r.off, 0);
}

static void test_rd_end_trailing(void **state)
{
	(void)state;
	kd3_reader r;
	uint32_t v32 = 0;

	kd3_rd_init(&r, bytes8, 5);
	assert_int_equal(kd3_rd_u32(&r, &v32), KD3_OK);
	assert_int_equal(kd3_rd_left(&r), 1);
	assert_int_equal(kd3_rd_end(&r), KD3_E_MALFORMED);
	/* ... and that failure sticks too. */
	assert_int_equal(kd3_rd_left(&r), 0);
	assert_int_equal(kd3_rd_u8(&r, &(uint8_t){0}), KD3_E_MALFORMED);
}

static void test_rd_null_input(void **state)
{
	(void)state;
	kd3_reader r;
	kd3_rd_init(&r, NULL, 100);
	assert_int_equal(kd3_rd_left(&r), 0);
	assert_int_equal(kd3_rd_u8(&r, &(uint8_t){0}), KD3_E_MALFORMED);
}

/* ---- writer ----------------------------------------------------------------- */

static void test_wr_ints(void **state)
{
	(void)state;
	static const uint8_t expect[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	                                 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};
	uint8_t out[15];
	kd3_writer w;

	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_wr_u8(&w, 0x01), KD3_OK);
	assert_int_equal(kd3_wr_u16(&w, 0x0203), KD3_OK);
	assert_int_equal(kd3_wr_u32(&w, 0x04050607), KD3_OK);
	assert_int_equal(kd3_wr_u64(&w, 0x08090a0b0c0d0e0full), KD3_OK);
	assert_int_equal(w.len, sizeof(out));
	assert_memory_equal(out, expect, sizeof(expect));
}

/* Each writer call at exactly its room succeeds; with one byte less it fails and
 * never writes past the capacity. Single fields (atomic) write nothing at all; str
 * and blob16 may have put their length prefix before the sticky failure. */
static void check_wr_boundary(int (*put)(kd3_writer *), size_t size, int atomic)
{
	uint8_t out[16];
	kd3_writer w;

	memset(out, 0xee, sizeof(out));
	kd3_wr_init(&w, out, size);
	assert_int_equal(put(&w), KD3_OK);
	assert_int_equal(w.len, size);
	assert_int_equal(put(&w), KD3_E_NO_SPACE);
	assert_int_equal(w.len, size);
	assert_int_equal(out[size], 0xee);

	memset(out, 0xee, sizeof(out));
	kd3_wr_init(&w, out, size - 1);
	assert_int_equal(put(&w), KD3_E_NO_SPACE);
	assert_int_equal(w.err, KD3_E_NO_SPACE);
	assert_true(w.len < size);
	if (atomic)
		assert_int_equal(w.len, 0);
	for (size_t i = atomic ? 0 : size - 1; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xee);
	assert_int_equal(put(&w), KD3_E_NO_SPACE);
}

static int put_u8(kd3_writer *w)
{
	return kd3_wr_u8(w, 0x11);
}
static int put_u16(kd3_writer *w)
{
	return kd3_wr_u16(w, 0x1122);
}
static int put_u32(kd3_writer *w)
{
	return kd3_wr_u32(w, 0x11223344);
}
static int put_u64(kd3_writer *w)
{
	return kd3_wr_u64(w, 0x1122334455667788ull);
}
static int put_bytes5(kd3_writer *w)
{
	return kd3_wr_bytes(w, "abcde", 5);
}
static int put_str3(kd3_writer *w)
{
	return kd3_wr_str(w, "abc", 3); /* 4 bytes */
}
static int put_blob3(kd3_writer *w)
{
	return kd3_wr_blob16(w, "abc", 3); /* 5 bytes */
}

static void test_wr_overflow_boundary(void **state)
{
	(void)state;
	check_wr_boundary(put_u8, 1, 1);
	check_wr_boundary(put_u16, 2, 1);
	check_wr_boundary(put_u32, 4, 1);
	check_wr_boundary(put_u64, 8, 1);
	check_wr_boundary(put_bytes5, 5, 1);
	check_wr_boundary(put_str3, 4, 0);
	check_wr_boundary(put_blob3, 5, 0);
}

static void test_wr_str_blob16_encoding(void **state)
{
	(void)state;
	static const uint8_t expect[] = {3, 'a', 'b', 'c', 0, 2, 'x', 'y', 0};
	uint8_t out[9];
	kd3_writer w;

	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_wr_str(&w, "abc", 3), KD3_OK);
	assert_int_equal(kd3_wr_blob16(&w, "xy", 2), KD3_OK);
	assert_int_equal(kd3_wr_str(&w, NULL, 0), KD3_OK);
	assert_int_equal(w.len, sizeof(expect));
	assert_memory_equal(out, expect, sizeof(expect));
}

static void test_wr_str_too_long(void **state)
{
	(void)state;
	uint8_t name[256], out[300];
	kd3_writer w;

	memset(name, 'a', sizeof(name));
	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_wr_str(&w, name, 256), KD3_E_NO_SPACE);
	assert_int_equal(w.len, 0);
	assert_int_equal(kd3_wr_u8(&w, 0), KD3_E_NO_SPACE); /* sticky */

	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_wr_str(&w, name, 255), KD3_OK);
	assert_int_equal(w.len, 256);
	assert_int_equal(out[0], 255);
}

static void test_wr_blob16_too_long(void **state)
{
	(void)state;
	static uint8_t big[65536], out[65540];
	kd3_writer w;

	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_wr_blob16(&w, big, sizeof(big)), KD3_E_NO_SPACE);
	assert_int_equal(w.len, 0);

	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_wr_blob16(&w, big, 65535), KD3_OK);
	assert_int_equal(w.len, 65537);
	assert_int_equal(out[0], 0xff);
	assert_int_equal(out[1], 0xff);
}

static void test_wr_reserve(void **state)
{
	(void)state;
	uint8_t out[8];
	kd3_writer w;

	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_wr_u16(&w, 0x0102), KD3_OK);
	uint8_t *hole = kd3_wr_reserve(&w, 4);
	assert_ptr_equal(hole, out + 2);
	assert_int_equal(w.len, 6);
	assert_int_equal(kd3_wr_u16(&w, 0x0708), KD3_OK);
	kd3_put_u32(hole, 0x03040506);
	for (uint8_t i = 0; i < 8; i++)
		assert_int_equal(out[i], i + 1);
	/* Full: zero bytes still fit, one does not. */
	assert_non_null(kd3_wr_reserve(&w, 0));
	assert_null(kd3_wr_reserve(&w, 1));
	assert_int_equal(w.err, KD3_E_NO_SPACE);
	assert_int_equal(w.len, 8);

	/* A size that would wrap a naive len + n check. */
	kd3_wr_init(&w, out, sizeof(out));
	assert_int_equal(kd3_wr_u8(&w, 0), KD3_OK);
	assert_null(kd3_wr_reserve(&w, SIZE_MAX));
	assert_int_equal(w.len, 1);
}

static void test_wr_sticky(void **state)
{
	(void)state;
	uint8_t out[16];
	kd3_writer w;

	memset(out, 0xee, sizeof(out));
	kd3_wr_init(&w, out, 4);
	assert_int_equal(kd3_wr_u64(&w, 1), KD3_E_NO_SPACE);
	/* Room for each of these, but the writer has already failed. */
	assert_int_equal(kd3_wr_u8(&w, 1), KD3_E_NO_SPACE);
	assert_int_equal(kd3_wr_u16(&w, 1), KD3_E_NO_SPACE);
	assert_int_equal(kd3_wr_u32(&w, 1), KD3_E_NO_SPACE);
	assert_int_equal(kd3_wr_bytes(&w, "x", 1), KD3_E_NO_SPACE);
	assert_int_equal(kd3_wr_str(&w, "x", 1), KD3_E_NO_SPACE);
	assert_int_equal(kd3_wr_blob16(&w, "x", 1), KD3_E_NO_SPACE);
	assert_null(kd3_wr_reserve(&w, 0));
	assert_int_equal(w.len, 0);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xee);
}

static void test_put_get_helpers(void **state)
{
	(void)state;
	uint8_t b[8];
	kd3_put_u16(b, 0xabcd);
	assert_int_equal(kd3_get_u16(b), 0xabcd);
	kd3_put_u64(b, 0x0102030405060708ull);
	assert_memory_equal(b, bytes8, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rd_ints_exact),
	    cmocka_unit_test(test_rd_ints_high_bits),
	    cmocka_unit_test(test_rd_view_fixed_exact),
	    cmocka_unit_test(test_rd_str_blob16_exact),
	    cmocka_unit_test(test_rd_rest),
	    cmocka_unit_test(test_rd_ints_one_short),
	    cmocka_unit_test(test_rd_view_fixed_one_short),
	    cmocka_unit_test(test_rd_str_longer_than_left),
	    cmocka_unit_test(test_rd_sticky),
	    cmocka_unit_test(test_rd_end_trailing),
	    cmocka_unit_test(test_rd_null_input),
	    cmocka_unit_test(test_wr_ints),
	    cmocka_unit_test(test_wr_overflow_boundary),
	    cmocka_unit_test(test_wr_str_blob16_encoding),
	    cmocka_unit_test(test_wr_str_too_long),
	    cmocka_unit_test(test_wr_blob16_too_long),
	    cmocka_unit_test(test_wr_reserve),
	    cmocka_unit_test(test_wr_sticky),
	    cmocka_unit_test(test_put_get_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
