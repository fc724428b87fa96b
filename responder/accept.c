#include "server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "msg.h"

/* Connections accepted per event before the loop serves the sessions. */
#define ACCEPT_BATCH 32

/* Over --max-sessions: one ERROR BUSY, sent if the socket takes it now, then close. */
static void accept_refuse(resp_server *srv, int fd, const kd3_addr *from)
{
	uint8_t buf[KD3_HDR_LEN + KD3_ERROR_BODY_MAX];
	kd3_writer w;
	char addr[64];

	kd3_addr_format(from, addr, sizeof(addr));
	kd3_log_info("refused %s: %zu sessions already (--max-sessions)", addr, srv->nsessions);
	kd3_wr_init(&w, buf, sizeof(buf));
	if (kd3_error_encode(&w, KD3_E_BUSY, "responder busy: too many sessions") == KD3_OK &&
	    send(fd, buf, w.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		kd3_log_debug("refused %s: could not send ERROR BUSY", addr);
	close(fd);
}

/* Out of descriptors: stop accepting for a moment instead of spinning on a
 * listening socket that stays readable. */
static void accept_pause(resp_server *srv, uint64_t now)
{
	kd3_log_error("accept: %s; pausing new connections", strerror(errno));
	resp_watch_set(srv->ctx.epfd, &srv->listen, 0);
	srv->accept_resume = now + RESP_ACCEPT_PAUSE_MS;
}

static void accept_one(resp_server *srv, int fd, const kd3_addr *from, uint64_t now)
{
	int one = 1;

	if (srv->stopping) {
		close(fd);
		return;
	}
	if (srv->nsessions >= srv->opts->max_sessions) {
		accept_refuse(srv, fd, from);
		return;
	}
	/* Records are small and interactive: do not hold them back (Nagle). */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	resp_session *s = resp_session_new(&srv->ctx, ++srv->next_id, fd, from, now);
	if (!s)
		return;
	resp_session_link(&srv->sessions, s);
	srv->nsessions++;
}

void resp_accept(resp_server *srv, uint64_t now)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		kd3_addr from;
		memset(&from, 0, sizeof(from));
		from.len = sizeof(from.ss);
		int fd = accept4(srv->listen.fd, (struct sockaddr *)&from.ss, &from.len,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_one(srv, fd, &from, now);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			accept_pause(srv, now);
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
			kd3_log_error("accept: %s", strerror(errno));
		return;
	}
}
