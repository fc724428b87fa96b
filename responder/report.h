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

/* The frames a state-machine call wrote for the initiator (see resp_out_end). */
void resp_report_frames_out(resp_session *s, const uint8_t *p, size_t len, int last_inner);
/* One frame received, as it came (records: the copy taken before opening). */
void resp_report_frame_in(resp_session *s, const char *dir, const uint8_t *copy, size_t len,
                          int inner, long generation);
/* The M2 as sent to a KDC (each datagram, or once over TCP). */
void resp_report_frame_to_kdc(resp_kdcx *x, const char *kdc_addr);
/* A handshake step ("M1 received", "M2 sent", "M3 received", "M4 sent",
 * "FINISHED received"): JSON only. */
void resp_report_step(resp_session *s, const char *step);
void resp_report_established(resp_session *s);
void resp_report_key_update(resp_session *s, const char *direction);
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
