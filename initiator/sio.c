/* initiator: the session over its socket (sio.h). The protocol decides in libkd3;
 * this file moves bytes, lines and what the observer notes say. */
#include "sio.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "trace.h"
#include "wire.h"

/* The established loop wakes at least this often (the key lifetime is checked then). */
#define SIO_TICK_MS 1000
/* At the end, how long to drain the peer's bytes so that our last frame is delivered. */
#define SIO_LINGER_MS 1000

static int emit(ini_sio *s, const kd3_event *ev);

/* ---- what the session's observer is told -------------------------------------------- */

/* The frame to the trace and the transcript. fs: whether an M4 carries e_r. */
static void note_frame(ini_sio *s, const kd3_note *n)
{
	const char *dir = n->sent ? "I->R" : "R->I";
	int fs = s->forward_secret || (s->established && kd3_session_forward_secret(s->session));
	kd3_tframe fr = {.session = 1,
	                 .dir = dir,
	                 .p = n->bytes,
	                 .len = n->len,
	                 .fs = fs,
	                 .inner = n->inner,
	                 .generation = n->generation};

	kd3_trace_frame(dir, n->bytes, n->len, fs, n->inner);
	kd3_transcript_frame(s->transcript, &fr);
}

static kd3_tkeys note_keys(const kd3_note *n, int sent, long generation)
{
	return (kd3_tkeys){.direction = sent ? "sent" : "received",
	                   .generation = (uint32_t)generation,
	                   .ts = sent ? n->tx_secret : n->rx_secret,
	                   .key = sent ? n->tx_key : n->rx_key,
	                   .iv = sent ? n->tx_iv : n->rx_iv};
}

static void note_established(ini_sio *s, const kd3_note *n)
{
	s->established = 1;
	s->lifetime_s = n->lifetime_s;
	kd3_log_safe_name((const uint8_t *)n->peer, strlen(n->peer), s->peer);
	kd3_tsession ts = {.role = "initiator",
	                   .self = s->self ? s->self : "",
	                   .peer = s->peer,
	                   .suite = kd3_suite_name((uint8_t)n->suite),
	                   .fs = n->forward_secret,
	                   .kvno = n->kvno,
	                   .lifetime_s = n->lifetime_s,
	                   .th = n->th,
	                   .rekey_records = s->rekey_records,
	                   .rekey_bytes = s->rekey_bytes,
	                   .rekey_seconds = s->rekey_seconds,
	                   .sk = n->sk,
	                   .dh = n->dh,
	                   .tx = note_keys(n, 1, 0),
	                   .rx = note_keys(n, 0, 0)};
	kd3_transcript_session(s->transcript, 1, &ts);
	kd3_event ev = {.kind = KD3_EVT_HANDSHAKE, .step = "M4 received"};
	emit(s, &ev);
}

static void note_key_update(ini_sio *s, const kd3_note *n)
{
	kd3_tkeys k = note_keys(n, n->sent, n->generation);
	kd3_transcript_key_update_keys(s->transcript, 1, &k);
	if (!n->sent)
		kd3_trace_note("responder moved to its next key");
	kd3_event ev = {.kind = KD3_EVT_KEY_UPDATE,
	                .direction = k.direction,
	                .generation = (uint32_t)n->generation};
	emit(s, &ev);
}

/* A CLOSE: ours (sealed), or the peer's. A reason other than a normal end is kept:
 * the session then ends with KD3_E_PEER_ERROR once both sides closed. */
static void note_close(ini_sio *s, const kd3_note *n)
{
	const char *by = n->sent ? "us" : "peer";

	if (!n->sent) {
		s->peer_closed = 1;
		s->close_reason = (uint16_t)n->code;
		snprintf(s->peer_error_text, sizeof(s->peer_error_text), "%s", n->text);
		if (n->code != KD3_CLOSE_NORMAL)
			s->peer_error = (uint16_t)n->code;
		kd3_trace_note("responder closed its direction (reason %u: %s)", n->code, n->text);
	}
	kd3_transcript_close_event(s->transcript, 1, by, n->code, n->text);
	kd3_event ev = {.kind = KD3_EVT_CLOSE, .by = by, .reason = n->code, .text = n->text};
	emit(s, &ev);
}

