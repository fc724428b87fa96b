/* responder: what a session tells besides its log lines, at one place per event:
 *   - the transcript (--transcript FILE): every frame to and from the initiator and
 *     the KDC, the session's public values, and keys with --reveal-keys;
 *   - the JSON events on stdout (--json): one object per line per event, each with the
 *     session's number, through the outlet (never blocking on a slow reader).
 * Without either option every call here costs a branch. */
#ifndef RESP_REPORT_H
#define RESP_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "session_int.h"

/* The session's observer (kd3_session_set_observer): frames to and from the initiator
 * to the trace and the transcript, the session line and key updates to the transcript
 * and the JSON events, and what the log lines need into the session. */
void resp_note(void *ctx, const kd3_note *n);
/* An answer from a KDC, as it came (given to the session or not). */
void resp_report_kdc_reply(resp_session *s, const uint8_t *p, size_t len);
/* The M2 as sent to a KDC (each datagram, or once over TCP). */
void resp_report_frame_to_kdc(resp_kdcx *x, const char *kdc_addr);
/* A handshake step ("M1 received", "M2 sent", "M3 received", "M4 sent",
 * "FINISHED received"): JSON only. */
void resp_report_step(resp_session *s, const char *step);
void resp_report_sent(resp_session *s, size_t size);
/* --exec: a message handed to CMD (its size only). */
void resp_report_received(resp_session *s, size_t size);
void resp_report_close(resp_session *s, const char *by, unsigned reason, const char *text);
/* The session ended with err (KD3_OK: cleanly, nothing to tell). */
void resp_report_end(resp_session *s, int err, const char *why);
/* --json: a received message as a JSON line on stdout (instead of the bare payload).
 * The outlet's result: KD3_OK, KD3_E_IO, KD3_E_NOMEM. */
int resp_report_message(resp_session *s, kd3_view data);

#endif
