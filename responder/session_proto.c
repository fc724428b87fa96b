/* Frames into the state machine: M1, FINISHED and records from the initiator; M3 or
 * ERROR from the KDC. The state machine decides; this file reports and routes. */
#include "session_int.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "msg.h"
#include "outlet.h"
#include "report.h"
#include "trace.h"

static void proto_events(resp_session *s, kd3_peer_out *out, uint64_t now);

static void proto_out_init(kd3_peer_out *out, kd3_writer *to_peer, kd3_writer *to_kdc)
{
	memset(out, 0, sizeof(*out));
	out->to_peer = to_peer;
	out->to_kdc = to_kdc;
}

/* Why our own checks of an M1 refused it, naming the option (0: not an M1 refusal). */
static int proto_m1_refusal(const resp_session *s, int err, const uint8_t *frame, size_t len,
                            char *why, size_t why_len)
{
	char text[256];
	kd3_frame f;
	kd3_m1 m1;

	if (kd3_frame_decode(frame, len, &f) != KD3_OK || f.type != KD3_T_M1 ||
	    kd3_m1_decode(f.body.p, f.body.len, &m1) != KD3_OK)
		return 0;
	switch (err) {
	case KD3_E_UNKNOWN_PRINCIPAL:
		kd3_log_safe_name(m1.id_r.p, m1.id_r.len, text);
		snprintf(why, why_len, "M1 is for responder '%s', we are '%s'", text,
		         s->peer.cfg.self);
		return 1;
	case KD3_E_POLICY_DENIED:
		snprintf(why, why_len,
		         "the initiator did not ask for forward-secret mode "
		         "(--require-forward-secret)");
		return 1;
	case KD3_E_UNSUPPORTED:
		snprintf(why, why_len, "suite %s is not allowed here (--suites)",
		         kd3_suite_name(m1.suite));
		return 1;
	default:
		return 0;
	}
}

/* The session failed in the state machine; it wrote any ERROR or CLOSE already.
 * frame: the input that failed, to say why an M1 was refused. */
static void proto_failed(resp_session *s, int err, const kd3_peer_out *out, const char *who,
                         const uint8_t *frame, size_t len, uint64_t now)
{
	char why[640];
	char text[256];

	if (err == KD3_E_PEER_ERROR) {
		kd3_log_safe_name(out->peer_error_text.p, out->peer_error_text.len, text);
		snprintf(why, sizeof(why), "%s sent ERROR %s (%s)", who,
		         kd3_err_wire_name(out->peer_error), text);
	} else if (!proto_m1_refusal(s, err, frame, len, why, sizeof(why))) {
		snprintf(why, sizeof(why), "%s", kd3_strerror(err));
	}
	resp_session_finish(s, err, why, now);
}

/* ---- from the initiator ------------------------------------------------------- */

/* The inner type of a record we just opened, for the trace (-1: not known). */
static int proto_inner(const uint8_t *frame_copy, const kd3_peer_out *out)
{
	return frame_copy[1] == KD3_T_RECORD && out->inner ? out->inner : -1;
}

static void proto_peer_frame(resp_session *s, uint8_t *frame, size_t len, uint64_t now)
{
	kd3_peer_out out;
	kd3_writer to_peer, to_kdc;
	int traced = kd3_trace_enabled();
	int kept = traced || s->ctx->transcript;
	long generation = s->peer.ch.rx.generation; /* a record opens under this key */

	if (resp_out_begin(s, &to_peer) != KD3_OK)
		return;
	kd3_wr_init(&to_kdc, s->kdc.m2, sizeof(s->kdc.m2));
	proto_out_init(&out, &to_peer, &to_kdc);
	if (kept) /* records are opened in place: trace the bytes as they came */
		memcpy(s->ctx->trace_copy, frame, len);
	int ret = kd3_peer_input(&s->peer, KD3_SRC_PEER, frame, len, now, &out);
	int inner = kept && ret == KD3_OK ? proto_inner(s->ctx->trace_copy, &out) : -1;
	if (traced)
		kd3_trace_frame("I->R", s->ctx->trace_copy, len, s->peer.fs, inner);
	if (kept) {
		resp_report_frame_in(s, "I->R", s->ctx->trace_copy, len, inner, generation);
		kd3_wipe(s->ctx->trace_copy, len);
	}
	resp_out_end(s, &to_peer, KD3_R_CLOSE); /* on failure: an ERROR, or our CLOSE */
	if (ret != KD3_OK)
		proto_failed(s, ret, &out, "initiator", frame, len, now);
	else
		proto_events(s, &out, now);
}

