/* Initiator and responder state machines: the honest run in every suite and mode,
 * every (state, source, message type) pair, and the failures the design promises. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "harness.h"
#include "msg.h"

enum { F_M1, F_M2, F_M3, F_M4, F_FINISHED };

static uint8_t to_peer_buf[4 * KD3_FRAME_MAX], to_kdc_buf[KD3_FRAME_MAX];
static kd3_writer to_peer, to_kdc;

static kd3_peer_out fresh_out(void)
{
	kd3_peer_out out;
	memset(&out, 0, sizeof(out));
	kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
	kd3_wr_init(&to_kdc, to_kdc_buf, sizeof(to_kdc_buf));
	out.to_peer = &to_peer;
	out.to_kdc = &to_kdc;
	return out;
}

/* Feed a copy of a frame (records are opened in place). */
static int feed(kd3_peer *p, kd3_source src, const h_frame *f, uint64_t now, kd3_peer_out *out)
{
	static uint8_t work[KD3_FRAME_MAX];
	memcpy(work, f->bytes, f->len);
	*out = fresh_out();
	return kd3_peer_input(p, src, work, f->len, now, out);
}

static h_world *world(uint8_t suite, uint8_t fs)
{
	h_world *w = calloc(1, sizeof(*w));
	h_inputs in;
	h_inputs_default(&in, suite, fs);
	assert_int_equal(h_world_init(w, &in), KD3_OK);
	return w;
}

static void world_free(h_world *w)
{
	h_world_free(w);
	free(w);
}

/* A recorded honest run, to take frames of every type from. */
static h_world *honest_run(uint8_t fs)
{
	h_world *w = world(KD3_SUITE_CHACHAPOLY, fs);
	assert_int_equal(h_handshake(w), KD3_OK);
	return w;
}

static void check_run(uint8_t suite, uint8_t fs)
{
	h_world *w = world(suite, fs);
	kd3_peer_out out;
	assert_int_equal(h_handshake(w), KD3_OK);
	assert_int_equal(w->ini.state, KD3_PS_ESTABLISHED);
	assert_int_equal(w->resp.state, KD3_PS_ESTABLISHED);
	assert_int_equal(w->ini.fs, fs);
	assert_int_equal(w->resp.fs, fs);
	assert_int_equal(h_send(w, 1, "hello bob", &out), KD3_OK);
	assert_true(out.events & KD3_EV_DATA);
	assert_int_equal(out.data.len, 9);
	assert_memory_equal(out.data.p, "hello bob", 9);
	assert_int_equal(h_send(w, 0, "hello alice", &out), KD3_OK);
	assert_memory_equal(out.data.p, "hello alice", 11);
	assert_string_equal(w->resp.peer_id, "alice");
	assert_string_equal(w->ini.peer_id, "bob");
	world_free(w);
}

static void test_honest_runs(void **state)
{
	(void)state;
	check_run(KD3_SUITE_CHACHAPOLY, 0);
	check_run(KD3_SUITE_CHACHAPOLY, 1);
	check_run(KD3_SUITE_AES256GCM, 0);
	check_run(KD3_SUITE_AES256GCM, 1);
}

/* ---- every (state, source, type) pair ------------------------------------- */

struct legal {
	kd3_role role;
	kd3_peer_state state;
	kd3_source src;
	uint8_t type;
};

/* The legal pairs, written out here independently of peer.c's table. */
static const struct legal legal_pairs[] = {
    {KD3_ROLE_INITIATOR, KD3_PS_WAIT_M4, KD3_SRC_PEER, KD3_T_M4},
    {KD3_ROLE_INITIATOR, KD3_PS_WAIT_M4, KD3_SRC_PEER, KD3_T_ERROR},
    {KD3_ROLE_INITIATOR, KD3_PS_ESTABLISHED, KD3_SRC_PEER, KD3_T_RECORD},
    {KD3_ROLE_INITIATOR, KD3_PS_ESTABLISHED, KD3_SRC_PEER, KD3_T_ERROR},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_M1, KD3_SRC_PEER, KD3_T_M1},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_M3, KD3_SRC_KDC, KD3_T_M3},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_M3, KD3_SRC_KDC, KD3_T_ERROR},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_M3, KD3_SRC_PEER, KD3_T_ERROR},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_FINISHED, KD3_SRC_PEER, KD3_T_RECORD},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_FINISHED, KD3_SRC_PEER, KD3_T_ERROR},
    {KD3_ROLE_RESPONDER, KD3_PS_ESTABLISHED, KD3_SRC_PEER, KD3_T_RECORD},
};

