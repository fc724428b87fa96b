/* libkd3's blocking layer, the responder: a listening TCP socket, and for each
 * initiator the exchange with the KDCs (message 2 over UDP, retransmitted, each KDC of
 * the list in turn) until the session is established. */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addrs.h"
#include "conn.h"
#include "err.h"
#include "items.h"
#include "msg.h"
#include "resolve.h"

#define KDCS_MAX 8
/* Retransmission: each KDC gets a first wait of 500 ms, doubled each round. */
#define KDC_FIRST_WAIT_MS 500
#define KDC_ROUNDS        3
/* An ERROR that came over UDP is asked again over TCP, within this long. */
#define KDC_TCP_WAIT_MS 2000

struct kd3_server {
	kd3_key key;
	kd3_options opts;
	int fd;
	int port;
	kd3_addr kdcs[KDCS_MAX];
	size_t nkdcs;
};

/* One entry of the KDC list: an address, or a name whose every address joins it. */
static int kdc_item(void *ctx, const char *s, size_t n, char *why, size_t len)
{
	kd3_server *srv = ctx;
	char item[KD3_HOST_MAX + 16];
	kd3_addr got[KDCS_MAX];
	size_t ngot = 0;

	if (n >= sizeof(item)) {
		kd3_lib_text(why, len, "the KDC list holds an over-long entry");
		return KD3_E_ARG;
	}
	memcpy(item, s, n);
	item[n] = '\0';
	int ret = kd3_addrs_resolve("KDC", item, KD3_KDC_PORT_DEFAULT, 0, srv->opts.timeout_ms, got,
	                            KDCS_MAX, &ngot, why, len);
	if (ret != KD3_OK)
		return ret == KD3_E_CONFIG ? KD3_E_ARG : ret;
	for (size_t i = 0; i < ngot; i++) {
		if (srv->nkdcs == KDCS_MAX) {
			kd3_lib_text(why, len, "the KDC list gives more than %d addresses",
			             KDCS_MAX);
			return KD3_E_ARG;
		}
		srv->kdcs[srv->nkdcs++] = got[i];
	}
	return KD3_OK;
}

/* "192.0.2.1:7088, kdc2.example.org" (spaces around an entry allowed), up to eight
 * addresses in all. A name that does not resolve keeps its own code (KD3_E_NOT_FOUND,
 * KD3_E_TIMEOUT); a malformed list is KD3_E_ARG. */
static int parse_kdcs(kd3_server *srv, const char *list, char *err, size_t err_len)
{
	int ret = kd3_split_items(list, kdc_item, srv, err, err_len);
	if (ret == KD3_OK || ret == KD3_E_NOT_FOUND || ret == KD3_E_TIMEOUT || ret == KD3_E_IO)
		return ret;
	return KD3_E_ARG; /* an empty entry: KD3_E_CONFIG */
}

/* An address or a name, bound to the name's first address; port 0 for a free port
 * ("127.0.0.1:0", "[::1]:0", "localhost:0"). */
static int parse_listen(kd3_server *srv, const char *address, kd3_addr *a, char *err,
                        size_t err_len)
{
	size_t n = 0;
	int ret = kd3_addrs_resolve("listen", address, KD3_RESPONDER_PORT_DEFAULT,
	                            KD3_ADDRS_PASSIVE | KD3_ADDRS_PORT0, srv->opts.timeout_ms, a, 1,
	                            &n, err, err_len);
	return ret == KD3_E_CONFIG ? KD3_E_ARG : ret;
}

static int listen_on(kd3_server *srv, const char *address, char *err, size_t err_len)
{
	kd3_addr a;
	int one = 1;

	int ret = parse_listen(srv, address, &a, err, err_len);
	if (ret != KD3_OK)
		return ret;
	srv->fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->fd < 0 || setsockopt(srv->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(srv->fd, (const struct sockaddr *)&a.ss, a.len) != 0 || listen(srv->fd, 64) != 0) {
		char sys[KD3_LIB_SYSERR_MAX];
		kd3_lib_text(err, err_len, "cannot listen on %s: %s", address,
		             kd3_lib_syserr(errno, sys));
		return KD3_E_IO;
	}
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(srv->fd, (struct sockaddr *)&ss, &len) != 0)
		return KD3_E_IO;
	srv->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
	                                     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return KD3_OK;
}

