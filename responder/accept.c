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

/* Connections accepted per event before the loop serves the sessions. */
#define ACCEPT_BATCH 32

/* Out of descriptors: stop accepting for a moment instead of spinning on a
 * listening socket that stays readable. */
static void accept_pause(resp_server *srv, uint64_t now)
{
	kd3_log_error("accept: %s; pausing new connections", strerror(errno));
	resp_accept_watch_all(srv, 0);
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
		kd3_count(&srv->metrics.refused, 1);
		resp_refuse(srv, fd, from, now);
		return;
	}
	/* Records are small and interactive: do not hold them back (Nagle). */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	resp_session *s = resp_session_new(&srv->ctx, ++srv->next_id, fd, from, now);
	if (!s)
		return;
	resp_session_link(&srv->sessions, s);
	srv->nsessions++;
	kd3_count(&srv->metrics.accepted, 1);
	kd3_gauge_set(&srv->metrics.open, srv->nsessions); /* what max-sessions counts */
}

void resp_accept_watch_all(resp_server *srv, int on)
{
	for (size_t i = 0; i < srv->nlisten; i++)
		resp_watch_set(srv->ctx.epfd, &srv->listen[i], on ? EPOLLIN : 0);
}

void resp_accept(resp_server *srv, resp_watch *listening, uint64_t now)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		kd3_addr from;
		memset(&from, 0, sizeof(from));
		from.len = sizeof(from.ss);
		int fd = accept4(listening->fd, (struct sockaddr *)&from.ss, &from.len,
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
