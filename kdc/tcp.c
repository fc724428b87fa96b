/* kdc TCP: connections from a preallocated pool, each with a fixed input buffer
 * (kd3_stream) and a deadline. The active list is kept in deadline order (a connection
 * moves to the tail when its deadline is renewed), so expiry only looks at the head.
 * A peer must send a whole frame within the idle timeout: a slow or silent peer costs
 * a slot and a timer, never a thread. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "msg.h"
#include "worker.h"

static void active_unlink(kdc_worker *w, kdc_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		w->active_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		w->active_tail = c->prev;
	c->prev = c->next = NULL;
}

static void active_append(kdc_worker *w, kdc_conn *c)
{
	c->next = NULL;
	c->prev = w->active_tail;
	if (w->active_tail)
		w->active_tail->next = c;
	else
		w->active_head = c;
	w->active_tail = c;
}

/* A new deadline; the idle timeout is the same for all, so the tail stays latest. */
static void conn_touch(kdc_worker *w, kdc_conn *c)
{
	c->deadline_ms = kd3_now_ms() + w->cfg->idle_ms;
	active_unlink(w, c);
	active_append(w, c);
}

static void conn_close(kdc_worker *w, kdc_conn *c)
{
	if (c->fd < 0)
		return;
	/* close() takes it out of the epoll set: no descriptor of ours is ever duplicated or
	 * inherited (the KDC never forks), so an EPOLL_CTL_DEL first would be a wasted call. */
	close(c->fd);
	c->fd = -1;
	kd3_stream_wipe(&c->in);
	active_unlink(w, c);
	w->active--;
	kd3_gauge_set(&w->metrics.tcp_open, w->active);
	c->next = w->free_list;
	w->free_list = c;
}

/* Stops watching the listening socket for KDC_TCP_PAUSE_MS; kdc_tcp_expire resumes. */
static void listen_pause(kdc_worker *w)
{
	if (w->listen_resume_ms)
		return;
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->tcp_fd, NULL);
	w->listen_resume_ms = kd3_now_ms() + KDC_TCP_PAUSE_MS;
}

static void listen_resume(kdc_worker *w)
{
	struct epoll_event ev = {.events = EPOLLIN};
	ev.data.u64 = KDC_TAG_LISTEN;
	w->listen_resume_ms = 0;
	if (w->tcp_fd < 0) /* draining: closed for good */
		return;
	if (w->spare_fd < 0)
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->tcp_fd, &ev) != 0 && errno != EEXIST) {
		kd3_log_error("tcp: cannot watch the listening socket: %s", strerror(errno));
		listen_pause(w); /* try again later */
	}
}

/* Out of descriptors: free this worker's spare one to accept and close the connection
 * at once, so the listening socket does not stay readable and spin the loop. The
 * descriptor table is the process's, though: another thread may take the freed slot
 * before our accept() or open(), leaving us without a spare. Unless a connection was
 * shed and the spare is back, stop watching the listening socket for a moment rather
 * than spin on it while it stays readable. */
static void accept_shed(kdc_worker *w)
{
	int shed = 0;
	if (w->spare_fd >= 0) {
		close(w->spare_fd);
		w->spare_fd = -1;
		int fd = accept(w->tcp_fd, NULL, NULL);
		if (fd >= 0) {
			close(fd);
			shed = 1;
		}
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	if (!shed || w->spare_fd < 0)
		listen_pause(w);
}

/* Out of descriptors, every refused connection is counted and the count logged at most
 * once a second (a burst of 1,000 connects once made 571 lines). kdc_tcp_expire logs
 * what is left when the second is over. */
static void fd_log(kdc_worker *w, uint64_t now_ms)
{
	if (!w->fd_unlogged || now_ms < w->fd_log_next_ms)
		return;
	kd3_log_error("worker %u: tcp: out of file descriptors: %u connection%s refused (one "
	              "such line a second at most)",
	              w->id, w->fd_unlogged, w->fd_unlogged == 1 ? "" : "s");
	w->fd_unlogged = 0;
	w->fd_log_next_ms = now_ms + 1000;
}

/* A slot for fd; NULL (fd closed) at the cap. TCP_NODELAY comes from the listening
 * socket: Linux copies it to every accepted one. */
static kdc_conn *conn_open(kdc_worker *w, int fd, const kd3_addr *peer)
{
	kdc_conn *c = w->free_list;
	if (!c) { /* the cap: one ERROR BUSY if the socket takes it now, then close */
		uint8_t busy[KD3_HDR_LEN + KD3_ERROR_BODY_MAX];
		kd3_writer bw;
		kd3_wr_init(&bw, busy, sizeof(busy));
		if (kd3_error_encode(&bw, KD3_E_BUSY, "KDC busy: too many connections") == KD3_OK)
			(void)send(fd, busy, bw.len, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		kd3_count(&w->metrics.tcp_refused, 1);
		kd3_log_debug("tcp: %zu connections open, one more refused", w->active);
		return NULL;
	}
	w->free_list = c->next;
	c->fd = fd;
	c->peer = *peer;
	kd3_stream_init(&c->in);
	c->prev = c->next = NULL;
	c->deadline_ms = kd3_now_ms() + w->cfg->idle_ms;
	active_append(w, c);
	w->active++;
	kd3_count(&w->metrics.tcp_accepted, 1);
	kd3_gauge_set(&w->metrics.tcp_open, w->active);
	return c;
}

static void conn_watch(kdc_worker *w, kdc_conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
	ev.data.u64 = KDC_TAG_CONN + (uint64_t)(c - w->conns);
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
		kd3_log_error("tcp: cannot watch a connection: %s", strerror(errno));
		conn_close(w, c);
	}
}

/* One connection per wake-up, as nginx does by default: the listening socket is level
 * triggered, so epoll reports it again while the backlog holds more, and the usual case
 * (one client connecting) costs no accept() that fails with EAGAIN. A client sends its
 * request right after connecting, so it is often here already: it is read at once,
 * before the connection is watched, which saves a trip through epoll_wait. */
void kdc_tcp_accept(kdc_worker *w)
{
	if (w->tcp_fd < 0) /* a drain closed it earlier in this batch of events */
		return;
	for (;;) {
		kd3_addr peer;
		memset(&peer, 0, sizeof(peer));
		peer.len = sizeof(peer.ss);
		int fd = accept4(w->tcp_fd, (struct sockaddr *)&peer.ss, &peer.len,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			kdc_conn *c = conn_open(w, fd, &peer);
			if (c)
				kdc_tcp_readable(w, c);
			if (c && c->fd >= 0)
				conn_watch(w, c);
			return;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE) {
			kd3_count(&w->metrics.tcp_refused, 1);
			w->fd_unlogged++;
			fd_log(w, kd3_now_ms());
			accept_shed(w);
		} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			kd3_log_error("tcp: accept failed: %s", strerror(errno));
		}
		return;
	}
}

