/* Record layer: directional keys, strict sequence numbers, key updates, CLOSE and the
 * limits, on a pair of channels keyed as the two ends of one session. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "channel.h"
#include "err.h"
#include "msg.h"

struct pair {
	kd3_crypto crypto;
	kd3_channel a, b; /* a's tx is b's rx and the other way round */
	uint8_t buf[4 * KD3_FRAME_MAX];
	kd3_writer w;
};

static int setup_suite(void **state, uint8_t suite)
{
	struct pair *p = calloc(1, sizeof(*p));
	uint8_t ts1[KD3_KEY_LEN], ts2[KD3_KEY_LEN];
	memset(ts1, 0x11, sizeof(ts1));
	memset(ts2, 0x22, sizeof(ts2));
	assert_int_equal(kd3_crypto_init(&p->crypto, "test_channel", 0), KD3_OK);
	assert_int_equal(kd3_channel_init(&p->a, &p->crypto, suite, ts1, ts2), KD3_OK);
	assert_int_equal(kd3_channel_init(&p->b, &p->crypto, suite, ts2, ts1), KD3_OK);
	kd3_wr_init(&p->w, p->buf, sizeof(p->buf));
	*state = p;
	return 0;
}

static int setup_chacha(void **state)
{
	return setup_suite(state, KD3_SUITE_CHACHAPOLY);
}

static int setup_gcm(void **state)
{
	return setup_suite(state, KD3_SUITE_AES256GCM);
}

static int teardown(void **state)
{
	struct pair *p = *state;
	kd3_channel_free(&p->a);
	kd3_channel_free(&p->b);
	kd3_crypto_free(&p->crypto);
	free(p);
	return 0;
}

/* Seal one record from a into a fresh frame buffer; returns its length. */
static size_t seal(struct pair *p, kd3_channel *from, uint8_t inner, const char *msg,
                   uint8_t *frame)
{
	kd3_writer w;
	kd3_wr_init(&w, frame, KD3_FRAME_MAX);
	assert_int_equal(kd3_channel_seal(from, inner, (const uint8_t *)msg, strlen(msg), &w),
	                 KD3_OK);
	(void)p;
	return w.len;
}

static int open_rec(kd3_channel *to, uint8_t *frame, size_t len, uint8_t *inner, kd3_view *pl)
{
	return kd3_channel_open(to, frame, len, inner, pl);
}

static void test_round_trip_and_layout(void **state)
{
	struct pair *p = *state;
	uint8_t f[KD3_FRAME_MAX], inner;
	kd3_view pl;
	size_t n = seal(p, &p->a, KD3_R_DATA, "hello", f);
	/* header | seq | inner + payload + tag */
	assert_int_equal(n, KD3_HDR_LEN + 8 + 1 + 5 + KD3_TAG_LEN);
	assert_int_equal(f[0], KD3_VERSION);
	assert_int_equal(f[1], KD3_T_RECORD);
	assert_int_equal(kd3_get_u16(f + 2), n - KD3_HDR_LEN);
	assert_memory_not_equal(f + 13, "hello", 5); /* encrypted */
	assert_int_equal(open_rec(&p->b, f, n, &inner, &pl), KD3_OK);
	assert_int_equal(inner, KD3_R_DATA);
	assert_int_equal(pl.len, 5);
	assert_memory_equal(pl.p, "hello", 5);
	assert_int_equal(p->a.tx.seq, 1);
	assert_int_equal(p->b.rx.seq, 1);
}

/* A record opened by its own sender's rx fails: each direction has its own key. */
static void test_directions_differ(void **state)
{
	struct pair *p = *state;
	uint8_t f[KD3_FRAME_MAX], inner;
	kd3_view pl;
	size_t n = seal(p, &p->a, KD3_R_DATA, "mine", f);
	assert_int_equal(open_rec(&p->a, f, n, &inner, &pl), KD3_E_RECORD_AUTH);
}

static void test_sequence_strict(void **state)
{
	struct pair *p = *state;
	uint8_t f0[KD3_FRAME_MAX], f1[KD3_FRAME_MAX], inner;
	kd3_view pl;
	size_t n0 = seal(p, &p->a, KD3_R_DATA, "zero", f0);
	size_t n1 = seal(p, &p->a, KD3_R_DATA, "one", f1);
	assert_int_equal(open_rec(&p->b, f1, n1, &inner, &pl), KD3_E_RECORD_SEQ);
	/* Failures are final for the direction: even the right record is refused now. */
	assert_int_equal(open_rec(&p->b, f0, n0, &inner, &pl), KD3_E_UNEXPECTED);
}

