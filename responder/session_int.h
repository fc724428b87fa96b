/* responder: the session's insides, shared by session*.c only.
 *
 * session.c        life cycle, socket I/O, deadlines, the end of a session
 * session_proto.c  frames from the initiator and the KDC into the state machine
 * session_exec.c   the --exec child: its pipes, lines and exit
 * session_out.c    frames out: the output queue, traces, sending DATA and CLOSE */
#ifndef RESP_SESSION_INT_H
#define RESP_SESSION_INT_H

#include <stdint.h>

#include "child.h"
#include "kdcx.h"
#include "outq.h"
#include "peer.h"
#include "session.h"
#include "stream.h"

/* --exec back-pressure: stop reading the initiator while the child has this much
 * unread input, and stop reading the child while the initiator has this much unread
 * output; resume below the low mark. */
#define RESP_PAUSE_HIGH (256u * 1024u)
#define RESP_PAUSE_LOW  (64u * 1024u)
/* After stdout EOF, how long to wait for the child's exit status before CLOSE. */
#define RESP_REAP_WAIT_MS 500
/* After the child exited, how long its stdout may stay open (held by something it
 * started in the background) before we close it, end its process group and CLOSE. */
#define RESP_STDOUT_GRACE_MS 1000

typedef enum resp_phase {
	RESP_ACTIVE,   /* handshake or established */
	RESP_DRAINING, /* over: sending what is queued */
	RESP_LINGER,   /* over and sent: our side shut down, waiting for the peer's EOF */
	RESP_DEAD,     /* to be freed */
} resp_phase;

struct resp_session {
	resp_session *prev, *next;
	resp_ctx *ctx;
	uint64_t id;
	char addr[64]; /* the initiator's address */
	resp_phase phase;
	int ended_logged; /* the one closed/failed line was printed */

	resp_watch sock;
	kd3_peer peer;
	kd3_stream in;
	resp_outq out;
	int peer_eof;    /* the initiator's stream ended (after its CLOSE) */
	int in_paused;   /* stop reading frames: the child (--exec) or stdout (default
	                  * mode, outlet.h) is behind */
	int established; /* was ever established: id_i is authenticated (for logs) */

	uint64_t hs_deadline;    /* handshake must finish by then; 0 once established */
	uint64_t close_deadline; /* our CLOSE is out: the peer's must come by then */
	uint64_t end_deadline;   /* draining or lingering ends by then */

	resp_kdcx kdc;
	int has_child;
	resp_child child;
};

/* session.c */
/* The session is over: logs the reason (err KD3_OK: a clean close; why overrides
 * kd3_strerror), stops the KDC exchange and the child, then flushes and closes. */
void resp_session_finish(resp_session *s, int err, const char *why, uint64_t now);
/* Over at once, no flush (the socket is gone or the peer does not read). */
void resp_session_drop(resp_session *s, int err, const char *why);
const char *resp_session_peer_name(const resp_session *s);
/* After each event: flush, follow the end of a session, set what epoll waits for. */
void resp_session_sync(resp_session *s, uint64_t now);
/* The key lifetime ran out: CLOSE with reason EXPIRED, then finish. */
void resp_session_expire(resp_session *s, uint64_t now);

/* session_proto.c */
void resp_proto_frames(resp_session *s, uint64_t now);
void resp_proto_kdc_result(resp_session *s, int r, uint64_t now);
void resp_proto_eof(resp_session *s, uint64_t now);

/* session_out.c */
/* A writer for one state-machine call: room for a KEY_UPDATE and a full record. */
int resp_out_begin(resp_session *s, kd3_writer *w);
/* Queues and traces what the call wrote. last_inner: the inner type of the last
 * record written (records before it are KEY_UPDATEs), -1 when not records. */
void resp_out_end(resp_session *s, kd3_writer *w, int last_inner);
/* DATA out. Drops the session on a failure. */
void resp_out_data(resp_session *s, const uint8_t *p, size_t len, uint64_t now);
/* Our CLOSE (or ERROR before established). Once our CLOSE is out, the peer's must
 * come within the handshake timeout. */
void resp_out_close(resp_session *s, uint16_t reason, const char *text, uint64_t now);
/* Sends what the socket takes; drops the session when the peer is gone or does not
 * read. */
void resp_out_flush(resp_session *s);
void resp_trace_frames(const char *dir, const uint8_t *p, size_t len, int fs, int last_inner);

/* session_exec.c */
void resp_exec_start(resp_session *s, uint64_t now);
void resp_exec_deliver(resp_session *s, kd3_view data);
void resp_exec_peer_closed(resp_session *s);
void resp_exec_on_event(resp_session *s, resp_watch *w, uint64_t now);
void resp_exec_sync(resp_session *s, uint64_t now);
void resp_exec_on_timer(resp_session *s, uint64_t now);

#endif
