/* libkd3's blocking layer: the I/O of a kd3_conn, and kd3_connect. Every wait is a
 * poll() bounded by a deadline; nothing blocks past the caller's timeout. */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addrs.h"
#include "err.h"
#include "msg.h"
#include "resolve.h"

const char *kd3_lib_syserr(int e, char buf[KD3_LIB_SYSERR_MAX])
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
	return strerror_r(e, buf, KD3_LIB_SYSERR_MAX); /* GNU: the text, maybe not in buf */
#else
	if (strerror_r(e, buf, KD3_LIB_SYSERR_MAX) != 0) /* XSI (musl, newlib, BSD) */
		snprintf(buf, KD3_LIB_SYSERR_MAX, "error %d", e);
	return buf;
#endif
}

kd3_options kd3_lib_options(const kd3_options *opts)
{
	kd3_options o = {0};
	if (opts)
		o = *opts;
	if (o.timeout_ms <= 0)
		o.timeout_ms = KD3_LIB_TIMEOUT_DEFAULT_MS;
	if (o.suite == 0)
		o.suite = KD3_CHACHA20_POLY1305;
	if (o.rekey_records == 0)
		o.rekey_records = KD3_LIB_REKEY_DEFAULT;
	return o;
}

int kd3_lib_conn_fail(kd3_conn *c, int err, const char *what)
{
	const char *why = kd3_session_error_text(c->s);
	if (!*why)
		why = kd3_strerror(err);
	kd3_lib_text(c->err_text, sizeof(c->err_text), "%s: %s", what, why);
	return err;
}

