/* Bytes out to the initiator: what the session wrote goes through the output queue
 * and is sent as the socket takes it (traces and the transcript come from the
 * session's notes, session_note.c). */
#include "session_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "report.h"

static void out_not_reading(resp_session *s)
{
	resp_session_drop(s, KD3_E_IO,
	                  "the initiator is not reading (over 1 MiB of output "
	                  "queued); dropped");
}

int resp_out_take(resp_session *s)
{
	size_t pending = kd3_session_output_pending(s->ks);
	kd3_writer w;

	if (pending == 0 || s->phase == RESP_DEAD)
		return s->phase == RESP_DEAD ? KD3_E_IO : KD3_OK;
	if (resp_outq_pending(&s->out) > RESP_OUTQ_LIMIT) {
		out_not_reading(s);
		return KD3_E_IO;
	}
	int ret = resp_outq_writer(&s->out, pending, &w);
	if (ret != KD3_OK) {
		resp_session_drop(s, ret, NULL);
		return ret;
	}
	size_t len = 0;
	kd3_session_output(s->ks, w.p + w.len, w.cap - w.len, &len);
	w.len += len;
	resp_outq_commit(&s->out, &w);
	return KD3_OK;
}

/* Whether our direction still carries DATA. */
static int out_open(const resp_session *s)
{
	return s->phase == RESP_ACTIVE && kd3_session_state(s->ks) == KD3_STATE_ESTABLISHED &&
	       !s->closed_sent;
}

void resp_out_data(resp_session *s, const uint8_t *p, size_t len, uint64_t now)
{
	if (!out_open(s))
		return;
	int ret = kd3_session_write(s->ks, p, len, now); /* a KEY_UPDATE may go first */
	if (resp_out_take(s) != KD3_OK)
		return;
	if (ret == KD3_OK) {
		kd3_count(&s->ctx->metrics->records_out, 1);
		kd3_count(&s->ctx->metrics->bytes_out, len);
		resp_report_sent(s, len);
	} else /* the session wrote the CLOSE that says why (EXPIRED: the key's lifetime) */
		resp_session_finish(s, ret, NULL, now);
}

void resp_out_close(resp_session *s, uint16_t reason, const char *text, uint64_t now)
{
	if (s->phase != RESP_ACTIVE)
		return;
	(void)kd3_session_close_reason(s->ks, reason, text ? text : "");
	if (resp_out_take(s) != KD3_OK)
		return;
	if (kd3_session_state(s->ks) == KD3_STATE_ESTABLISHED && s->closed_sent &&
	    !s->close_deadline)
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
