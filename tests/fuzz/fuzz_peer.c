#include "fuzz_peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz_util.h"
#include "msg.h"

const int fuzz_stops_i[] = {1, 5, 7, 9, 11};
const size_t fuzz_nstops_i = sizeof(fuzz_stops_i) / sizeof(fuzz_stops_i[0]);
const int fuzz_stops_r[] = {1, 3, 4, 6, 8, 10, 11};
const size_t fuzz_nstops_r = sizeof(fuzz_stops_r) / sizeof(fuzz_stops_r[0]);

#define LATER_MS ((uint64_t)1 << 50)

/* One fuzzing run: the peer under test, its outputs, and what it has been through. */
struct run {
	kd3_peer *p;
	fw_party role;
	uint64_t now_ms;
	int failed; /* the peer reached FAILED: from then on it must refuse everything */
	kd3_writer wp, wk;
	uint8_t to_peer[2 * KD3_FRAME_MAX];
	uint8_t to_kdc[KD3_FRAME_MAX];
};

static fw_world world;
static struct run run;

/* Everything a peer writes is a sequence of whole, well-formed frames. */
static int frames_valid(const uint8_t *p, size_t len)
{
	kd3_frame f;
	while (len > 0) {
		long size = kd3_frame_size(p, len);
		if (size <= 0 || (size_t)size > len || kd3_frame_decode(p, (size_t)size, &f))
			return 0;
		p += size;
		len -= (size_t)size;
	}
	return 1;
}

static void outputs_reset(struct run *r)
{
	kd3_wr_init(&r->wp, r->to_peer, sizeof(r->to_peer));
	kd3_wr_init(&r->wk, r->to_kdc, sizeof(r->to_kdc));
}

static void check_state(const struct run *r)
{
	const kd3_peer *p = r->p;
	FUZZ_CHECK((unsigned)p->state < KD3_PS_COUNT);
	FUZZ_CHECK(p->state != KD3_PS_FAILED || p->err != KD3_OK);
	FUZZ_CHECK(r->wp.err == KD3_OK && r->wk.err == KD3_OK);
	FUZZ_CHECK(frames_valid(r->to_peer, r->wp.len));
	FUZZ_CHECK(frames_valid(r->to_kdc, r->wk.len));
}

static void feed_frame(struct run *r, kd3_source src, const uint8_t *bytes, size_t n, int fixup)
{
	kd3_peer_out out;
	kd3_peer_state was = r->p->state;
	uint8_t *frame = fuzz_dup(bytes, n); /* exact size: ASan sees any over-read */

	if (fixup && n >= KD3_HDR_LEN)
		kd3_put_u16(frame + 2, (uint16_t)(n - KD3_HDR_LEN));

	outputs_reset(r);
	memset(&out, 0, sizeof(out));
	out.to_peer = &r->wp;
	out.to_kdc = &r->wk;
	int ret = kd3_peer_input(r->p, src, frame, n, r->now_ms, &out);
	if (fuzz_verbose())
		fprintf(stderr, "  %s frame (%zu bytes, from %s): %s -> %s, %s, events 0x%02x\n",
		        n > 1 ? kd3_type_name(frame[1]) : "short", n,
		        src == KD3_SRC_KDC ? "KDC" : "peer", kd3_peer_state_name(was),
		        kd3_peer_state_name(r->p->state), kd3_strerror(ret), out.events);

	if (r->failed || was == KD3_PS_CLOSED) { /* refused: nothing happens */
		FUZZ_CHECK(ret != KD3_OK);
		FUZZ_CHECK(out.events == 0);
		FUZZ_CHECK(r->wp.len == 0 && r->wk.len == 0);
		FUZZ_CHECK(r->p->state == was);
	}
	if (ret != KD3_OK && was != KD3_PS_CLOSED)
		FUZZ_CHECK(r->p->state == KD3_PS_FAILED);
	if (ret == KD3_OK)
		FUZZ_CHECK(r->p->state != KD3_PS_FAILED);
	if (out.events & KD3_EV_DATA) {
		FUZZ_CHECK(ret == KD3_OK && was == KD3_PS_ESTABLISHED);
		FUZZ_CHECK(fuzz_inside(frame, n, out.data.p, out.data.len));
	}
	if (out.events & KD3_EV_ESTABLISHED) {
		FUZZ_CHECK(ret == KD3_OK && r->p->state == KD3_PS_ESTABLISHED);
		FUZZ_CHECK(was == KD3_PS_WAIT_M4 || was == KD3_PS_WAIT_FINISHED);
	}
	if (out.events & KD3_EV_TO_KDC) {
		FUZZ_CHECK(ret == KD3_OK && r->role == FW_R && r->wk.len > 0);
		FUZZ_CHECK(r->to_kdc[1] == KD3_T_M2);
	}
	if (out.events & KD3_EV_CLOSED)
		FUZZ_CHECK(r->p->state == KD3_PS_CLOSED);
	check_state(r);
	if (r->p->state == KD3_PS_FAILED)
		r->failed = 1;
	free(frame);
}