int kd3_lib_conn_new(kd3_conn **out, int fd, kd3_session *s, int timeout_ms)
{
	int one = 1;
	kd3_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return KD3_E_NOMEM;
	if (kd3_set_nonblock(fd) != KD3_OK) {
		free(c);
		return KD3_E_IO;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* messages, not bulk */
	c->fd = fd;
	c->s = s;
	c->timeout_ms = timeout_ms;
	*out = c;
	return KD3_OK;
}

/* A send or receive failed: the connection is over (a partial send cannot be resumed:
 * the bytes left the session). This call returns why; every later one KD3_E_IO, never
 * KD3_E_TIMEOUT (which says "nothing came yet" to a caller that would wait again). */
static int conn_break(kd3_conn *c, int err)
{
	c->broken = KD3_E_IO;
	return err;
}

int kd3_lib_conn_flush(kd3_conn *c, uint64_t deadline_ms)
{
	uint8_t chunk[4096];
	char sys[KD3_LIB_SYSERR_MAX];

	if (c->broken)
		return c->broken;
	while (kd3_session_output_pending(c->s) > 0) {
		size_t len = 0;
		kd3_session_output(c->s, chunk, sizeof(chunk), &len);
		for (size_t off = 0; off < len;) {
			ssize_t n = send(c->fd, chunk + off, len - off, MSG_NOSIGNAL);
			if (n > 0) {
				off += (size_t)n;
				continue;
			}
			int ret = KD3_E_IO;
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				ret = kd3_wait_fd(c->fd, POLLOUT, deadline_ms);
			if (ret != KD3_OK) {
				int e = errno;
				kd3_wipe(chunk, sizeof(chunk));
				kd3_lib_text(c->err_text, sizeof(c->err_text), "sending: %s",
				             ret == KD3_E_TIMEOUT ? "the peer takes no more bytes"
				                                  : kd3_lib_syserr(e, sys));
				return conn_break(c, ret);
			}
		}
	}
	kd3_wipe(chunk, sizeof(chunk));
	return KD3_OK;
}

/* Bytes read before and not yet taken (the session held a message) go in first. */
static int give(kd3_conn *c)
{
	size_t used = 0;
	int ret = kd3_session_receive(c->s, c->in + c->in_off, c->in_len - c->in_off, &used,
	                              kd3_now_ms());
	c->in_off += used;
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	return ret;
}

int kd3_lib_conn_pump(kd3_conn *c, uint64_t deadline_ms)
{
	char sys[KD3_LIB_SYSERR_MAX];
	int ret = KD3_OK;

	if (c->broken)
		return c->broken;
	if (c->in_off < c->in_len) {
		ret = give(c);
	} else if (c->eof) {
		ret = kd3_session_eof(c->s);
		if (ret == KD3_OK)
			ret = KD3_E_CLOSED;
	} else if ((ret = kd3_wait_fd(c->fd, POLLIN, deadline_ms)) == KD3_OK) {
		ssize_t n = recv(c->fd, c->in, sizeof(c->in), 0);
		if (n > 0) {
			c->in_off = 0;
			c->in_len = (size_t)n;
			ret = give(c);
		} else if (n == 0) {
			c->eof = 1;
		} else if (errno != EAGAIN && errno != EINTR) {
			int e = errno;
			ret = conn_break(c, KD3_E_IO);
			kd3_lib_text(c->err_text, sizeof(c->err_text), "receiving: %s",
			             kd3_lib_syserr(e, sys));
		}
	}
	/* Whatever the session wrote (FINISHED, M4, an ERROR or CLOSE) goes out, failure
	 * or not: the peer should learn why. */
	int sent = kd3_lib_conn_flush(c, kd3_now_ms() + (uint64_t)c->timeout_ms);
	return ret != KD3_OK ? ret : sent;
}

int kd3_lib_conn_handshake(kd3_conn *c, uint64_t deadline_ms)
{
	int ret = KD3_OK;
	while (ret == KD3_OK && kd3_session_state(c->s) == KD3_STATE_HANDSHAKE)
		ret = kd3_lib_conn_pump(c, deadline_ms);
	if (ret == KD3_E_CLOSED)
		ret = KD3_E_TRUNCATED; /* the stream ended during the exchange */
	if (ret == KD3_OK && kd3_session_state(c->s) != KD3_STATE_ESTABLISHED)
		ret = kd3_session_error(c->s) ? kd3_session_error(c->s) : KD3_E_CLOSED;
	if (ret == KD3_E_TIMEOUT && kd3_session_close(c->s) == KD3_OK)
		kd3_lib_conn_flush(c, kd3_now_ms() + 200); /* an ERROR says why, best effort */
	return ret;
}

/* ---- the client --------------------------------------------------------------------- */

static int initiator_session(kd3_session **s, const kd3_key *key, const char *responder,
                             const kd3_options *o)
{
	int ret = kd3_session_new_initiator(s, key, responder);
	if (ret == KD3_OK)
		ret = kd3_session_set_suite(*s, o->suite);
	if (ret == KD3_OK)
		ret = kd3_session_set_forward_secret(*s, o->forward_secret);
	if (ret == KD3_OK)
		ret = kd3_session_set_rekey(*s, o->rekey_records, 0, 0);
	if (ret != KD3_OK) {
		kd3_session_free(*s);
		*s = NULL;
	}
	return ret;
}

/* Each address in turn until one takes the connection; the time left is shared out
 * between those still to try, so one that never answers cannot use all of it. */
static int connect_any(const kd3_addr *addrs, size_t n, uint64_t deadline, int *fd, int *sys_err)
{
	int ret = KD3_E_IO;
	for (size_t i = 0; i < n && ret != KD3_OK; i++) {
		uint64_t now = kd3_now_ms();
		uint64_t budget = deadline > now ? (deadline - now) / (n - i) : 0;
		ret = kd3_tcp_connect(&addrs[i], budget ? (int)budget : 1, fd, sys_err);
	}
	return ret;
}

int kd3_connect(kd3_conn **c, const kd3_key *key, const char *responder, const char *address,
                const kd3_options *opts, char *err, size_t err_len)
{
	kd3_options o = kd3_lib_options(opts);
	char sys[KD3_LIB_SYSERR_MAX];
	kd3_session *s = NULL;
	kd3_addr addrs[KD3_RESOLVE_ADDR_MAX];
	int fd = -1;

	kd3_lib_text(err, err_len, "%s", "");
	if (!c)
		return KD3_E_ARG;
	*c = NULL;
	if (!key || !responder || !address)
		return KD3_E_ARG;
	uint64_t deadline = kd3_now_ms() + (uint64_t)o.timeout_ms;
	size_t naddrs = 0;
	int ret = kd3_addrs_resolve("address", address, KD3_RESPONDER_PORT_DEFAULT, 0, o.timeout_ms,
	                            addrs, KD3_RESOLVE_ADDR_MAX, &naddrs, err, err_len);
	if (ret != KD3_OK)
		return ret == KD3_E_CONFIG ? KD3_E_ARG : ret;
	ret = initiator_session(&s, key, responder, &o);
	if (ret != KD3_OK) {
		kd3_lib_text(err, err_len, "cannot set up the session: %s", kd3_strerror(ret));
		return ret;
	}
	int sys_err = 0;
	if ((ret = connect_any(addrs, naddrs, deadline, &fd, &sys_err)) != KD3_OK) {
		kd3_lib_text(err, err_len, "cannot connect to %s: %s", address,
		             ret == KD3_E_TIMEOUT ? "no answer in time"
		                                  : kd3_lib_syserr(sys_err, sys));
		kd3_session_free(s);
		return ret;
	}
	if ((ret = kd3_lib_conn_new(c, fd, s, o.timeout_ms)) != KD3_OK) {
		close(fd);
		kd3_session_free(s);
		return ret;
	}
	ret = kd3_session_start(s, kd3_now_ms());
	if (ret == KD3_OK)
		ret = kd3_lib_conn_flush(*c, deadline);
	if (ret == KD3_OK)
		ret = kd3_lib_conn_handshake(*c, deadline);
	if (ret != KD3_OK) {
		kd3_lib_conn_fail(*c, ret, "the exchange with the responder failed");
		kd3_lib_text(err, err_len, "%s", (*c)->err_text);
		kd3_conn_free(*c);
		*c = NULL;
	}
	return ret;
}

/* ---- established -------------------------------------------------------------------- */

int kd3_conn_send(kd3_conn *c, const void *msg, size_t len)
{
	if (!c || (!msg && len))
		return KD3_E_ARG;
	if (c->broken)
		return c->broken;
	uint64_t deadline = kd3_now_ms() + (uint64_t)c->timeout_ms;
	int ret = kd3_session_write(c->s, msg, len, kd3_now_ms());
	if (ret == KD3_E_AGAIN && (ret = kd3_lib_conn_flush(c, deadline)) == KD3_OK)
		ret = kd3_session_write(c->s, msg, len, kd3_now_ms());
	if (ret == KD3_OK)
		ret = kd3_lib_conn_flush(c, deadline);
	else if (ret != KD3_E_TOO_BIG)
		kd3_lib_conn_flush(c, deadline); /* a CLOSE that says why, if one was written */
	if (ret != KD3_OK && ret != KD3_E_IO && ret != KD3_E_TIMEOUT)
		kd3_lib_conn_fail(c, ret, "send");
	return ret;
}

int kd3_conn_recv(kd3_conn *c, void *buf, size_t cap, size_t *len, int timeout_ms)
{
	if (len)
		*len = 0;
	if (!c || !len || (!buf && cap))
		return KD3_E_ARG;
	uint64_t deadline = kd3_now_ms() + (uint64_t)(timeout_ms < 0 ? c->timeout_ms : timeout_ms);
	for (;;) {
		int ret = kd3_session_read(c->s, buf, cap, len);
		if (ret != KD3_E_AGAIN) {
			if (ret != KD3_OK && ret != KD3_E_CLOSED && ret != KD3_E_NO_SPACE)
				kd3_lib_conn_fail(c, ret, "receive");
			return ret;
		}
		ret = kd3_lib_conn_pump(c, deadline);
		if (ret != KD3_OK && ret != KD3_E_CLOSED) {
			if (ret != KD3_E_IO)
				kd3_lib_conn_fail(c, ret, "receive");
			return ret;
		}
	}
}

int kd3_conn_rekey(kd3_conn *c)
{
	if (!c)
		return KD3_E_ARG;
	if (c->broken)
		return c->broken;
	uint64_t deadline = kd3_now_ms() + (uint64_t)c->timeout_ms;
	int ret = kd3_session_rekey(c->s, kd3_now_ms());
	if (ret == KD3_E_AGAIN && (ret = kd3_lib_conn_flush(c, deadline)) == KD3_OK)
		ret = kd3_session_rekey(c->s, kd3_now_ms());
	if (ret == KD3_OK)
		ret = kd3_lib_conn_flush(c, deadline);
	return ret;
}

int kd3_conn_close(kd3_conn *c)
{
	uint8_t discard[256];
	size_t len;

	if (!c)
		return KD3_E_ARG;
	if (c->broken)
		return c->broken;
	uint64_t deadline = kd3_now_ms() + (uint64_t)c->timeout_ms;
	int ret = kd3_session_close(c->s);
	if (ret == KD3_E_AGAIN && (ret = kd3_lib_conn_flush(c, deadline)) == KD3_OK)
		ret = kd3_session_close(c->s);
	if (ret == KD3_OK)
		ret = kd3_lib_conn_flush(c, deadline);
	/* The peer's CLOSE is due now; messages it sent before it are dropped. */
	while (ret == KD3_OK && kd3_session_state(c->s) == KD3_STATE_ESTABLISHED) {
		int got = kd3_session_read(c->s, discard, sizeof(discard), &len);
		if (got == KD3_E_NO_SPACE) {
			uint8_t big[KD3_MESSAGE_MAX];
			got = kd3_session_read(c->s, big, sizeof(big), &len);
			kd3_wipe(big, sizeof(big));
		}
		if (got == KD3_E_AGAIN)
			ret = kd3_lib_conn_pump(c, deadline);
		else if (got != KD3_OK && got != KD3_E_CLOSED)
			ret = got;
	}
	kd3_wipe(discard, sizeof(discard));
	if (ret == KD3_E_CLOSED || (ret == KD3_OK && kd3_session_state(c->s) == KD3_STATE_CLOSED))
		ret = kd3_session_error(c->s); /* the peer's CLOSE may name a failure */
	else if (ret == KD3_OK)
		ret = kd3_session_error(c->s) ? kd3_session_error(c->s) : KD3_E_TRUNCATED;
	return ret == KD3_OK ? KD3_OK : kd3_lib_conn_fail(c, ret, "close");
}

void kd3_conn_free(kd3_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0) {
		/* End our direction and read briefly what the peer still sends, so that our
		 * last frame is not lost to the reset a close with unread input makes. */
		shutdown(c->fd, SHUT_WR);
		uint64_t deadline = kd3_now_ms() + 200;
		while (!c->eof && kd3_wait_fd(c->fd, POLLIN, deadline) == KD3_OK) {
			ssize_t n = recv(c->fd, c->in, sizeof(c->in), 0);
			if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
				break;
		}
		close(c->fd);
	}
	kd3_session_free(c->s);
	kd3_wipe(c, sizeof(*c));
	free(c);
}

const char *kd3_conn_peer(const kd3_conn *c)
{
	return c ? kd3_session_peer(c->s) : NULL;
}

int kd3_conn_pending(const kd3_conn *c)
{
	if (!c)
		return 0;
	const kd3_session *s = c->s;
	long frame = kd3_frame_size(s->rx.buf, s->rx.len); /* a whole one not handled yet */
	return c->in_off < c->in_len || c->eof || c->broken || s->held_len || s->err ||
	       s->peer_closed || frame < 0 || (frame > 0 && (size_t)frame <= s->rx.len);
}

int kd3_conn_fd(const kd3_conn *c)
{
	return c ? c->fd : -1;
}

const char *kd3_conn_error_text(const kd3_conn *c)
{
	return c ? c->err_text : "";
}
