#include "bench_peer.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "msg.h"
#include "net.h"

static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r > 0 ? 0 : -1;
}

int bp_send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(fd, POLLOUT, BP_IO_TIMEOUT_MS) != 0)
				return -1;
			continue;
		}
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Drops the frame handed out last. */
static void consume_last(bp_conn *c)
{
	if (c->rx_frame == 0)
		return;
	memmove(c->rx, c->rx + c->rx_frame, c->rx_len - c->rx_frame);
	c->rx_len -= c->rx_frame;
	c->rx_frame = 0;
}

/* 1: a whole frame is buffered (*frame, *len); 0: not yet; -1: not kd3 bytes. */
static int buffered_frame(bp_conn *c, uint8_t **frame, size_t *len)
{
	long size = kd3_frame_size(c->rx, c->rx_len);
	if (size < 0)
		return -1;
	if (size == 0 || (size_t)size > c->rx_len)
		return 0;
	c->rx_frame = (size_t)size;
	*frame = c->rx;
	*len = (size_t)size;
	return 1;
}

static int read_some(bp_conn *c, int flags, const char **why)
{
	ssize_t r;
	do
		r = recv(c->fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, flags);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		*why = "the responder closed the connection";
		return -1;
	}
	if (r < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 1;
		*why = "recv failed";
		return -1;
	}
	c->rx_len += (size_t)r;
	return 0;
}

int bp_try_frame(bp_conn *c, uint8_t **frame, size_t *len, const char **why)
{
	consume_last(c);
	for (;;) {
		int got = buffered_frame(c, frame, len);
		if (got != 0) {
			*why = "the responder sent bytes that are not kd3 frames";
			return got > 0 ? 0 : -1;
		}
		int r = read_some(c, MSG_DONTWAIT, why);
		if (r != 0)
			return r;
	}
}

int bp_next_frame(bp_conn *c, int timeout_ms, uint8_t **frame, size_t *len, const char **why)
{
	uint64_t deadline = b_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		int r = bp_try_frame(c, frame, len, why);
		if (r <= 0)
			return r;
		uint64_t now = b_now_ns();
		if (now >= deadline ||
		    wait_fd(c->fd, POLLIN, (int)((deadline - now) / 1000000u) + 1)) {
			*why = "no frame from the responder in time";
			return -1;
		}
	}
}

static int send_tx(bp_conn *c, const char **why)
{
	if (c->tx_w.err != KD3_OK || bp_send_all(c->fd, c->tx, c->tx_w.len) != 0) {
		*why = "cannot send to the responder";
		return -1;
	}
	kd3_wr_init(&c->tx_w, c->tx, sizeof(c->tx));
	return 0;
}

static int connect_loopback(const struct sockaddr_in *sa)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* A loopback connect completes or is refused at once: nothing to wait for. */
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
		close(fd);
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int bp_open(bp_conn *c, kd3_crypto *crypto, const struct sockaddr_in *responder,
            const b_principal *self, const char *peer_name, uint8_t suite, int forward_secret,
            const char **why)
{
	kd3_peer_config cfg;
	kd3_peer_out out;
	uint8_t *frame;
	size_t len;

	memset(&cfg, 0, sizeof(cfg));
	cfg.role = KD3_ROLE_INITIATOR;
	snprintf(cfg.self, sizeof(cfg.self), "%s", self->name);
	snprintf(cfg.peer_name, sizeof(cfg.peer_name), "%s", peer_name);
	cfg.keys[0].kvno = self->kvno;
	cfg.keys[0].sub = self->sub;
	cfg.nkeys = 1;
	cfg.suite = suite;
	cfg.forward_secret = forward_secret ? 1 : 0;
	cfg.suites_allowed = (1u << KD3_SUITE_AES256GCM) | (1u << KD3_SUITE_CHACHAPOLY);
	cfg.rekey_records = KD3_REKEY_RECORDS_DEFAULT;

	memset(&c->peer, 0, sizeof(c->peer)); /* so that bp_free is safe after any failure */
	c->rx_len = c->rx_frame = 0;
	kd3_wr_init(&c->tx_w, c->tx, sizeof(c->tx));
	c->fd = connect_loopback(responder);
	if (c->fd < 0) {
		*why = "cannot connect to the responder";
		return -1;
	}
	if (kd3_peer_init(&c->peer, &cfg, crypto, kd3_crypto_rng, crypto) != KD3_OK) {
		*why = "kd3_peer_init failed";
		return -1;
	}
	if (kd3_peer_start(&c->peer, &c->tx_w) != KD3_OK || send_tx(c, why) != 0) {
		*why = "cannot send M1";
		return -1;
	}
	if (bp_next_frame(c, BP_IO_TIMEOUT_MS, &frame, &len, why) != 0)
		return -1;
	memset(&out, 0, sizeof(out));
	out.to_peer = &c->tx_w;
	int ret = kd3_peer_input(&c->peer, KD3_SRC_PEER, frame, len, kd3_now_ms(), &out);
	if (ret != KD3_OK || !(out.events & KD3_EV_ESTABLISHED)) {
		*why = ret == KD3_E_PEER_ERROR ? "the responder or the KDC answered ERROR"
		                               : "M4 did not establish the session";
		return -1;
	}
	if (send_tx(c, why) != 0) /* FINISHED */
		return -1;
	c->established_ns = b_now_ns();
	return 0;
}

int bp_close(bp_conn *c, const char **why)
{
	uint8_t *frame;
	size_t len;
	kd3_peer_out out;

	if (kd3_peer_close(&c->peer, KD3_CLOSE_NORMAL, "bye", &c->tx_w) != KD3_OK ||
	    send_tx(c, why) != 0) {
		*why = "cannot send CLOSE";
		return -1;
	}
	for (int frames = 0; frames < 1000000; frames++) {
		if (bp_next_frame(c, BP_IO_TIMEOUT_MS, &frame, &len, why) != 0)
			return -1;
		memset(&out, 0, sizeof(out));
		out.to_peer = &c->tx_w;
		int ret = kd3_peer_input(&c->peer, KD3_SRC_PEER, frame, len, kd3_now_ms(), &out);
		if (ret != KD3_OK) {
			*why = "a record from the responder did not open, or it reported an error";
			return -1;
		}
		if (out.events & (KD3_EV_CLOSED | KD3_EV_PEER_CLOSED)) {
			if (out.close_reason != KD3_CLOSE_NORMAL) {
				*why = "the responder closed with an error reason";
				return -1;
			}
			return 0;
		}
	}
	*why = "no CLOSE from the responder";
	return -1;
}

void bp_free(bp_conn *c)
{
	kd3_peer_free(&c->peer);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	kd3_wipe(c->rx, sizeof(c->rx));
	kd3_wipe(c->tx, sizeof(c->tx));
}
