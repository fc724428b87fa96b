/* Frames out to the initiator: every one goes through the output queue, is traced
 * once, and is sent as the socket takes it. */
#include "session_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "msg.h"
#include "report.h"
#include "trace.h"

/* Room for one state-machine call: a KEY_UPDATE and a full record. */
#define OUT_CALL_ROOM (2 * KD3_FRAME_MAX)

void resp_trace_frames(const char *dir, const uint8_t *p, size_t len, int fs, int last_inner)
{
	if (!kd3_trace_enabled())
		return;
	while (len > 0) {
		long n = kd3_frame_size(p, len);
		if (n <= 0 || (size_t)n > len) {
			kd3_trace_frame(dir, p, len, fs, -1);
			return;
		}
		int inner = -1;
		if (p[1] == KD3_T_RECORD)
			inner = (size_t)n == len ? last_inner : KD3_R_KEY_UPDATE;
		kd3_trace_frame(dir, p, (size_t)n, fs, inner);
		p += n;
		len -= (size_t)n;
	}
}

static void out_not_reading(resp_session *s)
{
	resp_session_drop(s, KD3_E_IO,
	                  "the initiator is not reading (over 1 MiB of output "
	                  "queued); dropped");
}

int resp_out_begin(resp_session *s, kd3_writer *w)
{
	if (resp_outq_pending(&s->out) > RESP_OUTQ_LIMIT) {
		out_not_reading(s);
		return KD3_E_IO;
	}
	int ret = resp_outq_writer(&s->out, OUT_CALL_ROOM, w);
	if (ret != KD3_OK)
		resp_session_drop(s, ret, NULL);
	return ret;
}

void resp_out_end(resp_session *s, kd3_writer *w, int last_inner)
{
	if (w->err == KD3_OK && w->len > 0) {
		resp_trace_frames("R->I", w->p, w->len, s->peer.fs, last_inner);
		resp_report_frames_out(s, w->p, w->len, last_inner);
	}
	resp_outq_commit(&s->out, w);
}

void resp_out_data(resp_session *s, const uint8_t *p, size_t len, uint64_t now)
{
	kd3_writer w;

	if (s->phase != RESP_ACTIVE || s->peer.state != KD3_PS_ESTABLISHED || s->peer.ch.tx.closed)
		return;
	if (resp_out_begin(s, &w) != KD3_OK)
		return;
	uint32_t generation = s->peer.ch.tx.generation;
	int ret = kd3_peer_send(&s->peer, p, len, now, &w);
	resp_out_end(s, &w, KD3_R_DATA);
	if (ret == KD3_OK && s->peer.ch.tx.generation != generation)
		resp_report_key_update(s, "sent");
	if (ret == KD3_OK)
		resp_report_sent(s, len);
	if (ret == KD3_E_EXPIRED)
		resp_session_expire(s, now);
	else if (ret != KD3_OK)
		resp_session_finish(s, ret, NULL, now);
}

void resp_out_close(resp_session *s, uint16_t reason, const char *text, uint64_t now)
{
	kd3_writer w;

	if (s->phase != RESP_ACTIVE)
		return;
	if (resp_out_begin(s, &w) != KD3_OK)
		return;
	int was_open = s->peer.state == KD3_PS_ESTABLISHED && !s->peer.ch.tx.closed;
	uint32_t generation = s->peer.ch.tx.generation;
	kd3_peer_close(&s->peer, reason, text, &w);
	resp_out_end(s, &w, KD3_R_CLOSE);
	if (was_open && s->peer.ch.tx.generation != generation) /* a KEY_UPDATE went first */
		resp_report_key_update(s, "sent");
	if (was_open && s->peer.ch.tx.closed)
		resp_report_close(s, "us", reason, text ? text : "");
	if (s->peer.state == KD3_PS_ESTABLISHED && s->peer.ch.tx.closed && !s->close_deadline)
		s->close_deadline = now + s->ctx->handshake_ms;
}

void resp_out_flush(resp_session *s)
{
	char why[160];
	int sys_err = 0;

	if (s->sock.fd < 0 || resp_outq_pending(&s->out) == 0)
		return;
	if (resp_outq_flush(&s->out, s->sock.fd, 1, &sys_err) != KD3_OK) {
		snprintf(why, sizeof(why), "%s (%s while sending)", kd3_strerror(KD3_E_TRUNCATED),
		         strerror(sys_err));
		resp_session_drop(s, KD3_E_TRUNCATED, why);
		return;
	}
	if (s->phase == RESP_ACTIVE && resp_outq_pending(&s->out) > RESP_OUTQ_LIMIT)
		out_not_reading(s);
}

void resp_session_send_line(resp_session *s, const uint8_t *line, size_t len, uint64_t now)
{
	resp_out_data(s, line, len, now);
	resp_session_sync(s, now);
}