/* Default mode: stdout is so far behind that no session may take a record now (one
 * could be a DATA we would have to queue). */
static int proto_stdout_full(resp_session *s)
{
	resp_outlet *o = s->ctx->outlet;

	if (s->ctx->exec_cmd || s->peer.state != KD3_PS_ESTABLISHED || o->failed ||
	    resp_outlet_pending(o) <= RESP_OUTLET_FULL)
		return 0;
	s->in_paused = 1;
	o->waiting = 1;
	return 1;
}

void resp_proto_frames(resp_session *s, uint64_t now)
{
	char why[160];

	while (s->phase == RESP_ACTIVE && !s->in_paused && !proto_stdout_full(s)) {
		uint8_t *frame = NULL;
		size_t len = 0;
		int r = kd3_stream_next(&s->in, &frame, &len);
		if (r == 0)
			return;
		if (r < 0) {
			snprintf(why, sizeof(why), "%s: the initiator's bytes are not kd3 frames",
			         kd3_strerror(-r));
			resp_out_close(s, (uint16_t)-r, "not a kd3 frame", now);
			resp_session_finish(s, -r, why, now);
			return;
		}
		proto_peer_frame(s, frame, len, now);
		kd3_stream_consume(&s->in, len);
	}
}

void resp_proto_eof(resp_session *s, uint64_t now)
{
	int had_bytes = s->peer.state != KD3_PS_WAIT_M1 || s->in.len > 0;
	int ret = kd3_peer_eof(&s->peer);

	s->peer_eof = 1;
	if (ret != KD3_OK)
		resp_session_finish(s, ret,
		                    had_bytes ? NULL : "connection closed before M1 arrived", now);
	else if (s->peer.state == KD3_PS_CLOSED)
		resp_session_finish(s, KD3_OK, NULL, now);
	/* else: the peer closed its direction and its stream; we may still send (--exec) */
}

/* ---- events of one input --------------------------------------------------------- */

static void proto_ask_kdc(resp_session *s, size_t m2_len, uint64_t now)
{
	s->kdc.m2_len = m2_len;
	s->kdc.fs = s->peer.fs;
	kd3_log_debug("session %llu: M1 claiming to be from %s; asking the KDC",
	              (unsigned long long)s->id, s->peer.peer_id);
	resp_report_step(s, "M1 received");
	int r = resp_kdcx_start(&s->kdc, s->ctx->epfd, now);
	resp_report_step(s, "M2 sent");
	resp_proto_kdc_result(s, r, now);
}

static void proto_established(resp_session *s, uint64_t now)
{
	s->hs_deadline = 0;
	s->established = 1;
	kd3_log_info("session %llu with %s established (%s, forward secrecy %s, key lifetime %u s)",
	             (unsigned long long)s->id, s->peer.peer_id, kd3_suite_name(s->peer.suite),
	             s->peer.fs ? "on" : "off", (unsigned)s->peer.lifetime);
	if (kd3_trace_enabled())
		kd3_trace_note("session %llu established: suite %s, forward secrecy %s",
		               (unsigned long long)s->id, kd3_suite_name(s->peer.suite),
		               s->peer.fs ? "on" : "off");
	resp_report_established(s);
	if (s->ctx->exec_cmd)
		resp_exec_start(s, now);
}

/* Default mode: one line on stdout per DATA, through the outlet (never blocks). When
 * stdout is behind, this session stops reading until it catches up. */
static void proto_deliver(resp_session *s, kd3_view data, uint64_t now)
{
	resp_outlet *o = s->ctx->outlet;

	if (s->ctx->exec_cmd) {
		resp_report_received(s, data.len); /* --json: the size; the data is CMD's */
		resp_exec_deliver(s, data);
		return;
	}
	int ret = s->ctx->json ? resp_report_message(s, data)
	                       : resp_outlet_put(o, s->ctx->epfd, data.p, data.len);
	if (ret != KD3_OK) {
		resp_out_close(s, KD3_E_INTERNAL, "responder cannot deliver", now);
		resp_session_finish(s, ret == KD3_E_NOMEM ? KD3_E_NOMEM : KD3_E_IO,
		                    "cannot write to stdout", now);
		return;
	}
	if (resp_outlet_pending(o) > RESP_OUTLET_HIGH) {
		s->in_paused = 1;
		o->waiting = 1;
	}
}