static void local_op(struct run *r, unsigned op)
{
	static const uint8_t payload[] = "fuzz";
	kd3_peer_state was = r->p->state;
	int ret = KD3_OK;

	outputs_reset(r);
	switch (op) {
	case FUZZ_OP_SEND:
		ret = kd3_peer_send(r->p, payload, sizeof(payload) - 1, r->now_ms, &r->wp);
		if (ret == KD3_OK)
			FUZZ_CHECK(was == KD3_PS_ESTABLISHED && r->wp.len > 0);
		break;
	case FUZZ_OP_REKEY:
		ret = kd3_peer_rekey(r->p, r->now_ms, &r->wp);
		if (ret == KD3_OK)
			FUZZ_CHECK(was == KD3_PS_ESTABLISHED && r->wp.len > 0);
		break;
	case FUZZ_OP_CLOSE:
		ret = kd3_peer_close(r->p, KD3_CLOSE_NORMAL, "fuzz", &r->wp);
		break;
	case FUZZ_OP_EOF:
		ret = kd3_peer_eof(r->p);
		break;
	case FUZZ_OP_LATER:
		r->now_ms = LATER_MS;
		ret = kd3_peer_check_expiry(r->p, r->now_ms);
		break;
	case FUZZ_OP_KDC_FAILED:
		ret = kd3_peer_kdc_failed(r->p, KD3_E_TIMEOUT, &r->wp);
		break;
	default:
		return;
	}
	if (fuzz_verbose())
		fprintf(stderr, "  op %u: %s -> %s, %s\n", op, kd3_peer_state_name(was),
		        kd3_peer_state_name(r->p->state), kd3_strerror(ret));
	if (r->failed && op != FUZZ_OP_LATER) { /* a failed peer does nothing more */
		FUZZ_CHECK(ret != KD3_OK);
		FUZZ_CHECK(r->wp.len == 0);
		FUZZ_CHECK(r->p->state == KD3_PS_FAILED);
	}
	if (was == KD3_PS_CLOSED) { /* a closed session sends nothing more */
		FUZZ_CHECK(r->wp.len == 0);
		FUZZ_CHECK(r->p->state == KD3_PS_CLOSED);
	}
	check_state(r);
	if (r->p->state == KD3_PS_FAILED)
		r->failed = 1;
}

int fuzz_peer_run(fw_party role, const uint8_t *data, size_t size)
{
	fuzz_in in;
	uint8_t mode;
	uint16_t item;

	fuzz_in_init(&in, data, size);
	if (!fuzz_u8(&in, &mode))
		return 0;
	const int *stops = role == FW_I ? fuzz_stops_i : fuzz_stops_r;
	size_t nstops = role == FW_I ? fuzz_nstops_i : fuzz_nstops_r;
	uint8_t suite = (mode & 1) ? KD3_SUITE_AES256GCM : KD3_SUITE_CHACHAPOLY;

	FUZZ_CHECK(fw_init(&world, suite, (mode >> 1) & 1) == KD3_OK);
	FUZZ_CHECK(fw_run_to(&world, stops[(mode >> 2) % nstops]) == KD3_OK);
	run.p = role == FW_I ? &world.w.ini : &world.w.resp;
	if (fuzz_verbose())
		fprintf(stderr, "%s, %s, fs %u, honest steps 1..%d: %s\n",
		        role == FW_I ? "initiator" : "responder", kd3_suite_name(suite),
		        (mode >> 1) & 1, stops[(mode >> 2) % nstops],
		        kd3_peer_state_name(run.p->state));
	run.role = role;
	run.now_ms = 0;
	run.failed = 0;
	while (fuzz_u16(&in, &item)) {
		unsigned len = item & FUZZ_LEN_MASK;
		if (len >= FUZZ_OP_BASE) {
			local_op(&run, len & 0xf);
			continue;
		}
		int fixup = len >= FUZZ_FIXUP_BASE;
		size_t got;
		const uint8_t *bytes = fuzz_take(&in, fixup ? len - FUZZ_FIXUP_BASE : len, &got);
		feed_frame(&run, (item & FUZZ_FLAG) ? KD3_SRC_KDC : KD3_SRC_PEER, bytes, got,
		           fixup);
	}
	fw_free(&world);
	return 0;
}