static int is_legal(kd3_role role, kd3_peer_state st, kd3_source src, uint8_t type)
{
	for (size_t i = 0; i < sizeof(legal_pairs) / sizeof(legal_pairs[0]); i++)
		if (legal_pairs[i].role == role && legal_pairs[i].state == st &&
		    legal_pairs[i].src == src && legal_pairs[i].type == type)
			return 1;
	return 0;
}

/* A fresh world with one party driven to the given state. */
static h_world *world_at(kd3_role role, kd3_peer_state st)
{
	h_world *w = world(KD3_SUITE_CHACHAPOLY, 0);
	kd3_peer_out out;
	kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
	if (role == KD3_ROLE_INITIATOR) {
		if (st == KD3_PS_START)
			return w;
		assert_int_equal(kd3_peer_start(&w->ini, &to_peer), KD3_OK);
		if (st == KD3_PS_ESTABLISHED)
			assert_int_equal(h_handshake(w), KD3_E_UNEXPECTED); /* replays M1 start */
		if (st == KD3_PS_ESTABLISHED) {
			world_free(w);
			w = world(KD3_SUITE_CHACHAPOLY, 0);
			assert_int_equal(h_handshake(w), KD3_OK);
		}
		assert_int_equal(w->ini.state, st);
		return w;
	}
	if (st == KD3_PS_WAIT_M1)
		return w;
	assert_int_equal(h_handshake(w), KD3_OK);
	world_free(w);
	/* Replay a recorded run step by step into a fresh responder. */
	h_world *rec = honest_run(0);
	w = world(KD3_SUITE_CHACHAPOLY, 0);
	assert_int_equal(feed(&w->resp, KD3_SRC_PEER, &rec->frames[F_M1], 0, &out), KD3_OK);
	if (st != KD3_PS_WAIT_M3) {
		assert_int_equal(feed(&w->resp, KD3_SRC_KDC, &rec->frames[F_M3], 0, &out), KD3_OK);
		if (st == KD3_PS_ESTABLISHED)
			assert_int_equal(
			    feed(&w->resp, KD3_SRC_PEER, &rec->frames[F_FINISHED], 0, &out),
			    KD3_OK);
	}
	world_free(rec);
	assert_int_equal(w->resp.state, st);
	return w;
}

static void sample_frames(h_frame samples[6], uint8_t types[6])
{
	h_world *rec = honest_run(0);
	uint8_t err_buf[64];
	kd3_writer ew;
	kd3_wr_init(&ew, err_buf, sizeof(err_buf));
	assert_int_equal(kd3_error_encode(&ew, KD3_E_BAD_AUTH, "no"), KD3_OK);
	for (int i = 0; i < 5; i++) {
		samples[i] = rec->frames[i];
		types[i] = samples[i].bytes[1];
	}
	memcpy(samples[5].bytes, err_buf, ew.len);
	samples[5].len = ew.len;
	types[5] = KD3_T_ERROR;
	world_free(rec);
}

static void check_pairs(kd3_role role, const kd3_peer_state *states, size_t nstates)
{
	static h_frame samples[6];
	uint8_t types[6];
	sample_frames(samples, types);
	for (size_t s = 0; s < nstates; s++)
		for (int src = 0; src < 2; src++)
			for (int t = 0; t < 6; t++) {
				h_world *w = world_at(role, states[s]);
				kd3_peer *p = role == KD3_ROLE_INITIATOR ? &w->ini : &w->resp;
				kd3_peer_out out;
				int ret = feed(p, (kd3_source)src, &samples[t], 0, &out);
				if (is_legal(role, states[s], (kd3_source)src, types[t])) {
					assert_int_not_equal(ret, KD3_E_UNEXPECTED);
				} else {
					if (ret != KD3_E_UNEXPECTED)
						fail_msg("role %d state %s src %d type %s: %s",
						         role, kd3_peer_state_name(states[s]), src,
						         kd3_type_name(types[t]),
						         kd3_strerror(ret));
					assert_int_equal(p->state, KD3_PS_FAILED);
					/* Sticky: nothing is accepted after a failure. */
					assert_int_equal(
					    feed(p, (kd3_source)src, &samples[t], 0, &out),
					    KD3_E_UNEXPECTED);
				}
				world_free(w);
			}
}

