/* Stream framing: frames split at every chunk size (down to one byte at a time),
 * several frames in one read, bad headers, and a buffer that never holds more than
 * one largest frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "msg.h"
#include "stream.h"
#include "wire.h"

#define NFRAMES 5

/* A byte stream of several legal frames, and where each one ends. */
struct script {
	uint8_t bytes[2 * KD3_FRAME_MAX];
	size_t len;
	size_t ends[NFRAMES];
};

static kd3_stream s;
static struct script sc;

/* A frame of the given type with body_len patterned bytes. */
static void add_frame(struct script *p, size_t i, uint8_t type, size_t body_len)
{
	uint8_t *f = p->bytes + p->len;
	f[0] = KD3_VERSION;
	f[1] = type;
	kd3_put_u16(f + 2, (uint16_t)body_len);
	for (size_t j = 0; j < body_len; j++)
		f[KD3_HDR_LEN + j] = (uint8_t)(i * 31 + j);
	p->len += KD3_HDR_LEN + body_len;
	p->ends[i] = p->len;
}

static int setup(void **state)
{
	(void)state;
	memset(&sc, 0, sizeof(sc));
	add_frame(&sc, 0, KD3_T_M1, 84 - KD3_HDR_LEN);
	add_frame(&sc, 1, KD3_T_M3, KD3_M3_BODY_LEN);
	add_frame(&sc, 2, KD3_T_ERROR, 0); /* an empty body is still a whole frame */
	add_frame(&sc, 3, KD3_T_RECORD, KD3_RECORD_BODY_MAX);
	add_frame(&sc, 4, KD3_T_M2, 150);
	kd3_stream_init(&s);
	return 0;
}

/* Takes every whole frame now buffered, checking each against the script. */
static void drain(size_t *next_frame)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	int ret;

	while ((ret = kd3_stream_next(&s, &frame, &len)) == 1) {
		size_t i = *next_frame;
		assert_true(i < NFRAMES);
		size_t start = i ? sc.ends[i - 1] : 0;
		assert_int_equal(len, sc.ends[i] - start);
		assert_ptr_equal(frame, s.buf);
		assert_memory_equal(frame, sc.bytes + start, len);
		kd3_stream_consume(&s, len);
		(*next_frame)++;
	}
	assert_int_equal(ret, 0);
}

/* Feeds the script in chunks: sizes[k % nsizes] bytes at a time. */
static void feed_script(const size_t *sizes, size_t nsizes)
{
	size_t off = 0, k = 0, got = 0;

	kd3_stream_init(&s);
	while (off < sc.len) {
		size_t room = 0;
		uint8_t *at = kd3_stream_space(&s, &room);
		size_t n = sizes[k++ % nsizes];
		if (n > sc.len - off)
			n = sc.len - off;
		/* A reader takes what fits; after a drain something always fits. */
		assert_true(room > 0);
		if (n > room)
			n = room;
		memcpy(at, sc.bytes + off, n);
		kd3_stream_added(&s, n);
		off += n;
		assert_true(s.len <= KD3_FRAME_MAX);
		drain(&got);
		/* Every frame that ended within what was fed has come out, and no other. */
		size_t want = 0;
		while (want < NFRAMES && sc.ends[want] <= off)
			want++;
		assert_int_equal(got, want);
	}
	assert_int_equal(got, NFRAMES);
	assert_int_equal(s.len, 0);
}

static void test_one_byte_at_a_time(void **state)
{
	(void)state;
	const size_t one = 1;
	feed_script(&one, 1);
}

static void test_every_chunk_size(void **state)
{
	(void)state;
	for (size_t n = 2; n <= 300; n++)
		feed_script(&n, 1);
	const size_t big[] = {KD3_FRAME_MAX - 1, KD3_FRAME_MAX};
	feed_script(&big[0], 1);
	feed_script(&big[1], 1);
}

static void test_random_chunks(void **state)
{
	(void)state;
	size_t sizes[64];
	srand(7);
	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < 64; i++)
			sizes[i] = 1 + (size_t)rand() % (round % 2 ? 7 : 3000);
		feed_script(sizes, 64);
	}
}