static void proto_peer_closed(resp_session *s, const kd3_peer_out *out, uint64_t now)
{
	char why[300];
	char text[256];
	const char *reason = NULL;

	kd3_log_safe_name(out->close_text.p, out->close_text.len, text);
	resp_report_close(s, "peer", out->close_reason, text);
	if (out->close_reason != KD3_CLOSE_NORMAL) {
		snprintf(why, sizeof(why), "initiator closed with reason %u: %s",
		         (unsigned)out->close_reason, text);
		reason = why;
	}
	if (out->events & KD3_EV_CLOSED) { /* ours went first */
		resp_session_finish(s, KD3_OK, reason, now);
		return;
	}
	if (s->has_child) { /* --exec: the child's output still flows, then our CLOSE */
		if (reason)
			kd3_log_info("session %llu: %s", (unsigned long long)s->id, reason);
		resp_exec_peer_closed(s);
		return;
	}
	resp_out_close(s, KD3_CLOSE_NORMAL, NULL, now);
	if (s->phase == RESP_ACTIVE && s->peer.state == KD3_PS_CLOSED)
		resp_session_finish(s, KD3_OK, reason, now);
	else if (s->phase == RESP_ACTIVE)
		resp_session_finish(s, s->peer.err ? s->peer.err : KD3_E_CLOSED, NULL, now);
}

static void proto_events(resp_session *s, kd3_peer_out *out, uint64_t now)
{
	unsigned ev = out->events;

	if ((ev & KD3_EV_TO_KDC) && s->phase == RESP_ACTIVE)
		proto_ask_kdc(s, out->to_kdc->len, now);
	if ((ev & KD3_EV_ESTABLISHED) && s->phase == RESP_ACTIVE)
		proto_established(s, now);
	if ((ev & KD3_EV_DATA) && s->phase == RESP_ACTIVE)
		proto_deliver(s, out->data, now);
	if (ev & KD3_EV_KEY_UPDATE) {
		kd3_log_debug("session %llu: the initiator moved to its next key",
		              (unsigned long long)s->id);
		resp_report_key_update(s, "received");
	}
	if ((ev & KD3_EV_PEER_CLOSED) && s->phase == RESP_ACTIVE)
		proto_peer_closed(s, out, now);
}

/* ---- from the KDC ------------------------------------------------------------------ */

/* Only an M3 for our open n_r, or a well-formed ERROR, goes to the state machine; a
 * stray or forged datagram must not end the exchange (an ERROR over UDP is confirmed
 * over TCP first, proto_confirm_error). */
static int proto_reply_expected(const resp_session *s, const uint8_t *frame, size_t len)
{
	kd3_frame f;
	kd3_m3 m3;
	kd3_error_msg e;

	if (kd3_frame_decode(frame, len, &f) != KD3_OK)
		return 0;
	if (f.type == KD3_T_ERROR)
		return kd3_error_decode(f.body.p, f.body.len, &e) == KD3_OK;
	if (f.type != KD3_T_M3 || kd3_m3_decode(f.body.p, f.body.len, &m3) != KD3_OK)
		return 0;
	return memcmp(m3.n_r, s->peer.n_r, KD3_NONCE_LEN) == 0; /* n_r is public */
}

static void proto_log_kdc_answer(const resp_session *s, int ret, const kd3_peer_out *out,
                                 const char *kdc, uint64_t ms)
{
	char text[256];
	unsigned long long id = (unsigned long long)s->id;

	if (ret == KD3_OK) {
		kd3_log_info("session %llu: KDC %s answered ok in %llu ms", id, kdc,
		             (unsigned long long)ms);
	} else if (ret == KD3_E_PEER_ERROR) {
		kd3_log_safe_name(out->peer_error_text.p, out->peer_error_text.len, text);
		kd3_log_info("session %llu: KDC %s answered ERROR %s (%s) in %llu ms", id, kdc,
		             kd3_err_wire_name(out->peer_error), text, (unsigned long long)ms);
	} else {
		kd3_log_info("session %llu: KDC %s answered in %llu ms, refused: %s", id, kdc,
		             (unsigned long long)ms, kd3_strerror(ret));
	}
}

/* The type and, for an ERROR, the code of a reply that passed proto_reply_expected. */
static uint8_t proto_reply_type(const uint8_t *frame, size_t len, uint16_t *code)
{
	kd3_frame f;
	kd3_error_msg e;

	*code = 0;
	if (kd3_frame_decode(frame, len, &f) != KD3_OK)
		return 0;
	if (f.type == KD3_T_ERROR && kd3_error_decode(f.body.p, f.body.len, &e) == KD3_OK)
		*code = e.code;
	return f.type;
}