static void test_initiator_pairs(void **state)
{
	(void)state;
	const kd3_peer_state st[] = {KD3_PS_START, KD3_PS_WAIT_M4, KD3_PS_ESTABLISHED};
	check_pairs(KD3_ROLE_INITIATOR, st, 3);
}

static void test_responder_pairs(void **state)
{
	(void)state;
	const kd3_peer_state st[] = {KD3_PS_WAIT_M1, KD3_PS_WAIT_M3, KD3_PS_WAIT_FINISHED,
	                             KD3_PS_ESTABLISHED};
	check_pairs(KD3_ROLE_RESPONDER, st, 4);
}

/* ---- replays and tampering ------------------------------------------------ */

/* An M3 from an earlier run (another n_r) is refused: no open exchange has it. */
static void test_replayed_m3_refused(void **state)
{
	(void)state;
	h_world *old = honest_run(0);
	h_world *w = world(KD3_SUITE_CHACHAPOLY, 0);
	kd3_peer_out out;
	w->rng_r_bytes[0] ^= 0xff; /* the new run draws another n_r */
	assert_int_equal(feed(&w->resp, KD3_SRC_PEER, &old->frames[F_M1], 0, &out), KD3_OK);
	assert_int_equal(feed(&w->resp, KD3_SRC_KDC, &old->frames[F_M3], 0, &out), KD3_E_NONCE);
	/* The initiator is told, with an ERROR. */
	assert_int_equal(to_peer_buf[1], KD3_T_ERROR);
	world_free(old);
	world_free(w);
}

/* An M4 from an earlier run fails at the initiator: its new n_i changes TH. */
static void test_replayed_m4_refused(void **state)
{
	(void)state;
	h_world *old = honest_run(0);
	h_world *w = world(KD3_SUITE_CHACHAPOLY, 0);
	kd3_peer_out out;
	w->rng_i_bytes[5] ^= 1;
	kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
	assert_int_equal(kd3_peer_start(&w->ini, &to_peer), KD3_OK);
	assert_int_equal(feed(&w->ini, KD3_SRC_PEER, &old->frames[F_M4], 0, &out), KD3_E_BLOB_AUTH);
	assert_int_equal(w->ini.state, KD3_PS_FAILED);
	world_free(old);
	world_free(w);
}

/* Run a handshake where one frame is altered on its way; 1 when both ended up with
 * a session (which must never happen for an altered frame). */
static int both_established_after_flip(uint8_t fs, int frame, size_t at, uint8_t mask)
{
	h_world *w = world(KD3_SUITE_CHACHAPOLY, fs);
	kd3_peer_out out;
	kd3_kdc_result res;
	static h_frame cur;
	int ok = 0;

	kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
	if (kd3_peer_start(&w->ini, &to_peer))
		goto out;
	memcpy(cur.bytes, to_peer_buf, to_peer.len);
	cur.len = to_peer.len;
	for (int step = F_M1; step <= F_FINISHED; step++) {
		if (step == frame && at >= cur.len)
			goto out; /* past the end of this frame: nothing to alter */
		if (step == frame)
			cur.bytes[at] ^= mask;
		int ret;
		if (step == F_M1 || step == F_FINISHED)
			ret = feed(&w->resp, KD3_SRC_PEER, &cur, 0, &out);
		else if (step == F_M2)
			ret = kd3_kdc_handle(&w->kdc, cur.bytes, cur.len, 0, to_peer_buf,
			                     sizeof(to_peer_buf), &to_peer.len, &res);
		else if (step == F_M3)
			ret = feed(&w->resp, KD3_SRC_KDC, &cur, 0, &out);
		else
			ret = feed(&w->ini, KD3_SRC_PEER, &cur, 0, &out);
		if (ret != KD3_OK)
			goto out;
		const kd3_writer *next = step == F_M1 ? &to_kdc : &to_peer;
		memcpy(cur.bytes, next->p, next->len);
		cur.len = next->len;
	}
	ok = w->ini.state == KD3_PS_ESTABLISHED && w->resp.state == KD3_PS_ESTABLISHED;
out:
	world_free(w);
	return ok;
}

