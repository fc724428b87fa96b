/* Default mode: each stdin line goes as one DATA record to every established
 * session. stdin is read non-blocking through our own descriptor (stdfd.h), so a
 * terminal or pipe shared with the shell keeps its mode, and a read never waits even
 * when someone else took the bytes epoll announced. stdin that cannot be polled
 * (/dev/null, a regular file), is closed, or is the terminal of a background job is
 * not read. */
#include "server.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

void resp_broadcast_open(resp_server *srv)
{
	/* A background job reading its terminal would be stopped (SIGTTIN). */
	if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) != getpgrp()) {
		kd3_log_info("stdin is a terminal of another job: not reading it");
		return;
	}
	if (resp_stdfd_open(&srv->in_fd, STDIN_FILENO) != KD3_OK) {
		kd3_log_debug("stdin is not readable; not reading it");
		return;
	}
	srv->in.fd = srv->in_fd.fd;
	if (srv->in_fd.regular || resp_watch_set(srv->ctx.epfd, &srv->in, EPOLLIN) != KD3_OK) {
		kd3_log_debug("stdin cannot be polled; not reading it");
		resp_broadcast_close(srv);
	}
}

void resp_broadcast_close(resp_server *srv)
{
	resp_watch_forget(srv->ctx.epfd, &srv->in); /* closed below if it is ours */
	resp_stdfd_close(&srv->in_fd);
}

static void broadcast_line(resp_server *srv, kd3_view line, uint64_t now)
{
	for (resp_session *s = srv->sessions; s; s = resp_session_next(s))
		resp_session_send_line(s, line.p, line.len, now);
}

/* One read per event: the sessions and the other descriptors get their turn. */
void resp_broadcast_read(resp_server *srv, uint64_t now)
{
	size_t room = 0;
	uint8_t *at = resp_linebuf_space(&srv->in_lines, &room);
	kd3_view line;

	ssize_t n = read(srv->in.fd, at, room);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) { /* EOF: the last unterminated line, then stdin is done */
		while (resp_linebuf_rest(&srv->in_lines, &line))
			broadcast_line(srv, line, now);
		resp_broadcast_close(srv);
		return;
	}
	resp_linebuf_added(&srv->in_lines, (size_t)n);
	while (resp_linebuf_next(&srv->in_lines, &line))
		broadcast_line(srv, line, now);
}
