/* The record layer, after a valid channel setup: a channel under test and its mirror
 * (the other end: tx and rx swapped), keyed from fixed traffic secrets.
 *
 * Input: one byte (bit 0: AES-256-GCM, else ChaCha20-Poly1305), then items
 * (fuzz_util.h). Bit 14 of an item picks the direction (0: into the channel under
 * test, 1: into the mirror), and a length of 0x3fff takes the rest of the input. Without the flag
 * the bytes are a frame, opened as they are; with it they are inner type | payload, sealed by the
 * sending end first, so the fuzzer drives KEY_UPDATE, CLOSE and sequence numbers through real
 * records. Invariants: an honestly sealed record opens to the same inner type and payload while the
 * direction is in sync; inner types outside the four are refused; nothing opens after a CLOSE, nor
 * after a failure; a payload always lies inside its frame. */
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "crypto.h"
#include "err.h"
#include "fuzz_util.h"
#include "msg.h"

#define DIR_BIT  0x4000u
#define LEN_BITS 0x3fffu /* this length means "the rest of the input" */

static kd3_crypto crypto;
static int crypto_ready;
static kd3_channel ends[2]; /* [0] under test, [1] its mirror */

/* A direction stays "in sync" while every record into it was one its sender sealed;
 * it is "dead" after an open failed there (channel.h: it never opens again). */
static int in_sync[2], dead[2];

static int inner_known(uint8_t inner)
{
	return inner == KD3_R_FINISHED || inner == KD3_R_DATA || inner == KD3_R_KEY_UPDATE ||
	       inner == KD3_R_CLOSE;
}

static int open_one(int to, uint8_t *frame, size_t len, uint8_t *inner, kd3_view *payload)
{
	kd3_channel *ch = &ends[to];
	int closed = ch->rx.closed;
	uint64_t seq = ch->rx.seq;

	int ret = kd3_channel_open(ch, frame, len, inner, payload);
	if (closed || dead[to])
		FUZZ_CHECK(ret != KD3_OK);
	if (ret != KD3_OK)
		dead[to] = 1;
	if (ret == KD3_OK) {
		FUZZ_CHECK(inner_known(*inner));
		FUZZ_CHECK(fuzz_inside(frame, len, payload->p, payload->len));
		FUZZ_CHECK(payload->len + KD3_RECORD_OVERHEAD == len);
		FUZZ_CHECK(*inner == KD3_R_KEY_UPDATE ? ch->rx.seq == 0 : ch->rx.seq == seq + 1);
		FUZZ_CHECK(*inner != KD3_R_CLOSE || ch->rx.closed);
	}
	return ret;
}

static void raw_frame(int to, const uint8_t *bytes, size_t n)
{
	uint8_t inner;
	kd3_view payload;
	uint8_t *frame = fuzz_dup(bytes, n);

	open_one(to, frame, n, &inner, &payload);
	in_sync[to] = 0; /* opened or not, the sender's seq no longer matches */
	free(frame);
}

static void sealed_frame(int to, const uint8_t *bytes, size_t n)
{
	static uint8_t buf[KD3_FRAME_MAX];
	kd3_writer w;
	uint8_t inner;
	kd3_view payload;

	if (n == 0)
		return;
	kd3_wr_init(&w, buf, sizeof(buf));
	int sealed = kd3_channel_seal(&ends[1 - to], bytes[0], bytes + 1, n - 1, &w);
	if (sealed != KD3_OK) {
		FUZZ_CHECK(w.len == 0);
		return;
	}
	FUZZ_CHECK(w.len == n + KD3_RECORD_OVERHEAD - 1);
	uint8_t *frame = fuzz_dup(buf, w.len);
	int ret = open_one(to, frame, w.len, &inner, &payload);
	if (in_sync[to]) {
		int legal = inner_known(bytes[0]) && (bytes[0] != KD3_R_KEY_UPDATE || n == 1);
		FUZZ_CHECK((ret == KD3_OK) == legal);
		if (ret == KD3_OK)
			FUZZ_CHECK(inner == bytes[0] && payload.len == n - 1 &&
			           memcmp(payload.p, bytes + 1, n - 1) == 0);
	}
	if (ret != KD3_OK)
		in_sync[to] = 0;
	free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t ts_a[KD3_KEY_LEN], ts_b[KD3_KEY_LEN];
	fuzz_in in;
	uint8_t mode;
	uint16_t item;

	fuzz_in_init(&in, data, size);
	if (!fuzz_u8(&in, &mode))
		return 0;
	if (!crypto_ready) {
		FUZZ_CHECK(kd3_crypto_init(&crypto, "fuzz", 0) == KD3_OK);
		crypto_ready = 1;
	}
	uint8_t suite = (mode & 1) ? KD3_SUITE_AES256GCM : KD3_SUITE_CHACHAPOLY;
	memset(ts_a, FUZZ_TS_A, sizeof(ts_a));
	memset(ts_b, FUZZ_TS_B, sizeof(ts_b));
	FUZZ_CHECK(kd3_channel_init(&ends[0], &crypto, suite, ts_a, ts_b) == KD3_OK);
	FUZZ_CHECK(kd3_channel_init(&ends[1], &crypto, suite, ts_b, ts_a) == KD3_OK);
	in_sync[0] = in_sync[1] = 1;
	dead[0] = dead[1] = 0;

	while (fuzz_u16(&in, &item)) {
		size_t got;
		int to = (item & DIR_BIT) ? 1 : 0;
		size_t len = item & LEN_BITS;
		const uint8_t *bytes = fuzz_take(&in, len == LEN_BITS ? fuzz_left(&in) : len, &got);
		if (item & FUZZ_FLAG)
			sealed_frame(to, bytes, got);
		else
			raw_frame(to, bytes, got);
	}
	kd3_channel_free(&ends[0]);
	kd3_channel_free(&ends[1]);
	return 0;
}