static void test_every_byte_flip_fails(void **state)
{
	(void)state;
	for (uint8_t fs = 0; fs < 2; fs++) {
		assert_true(both_established_after_flip(fs, -1, 0, 0)); /* the control */
		for (int frame = F_M1; frame <= F_FINISHED; frame++)
			for (size_t at = 0; at < 200; at++)
				if (both_established_after_flip(fs, frame, at, 0x01))
					fail_msg("fs %u: flip in frame %d at %zu accepted", fs,
					         frame, at);
	}
}

/* ---- records -------------------------------------------------------------- */

struct rec_fixture {
	h_world *w;
	h_frame r0, r1, r2; /* three I->R DATA records, in order */
};

static int rec_setup(void **state)
{
	struct rec_fixture *f = calloc(1, sizeof(*f));
	f->w = honest_run(0);
	const char *msgs[3] = {"one", "two", "three"};
	h_frame *dst[3] = {&f->r0, &f->r1, &f->r2};
	for (int i = 0; i < 3; i++) {
		kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
		assert_int_equal(kd3_peer_send(&f->w->ini, (const uint8_t *)msgs[i],
		                               strlen(msgs[i]), 0, &to_peer),
		                 KD3_OK);
		memcpy(dst[i]->bytes, to_peer_buf, to_peer.len);
		dst[i]->len = to_peer.len;
	}
	*state = f;
	return 0;
}

static int rec_teardown(void **state)
{
	struct rec_fixture *f = *state;
	world_free(f->w);
	free(f);
	return 0;
}

static void test_records_in_order(void **state)
{
	struct rec_fixture *f = *state;
	kd3_peer_out out;
	assert_int_equal(feed(&f->w->resp, KD3_SRC_PEER, &f->r0, 0, &out), KD3_OK);
	assert_memory_equal(out.data.p, "one", 3);
	assert_int_equal(feed(&f->w->resp, KD3_SRC_PEER, &f->r1, 0, &out), KD3_OK);
	assert_int_equal(feed(&f->w->resp, KD3_SRC_PEER, &f->r2, 0, &out), KD3_OK);
	assert_memory_equal(out.data.p, "three", 5);
}

static void test_record_replayed(void **state)
{
	struct rec_fixture *f = *state;
	kd3_peer_out out;
	assert_int_equal(feed(&f->w->resp, KD3_SRC_PEER, &f->r0, 0, &out), KD3_OK);
	assert_int_equal(feed(&f->w->resp, KD3_SRC_PEER, &f->r0, 0, &out), KD3_E_RECORD_SEQ);
	assert_int_equal(out.events & KD3_EV_DATA, 0);
	/* Nothing after the failure is delivered, even the right next record. */
	assert_int_not_equal(feed(&f->w->resp, KD3_SRC_PEER, &f->r1, 0, &out), KD3_OK);
	assert_int_equal(out.events & KD3_EV_DATA, 0);
}

static void test_record_dropped(void **state)
{
	struct rec_fixture *f = *state;
	kd3_peer_out out;
	assert_int_equal(feed(&f->w->resp, KD3_SRC_PEER, &f->r1, 0, &out), KD3_E_RECORD_SEQ);
	assert_int_equal(out.events & KD3_EV_DATA, 0);
}

static void test_record_reordered(void **state)
{
	struct rec_fixture *f = *state;
	kd3_peer_out out;
	assert_int_equal(feed(&f->w->resp, KD3_SRC_PEER, &f->r0, 0, &out), KD3_OK);
	assert_int_equal(feed(&f->w->resp, KD3_SRC_PEER, &f->r2, 0, &out), KD3_E_RECORD_SEQ);
}

