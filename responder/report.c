#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "events.h"
#include "log.h"
#include "net.h"
#include "outlet.h"
#include "msg.h"
#include "trace.h"
#include "transcript.h"
#include "wire.h"

/* ---- JSON events on stdout ------------------------------------------------------------ */

static int json_on(const resp_session *s)
{
	return s->ctx->json && s->ctx->outlet && !s->ctx->outlet->failed;
}

/* One event line through the outlet; a failure to build it is dropped (logged once by
 * the outlet when stdout fails). */
static int json_put(resp_session *s, kd3_event *ev)
{
	ev->session = s->id;
	char *line = kd3_event_json(ev, kd3_now_us() - s->ctx->start_us);
	if (!line)
		return KD3_E_NOMEM;
	size_t len = strlen(line);
	int ret = resp_outlet_put(s->ctx->outlet, s->ctx->epfd, (const uint8_t *)line, len);
	kd3_wipe(line, len); /* a message event holds plaintext */
	free(line);
	return ret;
}

static void json_event(resp_session *s, kd3_event *ev)
{
	if (json_on(s))
		(void)json_put(s, ev);
}

int resp_report_message(resp_session *s, kd3_view data)
{
	kd3_event ev = {
	    .kind = KD3_EVT_MESSAGE, .direction = "received", .data = data.p, .size = data.len};
	return json_put(s, &ev);
}

void resp_report_step(resp_session *s, const char *step)
{
	kd3_event ev = {.kind = KD3_EVT_HANDSHAKE, .step = step};
	json_event(s, &ev);
}

void resp_report_received(resp_session *s, size_t size)
{
	kd3_event ev = {.kind = KD3_EVT_MESSAGE, .direction = "received", .size = size};
	json_event(s, &ev);
}

void resp_report_sent(resp_session *s, size_t size)
{
	kd3_event ev = {.kind = KD3_EVT_MESSAGE, .direction = "sent", .size = size};
	json_event(s, &ev);
}

/* ---- frames ---------------------------------------------------------------------------- */

void resp_report_kdc_reply(resp_session *s, const uint8_t *p, size_t len)
{
	kd3_tframe fr = {.session = s->id,
	                 .dir = "KDC->R",
	                 .p = p,
	                 .len = len,
	                 .fs = s->fs,
	                 .inner = -1,
	                 .generation = -1};
	kd3_trace_frame("KDC->R", p, len, s->fs, -1);
	kd3_transcript_frame(s->ctx->transcript, &fr);
}

void resp_report_frame_to_kdc(resp_kdcx *x, const char *kdc_addr)
{
	resp_session *s = x->w.owner;
	kd3_tframe fr = {.session = x->sid,
	                 .dir = "R->KDC",
	                 .p = x->m2,
	                 .len = x->m2_len,
	                 .fs = x->fs,
	                 .inner = -1,
	                 .generation = -1,
	                 .address = kdc_addr};
	if (s)
		kd3_transcript_frame(s->ctx->transcript, &fr);
}

/* ---- the session's observer ------------------------------------------------------------ */

/* A frame to or from the initiator (the KDC's are told where they are sent and
 * received, with the KDC's address). Without a trace or a transcript the session
 * gives no bytes of frames received: then only an M1's flags are missed. */
static void note_frame(resp_session *s, const kd3_note *n)
{
	kd3_frame f;
	kd3_m1 m1;

	if (n->kdc || !n->bytes)
		return;
	if (!n->sent && kd3_frame_decode(n->bytes, n->len, &f) == KD3_OK && f.type == KD3_T_M1 &&
	    kd3_m1_decode(f.body.p, f.body.len, &m1) == KD3_OK)
		s->fs = (m1.flags & KD3_FLAG_FS) ? 1 : 0;
	const char *dir = n->sent ? "R->I" : "I->R";
	kd3_tframe fr = {.session = s->id,
	                 .dir = dir,
	                 .p = n->bytes,
	                 .len = n->len,
	                 .fs = s->fs,
	                 .inner = n->inner,
	                 .generation = n->generation};
	kd3_trace_frame(dir, n->bytes, n->len, s->fs, n->inner);
	kd3_transcript_frame(s->ctx->transcript, &fr);
}

static kd3_tkeys note_keys(const kd3_note *n, int sent, long generation)
{
	return (kd3_tkeys){.direction = sent ? "sent" : "received",
	                   .generation = (uint32_t)generation,
	                   .ts = sent ? n->tx_secret : n->rx_secret,
	                   .key = sent ? n->tx_key : n->rx_key,
	                   .iv = sent ? n->tx_iv : n->rx_iv};
}