int kd3_server_new(kd3_server **out, const kd3_key *key, const char *address, const char *kdcs,
                   const kd3_options *opts, char *err, size_t err_len)
{
	kd3_lib_text(err, err_len, "%s", "");
	if (!out)
		return KD3_E_ARG;
	*out = NULL;
	if (!key || key->nkeys == 0 || !address || !kdcs)
		return KD3_E_ARG;
	kd3_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return KD3_E_NOMEM;
	srv->fd = -1;
	srv->key = *key;
	srv->opts = kd3_lib_options(opts);
	int ret = parse_kdcs(srv, kdcs, err, err_len);
	if (ret == KD3_OK)
		ret = listen_on(srv, address, err, err_len);
	if (ret != KD3_OK) {
		kd3_server_free(srv);
		return ret;
	}
	*out = srv;
	return KD3_OK;
}

int kd3_server_port(const kd3_server *srv)
{
	return srv ? srv->port : -1;
}

void kd3_server_free(kd3_server *srv)
{
	if (!srv)
		return;
	if (srv->fd >= 0)
		close(srv->fd);
	kd3_wipe(srv, sizeof(*srv));
	free(srv);
}

/* ---- the KDC ------------------------------------------------------------------------ */

/* The KDCs' sockets for one exchange: one per KDC, opened when first asked and kept
 * until the end, so that a late answer to an earlier try is still heard. */
typedef struct kdc_socks {
	struct pollfd p[KDCS_MAX];
	size_t n;
	uint64_t deadline_ms; /* the exchange's: a TCP confirmation may take until then */
} kdc_socks;