/* I's own record sent back to I: same seq as I expects from R, other key. */
static void test_record_reflected(void **state)
{
	struct rec_fixture *f = *state;
	kd3_peer_out out;
	/* I expects R's seq 0; r0 carries I's seq 1 (after FINISHED) -> out of sequence. */
	assert_int_equal(feed(&f->w->ini, KD3_SRC_PEER, &f->r0, 0, &out), KD3_E_RECORD_SEQ);
	/* The FINISHED record has seq 0: the seq matches, and the direction's key does not. */
	h_world *w = honest_run(0);
	assert_int_equal(feed(&w->ini, KD3_SRC_PEER, &w->frames[F_FINISHED], 0, &out),
	                 KD3_E_RECORD_AUTH);
	world_free(w);
}

static void test_record_tampered(void **state)
{
	struct rec_fixture *f = *state;
	kd3_peer_out out;
	for (size_t at = 0; at < f->r0.len; at++) {
		h_world *w = honest_run(0);
		h_frame r = f->r0;
		/* Re-seal r0 in this world: worlds are deterministic, so it is the same. */
		r.bytes[at] ^= 0x20;
		int ret = feed(&w->resp, KD3_SRC_PEER, &r, 0, &out);
		assert_int_not_equal(ret, KD3_OK);
		assert_int_equal(out.events & KD3_EV_DATA, 0);
		world_free(w);
	}
}

static void test_record_truncated(void **state)
{
	struct rec_fixture *f = *state;
	kd3_peer_out out;
	h_frame r = f->r0;
	r.len -= 1;
	assert_int_equal(feed(&f->w->resp, KD3_SRC_PEER, &r, 0, &out), KD3_E_MALFORMED);
}

/* After a record failure the channel sends an authenticated CLOSE naming it. */
static void test_failure_sends_close(void **state)
{
	struct rec_fixture *f = *state;
	kd3_peer_out out;
	assert_int_equal(feed(&f->w->resp, KD3_SRC_PEER, &f->r1, 0, &out), KD3_E_RECORD_SEQ);
	h_frame close;
	memcpy(close.bytes, to_peer_buf, to_peer.len);
	close.len = to_peer.len;
	assert_int_equal(feed(&f->w->ini, KD3_SRC_PEER, &close, 0, &out), KD3_OK);
	assert_true(out.events & KD3_EV_PEER_CLOSED);
	assert_int_equal(out.close_reason, KD3_E_RECORD_SEQ); /* the precise cause */
}

/* ---- FINISHED, DATA before FINISHED, CLOSE, key updates, expiry ---------- */

static void test_data_before_finished(void **state)
{
	(void)state;
	h_world *rec = honest_run(0);
	h_world *w = world(KD3_SUITE_CHACHAPOLY, 0);
	kd3_peer_out out;
	assert_int_equal(feed(&w->resp, KD3_SRC_PEER, &rec->frames[F_M1], 0, &out), KD3_OK);
	assert_int_equal(feed(&w->resp, KD3_SRC_KDC, &rec->frames[F_M3], 0, &out), KD3_OK);
	/* The recorded initiator (same keys) sends DATA where FINISHED belongs: re-key a
	 * fresh initiator channel and seal DATA at seq 0. */
	kd3_channel ch;
	assert_int_equal(kd3_channel_init(&ch, &w->crypto, KD3_SUITE_CHACHAPOLY, w->resp.ch.rx.ts,
	                                  w->resp.ch.tx.ts),
	                 KD3_OK);
	kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
	assert_int_equal(kd3_channel_seal(&ch, KD3_R_DATA, (const uint8_t *)"x", 1, &to_peer),
	                 KD3_OK);
	h_frame data;
	memcpy(data.bytes, to_peer_buf, to_peer.len);
	data.len = to_peer.len;
	assert_int_equal(feed(&w->resp, KD3_SRC_PEER, &data, 0, &out), KD3_E_RECORD_TYPE);
	assert_int_equal(out.events & KD3_EV_DATA, 0);
	kd3_channel_free(&ch);
	world_free(rec);
	world_free(w);
}

