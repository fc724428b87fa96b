#include "session_io.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "log.h"
#include "msg.h"
#include "trace.h"

/* The established loop wakes at least this often, to check the key lifetime. */
#define SIO_TICK_MS 1000
#define SIO_CHUNK   4096
/* At the end, how long to drain the peer's bytes so that our last frame is delivered. */
#define SIO_LINGER_MS 1000

int kd3_sio_init(kd3_sio *s, kd3_peer *peer, int sock, const char *tx_dir, const char *rx_dir,
                 const char *peer_role, int io_timeout_ms)
{
	memset(s, 0, sizeof(*s));
	s->peer = peer;
	s->sock = sock;
	s->tx_dir = tx_dir;
	s->rx_dir = rx_dir;
	s->peer_role = peer_role;
	s->io_timeout_ms = io_timeout_ms > 0 ? io_timeout_ms : 1;
	kd3_stream_init(&s->rx);
	kd3_wr_init(&s->tx_w, s->tx, sizeof(s->tx));
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
static void sock_linger(kd3_sio *s)
{
	uint8_t sink[SIO_CHUNK];
	int ms = s->io_timeout_ms < SIO_LINGER_MS ? s->io_timeout_ms : SIO_LINGER_MS;
	uint64_t deadline = kd3_now_ms() + (uint64_t)ms;

	if (shutdown(s->sock, SHUT_WR) != 0)
		return; /* never connected, or already reset: nothing to deliver */
	while (kd3_wait_fd(s->sock, POLLIN, deadline) == KD3_OK) {
		ssize_t n = read(s->sock, sink, sizeof(sink));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
			break;
	}
	kd3_wipe(sink, sizeof(sink));
}

void kd3_sio_wipe(kd3_sio *s)
{
	if (s->sock >= 0)
		sock_linger(s);
	kd3_stream_wipe(&s->rx);
	kd3_wipe(s->tx, sizeof(s->tx));
	kd3_wipe(s->trace_copy, sizeof(s->trace_copy));
	kd3_wipe(s->line, sizeof(s->line));
	s->line_len = 0;
	if (s->sock >= 0)
		close(s->sock);
	s->sock = -1;
}

/* ---- waiting, connecting, writing --------------------------------------------------- */

/* Writes all of p[len] within io_timeout_ms in all: a peer that reads a trickle cannot
 * hold us longer than one that reads nothing. */
static int write_all(kd3_sio *s, const uint8_t *p, size_t len)
{
	uint64_t deadline = kd3_now_ms() + (uint64_t)s->io_timeout_ms;

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

/* ---- frames out --------------------------------------------------------------------- */

/* fs for traces: whether an M4 carries e_r. */
static int sio_fs(const kd3_sio *s)
{
	return s->peer->fs || s->peer->cfg.forward_secret;
}

/* Tells ev to the event sink, if any. A failed write of our own output is an I/O
 * failure like a failed write of a received message. */
static int sio_emit(kd3_sio *s, const kd3_event *ev)
{
	if (!s->events)
		return KD3_OK;
	int ret = kd3_events_emit(s->events, ev);
	if (ret == KD3_E_IO)
		s->out_errno = errno ? errno : EIO;
	return ret;
}

static int emit_step(kd3_sio *s, const char *step)
{
	kd3_event ev = {.kind = KD3_EVT_HANDSHAKE, .step = step};
	return sio_emit(s, &ev);
}

static int emit_key_update(kd3_sio *s, const char *direction, uint32_t generation)
{
	kd3_transcript_key_update(s->transcript, s->session_id, s->peer, direction);
	kd3_event ev = {
	    .kind = KD3_EVT_KEY_UPDATE, .direction = direction, .generation = generation};
	return sio_emit(s, &ev);
}

static int emit_close(kd3_sio *s, const char *by, unsigned reason, const char *text)
{
	kd3_transcript_close_event(s->transcript, s->session_id, by, reason, text);
	kd3_event ev = {.kind = KD3_EVT_CLOSE, .by = by, .reason = reason, .text = text};
	return sio_emit(s, &ev);
}

/* The initiator's side of M4: received, FINISHED sent, and what the session is. */
static int emit_established(kd3_sio *s)
{
	char name[256];
	const kd3_peer *p = s->peer;
	int ret = emit_step(s, "FINISHED sent");

	kd3_log_safe_name((const uint8_t *)p->peer_id, strlen(p->peer_id), name);
	kd3_event ev = {.kind = KD3_EVT_ESTABLISHED,
	                .peer = name,
	                .suite = kd3_suite_name(p->suite),
	                .forward_secrecy = p->fs ? 1 : 0,
	                .lifetime_s = p->lifetime};
	return ret != KD3_OK ? ret : sio_emit(s, &ev);
}

/* Traces each frame in p[len]; see kd3_sio_send_out for the inner types. */
static void trace_out(kd3_sio *s, const uint8_t *p, size_t len, int last_inner)
{
	size_t off = 0;

	while (off < len) {
		long n = kd3_frame_size(p + off, len - off);
		if (n <= 0 || (size_t)n > len - off) {
			kd3_trace_frame(s->tx_dir, p + off, len - off, sio_fs(s), -1);
			return;
		}
		int last = off + (size_t)n == len;
		int inner = last ? last_inner : (last_inner >= 0 ? KD3_R_KEY_UPDATE : -1);
		kd3_trace_frame(s->tx_dir, p + off, (size_t)n, sio_fs(s), inner);
		off += (size_t)n;
	}
}

int kd3_sio_send_out(kd3_sio *s, int last_inner)
{
	int ret = s->tx_w.err;

	if (ret == KD3_OK && s->tx_w.len > 0) {
		if (kd3_trace_enabled())
			trace_out(s, s->tx, s->tx_w.len, last_inner);
		kd3_transcript_frames_out(s->transcript, s->session_id, s->tx_dir, s->tx,
		                          s->tx_w.len, sio_fs(s), last_inner,
		                          s->peer->ch.tx.generation);
		ret = write_all(s, s->tx, s->tx_w.len);
	}
	kd3_wr_init(&s->tx_w, s->tx, sizeof(s->tx));
	return ret;
}

/* ---- frames in ---------------------------------------------------------------------- */

/* Reads what the socket has into s->rx. *eof is set when the peer ended the stream. */
static int read_sock(kd3_sio *s, int *eof)
{
	size_t room = 0;
	uint8_t *space = kd3_stream_space(&s->rx, &room);

	*eof = 0;
	if (room == 0)
		return KD3_E_MALFORMED; /* cannot happen: no frame is larger than the buffer */
	for (;;) {
		ssize_t n = read(s->sock, space, room);
		if (n > 0) {
			kd3_stream_added(&s->rx, (size_t)n);
			return KD3_OK;
		}
		if (n == 0) {
			*eof = 1;
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

/* The bytes in s->rx are not a kd3 frame: show them in the trace, and fail. */
static int not_kd3(kd3_sio *s)
{
	kd3_tframe fr = {.session = s->session_id,
	                 .dir = s->rx_dir,
	                 .p = s->rx.buf,
	                 .len = s->rx.len,
	                 .inner = -1,
	                 .generation = -1};
	kd3_transcript_frame(s->transcript, &fr);
	kd3_trace_frame(s->rx_dir, s->rx.buf, s->rx.len, sio_fs(s), -1);
	return KD3_E_MALFORMED;
}

int kd3_sio_wait_frame(kd3_sio *s, uint64_t deadline_ms, uint8_t **frame, size_t *len)
{
	for (;;) {
		int eof = 0;
		int got = kd3_stream_next(&s->rx, frame, len);
		if (got == 1)
			return KD3_OK;
		if (got < 0)
			return not_kd3(s);
		int ret = kd3_wait_fd(s->sock, POLLIN, deadline_ms);
		if (ret == KD3_E_IO)
			s->sock_errno = errno;
		if (ret == KD3_OK)
			ret = read_sock(s, &eof);
		if (ret != KD3_OK)
			return ret;
		if (eof)
			return KD3_E_TRUNCATED;
	}
}

static int frame_is_record(const uint8_t *frame, size_t len)
{
	return len >= KD3_HDR_LEN && frame[1] == KD3_T_RECORD;
}

/* The frame as received (records are opened in place: from the copy) to the trace
 * and the transcript. */
static void record_in(kd3_sio *s, const char *dir, const uint8_t *copy, size_t len, int ret,
                      const kd3_peer_out *out, long generation)
{
	int record = frame_is_record(copy, len);
	int inner = ret == KD3_OK && record ? out->inner : -1;
	kd3_tframe fr = {.session = s->session_id,
	                 .dir = dir,
	                 .p = copy,
	                 .len = len,
	                 .fs = sio_fs(s),
	                 .inner = inner,
	                 .generation = record ? generation : -1};

	kd3_trace_frame(dir, copy, len, sio_fs(s), inner);
	kd3_transcript_frame(s->transcript, &fr);
}

int kd3_sio_feed(kd3_sio *s, kd3_source src, uint8_t *frame, size_t len, kd3_writer *to_kdc,
                 kd3_peer_out *out)
{
	const char *dir = src == KD3_SRC_KDC ? "KDC->R" : s->rx_dir;
	/* Records are opened in place: keep the received bytes for the trace. */
	int keep = (kd3_trace_enabled() || kd3_transcript_on(s->transcript)) &&
	           len <= sizeof(s->trace_copy);
	long generation = s->peer->ch.rx.generation; /* the key the record must open under */
	int ret;

	if (keep)
		memcpy(s->trace_copy, frame, len);
	memset(out, 0, sizeof(*out));
	out->to_peer = &s->tx_w;
	out->to_kdc = to_kdc;
	ret = kd3_peer_input(s->peer, src, frame, len, kd3_now_ms(), out);
	if (keep) {
		record_in(s, dir, s->trace_copy, len, ret, out, generation);
		kd3_wipe(s->trace_copy, len);
	}
	if (ret == KD3_E_PEER_ERROR) {
		s->peer_error = out->peer_error;
		kd3_log_safe_name(out->peer_error_text.p, out->peer_error_text.len,
		                  s->peer_error_text);
	}
	if (ret == KD3_OK && (out->events & KD3_EV_ESTABLISHED)) {
		s->established = 1;
		kd3_transcript_established(s->transcript, s->session_id, s->peer, NULL);
	}

	/* The initiator's answer to M4 is its FINISHED record; once established, the only
	 * answer to a failed frame is a CLOSE naming the reason. */
	int last_inner = -1;
	int m4 = ret == KD3_OK && (out->events & KD3_EV_ESTABLISHED) &&
	         s->peer->cfg.role == KD3_ROLE_INITIATOR;
	if (m4)
		last_inner = KD3_R_FINISHED;
	else if (ret != KD3_OK && s->established)
		last_inner = KD3_R_CLOSE;
	if (m4)
		emit_step(s, "M4 received"); /* a failed write shows again at the next event */
	int sent = kd3_sio_send_out(s, last_inner);
	if (ret != KD3_OK)
		return ret;
	if (sent == KD3_OK && m4)
		sent = emit_established(s);
	return sent;
}

/* ---- the established loop ----------------------------------------------------------- */

static int deliver(kd3_sio *s, FILE *out_file, kd3_view data)
{
	if (s->events) {
		kd3_event ev = {.kind = KD3_EVT_MESSAGE,
		                .direction = "received",
		                .data = data.p,
		                .size = data.len};
		return sio_emit(s, &ev);
	}
	errno = 0;
	if ((data.len && fwrite(data.p, 1, data.len, out_file) != data.len) ||
	    fputc('\n', out_file) == EOF || fflush(out_file) != 0) {
		s->out_errno = errno ? errno : EIO;
		return KD3_E_IO;
	}
	return KD3_OK;
}

/* A KEY_UPDATE went out before a CLOSE (the policy said so): tell it. */
static void close_key_update(kd3_sio *s, uint32_t generation)
{
	if (s->peer->ch.tx.generation != generation)
		emit_key_update(s, "sent", s->peer->ch.tx.generation);
}

int kd3_sio_close(kd3_sio *s)
{
	uint32_t generation = s->peer->ch.tx.generation;
	int ret = kd3_peer_close(s->peer, KD3_CLOSE_NORMAL, "bye", &s->tx_w);
	int sent = kd3_sio_send_out(s, KD3_R_CLOSE);
	if (ret == KD3_OK && sent == KD3_OK)
		close_key_update(s, generation);
	/* The peer's CLOSE is due by a fixed deadline: what it sends meanwhile does not
	 * move it, so a peer that keeps trickling frames cannot keep us waiting. */
	s->close_deadline_ms = kd3_now_ms() + (uint64_t)s->io_timeout_ms;
	if (ret != KD3_OK)
		return ret;
	return sent != KD3_OK ? sent : emit_close(s, "us", KD3_CLOSE_NORMAL, "bye");
}

/* The peer's CLOSE: answer with ours. A reason other than KD3_CLOSE_NORMAL is kept:
 * the session then ends with KD3_E_PEER_ERROR once both sides closed. */
static int on_peer_closed(kd3_sio *s, const kd3_peer_out *out)
{
	s->close_reason = out->close_reason;
	kd3_log_safe_name(out->close_text.p, out->close_text.len, s->peer_error_text);
	if (out->close_reason != KD3_CLOSE_NORMAL)
		s->peer_error = out->close_reason;
	kd3_trace_note("%s closed its direction (reason %u: %s)", s->peer_role, out->close_reason,
	               s->peer_error_text);
	int ret = emit_close(s, "peer", out->close_reason, s->peer_error_text);
	if (ret != KD3_OK)
		return ret;
	if (s->peer->ch.tx.closed)
		return KD3_OK;
	return kd3_sio_close(s);
}

/* Handles every whole frame waiting in s->rx. */
static int drain_frames(kd3_sio *s, FILE *out_file)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	int got;

	while ((got = kd3_stream_next(&s->rx, &frame, &len)) == 1) {
		kd3_peer_out out;
		int ret = kd3_sio_feed(s, KD3_SRC_PEER, frame, len, NULL, &out);
		if (ret == KD3_OK && (out.events & KD3_EV_DATA))
			ret = deliver(s, out_file, out.data);
		if (ret == KD3_OK && (out.events & KD3_EV_KEY_UPDATE)) {
			kd3_trace_note("%s moved to its next key", s->peer_role);
			ret = emit_key_update(s, "received", s->peer->ch.rx.generation);
		}
		if (ret == KD3_OK && (out.events & KD3_EV_PEER_CLOSED))
			ret = on_peer_closed(s, &out);
		kd3_stream_consume(&s->rx, len);
		if (ret != KD3_OK)
			return ret;
		if (s->peer->state == KD3_PS_CLOSED)
			return KD3_OK;
	}
	return got < 0 ? not_kd3(s) : KD3_OK;
}

int kd3_sio_send(kd3_sio *s, const uint8_t *payload, size_t len)
{
	uint32_t generation = s->peer->ch.tx.generation;
	int ret = kd3_peer_send(s->peer, payload, len, kd3_now_ms(), &s->tx_w);
	int sent = kd3_sio_send_out(s, KD3_R_DATA);

	if (ret != KD3_OK || sent != KD3_OK)
		return ret != KD3_OK ? ret : sent;
	/* kd3_peer_send puts a KEY_UPDATE first when the policy says so. */
	if (s->peer->ch.tx.generation != generation &&
	    (ret = emit_key_update(s, "sent", s->peer->ch.tx.generation)) != KD3_OK)
		return ret;
	kd3_event ev = {.kind = KD3_EVT_MESSAGE, .direction = "sent", .size = len};
	return sio_emit(s, &ev);
}

int kd3_sio_rekey(kd3_sio *s)
{
	int ret = kd3_peer_rekey(s->peer, kd3_now_ms(), &s->tx_w);
	int sent = kd3_sio_send_out(s, KD3_R_KEY_UPDATE);

	if (ret != KD3_OK || sent != KD3_OK)
		return ret != KD3_OK ? ret : sent;
	return emit_key_update(s, "sent", s->peer->ch.tx.generation);
}

static int send_line(kd3_sio *s)
{
	int ret = kd3_sio_send(s, s->line, s->line_len);
	kd3_wipe(s->line, s->line_len);
	s->line_len = 0;
	return ret;
}

/* Adds p[n] (no '\n' inside) to the line being gathered; an over-long line is dropped. */
static void gather(kd3_sio *s, const uint8_t *p, size_t n)
{
	if (s->line_too_long)
		return;
	if (n > sizeof(s->line) - s->line_len) {
		kd3_log_error("line longer than %d bytes not sent (one line is one message)",
		              KD3_PAYLOAD_MAX);
		s->line_too_long = 1;
		kd3_wipe(s->line, s->line_len);
		s->line_len = 0;
		return;
	}
	memcpy(s->line + s->line_len, p, n);
	s->line_len += n;
}

/* The end of a line: send it, unless it was dropped for its length. */
static int end_line(kd3_sio *s)
{
	if (s->line_too_long) {
		s->line_too_long = 0;
		return KD3_OK;
	}
	return send_line(s);
}

/* Reads what in_fd has; sends each whole line. At EOF sends a last partial line and
 * closes our direction (the loop then stops reading in_fd). */
static int read_input(kd3_sio *s, int in_fd)
{
	uint8_t chunk[SIO_CHUNK];
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
		return ret != KD3_OK ? ret : kd3_sio_close(s);
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

/* The socket is readable: take its bytes, handle the frames, and the end of stream. */
static int on_socket(kd3_sio *s, FILE *out_file)
{
	int eof = 0;
	int ret = read_sock(s, &eof);

	if (ret == KD3_OK)
		ret = drain_frames(s, out_file);
	if (ret != KD3_OK || !eof || s->peer->state == KD3_PS_CLOSED)
		return ret;
	return kd3_peer_eof(s->peer); /* KD3_OK only after the peer's CLOSE */
}

/* Both sides closed: clean, unless the peer's CLOSE named a failure. */
static int closed_result(const kd3_sio *s)
{
	if (s->close_reason == KD3_CLOSE_NORMAL)
		return KD3_OK;
	return s->close_reason == KD3_E_EXPIRED ? KD3_E_EXPIRED : KD3_E_PEER_ERROR;
}

/* The key's lifetime ran out: end the session with a CLOSE that says so (it carries no
 * data, and tells the peer why instead of leaving it a truncated stream). */
static int expired(kd3_sio *s)
{
	const char *why = kd3_strerror(KD3_E_EXPIRED);
	uint32_t generation = s->peer->ch.tx.generation;
	if (kd3_peer_close(s->peer, KD3_E_EXPIRED, why, &s->tx_w) == KD3_OK &&
	    kd3_sio_send_out(s, KD3_R_CLOSE) == KD3_OK) {
		close_key_update(s, generation);
		emit_close(s, "us", KD3_E_EXPIRED, why);
	}
	return KD3_E_EXPIRED;
}

/* Once we closed, the peer must answer with its CLOSE by the deadline close_ours set:
 * KD3_E_TIMEOUT after it, else *wait_ms shortened to wake at it. */
static int close_wait(kd3_sio *s, int *wait_ms)
{
	uint64_t now = kd3_now_ms();
	if (!s->close_deadline_ms) /* closed some other way: the deadline starts now */
		s->close_deadline_ms = now + (uint64_t)s->io_timeout_ms;
	if (now >= s->close_deadline_ms)
		return KD3_E_TIMEOUT;
	if (s->close_deadline_ms - now < (uint64_t)*wait_ms)
		*wait_ms = (int)(s->close_deadline_ms - now);
	return KD3_OK;
}

/* The default input: lines of fd, each one DATA message; at EOF our CLOSE. */
static int lines_readable(kd3_sio *s, void *ctx)
{
	const int *fd = ctx;
	return read_input(s, *fd);
}

int kd3_sio_run(kd3_sio *s, int in_fd, FILE *out_file)
{
	kd3_sio_input in = {.fd = in_fd, .on_readable = lines_readable, .ctx = &in_fd};
	return kd3_sio_run_input(s, &in, out_file);
}

int kd3_sio_run_input(kd3_sio *s, const kd3_sio_input *in, FILE *out_file)
{
	for (;;) {
		int ret = drain_frames(s, out_file);
		if (ret != KD3_OK)
			return ret;
		if (s->peer->state == KD3_PS_CLOSED)
			return closed_result(s);
		if (kd3_peer_check_expiry(s->peer, kd3_now_ms()) != KD3_OK)
			return expired(s);
		int wait_ms = SIO_TICK_MS;
		if (s->peer->ch.tx.closed && (ret = close_wait(s, &wait_ms)) != KD3_OK)
			return ret;

		struct pollfd pfd[2] = {{.fd = s->sock, .events = POLLIN},
		                        {.fd = in->fd, .events = POLLIN}};
		/* Input stops with our CLOSE (at its EOF, or a front end's quit). */
		int watch_in = in->fd >= 0 && !s->peer->ch.tx.closed;
		int n = poll(pfd, watch_in ? 2 : 1, wait_ms);
		if (n < 0 && errno != EINTR) {
			s->sock_errno = errno;
			return KD3_E_IO;
		}
		if (n <= 0)
			continue;
		if (pfd[0].revents) {
			ret = on_socket(s, out_file);
			if (ret != KD3_OK)
				return ret;
			if (s->peer->state == KD3_PS_CLOSED || s->peer->ch.rx.closed)
				return closed_result(s); /* nothing may follow the peer's CLOSE */
		}
		if (watch_in && pfd[1].revents && (ret = in->on_readable(s, in->ctx)) != KD3_OK)
			return ret;
	}
}

/* ---- reporting ---------------------------------------------------------------------- */

void kd3_sio_describe(const kd3_sio *s, int err, char *out, size_t cap)
{
	const char *wire = kd3_err_wire_name(s->peer_error);

	switch (err) {
	case KD3_OK:
		snprintf(out, cap, "%s", kd3_strerror(err));
		return;
	case KD3_E_PEER_ERROR:
		if (s->established)
			snprintf(out, cap, "%s closed the session with reason %u (%s): %s",
			         s->peer_role, s->peer_error,
			         kd3_err_is_wire(s->peer_error) ? wire
			                                        : kd3_strerror(s->peer_error),
			         s->peer_error_text);
		else if (kd3_err_is_wire(s->peer_error))
			snprintf(out, cap, "%s reported %s: %s", s->peer_role, wire,
			         s->peer_error_text);
		else
			snprintf(out, cap, "%s reported error code %u: %s", s->peer_role,
			         s->peer_error, s->peer_error_text);
		return;
	case KD3_E_TRUNCATED:
		if (!s->established)
			snprintf(out, cap, "%s closed the connection before the handshake finished",
			         s->peer_role);
		else
			snprintf(out, cap, "%s", kd3_strerror(err));
		return;
	case KD3_E_TIMEOUT:
		if (!s->established)
			snprintf(out, cap, "timed out waiting for the %s (handshake)",
			         s->peer_role);
		else if (s->peer->ch.tx.closed)
			snprintf(out, cap, "timed out waiting for the %s to close the session",
			         s->peer_role);
		else
			snprintf(out, cap, "timed out waiting for the %s", s->peer_role);
		return;
	default:
		break;
	}
	if (err == KD3_E_IO && s->sock_errno)
		snprintf(out, cap, "connection to the %s lost: %s", s->peer_role,
		         strerror(s->sock_errno));
	else if (err == KD3_E_IO && s->out_errno)
		snprintf(out, cap, "cannot write a received message: %s", strerror(s->out_errno));
	else if (!s->established && (err == KD3_E_MALFORMED || err == KD3_E_UNEXPECTED))
		snprintf(out, cap, "handshake failed: %s from the %s", kd3_strerror(err),
		         s->peer_role);
	else if (!s->established)
		snprintf(out, cap, "handshake failed: %s", kd3_strerror(err));
	else
		snprintf(out, cap, "%s", kd3_strerror(err));
}

void kd3_sio_report(const kd3_sio *s, int err)
{
	char line[512];

	if (err == KD3_OK)
		return;
	kd3_sio_describe(s, err, line, sizeof(line));
	kd3_log_error("%s", line);
}

const char *kd3_sio_err_name(const kd3_sio *s, int err)
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

int kd3_sio_exit_code(const kd3_sio *s, int err)
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
