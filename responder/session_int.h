/* responder: the session's insides, shared by session*.c only.
 *
 * session.c        life cycle, socket I/O, deadlines, the end of a session
 * session_proto.c  bytes from the initiator and answers from the KDC into the
 *                  session (libkd3's kd3_session), and what they led to
 * session_exec.c   the --exec child: its pipes, lines and exit
 * session_out.c    bytes out: the output queue, sending DATA and CLOSE
 *
 * The protocol itself is libkd3's, used through include/kd3/kd3.h as any outside
 * program uses it; this module does the sockets, the KDC exchange, the child and what
 * the operator sees. */
#ifndef RESP_SESSION_INT_H
#define RESP_SESSION_INT_H

#include <stdint.h>

#include <kd3/kd3.h>

#include "child.h"
#include "kdcx.h"
#include "metrics.h"
#include "outq.h"
#include "session.h"
#include "wire.h"

/* Bytes read from the socket at once, before the session takes them. */
#define RESP_IN_MAX 4096

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
	kd3_session *ks;         /* the protocol: libkd3, through include/kd3/kd3.h only */
	uint8_t in[RESP_IN_MAX]; /* read from the socket, in[in_off..in_len) not taken yet */
	size_t in_off, in_len;
	int got_bytes; /* the initiator sent something */
	resp_outq out;
	int peer_eof;    /* the initiator's stream ended (after its CLOSE) */
	int in_paused;   /* stop reading frames: the child (--exec) or stdout (default
	                  * mode, outlet.h) is behind */
	int established; /* was ever established: id_i is authenticated (for logs) */

	/* What the session's observer was told (resp_note, report.c). */
	int fs;                           /* M1 asked for forward secrecy (for traces of M4) */
	int just_established;             /* acted on after the session's call returns */
	char peer_name[KD3_NAME_MAX + 1]; /* the initiator, once established */
	int suite;
	uint32_t lifetime_s;
	uint64_t expires_ms;    /* the session key's end, once established */
	int closed_sent;        /* our CLOSE is sealed */
	int peer_closed;        /* the initiator's CLOSE came */
	int peer_close_handled; /* ... and was acted on */
	unsigned close_reason;
	char close_text[256];
	int peer_error; /* an ERROR came: its code, words and sender */
	int peer_error_kdc;
	unsigned peer_error_code;
	char peer_error_text[256];
	int kdc_asked;    /* M2 went to the KDCs */
	int kdc_answered; /* an answer was given to the session */

	uint64_t hs_deadline;    /* handshake must finish by then; 0 once established */
	uint64_t opened_us;      /* accepted (kd3_now_us): the handshake's start */
	uint64_t close_deadline; /* our CLOSE is out: the peer's must come by then */
	uint64_t end_deadline;   /* draining or lingering ends by then */

	resp_kdcx kdc;
	struct resp_kdc_list *kdc_list; /* the KDC list this session uses (held) */
	int has_child;
	resp_child *child; /* --exec only (16 KiB: its line buffer), NULL otherwise */
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

/* session_proto.c */
void resp_proto_frames(resp_session *s, uint64_t now);
void resp_proto_kdc_result(resp_session *s, int r, uint64_t now);
void resp_proto_eof(resp_session *s, uint64_t now);
/* Time passed: the session checks its key lifetime (a CLOSE EXPIRED, then the end). */
void resp_proto_tick(resp_session *s, uint64_t now);

/* session_out.c */
/* What the session wrote for the initiator, into the output queue (after every call
 * of the session). KD3_OK, or the session was dropped (the initiator does not read). */
int resp_out_take(resp_session *s);
/* DATA out. Drops the session on a failure. */
void resp_out_data(resp_session *s, const uint8_t *p, size_t len, uint64_t now);
/* Our CLOSE (or ERROR before established). Once our CLOSE is out, the peer's must
 * come within the handshake timeout. */
void resp_out_close(resp_session *s, uint16_t reason, const char *text, uint64_t now);
/* Sends what the socket takes; drops the session when the peer is gone or does not
 * read. */
void resp_out_flush(resp_session *s);

/* session_exec.c */
void resp_exec_start(resp_session *s, uint64_t now);
void resp_exec_deliver(resp_session *s, kd3_view data);
void resp_exec_peer_closed(resp_session *s);
void resp_exec_on_event(resp_session *s, resp_watch *w, uint64_t now);
void resp_exec_sync(resp_session *s, uint64_t now);
void resp_exec_on_timer(resp_session *s, uint64_t now);

#endif