static void test_finished_twice(void **state)
{
	(void)state;
	h_world *w = honest_run(0);
	kd3_peer_out out;
	kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
	/* A second FINISHED, properly sealed at the next seq. */
	assert_int_equal(kd3_channel_seal(&w->ini.ch, KD3_R_FINISHED, w->ini.th, 32, &to_peer),
	                 KD3_OK);
	h_frame again;
	memcpy(again.bytes, to_peer_buf, to_peer.len);
	again.len = to_peer.len;
	assert_int_equal(feed(&w->resp, KD3_SRC_PEER, &again, 0, &out), KD3_E_RECORD_TYPE);
	world_free(w);
}

static void test_close_both_ways(void **state)
{
	(void)state;
	h_world *w = honest_run(0);
	kd3_peer_out out;
	h_frame fr;
	kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
	assert_int_equal(kd3_peer_close(&w->ini, KD3_CLOSE_NORMAL, "bye", &to_peer), KD3_OK);
	memcpy(fr.bytes, to_peer_buf, to_peer.len);
	fr.len = to_peer.len;
	assert_int_equal(kd3_peer_send(&w->ini, (const uint8_t *)"late", 4, 0, &to_peer),
	                 KD3_E_CLOSED);
	assert_int_equal(feed(&w->resp, KD3_SRC_PEER, &fr, 0, &out), KD3_OK);
	assert_true(out.events & KD3_EV_PEER_CLOSED);
	assert_int_equal(out.close_text.len, 3);
	assert_int_equal(kd3_peer_eof(&w->resp), KD3_OK);
	/* R may still talk until it closes too. */
	kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
	assert_int_equal(kd3_peer_send(&w->resp, (const uint8_t *)"last", 4, 0, &to_peer), KD3_OK);
	assert_int_equal(kd3_peer_close(&w->resp, KD3_CLOSE_NORMAL, "", &to_peer), KD3_OK);
	assert_int_equal(w->resp.state, KD3_PS_CLOSED);
	world_free(w);
}

static void test_truncated_session(void **state)
{
	(void)state;
	h_world *w = honest_run(0);
	assert_int_equal(kd3_peer_eof(&w->resp), KD3_E_TRUNCATED);
	assert_int_equal(w->resp.state, KD3_PS_FAILED);
	world_free(w);
}

static void test_key_update_every_record(void **state)
{
	(void)state;
	h_world *w = calloc(1, sizeof(*w));
	h_inputs in;
	kd3_peer_out out;
	h_inputs_default(&in, KD3_SUITE_AES256GCM, 1);
	in.rekey_records = 1;
	assert_int_equal(h_world_init(w, &in), KD3_OK);
	assert_int_equal(h_handshake(w), KD3_OK);
	for (int i = 0; i < 10; i++) {
		char msg[16];
		snprintf(msg, sizeof(msg), "msg %d", i);
		assert_int_equal(h_send(w, i % 2, msg, &out), KD3_OK);
		assert_memory_equal(out.data.p, msg, strlen(msg));
	}
	/* FINISHED then 5 DATA from I, each DATA under a new key. */
	assert_int_equal(w->ini.ch.tx.generation, 5);
	assert_int_equal(w->resp.ch.rx.generation, 5);
	assert_int_equal(w->resp.ch.tx.generation, 4);
	world_free(w);
}

/* After rekey_ms under one key, the next record is preceded by a KEY_UPDATE; a
 * forced update restarts the clock. */