/* The seq field is authenticated: rewriting it to the expected value fails the tag. */
static void test_seq_rewritten(void **state)
{
	struct pair *p = *state;
	uint8_t f[KD3_FRAME_MAX], inner;
	kd3_view pl;
	seal(p, &p->a, KD3_R_DATA, "zero", f);
	size_t n = seal(p, &p->a, KD3_R_DATA, "one", f);
	kd3_put_u64(f + KD3_HDR_LEN, 0);
	assert_int_equal(open_rec(&p->b, f, n, &inner, &pl), KD3_E_RECORD_AUTH);
	assert_true(p->b.rx.broken);
}

static void test_key_update(void **state)
{
	struct pair *p = *state;
	uint8_t f[KD3_FRAME_MAX], ts_before[KD3_KEY_LEN], inner;
	kd3_view pl;
	size_t n;
	memcpy(ts_before, p->a.tx.ts, sizeof(ts_before));
	n = seal(p, &p->a, KD3_R_DATA, "a", f);
	assert_int_equal(open_rec(&p->b, f, n, &inner, &pl), KD3_OK);
	n = seal(p, &p->a, KD3_R_KEY_UPDATE, "", f);
	assert_int_equal(p->a.tx.generation, 1);
	assert_int_equal(p->a.tx.seq, 0);
	assert_memory_not_equal(p->a.tx.ts, ts_before, KD3_KEY_LEN);
	assert_int_equal(open_rec(&p->b, f, n, &inner, &pl), KD3_OK);
	assert_int_equal(inner, KD3_R_KEY_UPDATE);
	assert_int_equal(p->b.rx.generation, 1);
	n = seal(p, &p->a, KD3_R_DATA, "after", f);
	assert_int_equal(kd3_get_u16(f + KD3_HDR_LEN + 6), 0); /* seq restarted */
	assert_int_equal(open_rec(&p->b, f, n, &inner, &pl), KD3_OK);
	assert_memory_equal(pl.p, "after", 5);
	/* The other direction is untouched. */
	assert_int_equal(p->b.tx.generation, 0);
}

/* A record under the old key after the peer's KEY_UPDATE fails. */
static void test_old_key_after_update(void **state)
{
	struct pair *p = *state;
	uint8_t f[KD3_FRAME_MAX], inner;
	kd3_view pl;
	size_t n = seal(p, &p->a, KD3_R_KEY_UPDATE, "", f);
	assert_int_equal(open_rec(&p->b, f, n, &inner, &pl), KD3_OK);
	/* Forge a seq-0 record under the old key with a fresh channel on the old secret. */
	kd3_channel old;
	uint8_t ts1[KD3_KEY_LEN], ts2[KD3_KEY_LEN];
	memset(ts1, 0x11, sizeof(ts1));
	memset(ts2, 0x22, sizeof(ts2));
	assert_int_equal(kd3_channel_init(&old, &p->crypto, p->a.suite, ts1, ts2), KD3_OK);
	n = seal(p, &old, KD3_R_DATA, "stale", f);
	assert_int_equal(open_rec(&p->b, f, n, &inner, &pl), KD3_E_RECORD_AUTH);
	kd3_channel_free(&old);
}

static void test_key_update_with_payload_refused(void **state)
{
	struct pair *p = *state;
	uint8_t f[KD3_FRAME_MAX], inner;
	kd3_view pl;
	size_t n = seal(p, &p->a, KD3_R_KEY_UPDATE, "x", f);
	assert_int_equal(open_rec(&p->b, f, n, &inner, &pl), KD3_E_MALFORMED);
}

static void test_close(void **state)
{
	struct pair *p = *state;
	uint8_t f[KD3_FRAME_MAX], inner;
	kd3_view pl;
	size_t n = seal(p, &p->a, KD3_R_CLOSE, "\x00\x00\x00", f);
	assert_true(p->a.tx.closed);
	kd3_writer w;
	kd3_wr_init(&w, p->buf, sizeof(p->buf));
	assert_int_equal(kd3_channel_seal(&p->a, KD3_R_DATA, (const uint8_t *)"x", 1, &w),
	                 KD3_E_CLOSED);
	assert_int_equal(open_rec(&p->b, f, n, &inner, &pl), KD3_OK);
	assert_int_equal(inner, KD3_R_CLOSE);
	assert_true(p->b.rx.closed);
	/* Nothing may follow a CLOSE. */
	uint8_t g[KD3_FRAME_MAX];
	kd3_channel_free(&p->a);
	uint8_t ts1[KD3_KEY_LEN], ts2[KD3_KEY_LEN];
	memset(ts1, 0x11, sizeof(ts1));
	memset(ts2, 0x22, sizeof(ts2));
	assert_int_equal(kd3_channel_init(&p->a, &p->crypto, p->b.suite, ts1, ts2), KD3_OK);
	seal(p, &p->a, KD3_R_DATA, "", g);
	size_t m = seal(p, &p->a, KD3_R_DATA, "late", g);
	assert_int_equal(open_rec(&p->b, g, m, &inner, &pl), KD3_E_CLOSED);
}

