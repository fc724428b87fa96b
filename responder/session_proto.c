/* Bytes from the initiator and answers from the KDC into the session (libkd3's
 * kd3_session), and what they led to. The session decides; this file reports and
 * routes. */
#include "session_int.h"

#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "kdcs.h"
#include "log.h"
#include "metrics.h"
#include "outlet.h"
#include "report.h"
#include "trace.h"

static void proto_after_input(resp_session *s, uint64_t now);
static void proto_mark_established(resp_session *s);

/* What the session found, in its own words when they say more than the code's text
 * (an M1 our settings refused, bytes that are not kd3 frames), naming the option
 * that refused it. A failure in the KDC's answer is told by the code's text alone. */
static void proto_failure_text(const resp_session *s, int err, char *why, size_t why_len)
{
	const char *found = kd3_session_error_text(s->ks);
	const char *option = err == KD3_E_POLICY_DENIED ? " (--require-forward-secret)"
	                     : err == KD3_E_UNSUPPORTED ? " (--suites)"
	                                                : "";

	if (strcmp(found, kd3_strerror(err)) == 0 ||
	    strncmp(found, "the KDC's answer: ", 18) == 0 || !found[0])
		snprintf(why, why_len, "%s", kd3_strerror(err));
	else if (strstr(found, "are not kd3 frames"))
		snprintf(why, why_len, "%s", found);
	else
		snprintf(why, why_len, "%s%s", found, option);
}

/* The session failed; it wrote any ERROR or CLOSE already. */
static void proto_failed(resp_session *s, int err, uint64_t now)
{
	char why[640];

	if (s->just_established) /* FINISHED, then a bad frame in the same bytes */
		proto_mark_established(s);
	if (err == KD3_E_PEER_ERROR && s->peer_error)
		snprintf(why, sizeof(why), "%s sent ERROR %s (%s)",
		         s->peer_error_kdc ? "KDC" : "initiator",
		         kd3_err_wire_name((int)s->peer_error_code), s->peer_error_text);
	else
		proto_failure_text(s, err, why, sizeof(why));
	resp_session_finish(s, err, why, now);
}

/* ---- from the initiator ------------------------------------------------------- */

/* Default mode: stdout is so far behind that no session may take a record now (one
 * could be a DATA we would have to queue). */
static int proto_stdout_full(resp_session *s)
{
	resp_outlet *o = s->ctx->outlet;

	if (s->ctx->exec_cmd || kd3_session_state(s->ks) != KD3_STATE_ESTABLISHED || o->failed ||
	    resp_outlet_pending(o) <= RESP_OUTLET_FULL)
		return 0;
	s->in_paused = 1;
	o->waiting = 1;
	return 1;
}

static void proto_deliver(resp_session *s, kd3_view data, uint64_t now);
static void proto_peer_closed(resp_session *s, uint64_t now);

/* Bytes read and not taken go to the session. 1 when it took some. */
static int proto_give(resp_session *s, uint64_t now)
{
	size_t used = 0;
	int r = kd3_session_receive(s->ks, s->in + s->in_off, s->in_len - s->in_off, &used, now);

	s->in_off += used;
	if (s->in_off == s->in_len)
		s->in_off = s->in_len = 0;
	if (resp_out_take(s) != KD3_OK) /* M4's FINISHED is ours to send, or an ERROR */
		return 0;
	if (r != KD3_OK) {
		proto_failed(s, r, now);
		return 0;
	}
	proto_after_input(s, now);
	return used > 0;
}

/* Messages out of the session and bytes into it, until it waits for more bytes, the
 * session is over, or the reader of its messages is behind (in_paused). */
void resp_proto_frames(resp_session *s, uint64_t now)
{
	while (s->phase == RESP_ACTIVE && !s->in_paused && !proto_stdout_full(s)) {
		size_t len = 0;
		int r = kd3_session_read(s->ks, s->ctx->msg, sizeof(s->ctx->msg), &len);
		if (resp_out_take(s) != KD3_OK)
			return;
		if (r == KD3_OK) {
			proto_deliver(s, (kd3_view){s->ctx->msg, len}, now);
			kd3_wipe(s->ctx->msg, len);
			continue;
		}
		if (s->peer_closed && (r == KD3_E_CLOSED || r == KD3_E_PEER_ERROR)) {
			if (!s->peer_close_handled) {
				s->peer_close_handled = 1;
				proto_peer_closed(s, now);
			}
			return;
		}
		if (r != KD3_E_AGAIN) {
			proto_failed(s, r, now);
			return;
		}
		if (s->in_off == s->in_len || !proto_give(s, now))
			return;
	}
}

void resp_proto_eof(resp_session *s, uint64_t now)
{
	int ret = kd3_session_eof(s->ks);

	s->peer_eof = 1;
	if (ret != KD3_OK)
		resp_session_finish(
		    s, ret, s->got_bytes ? NULL : "connection closed before M1 arrived", now);
	else if (kd3_session_state(s->ks) == KD3_STATE_CLOSED)
		resp_session_finish(s, KD3_OK, NULL, now);
	/* else: the peer closed its direction and its stream; we may still send (--exec) */
}