static void test_key_update_by_time(void **state)
{
	(void)state;
	h_world *w = honest_run(0);
	kd3_peer *i = &w->ini;
	uint64_t t0 = i->tx_key_since_ms;
	i->cfg.rekey_ms = 5000;
	kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
	assert_int_equal(kd3_peer_send(i, (const uint8_t *)"a", 1, t0 + 4999, &to_peer), KD3_OK);
	assert_int_equal(i->ch.tx.generation, 0);
	assert_int_equal(kd3_peer_send(i, (const uint8_t *)"b", 1, t0 + 5000, &to_peer), KD3_OK);
	assert_int_equal(i->ch.tx.generation, 1);
	assert_int_equal(i->tx_key_since_ms, t0 + 5000);
	assert_int_equal(kd3_peer_send(i, (const uint8_t *)"c", 1, t0 + 9999, &to_peer), KD3_OK);
	assert_int_equal(i->ch.tx.generation, 1);
	assert_int_equal(kd3_peer_rekey(i, t0 + 9000, &to_peer), KD3_OK);
	assert_int_equal(i->ch.tx.generation, 2);
	assert_int_equal(kd3_peer_send(i, (const uint8_t *)"d", 1, t0 + 13999, &to_peer), KD3_OK);
	assert_int_equal(i->ch.tx.generation, 2);
	/* The responder follows every update. */
	kd3_peer_out out;
	for (size_t off = 0; off < to_peer.len;) {
		static h_frame f;
		long n = kd3_frame_size(to_peer_buf + off, to_peer.len - off);
		assert_true(n > 0);
		memcpy(f.bytes, to_peer_buf + off, (size_t)n);
		f.len = (size_t)n;
		off += (size_t)n;
		uint8_t keep[sizeof(to_peer_buf)];
		memcpy(keep, to_peer_buf, to_peer.len);
		size_t keep_len = to_peer.len;
		assert_int_equal(feed(&w->resp, KD3_SRC_PEER, &f, t0 + 14000, &out), KD3_OK);
		memcpy(to_peer_buf, keep, keep_len);
		to_peer.len = keep_len;
	}
	assert_int_equal(w->resp.ch.rx.generation, 2);
	assert_memory_equal(out.data.p, "d", 1);
	world_free(w);
}

static void test_expiry(void **state)
{
	(void)state;
	h_world *w = honest_run(0);
	uint64_t end = w->resp.expires_ms;
	kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
	assert_int_equal(kd3_peer_send(&w->ini, (const uint8_t *)"a", 1, end - 1, &to_peer),
	                 KD3_OK);
	assert_int_equal(kd3_peer_send(&w->ini, (const uint8_t *)"a", 1, end, &to_peer),
	                 KD3_E_EXPIRED);
	assert_int_equal(kd3_peer_check_expiry(&w->resp, end + 5), KD3_E_EXPIRED);
	world_free(w);
}

static void test_kdc_error_forwarded(void **state)
{
	(void)state;
	h_world *w = world(KD3_SUITE_CHACHAPOLY, 0);
	kd3_peer_out out;
	kd3_kdc_result res;
	size_t n;
	static h_frame m1, m2, err;
	kd3_wr_init(&to_peer, to_peer_buf, sizeof(to_peer_buf));
	assert_int_equal(kd3_peer_start(&w->ini, &to_peer), KD3_OK);
	memcpy(m1.bytes, to_peer_buf, to_peer.len);
	m1.len = to_peer.len;
	assert_int_equal(feed(&w->resp, KD3_SRC_PEER, &m1, 0, &out), KD3_OK);
	memcpy(m2.bytes, to_kdc_buf, to_kdc.len);
	m2.len = to_kdc.len;
	w->principals[0].keys[0].sub.auth[0] ^= 1; /* the KDC holds another key for alice */
	assert_int_equal(kd3_subkeys_rekey(&w->principals[0].keys[0].sub), KD3_OK);
	assert_int_equal(
	    kd3_kdc_handle(&w->kdc, m2.bytes, m2.len, 0, err.bytes, sizeof(err.bytes), &n, &res),
	    KD3_E_BAD_AUTH);
	err.len = n;
	assert_int_equal(feed(&w->resp, KD3_SRC_KDC, &err, 0, &out), KD3_E_PEER_ERROR);
	assert_int_equal(out.peer_error, KD3_E_BAD_AUTH);
	h_frame fwd;
	memcpy(fwd.bytes, to_peer_buf, to_peer.len);
	fwd.len = to_peer.len;
	assert_int_equal(feed(&w->ini, KD3_SRC_PEER, &fwd, 0, &out), KD3_E_PEER_ERROR);
	assert_int_equal(out.peer_error, KD3_E_BAD_AUTH);
	assert_true(out.peer_error_text.len > 5);
	assert_memory_equal(out.peer_error_text.p, "KDC: ", 5);
	world_free(w);
}