static void test_two_frames_one_chunk(void **state)
{
	(void)state;
	size_t room = 0, got = 0;
	uint8_t *at = kd3_stream_space(&s, &room);
	/* M1 and M3 together, plus the first two bytes of the ERROR frame. */
	size_t n = sc.ends[1] + 2;
	memcpy(at, sc.bytes, n);
	kd3_stream_added(&s, n);
	drain(&got);
	assert_int_equal(got, 2);
	assert_int_equal(s.len, 2);
	assert_memory_equal(s.buf, sc.bytes + sc.ends[1], 2);
	/* The bytes moved to the front; the old tail is wiped. */
	for (size_t i = 2; i < n; i++)
		assert_int_equal(s.buf[i], 0);
}

static void test_short_header_needs_more(void **state)
{
	(void)state;
	uint8_t *frame = NULL;
	size_t len = 0;
	for (size_t n = 0; n < KD3_HDR_LEN; n++) {
		kd3_stream_init(&s);
		memcpy(s.buf, sc.bytes, n);
		kd3_stream_added(&s, n);
		assert_int_equal(kd3_stream_next(&s, &frame, &len), 0);
	}
}

static void test_bad_headers(void **state)
{
	(void)state;
	static const uint8_t bad[][KD3_HDR_LEN] = {
	    {2, KD3_T_M1, 0, 10},                    /* version */
	    {0, KD3_T_M1, 0, 10},                    /* version */
	    {KD3_VERSION, 0x05, 0, 10},              /* unknown type */
	    {KD3_VERSION, 0x00, 0, 0},               /* unknown type */
	    {KD3_VERSION, KD3_T_M3, 0, 133},         /* longer than M3 ever is */
	    {KD3_VERSION, KD3_T_RECORD, 0xff, 0xff}, /* 64 KiB */
	    {KD3_VERSION, KD3_T_RECORD, 0x40, 0x1a}, /* KD3_RECORD_BODY_MAX + 1 */
	    {KD3_VERSION, KD3_T_ERROR, 0x01, 0x03},  /* KD3_ERROR_BODY_MAX + 1 */
	};
	uint8_t *frame = NULL;
	size_t len = 0;

	assert_int_equal(kd3_get_u16(bad[6] + 2), KD3_RECORD_BODY_MAX + 1);
	assert_int_equal(kd3_get_u16(bad[7] + 2), KD3_ERROR_BODY_MAX + 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kd3_stream_init(&s);
		/* The header alone is enough to refuse: nothing waits for the body. */
		memcpy(s.buf, bad[i], KD3_HDR_LEN);
		kd3_stream_added(&s, KD3_HDR_LEN);
		frame = NULL;
		int ret = kd3_stream_next(&s, &frame, &len);
		if (ret >= 0)
			fail_msg("bad header %zu: %d, want negative", i, ret);
		assert_null(frame);
	}
	/* A version problem reads as UNSUPPORTED, the rest as MALFORMED. */
	kd3_stream_init(&s);
	memcpy(s.buf, bad[0], KD3_HDR_LEN);
	kd3_stream_added(&s, KD3_HDR_LEN);
	assert_int_equal(kd3_stream_next(&s, &frame, &len), -KD3_E_UNSUPPORTED);
	kd3_stream_init(&s);
	memcpy(s.buf, bad[5], KD3_HDR_LEN);
	kd3_stream_added(&s, KD3_HDR_LEN);
	assert_int_equal(kd3_stream_next(&s, &frame, &len), -KD3_E_MALFORMED);
}

static void test_bad_header_after_good_frame(void **state)
{
	(void)state;
	uint8_t *frame = NULL;
	size_t len = 0;
	size_t n = sc.ends[0];
	memcpy(s.buf, sc.bytes, n);
	s.buf[n] = 9; /* version 9 */
	s.buf[n + 1] = KD3_T_M1;
	s.buf[n + 2] = 0;
	s.buf[n + 3] = 1;
	kd3_stream_added(&s, n + KD3_HDR_LEN);
	assert_int_equal(kd3_stream_next(&s, &frame, &len), 1);
	assert_int_equal(len, n);
	kd3_stream_consume(&s, len);
	assert_true(kd3_stream_next(&s, &frame, &len) < 0);
}

