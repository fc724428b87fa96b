/* responder: one initiator's session, driven by the server's epoll loop.
 *
 * A session owns its TCP socket, a kd3_session (libkd3, role responder), the bytes read
 * from the socket and not taken yet, its output queue, its exchange with the KDC and, with
 * --exec, its child. Nothing in it blocks: each call handles what is ready and
 * returns. Every wait has a deadline (resp_session_deadline): the handshake, the
 * KDC's retransmits, the key lifetime, the final flush. When the session is over it
 * becomes dead (resp_session_dead) and the server frees it after the current batch
 * of events, so an event still queued for it never touches freed memory. */
#ifndef RESP_SESSION_H
#define RESP_SESSION_H

#include <stdint.h>
#include <sys/types.h>

#include "ctx.h"
#include "net.h"
#include "watch.h"

typedef struct resp_session resp_session;

/* Takes fd (a connected, non-blocking socket). NULL on failure (fd closed). */
resp_session *resp_session_new(resp_ctx *ctx, uint64_t id, int fd, const kd3_addr *from,
                               uint64_t now);
void resp_session_free(resp_session *s);

void resp_session_on_event(resp_session *s, resp_watch *w, uint32_t events, uint64_t now);
/* Earliest deadline (kd3_now_ms clock), 0 for none. */
uint64_t resp_session_deadline(const resp_session *s);
void resp_session_on_timer(resp_session *s, uint64_t now);
int resp_session_dead(const resp_session *s);

/* Default mode: stdout drained; a session that stopped reading for it reads again. */
void resp_session_resume(resp_session *s, uint64_t now);
/* Default mode: one stdin line to this session as DATA (when established). */
void resp_session_send_line(resp_session *s, const uint8_t *line, size_t len, uint64_t now);
/* --exec: 1 when pid is this session's child; records its wait status. */
int resp_session_child_exited(resp_session *s, pid_t pid, int status, uint64_t now);
/* --exec: the pid of a child still running, to keep reaping it after the session is
 * freed; 0 when none. */
pid_t resp_session_live_child(const resp_session *s);

/* The responder is stopping: CLOSE (or ERROR BUSY before established), then drain. */
void resp_session_stop(resp_session *s, uint64_t now);
/* The stop deadline passed: close at once. */
void resp_session_abort(resp_session *s);

/* The server's list. */
resp_session *resp_session_next(const resp_session *s);
void resp_session_link(resp_session **head, resp_session *s);
void resp_session_unlink(resp_session **head, resp_session *s);

#endif