static void test_responder_checks_m1(void **state)
{
	(void)state;
	h_world *rec = honest_run(0);
	kd3_peer_out out;
	/* A responder that is not "bob" refuses an M1 for bob. */
	h_world *w = world(KD3_SUITE_CHACHAPOLY, 0);
	snprintf(w->resp.cfg.self, sizeof(w->resp.cfg.self), "carol");
	assert_int_equal(feed(&w->resp, KD3_SRC_PEER, &rec->frames[F_M1], 0, &out),
	                 KD3_E_UNKNOWN_PRINCIPAL);
	assert_int_equal(to_peer_buf[1], KD3_T_ERROR);
	world_free(w);
	/* A responder that allows only AES refuses ChaCha. */
	w = world(KD3_SUITE_CHACHAPOLY, 0);
	w->resp.cfg.suites_allowed = 1u << KD3_SUITE_AES256GCM;
	assert_int_equal(feed(&w->resp, KD3_SRC_PEER, &rec->frames[F_M1], 0, &out),
	                 KD3_E_UNSUPPORTED);
	world_free(w);
	/* A responder that requires forward secrecy refuses an M1 without it. */
	w = world(KD3_SUITE_CHACHAPOLY, 0);
	w->resp.cfg.forward_secret = 1;
	assert_int_equal(feed(&w->resp, KD3_SRC_PEER, &rec->frames[F_M1], 0, &out),
	                 KD3_E_POLICY_DENIED);
	world_free(w);
	world_free(rec);
}

static void test_initiator_config_refused(void **state)
{
	(void)state;
	h_world *w = world(KD3_SUITE_CHACHAPOLY, 0);
	kd3_peer_config cfg = w->ini.cfg;
	kd3_peer p;
	snprintf(cfg.peer_name, sizeof(cfg.peer_name), "alice");
	assert_int_equal(kd3_peer_init(&p, &cfg, &w->crypto, h_rng_fn, &w->rng_i),
	                 KD3_E_SAME_PRINCIPAL);
	cfg = w->ini.cfg;
	cfg.suite = 9;
	assert_int_equal(kd3_peer_init(&p, &cfg, &w->crypto, h_rng_fn, &w->rng_i),
	                 KD3_E_UNSUPPORTED);
	cfg = w->ini.cfg;
	cfg.nkeys = 0;
	assert_int_equal(kd3_peer_init(&p, &cfg, &w->crypto, h_rng_fn, &w->rng_i), KD3_E_USAGE);
	world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_honest_runs),
	    cmocka_unit_test(test_initiator_pairs),
	    cmocka_unit_test(test_responder_pairs),
	    cmocka_unit_test(test_replayed_m3_refused),
	    cmocka_unit_test(test_replayed_m4_refused),
	    cmocka_unit_test(test_every_byte_flip_fails),
	    cmocka_unit_test_setup_teardown(test_records_in_order, rec_setup, rec_teardown),
	    cmocka_unit_test_setup_teardown(test_record_replayed, rec_setup, rec_teardown),
	    cmocka_unit_test_setup_teardown(test_record_dropped, rec_setup, rec_teardown),
	    cmocka_unit_test_setup_teardown(test_record_reordered, rec_setup, rec_teardown),
	    cmocka_unit_test_setup_teardown(test_record_reflected, rec_setup, rec_teardown),
	    cmocka_unit_test_setup_teardown(test_record_tampered, rec_setup, rec_teardown),
	    cmocka_unit_test_setup_teardown(test_record_truncated, rec_setup, rec_teardown),
	    cmocka_unit_test_setup_teardown(test_failure_sends_close, rec_setup, rec_teardown),
	    cmocka_unit_test(test_data_before_finished),
	    cmocka_unit_test(test_finished_twice),
	    cmocka_unit_test(test_close_both_ways),
	    cmocka_unit_test(test_truncated_session),
	    cmocka_unit_test(test_key_update_every_record),
	    cmocka_unit_test(test_key_update_by_time),
	    cmocka_unit_test(test_expiry),
	    cmocka_unit_test(test_kdc_error_forwarded),
	    cmocka_unit_test(test_responder_checks_m1),
	    cmocka_unit_test(test_initiator_config_refused),
	};
	return cmocka_run_group_tests_name("peer", tests, NULL, NULL);
}