static void test_buffer_bound(void **state)
{
	(void)state;
	uint8_t *frame = NULL;
	size_t room = 0, len = 0;

	/* Room for exactly one largest frame, and never more. */
	assert_int_equal(sizeof(s.buf), KD3_FRAME_MAX);
	kd3_stream_space(&s, &room);
	assert_int_equal(room, KD3_FRAME_MAX);

	/* The largest legal frame fills the buffer to the last byte and comes out whole. */
	size_t start = sc.ends[2], n = sc.ends[3] - start;
	assert_int_equal(n, KD3_FRAME_MAX);
	uint8_t *at = kd3_stream_space(&s, &room);
	memcpy(at, sc.bytes + start, KD3_HDR_LEN);
	kd3_stream_added(&s, KD3_HDR_LEN);
	assert_int_equal(kd3_stream_next(&s, &frame, &len), 0);
	at = kd3_stream_space(&s, &room);
	assert_int_equal(room, KD3_FRAME_MAX - KD3_HDR_LEN);
	memcpy(at, sc.bytes + start + KD3_HDR_LEN, room);
	kd3_stream_added(&s, room);
	kd3_stream_space(&s, &room);
	assert_int_equal(room, 0);
	assert_int_equal(kd3_stream_next(&s, &frame, &len), 1);
	assert_int_equal(len, KD3_FRAME_MAX);
	kd3_stream_consume(&s, len);
	assert_int_equal(s.len, 0);
	kd3_stream_space(&s, &room);
	assert_int_equal(room, KD3_FRAME_MAX);

	/* Whatever a header claims, a frame is at most KD3_FRAME_MAX: kd3_frame_size never
	 * asks the stream to hold more, for any type and length. */
	for (int type = 0; type < 256; type++) {
		for (uint32_t l = 0; l <= 0xffff; l += (l < 20000 ? 1 : 97)) {
			uint8_t h[KD3_HDR_LEN] = {KD3_VERSION, (uint8_t)type, 0, 0};
			kd3_put_u16(h + 2, (uint16_t)l);
			long need = kd3_frame_size(h, sizeof(h));
			if (need > (long)KD3_FRAME_MAX)
				fail_msg("type %d length %u: frame of %ld bytes accepted", type, l,
				         need);
		}
	}
}

static void test_wipe(void **state)
{
	(void)state;
	memcpy(s.buf, sc.bytes, 100);
	kd3_stream_added(&s, 100);
	/* Bytes in the free space too (a read that landed but was not counted): the
	 * whole buffer is wiped, not only the counted part. */
	size_t room = 0;
	memset(kd3_stream_space(&s, &room), 0x5a, 10);
	kd3_stream_wipe(&s);
	assert_int_equal(s.len, 0);
	for (size_t i = 0; i < sizeof(s.buf); i++)
		if (s.buf[i])
			fail_msg("byte %zu left after kd3_stream_wipe", i);
	/* Consuming everything wipes what was there. */
	memcpy(s.buf, sc.bytes, sc.ends[0]);
	kd3_stream_added(&s, sc.ends[0]);
	kd3_stream_consume(&s, sc.ends[0]);
	assert_int_equal(s.len, 0);
	for (size_t i = 0; i < sc.ends[0]; i++)
		assert_int_equal(s.buf[i], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_one_byte_at_a_time, setup),
	    cmocka_unit_test_setup(test_every_chunk_size, setup),
	    cmocka_unit_test_setup(test_random_chunks, setup),
	    cmocka_unit_test_setup(test_two_frames_one_chunk, setup),
	    cmocka_unit_test_setup(test_short_header_needs_more, setup),
	    cmocka_unit_test_setup(test_bad_headers, setup),
	    cmocka_unit_test_setup(test_bad_header_after_good_frame, setup),
	    cmocka_unit_test_setup(test_buffer_bound, setup),
	    cmocka_unit_test_setup(test_wipe, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
