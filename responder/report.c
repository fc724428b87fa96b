#include "report.h"

#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "events.h"
#include "log.h"
#include "net.h"
#include "outlet.h"
#include "transcript.h"

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

/* ---- frames --------------------------------------------------------------------------- */

void resp_report_frames_out(resp_session *s, const uint8_t *p, size_t len, int last_inner)
{
	kd3_transcript_frames_out(s->ctx->transcript, s->id, "R->I", p, len, s->peer.fs, last_inner,
	                          s->peer.ch.tx.generation);
}

void resp_report_frame_in(resp_session *s, const char *dir, const uint8_t *copy, size_t len,
                          int inner, long generation)
{
	int record = len >= KD3_HDR_LEN && copy[1] == KD3_T_RECORD;
	kd3_tframe fr = {.session = s->id,
	                 .dir = dir,
	                 .p = copy,
	                 .len = len,
	                 .fs = s->peer.fs,
	                 .inner = inner,
	                 .generation = record ? generation : -1};
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

/* ---- session events ------------------------------------------------------------------- */

void resp_report_established(resp_session *s)
{
	char name[256];
	kd3_log_safe_name((const uint8_t *)s->peer.peer_id, strlen(s->peer.peer_id), name);
	kd3_event ev = {.kind = KD3_EVT_ESTABLISHED,
	                .peer = name,
	                .suite = kd3_suite_name(s->peer.suite),
	                .forward_secrecy = s->peer.fs ? 1 : 0,
	                .lifetime_s = s->peer.lifetime};

	resp_report_step(s, "FINISHED received");
	json_event(s, &ev);
	kd3_transcript_established(s->ctx->transcript, s->id, &s->peer, s->addr);
}

void resp_report_key_update(resp_session *s, const char *direction)
{
	const kd3_direction *d = strcmp(direction, "sent") == 0 ? &s->peer.ch.tx : &s->peer.ch.rx;
	kd3_event ev = {
	    .kind = KD3_EVT_KEY_UPDATE, .direction = direction, .generation = d->generation};
	json_event(s, &ev);
	kd3_transcript_key_update(s->ctx->transcript, s->id, &s->peer, direction);
}

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