static void note_established(resp_session *s, const kd3_note *n)
{
	const resp_settings *set = s->ctx->set;
	char name[256];

	s->just_established = 1;
	snprintf(s->peer_name, sizeof(s->peer_name), "%s", n->peer);
	s->suite = n->suite;
	s->fs = n->forward_secret;
	s->lifetime_s = n->lifetime_s;
	kd3_log_safe_name((const uint8_t *)n->peer, strlen(n->peer), name);
	kd3_tsession ts = {.role = "responder",
	                   .self = s->ctx->self,
	                   .peer = name,
	                   .address = s->addr,
	                   .suite = kd3_suite_name((uint8_t)n->suite),
	                   .fs = n->forward_secret,
	                   .kvno = n->kvno,
	                   .lifetime_s = n->lifetime_s,
	                   .th = n->th,
	                   .rekey_records = set->rekey_records,
	                   .rekey_bytes = set->rekey_bytes,
	                   .rekey_seconds = set->rekey_seconds,
	                   .sk = n->sk,
	                   .dh = n->dh,
	                   .tx = note_keys(n, 1, 0),
	                   .rx = note_keys(n, 0, 0)};
	kd3_event ev = {.kind = KD3_EVT_ESTABLISHED,
	                .peer = name,
	                .suite = kd3_suite_name((uint8_t)n->suite),
	                .forward_secrecy = n->forward_secret ? 1 : 0,
	                .lifetime_s = n->lifetime_s};
	resp_report_step(s, "FINISHED received");
	json_event(s, &ev);
	kd3_transcript_session(s->ctx->transcript, s->id, &ts);
}

static void note_key_update(resp_session *s, const kd3_note *n)
{
	kd3_tkeys k = note_keys(n, n->sent, n->generation);
	kd3_event ev = {.kind = KD3_EVT_KEY_UPDATE,
	                .direction = k.direction,
	                .generation = (uint32_t)n->generation};

	kd3_count(n->sent ? &s->ctx->metrics->key_updates_out : &s->ctx->metrics->key_updates_in,
	          1);
	if (!n->sent)
		kd3_log_debug("session %llu: the initiator moved to its next key",
		              (unsigned long long)s->id);
	json_event(s, &ev);
	kd3_transcript_key_update_keys(s->ctx->transcript, s->id, &k);
}

static void note_close(resp_session *s, const kd3_note *n)
{
	if (n->sent) {
		s->closed_sent = 1;
	} else {
		s->peer_closed = 1;
		s->close_reason = n->code;
		snprintf(s->close_text, sizeof(s->close_text), "%s", n->text);
	}
	resp_report_close(s, n->sent ? "us" : "peer", n->code, n->text);
}

void resp_note(void *ctx, const kd3_note *n)
{
	resp_session *s = ctx;

	switch (n->kind) {
	case KD3_NOTE_FRAME:
		note_frame(s, n);
		break;
	case KD3_NOTE_ESTABLISHED:
		note_established(s, n);
		break;
	case KD3_NOTE_KEY_UPDATE:
		note_key_update(s, n);
		break;
	case KD3_NOTE_CLOSE:
		note_close(s, n);
		break;
	case KD3_NOTE_ERROR:
		s->peer_error = 1;
		s->peer_error_kdc = n->kdc;
		s->peer_error_code = n->code;
		snprintf(s->peer_error_text, sizeof(s->peer_error_text), "%s", n->text);
		break;
	}
}

/* ---- session events ------------------------------------------------------------------- */

void resp_report_close(resp_session *s, const char *by, unsigned reason, const char *text)
{
	kd3_event ev = {.kind = KD3_EVT_CLOSE, .by = by, .reason = reason, .text = text};
	json_event(s, &ev);
	kd3_transcript_close_event(s->ctx->transcript, s->id, by, reason, text);
}

void resp_report_end(resp_session *s, int err, const char *why)
{
	if (err == KD3_OK)
		return;
	const char *code = kd3_events_err_name(err);
	const char *text = why ? why : kd3_strerror(err);
	kd3_event ev = {.kind = KD3_EVT_ERROR, .code = code, .text = text, .exit_code = -1};
	json_event(s, &ev);
	kd3_transcript_error(s->ctx->transcript, s->id, code, text);
}