/* An ERROR in a datagram may be forged: it is confirmed over TCP first (kdcx.h). */
static void proto_confirm_error(resp_session *s, uint16_t code, const char *kdc, uint64_t now)
{
	kd3_log_info("session %llu: KDC %s answered ERROR %s over UDP; asking it again over TCP "
	             "before believing it (a datagram can be forged)",
	             (unsigned long long)s->id, kdc, kd3_err_wire_name(code));
	resp_proto_kdc_result(s, resp_kdcx_confirm(&s->kdc, s->ctx->epfd, now), now);
}

/* What the TCP confirmation of a UDP ERROR found. */
static void proto_log_confirmation(const resp_session *s, const resp_kdcx *x, uint8_t type,
                                   const char *kdc)
{
	unsigned long long id = (unsigned long long)s->id;
	uint16_t udp_code = 0;

	(void)proto_reply_type(x->udp_error, x->udp_error_len, &udp_code);
	if (x->unconfirmed)
		kd3_log_info("session %llu: KDC %s could not be asked over TCP (%s); taking its "
		             "UDP ERROR %s",
		             id, kdc, x->confirm_failed, kd3_err_wire_name(udp_code));
	else if (type == KD3_T_ERROR)
		kd3_log_info("session %llu: KDC %s confirmed its ERROR over TCP", id, kdc);
	else
		kd3_log_info("session %llu: the UDP ERROR %s was not confirmed: KDC %s answered "
		             "M3 over TCP; the ERROR was forged or stray, ignored",
		             id, kd3_err_wire_name(udp_code), kdc);
}

static void proto_kdc_reply(resp_session *s, uint64_t now)
{
	kd3_peer_out out;
	kd3_writer to_peer, to_kdc;
	char kdc[64];
	uint8_t *frame = s->kdc.reply;
	size_t len = s->kdc.reply_len;
	uint16_t code = 0;

	kd3_trace_frame("KDC->R", frame, len, s->peer.fs, -1);
	resp_report_frame_in(s, "KDC->R", frame, len, -1, -1);
	if (!proto_reply_expected(s, frame, len)) {
		kd3_log_info("session %llu: ignored a reply from the KDC that is not for this "
		             "exchange",
		             (unsigned long long)s->id);
		resp_proto_kdc_result(s, resp_kdcx_reject(&s->kdc, s->ctx->epfd, now), now);
		return;
	}
	resp_kdcx_peer(&s->kdc, kdc, sizeof(kdc));
	uint8_t type = proto_reply_type(frame, len, &code);
	if (type == KD3_T_ERROR && resp_kdcx_over_udp(&s->kdc)) {
		proto_confirm_error(s, code, kdc, now);
		return;
	}
	if (s->kdc.confirming || s->kdc.unconfirmed)
		proto_log_confirmation(s, &s->kdc, type, kdc);
	uint64_t ms = now - s->kdc.started_ms;
	resp_kdcx_stop(&s->kdc, s->ctx->epfd); /* one M3 per n_r: the exchange is over */
	if (resp_out_begin(s, &to_peer) != KD3_OK)
		return;
	kd3_wr_init(&to_kdc, s->kdc.m2, sizeof(s->kdc.m2));
	proto_out_init(&out, &to_peer, &to_kdc);
	int ret = kd3_peer_input(&s->peer, KD3_SRC_KDC, frame, len, now, &out);
	proto_log_kdc_answer(s, ret, &out, kdc, ms);
	resp_out_end(s, &to_peer, -1); /* M4, or the KDC's ERROR passed on */
	if (ret != KD3_OK) {
		proto_failed(s, ret, &out, "KDC", frame, len, now);
		return;
	}
	resp_report_step(s, "M3 received");
	resp_report_step(s, "M4 sent");
	proto_events(s, &out, now);
}

static void proto_no_kdc(resp_session *s, uint64_t now)
{
	kd3_writer w;
	char why[160];

	if (resp_out_begin(s, &w) != KD3_OK)
		return;
	kd3_peer_kdc_failed(&s->peer, KD3_E_NO_KDC, &w); /* ERROR TIMEOUT to the initiator */
	resp_out_end(s, &w, -1);
	snprintf(why, sizeof(why), "%s (%zu KDC%s tried, %llu ms)", kd3_strerror(KD3_E_NO_KDC),
	         s->kdc.nkdcs, s->kdc.nkdcs == 1 ? "" : "s",
	         (unsigned long long)(now - s->kdc.started_ms));
	resp_session_finish(s, KD3_E_NO_KDC, why, now);
}

void resp_proto_kdc_result(resp_session *s, int r, uint64_t now)
{
	if (s->phase != RESP_ACTIVE || r == RESP_KDCX_PENDING)
		return;
	if (r == RESP_KDCX_FAILED)
		proto_no_kdc(s, now);
	else
		proto_kdc_reply(s, now);
}
