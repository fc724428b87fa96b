/* kdcfloor: the floor under the KDC's CPU per request on this machine. It serves the
 * same sockets the same way `kdc serve` does (a thread per worker, each with its own
 * SO_REUSEPORT UDP and TCP sockets and an epoll loop; recvmmsg and sendmmsg for UDP;
 * for TCP one accept per wake-up, the request read at once, the reply sent, the
 * connection closed when the peer closes it) but does no work: each M2 is answered
 * with a frame of an M3's size carrying the request's n_r and zeros, no lookup, no
 * crypto, no log. kdcload --no-verify drives it exactly as it drives the KDC, so the
 * kernel's share of a request is measured side by side with kd3 and krb5kdc.
 *
 *   kdcfloor --listen 127.0.0.1:PORT [--workers N]
 *
 * It says "serving on" on stderr once listening and stops on SIGTERM or SIGINT. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"
#include "err.h"
#include "msg.h"

#define FLOOR_BATCH   32
#define FLOOR_WORKERS 64
#define FLOOR_CONNS   1024
#define FRAME_CAP     2048
#define REPLY_LEN     (KD3_HDR_LEN + KD3_M3_BODY_LEN)
#define TAG_UDP       ((uint64_t)-1)
#define TAG_LISTEN    ((uint64_t)-2)

typedef struct conn {
	int fd;
	uint8_t in[FRAME_CAP];
	size_t len;
} conn;

typedef struct worker {
	pthread_t th;
	int ep, udp, tcp;
	conn *conns;
	uint8_t rx[FLOOR_BATCH][FRAME_CAP], tx[FLOOR_BATCH][REPLY_LEN];
	struct sockaddr_storage from[FLOOR_BATCH];
	struct iovec rx_iov[FLOOR_BATCH], tx_iov[FLOOR_BATCH];
	struct mmsghdr rx_h[FLOOR_BATCH], tx_h[FLOOR_BATCH];
} worker;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* The reply to one M2 frame: an M3-sized frame that starts with its n_r (kdcload
 * matches replies by it). 0 when the request is not an M2. */
static size_t answer(const uint8_t *req, size_t len, uint8_t *out)
{
	kd3_frame f;
	kd3_m2 m2;
	if (kd3_frame_decode(req, len, &f) != KD3_OK || f.type != KD3_T_M2 ||
	    kd3_m2_decode(f.body.p, f.body.len, &m2) != KD3_OK)
		return 0;
	memset(out, 0, REPLY_LEN);
	out[0] = req[0];
	out[1] = KD3_T_M3;
	out[2] = (uint8_t)(KD3_M3_BODY_LEN >> 8);
	out[3] = (uint8_t)KD3_M3_BODY_LEN;
	memcpy(out + KD3_HDR_LEN, m2.n_r, KD3_NONCE_LEN);
	return REPLY_LEN;
}

static void udp_ready(worker *w)
{
	for (size_t i = 0; i < FLOOR_BATCH; i++) {
		w->rx_iov[i] = (struct iovec){w->rx[i], FRAME_CAP};
		memset(&w->rx_h[i], 0, sizeof(w->rx_h[i]));
		w->rx_h[i].msg_hdr.msg_name = &w->from[i];
		w->rx_h[i].msg_hdr.msg_namelen = sizeof(w->from[i]);
		w->rx_h[i].msg_hdr.msg_iov = &w->rx_iov[i];
		w->rx_h[i].msg_hdr.msg_iovlen = 1;
	}
	int n = recvmmsg(w->udp, w->rx_h, FLOOR_BATCH, MSG_DONTWAIT, NULL);
	unsigned ntx = 0;
	for (int i = 0; i < n; i++) {
		size_t len = answer(w->rx[i], w->rx_h[i].msg_len, w->tx[ntx]);
		if (len == 0)
			continue;
		w->tx_iov[ntx] = (struct iovec){w->tx[ntx], len};
		memset(&w->tx_h[ntx], 0, sizeof(w->tx_h[ntx]));
		w->tx_h[ntx].msg_hdr.msg_name = &w->from[i];
		w->tx_h[ntx].msg_hdr.msg_namelen = w->rx_h[i].msg_hdr.msg_namelen;
		w->tx_h[ntx].msg_hdr.msg_iov = &w->tx_iov[ntx];
		w->tx_h[ntx].msg_hdr.msg_iovlen = 1;
		ntx++;
	}
	if (ntx)
		(void)sendmmsg(w->udp, w->tx_h, ntx, MSG_DONTWAIT);
}

