/* --exec: each established session talks to its own child. DATA payloads go to the
 * child's stdin, one line each; each line of the child's stdout goes back as one DATA
 * record (lines longer than KD3_PAYLOAD_MAX are split, see linebuf.h). When the peer
 * CLOSEs we close the child's stdin once its input is written and keep forwarding its
 * output; when its stdout ends we send our CLOSE naming its exit status. */
#include "session_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

/* Bytes read from a child per event before the loop serves the others. */
#define EXEC_READ_BUDGET (64u * 1024u)

void resp_exec_start(resp_session *s, uint64_t now)
{
	char err[160];

	if (resp_child_spawn(s->child, s->ctx->exec_cmd, s->peer_name, s->id, err, sizeof(err)) !=
	    KD3_OK) {
		kd3_log_error("session %llu: cannot start the command: %s",
		              (unsigned long long)s->id, err);
		resp_out_close(s, KD3_E_INTERNAL, "responder could not start its command", now);
		resp_session_finish(s, KD3_E_INTERNAL, "the command could not start", now);
		return;
	}
	s->has_child = 1;
	kd3_log_info("session %llu: command started (pid %d)", (unsigned long long)s->id,
	             (int)s->child->pid);
}

void resp_exec_deliver(resp_session *s, kd3_view data)
{
	resp_child *c = s->child;

	if (!s->has_child || c->in.fd < 0) {
		kd3_log_debug("session %llu: the command's stdin is closed; DATA dropped",
		              (unsigned long long)s->id);
		return;
	}
	if (resp_outq_append(&c->inq, data.p, data.len) != KD3_OK ||
	    resp_outq_append(&c->inq, "\n", 1) != KD3_OK) {
		resp_session_drop(s, KD3_E_NOMEM, NULL);
		return;
	}
	if (resp_outq_pending(&c->inq) > RESP_PAUSE_HIGH)
		s->in_paused = 1; /* the child is behind: stop reading the initiator */
}

void resp_exec_peer_closed(resp_session *s)
{
	s->child->close_in = 1; /* once its pending input is written (resp_exec_sync) */
}

/* The child's stdout ended and it exited (or did not within RESP_REAP_WAIT_MS). */
static void exec_child_done(resp_session *s, uint64_t now)
{
	resp_child *c = s->child;
	char desc[64], text[96];

	c->reap_deadline = 0;
	resp_child_describe(c, desc, sizeof(desc));
	int not_started = c->exited && WIFEXITED(c->status) &&
	                  (WEXITSTATUS(c->status) == 126 || WEXITSTATUS(c->status) == 127);
	if (not_started)
		kd3_log_error("session %llu: the command could not start (/bin/sh %s: not found "
		              "or not executable)",
		              (unsigned long long)s->id, desc);
	else
		kd3_log_info("session %llu: command %s", (unsigned long long)s->id, desc);
	snprintf(text, sizeof(text), "command %s", desc);
	resp_out_close(s, not_started ? KD3_E_INTERNAL : KD3_CLOSE_NORMAL, text, now);
	if (s->phase == RESP_ACTIVE && kd3_session_state(s->ks) == KD3_STATE_CLOSED)
		resp_session_finish(s, KD3_OK, text, now);
	/* else: the initiator's CLOSE comes next (bounded by close_deadline) */
}

static void exec_stdout_eof(resp_session *s, uint64_t now)
{
	resp_child *c = s->child;
	kd3_view line;

	while (s->phase == RESP_ACTIVE && resp_linebuf_rest(&c->lines, &line))
		resp_out_data(s, line.p, line.len, now);
	resp_watch_close(s->ctx->epfd, &c->out);
	c->out_eof = 1;
	c->out_deadline = 0;
	if (s->phase != RESP_ACTIVE)
		return;
	if (c->exited)
		exec_child_done(s, now);
	else
		c->reap_deadline = now + RESP_REAP_WAIT_MS;
}

