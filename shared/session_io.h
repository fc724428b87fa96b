/* kd3 session I/O: the thin socket wrapper around a kd3_peer (peer.h) that both the
 * initiator and the responder use once they hold a connected TCP socket.
 *
 * The state machine never touches a socket; this module does, and nothing else:
 *   - kd3_sio_wait_frame: the next whole frame from the peer, by a deadline (handshake);
 *   - kd3_sio_feed:       one frame into kd3_peer_input, traced, and whatever the peer
 *                         wrote for the other side sent in full;
 *   - kd3_sio_send_out:   sends (and traces) the frames a kd3_peer_* call wrote to tx_w;
 *   - kd3_sio_run:        the established loop: each line of in_fd becomes one DATA
 *                         record, each DATA received is printed as one line; at EOF of
 *                         in_fd our CLOSE, and on the peer's CLOSE ours too; returns
 *                         KD3_OK when both closed, KD3_E_PEER_ERROR when the peer's
 *                         CLOSE carried a reason other than KD3_CLOSE_NORMAL;
 *   - kd3_sio_report / kd3_sio_exit_code: the one-line error and the exit code.
 * With s->events set, each thing that happens is also told to that sink (events.h):
 * handshake steps and the session established (initiator), messages sent and
 * received, key updates both ways, and each CLOSE.
 *
 * Every wait is bounded: one write of frames by io_timeout_ms in all, the established
 * loop wakes at least once a second to check the key lifetime (kd3_peer_check_expiry),
 * and once our CLOSE is sent the peer's CLOSE is due within io_timeout_ms of it, a
 * fixed deadline (frames the peer sends meanwhile do not extend it). When the key
 * expires, a CLOSE with reason KD3_E_EXPIRED tells the peer why the session ends.
 * kd3_sio_wipe ends our direction (shutdown) and reads what the peer still sends for
 * a moment before closing, so that our last frame (a CLOSE or an ERROR) is not lost to
 * the TCP reset a close with unread input would send.
 * Lines are limited to KD3_PAYLOAD_MAX (16384) bytes, without their '\n'; a longer line
 * is reported on stderr and not sent. Received DATA is printed only after its record
 * verified (kd3_peer_input delivers nothing else).
 *
 * Typical use (initiator; the responder feeds M1 and the KDC's reply instead):
 *   kd3_sio_init(&s, &peer, fd, "I->R", "R->I", "responder", timeout_ms);
 *   kd3_peer_start(&peer, &s.tx_w); kd3_sio_send_out(&s, -1);
 *   until established: kd3_sio_wait_frame(), kd3_sio_feed(), kd3_stream_consume(&s.rx)
 *   ret = kd3_sio_run(&s, STDIN_FILENO, stdout);
 *   if (ret) kd3_sio_report(&s, ret);  exit(kd3_sio_exit_code(&s, ret));
 *   kd3_sio_wipe(&s);
 * A kd3_sio is large (~80 KiB of buffers): make it static or allocate it. */
#ifndef KD3_SESSION_IO_H
#define KD3_SESSION_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "events.h"
#include "net.h"
#include "peer.h"
#include "stream.h"
#include "transcript.h"
#include "wire.h"

/* Exit codes of the initiator and the responder (their --help lists them). */
#define KD3_EXIT_OK        0 /* the session ended with CLOSE both ways */
#define KD3_EXIT_RUNTIME   1 /* any other failure */
#define KD3_EXIT_USAGE     2 /* bad option, config or key file */
#define KD3_EXIT_HANDSHAKE 3 /* the exchange failed (including an ERROR from the peer or KDC) */
#define KD3_EXIT_AUTH      4 /* a record, confirm value or sealed key failed authentication */
#define KD3_EXIT_GONE      5 /* peer unreachable or vanished, session truncated, timeout */

/* Room for what one call can write: a KEY_UPDATE plus a full DATA record. */
#define KD3_SIO_TX_CAP (2 * KD3_FRAME_MAX)