static void conn_close(conn *c)
{
	close(c->fd); /* leaves the epoll set with it */
	c->fd = -1;
	c->len = 0;
}

/* Reads what is there and answers each whole frame; closes on EOF or error. */
static void conn_readable(worker *w, conn *c)
{
	ssize_t r = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)r;
	for (;;) {
		long whole = kd3_frame_size(c->in, c->len);
		if (whole == 0 || (whole > 0 && (size_t)whole > c->len))
			return;
		size_t len = whole > 0 ? answer(c->in, (size_t)whole, w->tx[0]) : 0;
		if (len == 0 ||
		    send(c->fd, w->tx[0], len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len) {
			conn_close(c);
			return;
		}
		memmove(c->in, c->in + whole, c->len - (size_t)whole);
		c->len -= (size_t)whole;
	}
}

static void tcp_accept(worker *w)
{
	int fd = accept4(w->tcp, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (fd >= FLOOR_CONNS) {
		close(fd);
		return;
	}
	conn *c = &w->conns[fd];
	c->fd = fd;
	c->len = 0;
	conn_readable(w, c);
	if (c->fd < 0)
		return;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)fd};
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		conn_close(c);
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	struct epoll_event ev[64];
	while (!stopping) {
		int n = epoll_wait(w->ep, ev, 64, 200);
		for (int i = 0; i < n; i++) {
			uint64_t tag = ev[i].data.u64;
			if (tag == TAG_UDP)
				udp_ready(w);
			else if (tag == TAG_LISTEN)
				tcp_accept(w);
			else
				conn_readable(w, &w->conns[tag]);
		}
	}
	return NULL;
}

static int bound_socket(const struct sockaddr_in *sa, int type)
{
	int one = 1;
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0)
		b_die(1, "kdcfloor: cannot bind: %s", strerror(errno));
	if (type == SOCK_STREAM &&
	    (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	     listen(fd, 1024) != 0))
		b_die(1, "kdcfloor: cannot listen: %s", strerror(errno));
	return fd;
}

static void worker_start(worker *w, const struct sockaddr_in *sa)
{
	w->conns = calloc(FLOOR_CONNS, sizeof(*w->conns));
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!w->conns || w->ep < 0)
		b_die(1, "kdcfloor: out of memory");
	w->udp = bound_socket(sa, SOCK_DGRAM);
	w->tcp = bound_socket(sa, SOCK_STREAM);
	struct epoll_event u = {.events = EPOLLIN, .data.u64 = TAG_UDP};
	struct epoll_event l = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->udp, &u) != 0 ||
	    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->tcp, &l) != 0 ||
	    pthread_create(&w->th, NULL, worker_main, w) != 0)
		b_die(1, "kdcfloor: cannot start a worker: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"listen", required_argument, NULL, 'l'},
	                                   {"workers", required_argument, NULL, 'w'},
	                                   {NULL, 0, NULL, 0}};
	const char *listen_at = NULL;
	long nworkers = 2;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'l')
			listen_at = optarg;
		else if (c == 'w')
			nworkers = b_arg_long("--workers", optarg, 1, FLOOR_WORKERS);
		else
			b_die(2, "usage: kdcfloor --listen 127.0.0.1:PORT [--workers N]");
	}
	struct sockaddr_in sa;
	if (!listen_at || optind != argc || b_parse_loopback(listen_at, &sa) != 0)
		b_die(2, "usage: kdcfloor --listen 127.0.0.1:PORT [--workers N]");
	struct sigaction act = {.sa_handler = on_signal};
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	worker *ws = calloc((size_t)nworkers, sizeof(*ws));
	if (!ws)
		b_die(1, "kdcfloor: out of memory");
	for (long i = 0; i < nworkers; i++)
		worker_start(&ws[i], &sa);
	fprintf(stderr, "kdcfloor: serving on %s, %ld workers\n", listen_at, nworkers);
	for (long i = 0; i < nworkers; i++)
		pthread_join(ws[i].th, NULL);
	return 0;
}
