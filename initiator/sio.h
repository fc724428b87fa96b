/* initiator: the session over its TCP socket. The protocol is libkd3's kd3_session
 * (include/kd3/kd3.h), used as any outside program uses it; this module does the
 * socket, the lines of input, and what the user sees: the trace, the transcript and
 * the events (all from the session's observer notes).
 *
 *   ini_sio_init:      the session and the connected socket (made non-blocking);
 *   ini_sio_handshake: M1 out, then bytes in until the session is established;
 *   ini_sio_run:       the established loop: each line of in_fd becomes one message,
 *                      each message received is printed as one line; at EOF of in_fd
 *                      our CLOSE, and on the peer's CLOSE ours too; KD3_OK when both
 *                      closed, KD3_E_PEER_ERROR when the peer's CLOSE carried another
 *                      reason than a normal end;
 *   ini_sio_describe / ini_sio_exit_code: the one-line error and the exit code.
 *
 * Every wait is bounded: one write by io_timeout_ms in all, the established loop wakes
 * at least once a second (the session checks its key lifetime then), and once our
 * CLOSE is sent the peer's is due within io_timeout_ms of it, a fixed deadline.
 * ini_sio_wipe ends our direction (shutdown) and reads what the peer still sends for a
 * moment before closing, so that our last frame is not lost to a TCP reset. Lines are
 * limited to KD3_MESSAGE_MAX bytes without their '\n'; a longer one is reported on
 * stderr and not sent. */
#ifndef INI_SIO_H
#define INI_SIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <kd3/kd3.h>

#include "events.h"
#include "exitcode.h"
#include "transcript.h"

typedef struct ini_sio {
	/* Set by ini_sio_init. */
	kd3_session *session;
	int sock;          /* connected TCP socket, non-blocking */
	int io_timeout_ms; /* longest wait for the socket to take more bytes */

	/* Set before ini_sio_init, or left zero: what the trace and transcript show. */
	kd3_events *events;         /* where the session's events go; NULL: messages to out_file */
	kd3_transcript *transcript; /* a JSON record of every frame, or NULL */
	const char *self;           /* our principal */
	int forward_secret;         /* we asked for it: an M4 carries e_r */
	uint64_t rekey_records, rekey_bytes, rekey_seconds; /* the policy, for the transcript */

	uint8_t in[KD3_MESSAGE_MAX + 64]; /* bytes read, in[in_off..in_len) not taken yet */
	size_t in_off, in_len;
	int eof;                       /* the responder ended its stream */
	uint8_t out[4096];             /* output, on its way to the socket */
	uint8_t msg[KD3_MESSAGE_MAX];  /* a message received */
	uint8_t line[KD3_MESSAGE_MAX]; /* the input line being gathered */
	size_t line_len;
	int line_too_long; /* skipping the rest of an over-long line */

	int established;            /* the session's ESTABLISHED note came */
	int closed_sent;            /* our CLOSE is out */
	int peer_closed;            /* the peer's CLOSE came */
	uint64_t close_deadline_ms; /* once our CLOSE is sent: the peer's is due by then */
	int sock_errno;             /* errno of a failed socket call (0: none) */
	int out_errno;              /* errno of a failed write to the output (0: none) */
	int note_err;               /* an event the observer could not write (KD3_E_IO) */
	uint16_t peer_error;        /* code of an ERROR received, or a CLOSE's reason if not 0 */
	char peer_error_text[256];  /* its text, printable */
	uint16_t close_reason;      /* reason of the peer's CLOSE */
	char peer[256];             /* the responder's name, printable, once established */
	uint32_t lifetime_s;
} ini_sio;

/* s's settings above are kept; the socket is made non-blocking (KD3_E_IO if not) and
 * the session's observer set (before its first byte). */
int ini_sio_init(ini_sio *s, kd3_session *session, int sock, int io_timeout_ms);
/* Wipes every buffer (they held plaintext) and closes the socket, after ending our
 * direction and draining the peer's for at most a second (bounded by io_timeout_ms). */
void ini_sio_wipe(ini_sio *s);

/* M1 out, and the exchange until established, by timeout_ms. */
int ini_sio_handshake(ini_sio *s, uint64_t timeout_ms);

/* One message, our CLOSE, a key update now: what the session wrote goes out. */
int ini_sio_send(ini_sio *s, const uint8_t *payload, size_t len);
int ini_sio_close(ini_sio *s);
int ini_sio_rekey(ini_sio *s);

/* The established session: lines of in_fd out, messages in to out_file, until both
 * directions closed (KD3_OK) or a failure (its kd3_err). */
int ini_sio_run(ini_sio *s, int in_fd, FILE *out_file);

/* A front end's own input for the established loop (the chat): fd is polled, and when
 * readable on_readable(s, ctx) reads it and acts through ini_sio_send, ini_sio_rekey and
 * ini_sio_close; its kd3_err ends the loop. fd is no longer polled once our CLOSE is
 * sent. */
typedef struct ini_sio_input {
	int fd;
	int (*on_readable)(ini_sio *s, void *ctx);
	void *ctx;
} ini_sio_input;

int ini_sio_run_input(ini_sio *s, const ini_sio_input *in, FILE *out_file);

/* One line on err, with what the peer said; the event name of err; the exit code. */
void ini_sio_describe(const ini_sio *s, int err, char *out, size_t cap);
const char *ini_sio_err_name(const ini_sio *s, int err);
int ini_sio_exit_code(const ini_sio *s, int err);

#endif