static void exec_read(resp_session *s, uint64_t now)
{
	resp_child *c = s->child;
	size_t budget = EXEC_READ_BUDGET;
	kd3_view line;

	while (s->phase == RESP_ACTIVE && c->out.fd >= 0 && budget > 0 &&
	       resp_outq_pending(&s->out) < RESP_PAUSE_HIGH) {
		size_t room = 0;
		uint8_t *at = resp_linebuf_space(&c->lines, &room);
		ssize_t n = read(c->out.fd, at, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			exec_stdout_eof(s, now);
			return;
		}
		resp_linebuf_added(&c->lines, (size_t)n);
		budget -= (size_t)n < budget ? (size_t)n : budget;
		while (s->phase == RESP_ACTIVE && resp_linebuf_next(&c->lines, &line))
			resp_out_data(s, line.p, line.len, now);
	}
}

void resp_exec_on_event(resp_session *s, resp_watch *w, uint64_t now)
{
	if (s->phase != RESP_ACTIVE || !s->has_child)
		return;
	if (w == &s->child->out)
		exec_read(s, now);
	/* the child's stdin is written in resp_exec_sync */
}

/* Writes what the child takes; closes its stdin when it is gone or when the peer
 * closed and everything is written. */
static void exec_write(resp_session *s)
{
	resp_child *c = s->child;
	int sys_err = 0;

	if (c->in.fd >= 0 && resp_outq_pending(&c->inq) > 0 &&
	    resp_outq_flush(&c->inq, c->in.fd, 0, &sys_err) != KD3_OK) {
		kd3_log_debug("session %llu: the command's stdin closed (%s)",
		              (unsigned long long)s->id, strerror(sys_err));
		resp_watch_close(s->ctx->epfd, &c->in);
	}
	if (c->in.fd >= 0 && c->close_in && resp_outq_pending(&c->inq) == 0)
		resp_watch_close(s->ctx->epfd, &c->in);
	if (c->in.fd < 0)
		resp_outq_free(&c->inq);
}

void resp_exec_sync(resp_session *s, uint64_t now)
{
	resp_child *c = s->child;
	int epfd = s->ctx->epfd;

	if (s->phase != RESP_ACTIVE)
		return;
	exec_write(s);
	if (s->in_paused && resp_outq_pending(&c->inq) < RESP_PAUSE_LOW) {
		s->in_paused = 0;
		resp_proto_frames(s, now); /* the frames already read come first */
		if (s->phase != RESP_ACTIVE)
			return;
		exec_write(s);
	}
	uint32_t in_ev = resp_outq_pending(&c->inq) ? EPOLLOUT : 0;
	uint32_t out_ev = resp_outq_pending(&s->out) < RESP_PAUSE_HIGH ? EPOLLIN : 0;
	if (resp_watch_set(epfd, &c->in, in_ev) != KD3_OK ||
	    resp_watch_set(epfd, &c->out, out_ev) != KD3_OK)
		resp_session_drop(s, KD3_E_IO, "epoll_ctl failed");
}

/* The child exited RESP_STDOUT_GRACE_MS ago and its stdout is still open: something
 * it started holds it. Take what is there, then stop waiting: close the pipe, end the
 * process group, CLOSE. */
static void exec_stdout_abandon(resp_session *s, uint64_t now)
{
	resp_child *c = s->child;

	c->out_deadline = 0;
	exec_read(s, now);
	if (s->phase != RESP_ACTIVE || c->out_eof)
		return;
	kd3_log_info("session %llu: the command exited but what it started still holds its "
	             "stdout; closing it and ending its process group",
	             (unsigned long long)s->id);
	resp_child_kill_group(c);
	resp_watch_close(s->ctx->epfd, &c->in);
	resp_outq_free(&c->inq);
	exec_stdout_eof(s, now);
}

void resp_exec_on_timer(resp_session *s, uint64_t now)
{
	if (s->child->reap_deadline && now >= s->child->reap_deadline)
		exec_child_done(s, now); /* stdout ended but it has not exited: CLOSE anyway */
	if (s->phase == RESP_ACTIVE && s->child->out_deadline && now >= s->child->out_deadline)
		exec_stdout_abandon(s, now);
}

int resp_session_child_exited(resp_session *s, pid_t pid, int status, uint64_t now)
{
	resp_child *c = s->child;

	if (!s->has_child || c->pid != pid || c->exited)
		return 0;
	c->exited = 1;
	c->status = status;
	if (s->phase == RESP_ACTIVE && c->out_eof)
		exec_child_done(s, now);
	else if (s->phase == RESP_ACTIVE)
		c->out_deadline = now + RESP_STDOUT_GRACE_MS;
	resp_session_sync(s, now);
	return 1;
}