/* Message 2 to KDC i, on its own connected socket (answers from that address only). */
static int send_to(const kd3_server *srv, kdc_socks *ks, size_t i, const uint8_t *req,
                   size_t req_len)
{
	const kd3_addr *kdc = &srv->kdcs[i];

	if (ks->p[i].fd < 0) {
		int fd = socket(kdc->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return KD3_E_IO;
		if (connect(fd, (const struct sockaddr *)&kdc->ss, kdc->len) != 0) {
			close(fd); /* tried again next round */
			return KD3_E_IO;
		}
		ks->p[i].fd = fd;
	}
	return send(ks->p[i].fd, req, req_len, 0) == (ssize_t)req_len ? KD3_OK : KD3_E_IO;
}

/* The same M2 to the same KDC over TCP, its one frame back in reply (*len), by
 * deadline_ms. An off-path attacker who can forge a datagram cannot answer inside a
 * TCP connection. */
static int ask_over_tcp(const kd3_addr *kdc, const uint8_t *req, size_t req_len, uint8_t *reply,
                        size_t cap, size_t *len, uint64_t deadline_ms)
{
	uint64_t now = kd3_now_ms();
	int fd = -1, sys_err = 0;
	size_t sent = 0, got = 0;

	*len = 0;
	if (now >= deadline_ms)
		return KD3_E_TIMEOUT;
	int wait = deadline_ms - now > KDC_TCP_WAIT_MS ? KDC_TCP_WAIT_MS : (int)(deadline_ms - now);
	uint64_t until = now + (uint64_t)wait;
	int ret = kd3_tcp_connect(kdc, wait, &fd, &sys_err);
	while (ret == KD3_OK && sent < req_len) {
		ssize_t n = send(fd, req + sent, req_len - sent, MSG_NOSIGNAL);
		if (n > 0)
			sent += (size_t)n;
		else if (n < 0 && (errno == EAGAIN || errno == EINTR))
			ret = kd3_wait_fd(fd, POLLOUT, until);
		else
			ret = KD3_E_IO;
	}
	for (long need = 0; ret == KD3_OK && (need <= 0 || got < (size_t)need);) {
		if ((ret = kd3_wait_fd(fd, POLLIN, until)) != KD3_OK)
			break;
		ssize_t n = recv(fd, reply + got, cap - got, 0);
		if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
			ret = KD3_E_IO; /* closed before a whole frame */
			break;
		}
		got += n > 0 ? (size_t)n : 0;
		need = kd3_frame_size(reply, got);
		if (need < 0 || (size_t)need > cap)
			ret = KD3_E_MALFORMED; /* not a frame, or longer than any answer */
		else if (need > 0 && got >= (size_t)need)
			*len = (size_t)need; /* the frame; bytes after it are not ours */
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

/* A UDP answer from KDC i for the session. An ERROR is first asked again over TCP: the
 * TCP answer decides; if TCP fails, the UDP ERROR is taken after all (the KDC may be
 * unreachable over TCP). */
static int give_answer(const kd3_server *srv, size_t i, kd3_session *s, const uint8_t *req,
                       size_t req_len, uint8_t *reply, size_t len, uint64_t deadline_ms)
{
	uint8_t tcp[KD3_LIB_KDC_REPLY_MAX];
	size_t tcp_len = 0;

	if (kd3_session_kdc_check(s, reply, len, NULL) == KD3_E_PEER_ERROR &&
	    ask_over_tcp(&srv->kdcs[i], req, req_len, tcp, sizeof(tcp), &tcp_len, deadline_ms) ==
	        KD3_OK) {
		memcpy(reply, tcp, tcp_len);
		len = tcp_len;
	}
	return kd3_session_kdc_reply(s, reply, len, kd3_now_ms());
}

/* Datagrams from any asked KDC, by deadline_ms, until one is the session's answer
 * (M3 for its n_r, or an ERROR): *ret then holds what the session made of it. Anything
 * else the session refuses without harm (KD3_E_UNEXPECTED, KD3_E_TOO_BIG) and the
 * wait goes on. KD3_E_TIMEOUT when none came. */
static int wait_answer(const kd3_server *srv, kdc_socks *ks, kd3_session *s, const uint8_t *req,
                       size_t req_len, uint8_t *reply, size_t cap, int *ret, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = kd3_now_ms();
		if (now >= deadline_ms)
			return KD3_E_TIMEOUT;
		int n = poll(ks->p, (nfds_t)ks->n, (int)(deadline_ms - now));
		if (n < 0 && errno != EINTR)
			return KD3_E_IO;
		for (size_t i = 0; n > 0 && i < ks->n; i++) {
			if (ks->p[i].fd < 0 || !(ks->p[i].revents & (POLLIN | POLLERR)))
				continue;
			ssize_t got = recv(ks->p[i].fd, reply, cap, MSG_TRUNC);
			if (got <= 0)
				continue; /* an ICMP error, say: that KDC is down */
			*ret = (size_t)got > cap ? KD3_E_TOO_BIG
			                         : give_answer(srv, i, s, req, req_len, reply,
			                                       (size_t)got, ks->deadline_ms);
			if (*ret != KD3_E_UNEXPECTED && *ret != KD3_E_TOO_BIG)
				return KD3_OK;
		}
	}
}

/* Message 2 to each KDC in turn, rounds of growing waits, until one answers or the
 * deadline; its answer goes to the session (which writes message 4). */
static int ask_kdcs(kd3_server *srv, kd3_conn *c, uint64_t deadline_ms)
{
	uint8_t req[KD3_FRAME_MAX], reply[KD3_FRAME_MAX];
	size_t req_len = 0;
	kdc_socks ks = {.n = srv->nkdcs, .deadline_ms = deadline_ms};
	int ret = kd3_session_kdc_request(c->s, req, sizeof(req), &req_len);
	int got = KD3_E_TIMEOUT, answer = KD3_OK;

	for (size_t i = 0; i < KDCS_MAX; i++)
		ks.p[i] = (struct pollfd){.fd = -1, .events = POLLIN};
	for (int round = 0; ret == KD3_OK && got != KD3_OK && round < KDC_ROUNDS; round++) {
		for (size_t i = 0; got != KD3_OK && i < srv->nkdcs; i++) {
			uint64_t now = kd3_now_ms();
			if (now >= deadline_ms)
				break;
			uint64_t wait = (uint64_t)KDC_FIRST_WAIT_MS << round;
			if (wait > deadline_ms - now)
				wait = deadline_ms - now;
			if (send_to(srv, &ks, i, req, req_len) == KD3_OK || ks.p[i].fd >= 0)
				got = wait_answer(srv, &ks, c->s, req, req_len, reply,
				                  sizeof(reply), &answer, now + wait);
		}
	}
	for (size_t i = 0; i < ks.n; i++)
		if (ks.p[i].fd >= 0)
			close(ks.p[i].fd);
	kd3_wipe(reply, sizeof(reply));
	if (ret != KD3_OK)
		return ret;
	if (got == KD3_OK)
		return answer;        /* M4 is in the output, or the KDC's refusal is the error */
	kd3_session_kdc_failed(c->s); /* an ERROR tells the initiator */
	return KD3_E_NO_KDC;
}

/* ---- accepting ---------------------------------------------------------------------- */

static int responder_session(kd3_server *srv, kd3_session **s)
{
	int ret = kd3_session_new_responder(s, &srv->key);
	if (ret == KD3_OK)
		ret = kd3_session_set_forward_secret(*s, srv->opts.forward_secret);
	if (ret == KD3_OK)
		ret = kd3_session_set_rekey(*s, srv->opts.rekey_records, 0, 0);
	if (ret != KD3_OK) {
		kd3_session_free(*s);
		*s = NULL;
	}
	return ret;
}

/* Message 1 in, the KDC asked, message 4 out, FINISHED in. */
static int serve_exchange(kd3_server *srv, kd3_conn *c)
{
	uint64_t deadline = kd3_now_ms() + (uint64_t)srv->opts.timeout_ms;
	uint8_t probe[1];
	size_t len = 0;
	int ret = KD3_OK;

	while (ret == KD3_OK && kd3_session_kdc_request(c->s, probe, 0, &len) == KD3_E_AGAIN &&
	       kd3_session_state(c->s) == KD3_STATE_HANDSHAKE)
		ret = kd3_lib_conn_pump(c, deadline);
	if (ret == KD3_OK && kd3_session_state(c->s) == KD3_STATE_HANDSHAKE)
		ret = ask_kdcs(srv, c, deadline);
	if (ret == KD3_OK)
		ret = kd3_lib_conn_flush(c, deadline);
	else
		kd3_lib_conn_flush(c, deadline); /* the ERROR that tells the initiator */
	if (ret == KD3_OK)
		ret = kd3_lib_conn_handshake(c, deadline);
	if (ret == KD3_E_CLOSED)
		ret = KD3_E_TRUNCATED;
	if (ret == KD3_OK && kd3_session_error(c->s))
		ret = kd3_session_error(c->s);
	return ret;
}

/* Errors of accept that belong to one connection, not the socket (accept(2)): the next
 * one is waited for. */
static int accept_again(int e)
{
	return e == EAGAIN || e == ECONNABORTED || e == EPROTO || e == ENETDOWN ||
	       e == ENOPROTOOPT || e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH ||
	       e == EOPNOTSUPP || e == ENETUNREACH;
}

/* The next connection (a descriptor), or -KD3_E_TIMEOUT when none came by timeout_ms
 * (-1: no limit), -KD3_E_AGAIN when a signal interrupted the wait, -KD3_E_IO with
 * errno. One that went away before it was taken, or a wake-up with nothing to take,
 * is waited past. */
static int accept_one(kd3_server *srv, int timeout_ms)
{
	struct pollfd p = {.fd = srv->fd, .events = POLLIN};
	uint64_t deadline = kd3_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);

	for (;;) {
		int wait = -1;
		if (timeout_ms >= 0) {
			uint64_t now = kd3_now_ms();
			wait = now >= deadline ? 0 : (int)(deadline - now);
		}
		int n = poll(&p, 1, wait);
		if (n == 0)
			return -KD3_E_TIMEOUT;
		if (n < 0)
			return errno == EINTR ? -KD3_E_AGAIN : -KD3_E_IO;
		int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno == EINTR)
			return -KD3_E_AGAIN;
		if (!accept_again(errno))
			return -KD3_E_IO;
		if (timeout_ms >= 0 && kd3_now_ms() >= deadline)
			return -KD3_E_TIMEOUT;
	}
}