typedef struct kd3_sio {
	/* Set by kd3_sio_init. */
	kd3_peer *peer;
	int sock;              /* connected TCP socket, non-blocking */
	const char *tx_dir;    /* trace label of frames we send, e.g. "I->R" */
	const char *rx_dir;    /* trace label of frames we receive, e.g. "R->I" */
	const char *peer_role; /* "responder" / "initiator": named in error lines */
	int io_timeout_ms;     /* longest wait for the socket to take more bytes */

	kd3_stream rx;   /* bytes from the peer, gathered into frames */
	kd3_writer tx_w; /* pass &tx_w as to_peer; kd3_sio_send_out sends */
	uint8_t tx[KD3_SIO_TX_CAP];
	uint8_t trace_copy[KD3_FRAME_MAX]; /* a record as received, before it is opened */
	uint8_t line[KD3_PAYLOAD_MAX];     /* the input line being gathered */
	size_t line_len;
	int line_too_long; /* skipping the rest of an over-long line */

	int established;            /* KD3_EV_ESTABLISHED was seen */
	uint64_t close_deadline_ms; /* once our CLOSE is sent: the peer's CLOSE is due by then */
	int sock_errno;             /* errno of a failed socket call (0: none) */
	int out_errno;              /* errno of a failed write to the output (0: none) */
	uint16_t peer_error;        /* code of an ERROR received, or a CLOSE's reason if not 0 */
	char peer_error_text[256];  /* its text, printable */
	uint16_t close_reason;      /* reason of the peer's CLOSE */

	/* Set after kd3_sio_init, or left NULL: where the session's events go (events.h).
	 * With NULL, received DATA is printed to kd3_sio_run's out_file as before and no
	 * other event is told. */
	kd3_events *events;
	/* Set after kd3_sio_init, or left NULL: a JSON record of every frame (transcript.h),
	 * under session number session_id. */
	kd3_transcript *transcript;
	uint64_t session_id;
} kd3_sio;

/* KD3_E_IO when the socket cannot be made non-blocking. */
int kd3_sio_init(kd3_sio *s, kd3_peer *peer, int sock, const char *tx_dir, const char *rx_dir,
                 const char *peer_role, int io_timeout_ms);
/* Wipes every buffer (they held plaintext) and closes the socket, after ending our
 * direction and draining the peer's for at most a second (bounded by io_timeout_ms). */
void kd3_sio_wipe(kd3_sio *s);

/* Sends every frame in tx_w (tracing each), then empties tx_w. last_inner is the
 * inner type of the last record sealed (KD3_R_*), or -1; records before it are taken
 * to be the KEY_UPDATEs kd3_peer_send puts first. */
int kd3_sio_send_out(kd3_sio *s, int last_inner);

/* The next whole frame from the peer (it stays in s->rx until kd3_stream_consume).
 * KD3_E_TIMEOUT at the deadline (kd3_now_ms clock), KD3_E_TRUNCATED when the stream
 * ended, KD3_E_MALFORMED when the bytes are not kd3 frames, KD3_E_IO. */
int kd3_sio_wait_frame(kd3_sio *s, uint64_t deadline_ms, uint8_t **frame, size_t *len);

/* One frame into kd3_peer_input (decrypted in place; out->data points into it), traced
 * (src KD3_SRC_KDC is traced as "KDC->R"). Whatever the peer wrote to tx_w is sent,
 * even on failure (an ERROR frame). to_kdc may be NULL for the initiator. */
int kd3_sio_feed(kd3_sio *s, kd3_source src, uint8_t *frame, size_t len, kd3_writer *to_kdc,
                 kd3_peer_out *out);

/* The established session: lines of in_fd (-1: none) out, DATA in to out_file, until
 * both directions closed (KD3_OK) or a failure (its kd3_err). Frames already in s->rx
 * are handled first. */
int kd3_sio_run(kd3_sio *s, int in_fd, FILE *out_file);

/* A front end's own input for the established loop (the initiator's chat): fd is
 * polled, and when readable on_readable(s, ctx) reads it and acts through
 * kd3_sio_send, kd3_sio_rekey and kd3_sio_close; its kd3_err ends the loop. fd is no
 * longer polled once our CLOSE is sent. */
typedef struct kd3_sio_input {
	int fd;
	int (*on_readable)(kd3_sio *s, void *ctx);
	void *ctx;
} kd3_sio_input;

/* kd3_sio_run with the input from in instead of lines of a descriptor. */
int kd3_sio_run_input(kd3_sio *s, const kd3_sio_input *in, FILE *out_file);

/* One DATA message (a KEY_UPDATE first when the policy says so), sent, traced and told
 * to the events sink. len <= KD3_PAYLOAD_MAX. */
int kd3_sio_send(kd3_sio *s, const uint8_t *payload, size_t len);
/* A KEY_UPDATE now (told as a key_update event). */
int kd3_sio_rekey(kd3_sio *s);
/* Our CLOSE (reason normal, "bye"): the peer's CLOSE is then due within io_timeout_ms. */
int kd3_sio_close(kd3_sio *s);

/* One line on stderr (kd3_log_error) naming the cause of err. */
void kd3_sio_report(const kd3_sio *s, int err);
/* The same line into out[cap] (without the program name), for an error event. */
void kd3_sio_describe(const kd3_sio *s, int err, char *out, size_t cap);
/* The name of the failure for an error event: the wire name of an ERROR received
 * ("BAD_AUTH"), else kd3_events_err_name(err). */
const char *kd3_sio_err_name(const kd3_sio *s, int err);
/* The KD3_EXIT_* code for err. */
int kd3_sio_exit_code(const kd3_sio *s, int err);

#endif