void resp_proto_tick(resp_session *s, uint64_t now)
{
	size_t used = 0;
	int ret = kd3_session_receive(s->ks, NULL, 0, &used, now);

	if (resp_out_take(s) != KD3_OK)
		return;
	if (ret == KD3_E_EXPIRED) /* its CLOSE (reason EXPIRED) is out */
		resp_session_finish(s, KD3_E_EXPIRED, NULL, now);
	else if (ret != KD3_OK)
		proto_failed(s, ret, now);
}

/* ---- what one input led to --------------------------------------------------------- */

static void proto_ask_kdc(resp_session *s, size_t m2_len, uint64_t now)
{
	s->kdc_asked = 1;
	s->kdc.m2_len = m2_len;
	s->kdc.fs = s->fs;
	kd3_log_debug("session %llu: M1 claiming to be from %s; asking the KDC",
	              (unsigned long long)s->id, resp_session_peer_name(s));
	resp_report_step(s, "M1 received");
	int r = resp_kdcx_start(&s->kdc, s->ctx->epfd, now);
	resp_report_step(s, "M2 sent");
	resp_proto_kdc_result(s, r, now);
}

/* FINISHED verified: the peer is who the KDC vouched for. Logged even when the bytes
 * that came with FINISHED then failed the session, so that its end names the peer. */
static void proto_mark_established(resp_session *s)
{
	kd3_stats st;

	s->just_established = 0;
	s->hs_deadline = 0;
	s->established = 1;
	kd3_count(&s->ctx->metrics->established, 1);
	kd3_hist_observe(&s->ctx->metrics->handshake, kd3_now_us() - s->opened_us);
	if (kd3_session_stats(s->ks, &st) == KD3_OK)
		s->expires_ms = st.expires_ms;
	kd3_log_info("session %llu with %s established (%s, forward secrecy %s, key lifetime %u s)",
	             (unsigned long long)s->id, s->peer_name, kd3_suite_name((uint8_t)s->suite),
	             s->fs ? "on" : "off", (unsigned)s->lifetime_s);
	if (kd3_trace_enabled())
		kd3_trace_note("session %llu established: suite %s, forward secrecy %s",
		               (unsigned long long)s->id, kd3_suite_name((uint8_t)s->suite),
		               s->fs ? "on" : "off");
}

static void proto_established(resp_session *s, uint64_t now)
{
	proto_mark_established(s);
	if (s->ctx->exec_cmd)
		resp_exec_start(s, now);
}

static void proto_after_input(resp_session *s, uint64_t now)
{
	size_t m2_len = 0;

	if (!s->kdc_asked && s->phase == RESP_ACTIVE &&
	    kd3_session_kdc_request(s->ks, s->kdc.m2, sizeof(s->kdc.m2), &m2_len) == KD3_OK)
		proto_ask_kdc(s, m2_len, now);
	if (s->just_established && s->phase == RESP_ACTIVE)
		proto_established(s, now);
}

/* Default mode: one line on stdout per DATA, through the outlet (never blocks). When
 * stdout is behind, this session stops reading until it catches up. */