/* The whole reply or nothing: a peer that does not read its replies is dropped. */
static int conn_send(kdc_conn *c, const uint8_t *p, size_t n)
{
	ssize_t r;
	do
		r = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	return r == (ssize_t)n ? KD3_OK : KD3_E_IO;
}

/* A header that is not kd3's: ERROR MALFORMED, then close. */
static void conn_bad_header(kdc_worker *w, kdc_conn *c)
{
	kd3_writer out;
	kd3_wr_init(&out, w->tcp_out, sizeof(w->tcp_out));
	int ok = kd3_error_encode(&out, KD3_E_MALFORMED, "bad frame header") == KD3_OK &&
	         conn_send(c, w->tcp_out, out.len) == KD3_OK;
	kdc_request_refused(w, "tcp", &c->peer, "bad frame header; connection closed", ok);
	conn_close(w, c);
}

/* Answers every whole frame in the buffer. KD3_OK while the connection stays open. */
static int conn_frames(kdc_worker *w, kdc_conn *c)
{
	for (;;) {
		uint8_t *frame = NULL;
		size_t len = 0, out_len = 0;
		int got = kd3_stream_next(&c->in, &frame, &len);
		if (got == 0)
			return KD3_OK;
		if (got < 0) {
			conn_bad_header(w, c);
			return KD3_E_MALFORMED;
		}
		int send = kdc_request(w, "tcp", &c->peer, frame, len, w->tcp_out,
		                       sizeof(w->tcp_out), &out_len);
		kd3_stream_consume(&c->in, len);
		if (send && conn_send(c, w->tcp_out, out_len) != KD3_OK) {
			conn_close(w, c);
			return KD3_E_IO;
		}
		/* Only a request that earned a key buys more time: a client sending refused
		 * frames cannot hold a connection slot forever. */
		if (send && w->tcp_out[1] == KD3_T_M3)
			conn_touch(w, c);
	}
}

void kdc_tcp_readable(kdc_worker *w, kdc_conn *c)
{
	size_t room = 0;
	uint8_t *space;
	ssize_t r;

	if (c->fd < 0)
		return;
	space = kd3_stream_space(&c->in, &room);
	if (room == 0) { /* cannot happen: a whole frame always fits */
		conn_close(w, c);
		return;
	}
	do
		r = recv(c->fd, space, room, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (r <= 0) { /* the peer closed, or the connection failed */
		conn_close(w, c);
		return;
	}
	kd3_stream_added(&c->in, (size_t)r);
	if (conn_frames(w, c) == KD3_OK && w->draining && c->in.len == 0)
		conn_close(w, c); /* its request is answered: nothing else is taken now */
}

int kdc_tcp_expire(kdc_worker *w, uint64_t now_ms)
{
	uint64_t wait = 1000;
	fd_log(w, now_ms);
	if (w->listen_resume_ms && w->listen_resume_ms <= now_ms)
		listen_resume(w);
	if (w->listen_resume_ms)
		wait = w->listen_resume_ms - now_ms;
	if (w->fd_unlogged && w->fd_log_next_ms - now_ms < wait) /* its count is due then */
		wait = w->fd_log_next_ms - now_ms;
	while (w->active_head && w->active_head->deadline_ms <= now_ms) {
		kdc_conn *c = w->active_head;
		char addr[64];
		kd3_addr_format(&c->peer, addr, sizeof(addr));
		kd3_log_debug("tcp %s: idle timeout, connection closed", addr);
		conn_close(w, c);
	}
	if (w->draining && w->drain_deadline_ms <= now_ms)
		kdc_tcp_close_all(w);
	if (!w->active_head && !w->listen_resume_ms && !w->fd_unlogged)
		return -1; /* nothing to time: wait for an event */
	if (w->active_head && w->active_head->deadline_ms - now_ms < wait)
		wait = w->active_head->deadline_ms - now_ms;
	if (w->draining && w->drain_deadline_ms - now_ms < wait)
		wait = w->drain_deadline_ms - now_ms;
	return wait > 1000 ? 1000 : (int)wait;
}

void kdc_tcp_close_all(kdc_worker *w)
{
	w->fd_log_next_ms = 0; /* stopping: the last count is logged now */
	fd_log(w, kd3_now_ms());
	while (w->active_head)
		conn_close(w, w->active_head);
}

void kdc_tcp_close_idle(kdc_worker *w)
{
	kdc_conn *c = w->active_head;
	while (c) {
		kdc_conn *next = c->next;
		if (c->in.len == 0)
			conn_close(w, c);
		c = next;
	}
}
