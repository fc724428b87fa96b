/* Stream framing: bytes fed in chunks of fuzzer-chosen sizes must come out as the same
 * frames a one-shot split of the whole stream finds (kd3_frame_size over it), with the
 * same verdict at the end, and the fixed buffer must never get stuck full.
 *
 * Input: k = byte 0 % 16 + 1, then k chunk sizes (bytes; 0 means "all the room
 * there is"), used in turn; the rest is the stream. */
#include <string.h>

#include "err.h"
#include "fuzz_util.h"
#include "msg.h"
#include "stream.h"

static kd3_stream s;

/* The reference: where the next frame starts in the whole stream. */
struct ref {
	const uint8_t *p;
	size_t len;
	size_t off;
};

/* Takes every whole frame out of the stream; 1 when the stream gave up on a header. */
static int drain(struct ref *r)
{
	uint8_t *frame;
	size_t len;
	int got;

	while ((got = kd3_stream_next(&s, &frame, &len)) == 1) {
		long need = kd3_frame_size(r->p + r->off, r->len - r->off);
		FUZZ_CHECK(need > 0 && (size_t)need == len && len <= r->len - r->off);
		FUZZ_CHECK(frame == s.buf && memcmp(frame, r->p + r->off, len) == 0);
		r->off += len;
		kd3_stream_consume(&s, len);
	}
	if (got < 0) {
		FUZZ_CHECK(got == -KD3_E_MALFORMED || got == -KD3_E_UNSUPPORTED);
		FUZZ_CHECK(kd3_frame_size(r->p + r->off, r->len - r->off) == got);
		return 1;
	}
	FUZZ_CHECK(got == 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_in in;
	uint8_t k;

	fuzz_in_init(&in, data, size);
	if (!fuzz_u8(&in, &k))
		return 0;
	size_t nchunks, fed = 0;
	const uint8_t *chunks = fuzz_take(&in, (size_t)(k % 16) + 1, &nchunks);
	struct ref r = {in.p + in.off, fuzz_left(&in), 0};
	int bad = 0;

	kd3_stream_init(&s);
	for (size_t i = 0; fed < r.len && !bad; i++) {
		size_t room;
		uint8_t *space = kd3_stream_space(&s, &room);
		FUZZ_CHECK(room > 0); /* a full buffer always holds a whole frame */
		FUZZ_CHECK(space == s.buf + s.len && s.len + room == sizeof(s.buf));
		size_t n = nchunks && chunks[i % nchunks] ? chunks[i % nchunks] : room;
		n = n < room ? n : room;
		n = n < r.len - fed ? n : r.len - fed;
		memcpy(space, r.p + fed, n);
		kd3_stream_added(&s, n);
		fed += n;
		bad = drain(&r);
	}
	if (!bad) { /* everything fed: what is left is the start of one frame */
		FUZZ_CHECK(s.len == r.len - r.off);
		long need = kd3_frame_size(r.p + r.off, r.len - r.off);
		FUZZ_CHECK(need >= 0 && (need == 0 || (size_t)need > s.len));
	}
	kd3_stream_wipe(&s);
	FUZZ_CHECK(s.len == 0);
	return 0;
}