int kd3_server_accept(kd3_server *srv, kd3_conn **c, int timeout_ms, char *err, size_t err_len)
{
	kd3_session *s = NULL;

	kd3_lib_text(err, err_len, "%s", "");
	if (!c)
		return KD3_E_ARG;
	*c = NULL;
	if (!srv)
		return KD3_E_ARG;
	int fd = accept_one(srv, timeout_ms);
	if (fd < 0) {
		char sys[KD3_LIB_SYSERR_MAX];
		if (fd == -KD3_E_TIMEOUT)
			kd3_lib_text(err, err_len, "no initiator came in time");
		else if (fd == -KD3_E_AGAIN)
			kd3_lib_text(err, err_len, "interrupted by a signal");
		else
			kd3_lib_text(err, err_len, "accept: %s", kd3_lib_syserr(errno, sys));
		return -fd;
	}
	int ret = responder_session(srv, &s);
	if (ret != KD3_OK) {
		close(fd);
		return ret;
	}
	if ((ret = kd3_lib_conn_new(c, fd, s, srv->opts.timeout_ms)) != KD3_OK) {
		close(fd);
		kd3_session_free(s);
		return ret;
	}
	if ((ret = serve_exchange(srv, *c)) != KD3_OK) {
		kd3_lib_conn_fail(*c, ret, "the exchange with the initiator failed");
		kd3_lib_text(err, err_len, "%s", (*c)->err_text);
		kd3_conn_free(*c);
		*c = NULL;
	}
	return ret;
}
