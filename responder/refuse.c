/* Over --max-sessions: one ERROR BUSY, sent if the socket takes it now. Then our FIN
 * (shutdown SHUT_WR) and a short linger reading and discarding until the initiator's
 * EOF: closing with its M1 unread would send a reset, which can destroy the ERROR
 * before the initiator reads it. At most RESP_REFUSED_MAX linger at once, each at most
 * RESP_REFUSED_LINGER_MS; past that a refused connection is closed at once. */
#include "server.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "msg.h"

/* Bytes discarded per event, so a refused peer cannot keep the loop busy. */
#define REFUSED_READ_BUDGET (64u * 1024u)

static resp_refused *refused_slot(resp_server *srv)
{
	for (size_t i = 0; i < RESP_REFUSED_MAX; i++)
		if (srv->refused[i].w.fd < 0)
			return &srv->refused[i];
	return NULL;
}

void resp_refuse(resp_server *srv, int fd, const kd3_addr *from, uint64_t now)
{
	uint8_t buf[KD3_HDR_LEN + KD3_ERROR_BODY_MAX];
	kd3_writer w;
	char addr[64];
	resp_refused *r;

	kd3_addr_format(from, addr, sizeof(addr));
	kd3_log_info("refused %s: %zu sessions already (--max-sessions)", addr, srv->nsessions);
	kd3_wr_init(&w, buf, sizeof(buf));
	if (kd3_error_encode(&w, KD3_E_BUSY, "responder busy: too many sessions") != KD3_OK ||
	    send(fd, buf, w.len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)w.len)
		kd3_log_debug("refused %s: could not send ERROR BUSY", addr);
	shutdown(fd, SHUT_WR);
	if (!(r = refused_slot(srv))) {
		close(fd);
		return;
	}
	resp_watch_init(&r->w, RESP_W_REFUSED, NULL);
	r->w.fd = fd;
	r->deadline = now + RESP_REFUSED_LINGER_MS;
	if (resp_watch_set(srv->ctx.epfd, &r->w, EPOLLIN) != KD3_OK)
		resp_watch_close(srv->ctx.epfd, &r->w);
}

void resp_refused_event(resp_server *srv, resp_watch *w)
{
	uint8_t scratch[4096];

	for (size_t budget = REFUSED_READ_BUDGET; budget > 0; budget -= sizeof(scratch)) {
		ssize_t n = recv(w->fd, scratch, sizeof(scratch), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			break; /* EOF or an error: done */
	}
	resp_watch_close(srv->ctx.epfd, w);
}

uint64_t resp_refused_deadline(const resp_server *srv)
{
	uint64_t d = 0;
	for (size_t i = 0; i < RESP_REFUSED_MAX; i++) {
		const resp_refused *r = &srv->refused[i];
		if (r->w.fd >= 0 && (!d || r->deadline < d))
			d = r->deadline;
	}
	return d;
}

void resp_refused_timers(resp_server *srv, uint64_t now)
{
	for (size_t i = 0; i < RESP_REFUSED_MAX; i++)
		if (srv->refused[i].w.fd >= 0 && now >= srv->refused[i].deadline)
			resp_watch_close(srv->ctx.epfd, &srv->refused[i].w);
}

void resp_refused_close_all(resp_server *srv)
{
	for (size_t i = 0; i < RESP_REFUSED_MAX; i++)
		resp_watch_close(srv->ctx.epfd, &srv->refused[i].w);
}