static void on_note(void *ctx, const kd3_note *n)
{
	ini_sio *s = ctx;

	switch (n->kind) {
	case KD3_NOTE_FRAME:
		note_frame(s, n);
		break;
	case KD3_NOTE_ESTABLISHED:
		note_established(s, n);
		break;
	case KD3_NOTE_KEY_UPDATE:
		note_key_update(s, n);
		break;
	case KD3_NOTE_CLOSE:
		note_close(s, n);
		break;
	case KD3_NOTE_ERROR:
		s->peer_error = (uint16_t)n->code;
		snprintf(s->peer_error_text, sizeof(s->peer_error_text), "%s", n->text);
		break;
	}
}

/* Tells ev to the event sink, if any. A failed write of our own output is an I/O
 * failure like a failed write of a received message; inside a note it is kept in
 * note_err and ends the session after the session's call returned. */
static int emit(ini_sio *s, const kd3_event *ev)
{
	if (!s->events)
		return KD3_OK;
	int ret = kd3_events_emit(s->events, ev);
	if (ret == KD3_E_IO) {
		s->out_errno = errno ? errno : EIO;
		if (!s->note_err)
			s->note_err = ret;
	}
	return ret;
}

/* A session call's result, and a failed event write inside it. */
static int checked(ini_sio *s, int ret)
{
	return ret != KD3_OK ? ret : s->note_err;
}

/* ---- the socket --------------------------------------------------------------------- */

int ini_sio_init(ini_sio *s, kd3_session *session, int sock, int io_timeout_ms)
{
	s->session = session;
	s->sock = sock;
	s->io_timeout_ms = io_timeout_ms > 0 ? io_timeout_ms : 1;
	int ret = kd3_session_set_observer(session, on_note, s);
	if (ret != KD3_OK)
		return ret;
	/* Non-blocking, so that every wait is a poll with a timeout. */
	if (sock >= 0 && kd3_set_nonblock(sock) != KD3_OK) {
		s->sock_errno = errno;
		return KD3_E_IO;
	}
	return KD3_OK;
}

/* Our last frame (a CLOSE or an ERROR) may still be in the socket's send queue, and a
 * close() with unread input sends a TCP reset, which can destroy it before the peer
 * reads it. So end our direction (a FIN after the queued bytes), then read and discard
 * until the peer ends its own, for a bounded time. */
static void sock_linger(ini_sio *s)
{
	int ms = s->io_timeout_ms < SIO_LINGER_MS ? s->io_timeout_ms : SIO_LINGER_MS;
	uint64_t deadline = kd3_now_ms() + (uint64_t)ms;

	if (shutdown(s->sock, SHUT_WR) != 0)
		return; /* never connected, or already reset: nothing to deliver */
	while (kd3_wait_fd(s->sock, POLLIN, deadline) == KD3_OK) {
		ssize_t n = read(s->sock, s->in, sizeof(s->in));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
			break;
	}
}

void ini_sio_wipe(ini_sio *s)
{
	if (s->sock >= 0)
		sock_linger(s);
	kd3_wipe(s->in, sizeof(s->in));
	kd3_wipe(s->out, sizeof(s->out));
	kd3_wipe(s->msg, sizeof(s->msg));
	kd3_wipe(s->line, sizeof(s->line));
	s->in_off = s->in_len = s->line_len = 0;
	if (s->sock >= 0)
		close(s->sock);
	s->sock = -1;
}

/* Writes all of p[len] within io_timeout_ms in all: a peer that reads a trickle cannot
 * hold us longer than one that reads nothing. */
static int write_all(ini_sio *s, const uint8_t *p, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(s->sock, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int ret = kd3_wait_fd(s->sock, POLLOUT, deadline);
			if (ret == KD3_E_IO)
				s->sock_errno = errno;
			if (ret != KD3_OK)
				return ret;
			continue;
		}
		s->sock_errno = n < 0 ? errno : EPIPE;
		return KD3_E_IO;
	}
	return KD3_OK;
}

/* Whatever the session wrote for the responder, sent. */
static int flush(ini_sio *s)
{
	uint64_t deadline = kd3_now_ms() + (uint64_t)s->io_timeout_ms;
	int ret = KD3_OK;

	while (ret == KD3_OK && kd3_session_output_pending(s->session) > 0) {
		size_t len = 0;
		kd3_session_output(s->session, s->out, sizeof(s->out), &len);
		ret = write_all(s, s->out, len, deadline);
	}
	return ret;
}