static void test_unknown_inner_type(void **state)
{
	struct pair *p = *state;
	uint8_t f[KD3_FRAME_MAX], inner;
	kd3_view pl;
	size_t n = seal(p, &p->a, 0x7e, "?", f);
	assert_int_equal(open_rec(&p->b, f, n, &inner, &pl), KD3_E_RECORD_TYPE);
}

static void test_payload_limit(void **state)
{
	struct pair *p = *state;
	static uint8_t big[KD3_PAYLOAD_MAX + 1];
	uint8_t inner;
	kd3_view pl;
	kd3_writer w;
	kd3_wr_init(&w, p->buf, sizeof(p->buf));
	assert_int_equal(kd3_channel_seal(&p->a, KD3_R_DATA, big, sizeof(big), &w), KD3_E_TOO_BIG);
	assert_int_equal(w.len, 0);
	assert_int_equal(kd3_channel_seal(&p->a, KD3_R_DATA, big, KD3_PAYLOAD_MAX, &w), KD3_OK);
	assert_int_equal(w.len, KD3_FRAME_MAX);
	assert_int_equal(open_rec(&p->b, p->buf, w.len, &inner, &pl), KD3_OK);
	assert_int_equal(pl.len, KD3_PAYLOAD_MAX);
}

/* Policy: rekey due after N records or B bytes; always before 2^24 under one key. */
static void test_rekey_policy(void **state)
{
	struct pair *p = *state;
	uint8_t f[KD3_FRAME_MAX];
	p->a.rekey_records = 3;
	for (int i = 0; i < 3; i++) {
		assert_false(kd3_channel_rekey_due(&p->a));
		seal(p, &p->a, KD3_R_DATA, "m", f);
	}
	assert_true(kd3_channel_rekey_due(&p->a));
	seal(p, &p->a, KD3_R_KEY_UPDATE, "", f);
	assert_false(kd3_channel_rekey_due(&p->a));
	p->a.rekey_records = KD3_REKEY_RECORDS_DEFAULT;
	p->a.rekey_bytes = 10;
	seal(p, &p->a, KD3_R_DATA, "0123456789", f);
	assert_true(kd3_channel_rekey_due(&p->a));
	p->a.rekey_bytes = 0;
	p->a.rekey_records = UINT64_MAX;
	p->a.tx.key_records = KD3_RECORDS_PER_KEY_MAX - 1;
	assert_true(kd3_channel_rekey_due(&p->a));
}

/* A receiver refuses seq >= 2^24 under one key, even when it is the next one. */
static void test_receiver_key_limit(void **state)
{
	struct pair *p = *state;
	uint8_t f[KD3_FRAME_MAX], inner;
	kd3_view pl;
	p->a.tx.seq = KD3_RECORDS_PER_KEY_MAX;
	p->b.rx.seq = KD3_RECORDS_PER_KEY_MAX;
	size_t n = seal(p, &p->a, KD3_R_DATA, "x", f);
	assert_int_equal(open_rec(&p->b, f, n, &inner, &pl), KD3_E_RECORD_SEQ);
	/* And a sender refuses to seal past the limit. */
	kd3_writer w;
	kd3_wr_init(&w, p->buf, sizeof(p->buf));
	p->a.tx.key_records = KD3_RECORDS_PER_KEY_MAX;
	assert_int_equal(kd3_channel_seal(&p->a, KD3_R_DATA, (const uint8_t *)"x", 1, &w),
	                 KD3_E_INTERNAL);
}

static void test_free_wipes(void **state)
{
	struct pair *p = *state;
	static const uint8_t zero[sizeof(kd3_channel)];
	kd3_channel_free(&p->a);
	assert_memory_equal(&p->a, zero, sizeof(p->a));
	uint8_t ts[KD3_KEY_LEN] = {0};
	assert_int_equal(kd3_channel_init(&p->a, &p->crypto, KD3_SUITE_CHACHAPOLY, ts, ts), KD3_OK);
}

#define BOTH(t)                                                                                    \
	cmocka_unit_test_setup_teardown(t, setup_chacha, teardown),                                \
	    cmocka_unit_test_setup_teardown(t, setup_gcm, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    BOTH(test_round_trip_and_layout),
	    BOTH(test_directions_differ),
	    BOTH(test_sequence_strict),
	    BOTH(test_seq_rewritten),
	    BOTH(test_key_update),
	    BOTH(test_old_key_after_update),
	    BOTH(test_key_update_with_payload_refused),
	    BOTH(test_close),
	    BOTH(test_unknown_inner_type),
	    BOTH(test_payload_limit),
	    BOTH(test_rekey_policy),
	    BOTH(test_receiver_key_limit),
	    BOTH(test_free_wipes),
	};
	return cmocka_run_group_tests_name("channel", tests, NULL, NULL);
}