static void proto_deliver(resp_session *s, kd3_view data, uint64_t now)
{
	resp_outlet *o = s->ctx->outlet;

	kd3_count(&s->ctx->metrics->records_in, 1);
	kd3_count(&s->ctx->metrics->bytes_in, data.len);
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

static void proto_peer_closed(resp_session *s, uint64_t now)
{
	char why[300];
	const char *reason = NULL;

	if (s->close_reason != KD3_CLOSE_NORMAL) {
		snprintf(why, sizeof(why), "initiator closed with reason %u: %s", s->close_reason,
		         s->close_text);
		reason = why;
	}
	if (kd3_session_state(s->ks) == KD3_STATE_CLOSED) { /* ours went first */
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
	if (s->phase == RESP_ACTIVE && kd3_session_state(s->ks) == KD3_STATE_CLOSED)
		resp_session_finish(s, KD3_OK, reason, now);
	else if (s->phase == RESP_ACTIVE)
		resp_session_finish(
		    s, kd3_session_error(s->ks) ? kd3_session_error(s->ks) : KD3_E_CLOSED, NULL,
		    now);
}

/* ---- from the KDC ------------------------------------------------------------------ */

static void proto_log_kdc_answer(const resp_session *s, int ret, const char *kdc, uint64_t ms)
{
	unsigned long long id = (unsigned long long)s->id;

	if (ret == KD3_OK)
		kd3_log_info("session %llu: KDC %s answered ok in %llu ms", id, kdc,
		             (unsigned long long)ms);
	else if (ret == KD3_E_PEER_ERROR && s->peer_error)
		kd3_log_info("session %llu: KDC %s answered ERROR %s (%s) in %llu ms", id, kdc,
		             kd3_err_wire_name((int)s->peer_error_code), s->peer_error_text,
		             (unsigned long long)ms);
	else
		kd3_log_info("session %llu: KDC %s answered in %llu ms, refused: %s", id, kdc,
		             (unsigned long long)ms, kd3_strerror(ret));
}

/* An ERROR in a datagram may be forged: it is confirmed over TCP first (kdcx.h). */
static void proto_confirm_error(resp_session *s, unsigned code, const char *kdc, uint64_t now)
{
	kd3_log_info("session %llu: KDC %s answered ERROR %s over UDP; asking it again over TCP "
	             "before believing it (a datagram can be forged)",
	             (unsigned long long)s->id, kdc, kd3_err_wire_name((int)code));
	resp_proto_kdc_result(s, resp_kdcx_confirm(&s->kdc, s->ctx->epfd, now), now);
}

/* What the TCP confirmation of a UDP ERROR found (is_error: the reply is an ERROR). */
static void proto_log_confirmation(const resp_session *s, const resp_kdcx *x, int is_error,
                                   const char *kdc)
{
	unsigned long long id = (unsigned long long)s->id;
	unsigned udp_code = 0;

	(void)kd3_session_kdc_check(s->ks, x->udp_error, x->udp_error_len, &udp_code);
	if (x->unconfirmed)
		kd3_log_info("session %llu: KDC %s could not be asked over TCP (%s); taking its "
		             "UDP ERROR %s",
		             id, kdc, x->confirm_failed, kd3_err_wire_name((int)udp_code));
	else if (is_error)
		kd3_log_info("session %llu: KDC %s confirmed its ERROR over TCP", id, kdc);
	else
		kd3_log_info("session %llu: the UDP ERROR %s was not confirmed: KDC %s answered "
		             "M3 over TCP; the ERROR was forged or stray, ignored",
		             id, kd3_err_wire_name((int)udp_code), kdc);
}

static void proto_kdc_reply(resp_session *s, uint64_t now)
{
	char kdc[64];
	const uint8_t *frame = s->kdc.reply;
	size_t len = s->kdc.reply_len;
	unsigned code = 0;

	resp_report_kdc_reply(s, frame, len);
	/* Only an M3 for our n_r or a well-formed ERROR is an answer: a stray or forged
	 * datagram must not end the exchange. */
	int kind = kd3_session_kdc_check(s->ks, frame, len, &code);
	if (kind != KD3_OK && kind != KD3_E_PEER_ERROR) {
		kd3_log_info("session %llu: ignored a reply from the KDC that is not for this "
		             "exchange",
		             (unsigned long long)s->id);
		resp_proto_kdc_result(s, resp_kdcx_reject(&s->kdc, s->ctx->epfd, now), now);
		return;
	}
	resp_kdcx_peer(&s->kdc, kdc, sizeof(kdc));
	if (kind == KD3_E_PEER_ERROR && resp_kdcx_over_udp(&s->kdc)) {
		proto_confirm_error(s, code, kdc, now);
		return;
	}
	if (s->kdc.confirming || s->kdc.unconfirmed)
		proto_log_confirmation(s, &s->kdc, kind == KD3_E_PEER_ERROR, kdc);
	/* The answer taken (a UDP ERROR only once confirmed). */
	size_t slot = s->kdc.idx < s->kdc.nkdcs
	                  ? resp_metrics_kdc(s->ctx->metrics, &s->kdc.kdcs[s->kdc.idx])
	                  : RESP_METRICS_KDCS;
	if (slot < RESP_METRICS_KDCS)
		kd3_count(kind == KD3_OK ? &s->ctx->metrics->kdc_m3[slot]
		                         : &s->ctx->metrics->kdc_error[slot],
		          1);
	uint64_t ms = now - s->kdc.started_ms;
	resp_kdcx_stop(&s->kdc, s->ctx->epfd); /* one M3 per n_r: the exchange is over */
	s->kdc_answered = 1;
	int ret = kd3_session_kdc_reply(s->ks, frame, len, now);
	kd3_wipe(s->kdc.reply, len);
	proto_log_kdc_answer(s, ret, kdc, ms);
	if (resp_out_take(s) != KD3_OK) /* M4, or the KDC's ERROR passed on */
		return;
	if (ret != KD3_OK) {
		proto_failed(s, ret, now);
		return;
	}
	resp_report_step(s, "M3 received");
	resp_report_step(s, "M4 sent");
}

static void proto_no_kdc(resp_session *s, uint64_t now)
{
	char why[160];

	(void)kd3_session_kdc_failed(s->ks);     /* ERROR TIMEOUT to the initiator */
	resp_kdcs_all_failed(s->ctx->kdcs, now); /* a KDC may have moved: ask DNS again */
	if (resp_out_take(s) != KD3_OK)
		return;
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