/* Bytes read before and not yet taken go to the session (it takes fewer while a
 * message waits to be read); what it wrote goes out. */
static int give(ini_sio *s)
{
	size_t used = 0;
	int ret = kd3_session_receive(s->session, s->in + s->in_off, s->in_len - s->in_off, &used,
	                              kd3_now_ms());
	s->in_off += used;
	if (s->in_off == s->in_len)
		s->in_off = s->in_len = 0;
	int sent = flush(s); /* FINISHED, or the CLOSE or ERROR that says why it failed */
	return checked(s, ret != KD3_OK ? ret : sent);
}

/* Reads what the socket has; *got is 0 when it had nothing, at EOF s->eof is set. */
static int read_sock(ini_sio *s, int *got)
{
	*got = 0;
	for (;;) {
		ssize_t n = read(s->sock, s->in, sizeof(s->in));
		if (n > 0) {
			s->in_off = 0;
			s->in_len = (size_t)n;
			*got = 1;
			return KD3_OK;
		}
		if (n == 0) {
			s->eof = 1;
			return KD3_OK;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return KD3_OK;
		s->sock_errno = errno;
		return KD3_E_IO;
	}
}

/* The socket is readable: its bytes to the session, or the end of its stream (KD3_OK
 * only after the peer's CLOSE: a cut stream could hide dropped messages). */
static int on_socket(ini_sio *s)
{
	int got = 0;
	int ret = read_sock(s, &got);

	if (ret != KD3_OK)
		return ret;
	if (got)
		return give(s);
	if (s->eof && kd3_session_state(s->session) != KD3_STATE_CLOSED)
		return checked(s, kd3_session_eof(s->session));
	return KD3_OK;
}

/* ---- the handshake ------------------------------------------------------------------ */

int ini_sio_handshake(ini_sio *s, uint64_t timeout_ms)
{
	uint64_t deadline = kd3_now_ms() + timeout_ms;
	int ret = kd3_session_start(s->session, kd3_now_ms());

	if (ret == KD3_OK)
		ret = flush(s);
	if (ret == KD3_OK) {
		kd3_event ev = {.kind = KD3_EVT_HANDSHAKE, .step = "M1 sent"};
		ret = emit(s, &ev);
	}
	while (ret == KD3_OK && kd3_session_state(s->session) == KD3_STATE_HANDSHAKE) {
		if (s->in_off < s->in_len) {
			ret = give(s);
		} else if (s->eof) {
			ret = KD3_E_TRUNCATED;
		} else if ((ret = kd3_wait_fd(s->sock, POLLIN, deadline)) == KD3_OK) {
			ret = on_socket(s);
		} else if (ret == KD3_E_IO) {
			s->sock_errno = errno;
		}
	}
	if (ret == KD3_E_TIMEOUT && kd3_session_close(s->session) == KD3_OK)
		flush(s); /* an ERROR tells the responder we gave up, best effort */
	if (ret == KD3_OK && kd3_session_state(s->session) != KD3_STATE_ESTABLISHED)
		ret =
		    kd3_session_error(s->session) ? kd3_session_error(s->session) : KD3_E_TRUNCATED;
	if (ret != KD3_OK)
		return ret;
	kd3_event fin = {.kind = KD3_EVT_HANDSHAKE, .step = "FINISHED sent"};
	kd3_event ev = {.kind = KD3_EVT_ESTABLISHED,
	                .peer = s->peer,
	                .suite = kd3_suite_name((uint8_t)kd3_session_suite(s->session)),
	                .forward_secrecy = kd3_session_forward_secret(s->session),
	                .lifetime_s = s->lifetime_s};
	ret = emit(s, &fin);
	return ret != KD3_OK ? ret : emit(s, &ev);
}

/* ---- messages, both ways ------------------------------------------------------------ */

static int deliver(ini_sio *s, FILE *out_file, const uint8_t *p, size_t len)
{
	if (s->events) {
		kd3_event ev = {
		    .kind = KD3_EVT_MESSAGE, .direction = "received", .data = p, .size = len};
		return emit(s, &ev);
	}
	errno = 0;
	if ((len && fwrite(p, 1, len, out_file) != len) || fputc('\n', out_file) == EOF ||
	    fflush(out_file) != 0) {
		s->out_errno = errno ? errno : EIO;
		return KD3_E_IO;
	}
	return KD3_OK;
}

/* Every message the session holds or the bytes already read make, delivered. */
static int drain(ini_sio *s, FILE *out_file)
{
	for (;;) {
		size_t len = 0;
		int ret = kd3_session_read(s->session, s->msg, sizeof(s->msg), &len);
		if (ret == KD3_OK) {
			ret = deliver(s, out_file, s->msg, len);
			kd3_wipe(s->msg, len);
			if (ret != KD3_OK)
				return ret;
			continue;
		}
		if (ret == KD3_E_AGAIN && s->in_off < s->in_len) {
			if ((ret = give(s)) != KD3_OK)
				return ret;
			continue;
		}
		if (ret == KD3_E_CLOSED || ret == KD3_E_PEER_ERROR)
			return KD3_OK; /* the peer's CLOSE: the loop answers it */
		return ret == KD3_E_AGAIN ? KD3_OK : ret;
	}
}

int ini_sio_send(ini_sio *s, const uint8_t *payload, size_t len)
{
	int ret = kd3_session_write(s->session, payload, len, kd3_now_ms());
	if (ret == KD3_E_AGAIN && (ret = flush(s)) == KD3_OK)
		ret = kd3_session_write(s->session, payload, len, kd3_now_ms());
	int sent = flush(s);
	if ((ret = checked(s, ret != KD3_OK ? ret : sent)) != KD3_OK)
		return ret;
	kd3_event ev = {.kind = KD3_EVT_MESSAGE, .direction = "sent", .size = len};
	return emit(s, &ev);
}

int ini_sio_rekey(ini_sio *s)
{
	int ret = kd3_session_rekey(s->session, kd3_now_ms());
	int sent = flush(s);
	return checked(s, ret != KD3_OK ? ret : sent); /* the note told the key update */
}

int ini_sio_close(ini_sio *s)
{
	int ret = kd3_session_close(s->session);
	int sent = flush(s);
	s->closed_sent = 1;
	/* The peer's CLOSE is due by a fixed deadline: what it sends meanwhile does not
	 * move it, so a peer that keeps trickling frames cannot keep us waiting. */
	s->close_deadline_ms = kd3_now_ms() + (uint64_t)s->io_timeout_ms;
	return checked(s, ret != KD3_OK ? ret : sent);
}

/* ---- lines of input ----------------------------------------------------------------- */

static int send_line(ini_sio *s)
{
	int ret = ini_sio_send(s, s->line, s->line_len);
	kd3_wipe(s->line, s->line_len);
	s->line_len = 0;
	return ret;
}

/* Adds p[n] (no '\n' inside) to the line being gathered; an over-long line is dropped. */
static void gather(ini_sio *s, const uint8_t *p, size_t n)
{
	if (s->line_too_long)
		return;
	if (n > sizeof(s->line) - s->line_len) {
		kd3_log_error("line longer than %d bytes not sent (one line is one message)",
		              KD3_MESSAGE_MAX);
		s->line_too_long = 1;
		kd3_wipe(s->line, s->line_len);
		s->line_len = 0;
		return;
	}
	memcpy(s->line + s->line_len, p, n);
	s->line_len += n;
}

/* The end of a line: send it, unless it was dropped for its length. */
static int end_line(ini_sio *s)
{
	if (s->line_too_long) {
		s->line_too_long = 0;
		return KD3_OK;
	}
	return send_line(s);
}

/* Reads what in_fd has; sends each whole line. At EOF sends a last partial line and
 * closes our direction (the loop then stops reading in_fd). */
static int read_input(ini_sio *s, int in_fd)
{
	uint8_t chunk[4096];
	ssize_t n;
	int ret = KD3_OK;

	do
		n = read(in_fd, chunk, sizeof(chunk));
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return KD3_OK;
	if (n <= 0) { /* EOF (or an unreadable input, treated the same): close our side */
		if (s->line_len > 0 || s->line_too_long)
			ret = end_line(s);
		return ret != KD3_OK ? ret : ini_sio_close(s);
	}
	const uint8_t *p = chunk;
	size_t left = (size_t)n;
	while (ret == KD3_OK && left > 0) {
		const uint8_t *nl = memchr(p, '\n', left);
		size_t seg = nl ? (size_t)(nl - p) : left;
		gather(s, p, seg);
		if (nl)
			ret = end_line(s);
		p += seg + (nl ? 1 : 0);
		left -= seg + (nl ? 1 : 0);
	}
	kd3_wipe(chunk, sizeof(chunk));
	return ret;
}

static int lines_readable(ini_sio *s, void *ctx)
{
	const int *fd = ctx;
	return read_input(s, *fd);
}

/* ---- the established loop ----------------------------------------------------------- */

/* Both sides closed: clean, unless the peer's CLOSE named a failure. */
static int closed_result(const ini_sio *s)
{
	if (s->close_reason == KD3_CLOSE_NORMAL)
		return KD3_OK;
	return s->close_reason == KD3_E_EXPIRED ? KD3_E_EXPIRED : KD3_E_PEER_ERROR;
}

/* Once we closed, the peer must answer with its CLOSE by the deadline ini_sio_close
 * set: KD3_E_TIMEOUT after it, else *wait_ms shortened to wake at it. */
static int close_wait(ini_sio *s, int *wait_ms)
{
	uint64_t now = kd3_now_ms();
	if (now >= s->close_deadline_ms)
		return KD3_E_TIMEOUT;
	if (s->close_deadline_ms - now < (uint64_t)*wait_ms)
		*wait_ms = (int)(s->close_deadline_ms - now);
	return KD3_OK;
}

/* One turn: messages out to the user, the peer's CLOSE answered, the key's lifetime
 * checked. *over is set when the session ended (ret is then its result). */
static int turn(ini_sio *s, FILE *out_file, int *over)
{
	size_t used = 0;
	int ret = drain(s, out_file);

	*over = 1;
	if (ret != KD3_OK)
		return ret;
	if (s->peer_closed) {
		if (!s->closed_sent && (ret = ini_sio_close(s)) != KD3_OK)
			return ret;
		return closed_result(s); /* nothing may follow the peer's CLOSE */
	}
	/* No bytes: the session checks the key's lifetime (a CLOSE says when it ran out). */
	ret = kd3_session_receive(s->session, NULL, 0, &used, kd3_now_ms());
	int sent = flush(s);
	if ((ret = checked(s, ret != KD3_OK ? ret : sent)) != KD3_OK)
		return ret;
	*over = 0;
	return KD3_OK;
}

int ini_sio_run(ini_sio *s, int in_fd, FILE *out_file)
{
	ini_sio_input in = {.fd = in_fd, .on_readable = lines_readable, .ctx = &in_fd};
	return ini_sio_run_input(s, &in, out_file);
}

int ini_sio_run_input(ini_sio *s, const ini_sio_input *in, FILE *out_file)
{
	for (;;) {
		int over = 0;
		int ret = turn(s, out_file, &over);
		if (over)
			return ret;
		int wait_ms = SIO_TICK_MS;
		if (s->closed_sent && (ret = close_wait(s, &wait_ms)) != KD3_OK)
			return ret;
		if (s->eof) {
			ret = kd3_session_eof(s->session);
			return ret != KD3_OK ? ret : closed_result(s);
		}

		struct pollfd pfd[2] = {{.fd = s->sock, .events = POLLIN},
		                        {.fd = in->fd, .events = POLLIN}};
		/* Input stops with our CLOSE (at its EOF, or a front end's quit). */
		int watch_in = in->fd >= 0 && !s->closed_sent;
		int n = poll(pfd, watch_in ? 2 : 1, wait_ms);
		if (n < 0 && errno != EINTR) {
			s->sock_errno = errno;
			return KD3_E_IO;
		}
		if (n <= 0)
			continue;
		if (pfd[0].revents && (ret = on_socket(s)) != KD3_OK)
			return ret;
		if (watch_in && pfd[1].revents && (ret = in->on_readable(s, in->ctx)) != KD3_OK)
			return ret;
	}
}

/* ---- reporting ---------------------------------------------------------------------- */

static void describe_peer_error(const ini_sio *s, char *out, size_t cap)
{
	const char *wire = kd3_err_wire_name(s->peer_error);

	if (s->established)
		snprintf(out, cap, "responder closed the session with reason %u (%s): %s",
		         s->peer_error,
		         kd3_err_is_wire(s->peer_error) ? wire : kd3_strerror(s->peer_error),
		         s->peer_error_text);
	else if (kd3_err_is_wire(s->peer_error))
		snprintf(out, cap, "responder reported %s: %s", wire, s->peer_error_text);
	else
		snprintf(out, cap, "responder reported error code %u: %s", s->peer_error,
		         s->peer_error_text);
}

void ini_sio_describe(const ini_sio *s, int err, char *out, size_t cap)
{
	switch (err) {
	case KD3_OK:
		snprintf(out, cap, "%s", kd3_strerror(err));
		return;
	case KD3_E_PEER_ERROR:
		describe_peer_error(s, out, cap);
		return;
	case KD3_E_TRUNCATED:
		snprintf(out, cap, "%s",
		         s->established ? kd3_strerror(err)
		                        : "responder closed the connection before the handshake "
		                          "finished");
		return;
	case KD3_E_TIMEOUT:
		snprintf(out, cap, "%s",
		         !s->established ? "timed out waiting for the responder (handshake)"
		         : s->closed_sent
		             ? "timed out waiting for the responder to close the session"
		             : "timed out waiting for the responder");
		return;
	default:
		break;
	}
	if (err == KD3_E_IO && s->sock_errno)
		snprintf(out, cap, "connection to the responder lost: %s", strerror(s->sock_errno));
	else if (err == KD3_E_IO && s->out_errno)
		snprintf(out, cap, "cannot write a received message: %s", strerror(s->out_errno));
	else if (!s->established && (err == KD3_E_MALFORMED || err == KD3_E_UNEXPECTED))
		snprintf(out, cap, "handshake failed: %s from the responder", kd3_strerror(err));
	else if (!s->established)
		snprintf(out, cap, "handshake failed: %s", kd3_strerror(err));
	else
		snprintf(out, cap, "%s", kd3_strerror(err));
}

const char *ini_sio_err_name(const ini_sio *s, int err)
{
	if (err == KD3_E_PEER_ERROR && s && kd3_err_is_wire(s->peer_error))
		return kd3_err_wire_name(s->peer_error);
	return kd3_events_err_name(err);
}

/* Failures of authentication: ours, or the peer's report of one about our records. */
static int is_auth_failure(int err)
{
	return err == KD3_E_BAD_AUTH || err == KD3_E_RECORD_AUTH || err == KD3_E_CONFIRM ||
	       err == KD3_E_BLOB_AUTH || err == KD3_E_RECORD_SEQ;
}

int ini_sio_exit_code(const ini_sio *s, int err)
{
	switch (err) {
	case KD3_OK:
		return KD3_EXIT_OK;
	case KD3_E_USAGE:
	case KD3_E_CONFIG:
	case KD3_E_KEYFILE:
	case KD3_E_KEYFILE_PERMS:
		return KD3_EXIT_USAGE;
	case KD3_E_RECORD_AUTH:
	case KD3_E_CONFIRM:
	case KD3_E_BLOB_AUTH:
	case KD3_E_RECORD_SEQ:
		return KD3_EXIT_AUTH;
	case KD3_E_TRUNCATED:
	case KD3_E_TIMEOUT:
	case KD3_E_EXPIRED:
	case KD3_E_NO_KDC:
		return KD3_EXIT_GONE;
	case KD3_E_PEER_ERROR: /* an ERROR in the handshake; a CLOSE with a reason after */
		if (s && s->established)
			return is_auth_failure(s->peer_error) ? KD3_EXIT_AUTH : KD3_EXIT_RUNTIME;
		return KD3_EXIT_HANDSHAKE;
	default:
		break;
	}
	if (err == KD3_E_IO && s && s->sock_errno)
		return KD3_EXIT_GONE;
	/* Protocol failures (wire codes and 64..95) end the handshake, if not yet done. */
	if (s && !s->established && err < KD3_E_NO_SPACE)
		return KD3_EXIT_HANDSHAKE;
	return KD3_EXIT_RUNTIME;
}
