#include "server.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define LOOP_EVENTS 64
/* The loop wakes at least this often even with nothing due (a safety net). */
#define LOOP_MAX_WAIT_MS 1000

static void loop_stop(resp_server *srv, int signo, uint64_t now)
{
	if (srv->stopping) {
		kd3_log_info("second signal: closing every session now");
		srv->stop_deadline = now;
		return;
	}
	kd3_log_info("stopping (%s)", strsignal(signo));
	srv->stopping = 1;
	srv->stop_deadline = now + RESP_STOP_MS;
	for (size_t i = 0; i < srv->nlisten; i++)
		resp_watch_close(srv->ctx.epfd, &srv->listen[i]);
	resp_broadcast_close(srv);
	for (resp_session *s = srv->sessions; s; s = resp_session_next(s))
		resp_session_stop(s, now);
}

static void loop_signals(resp_server *srv, uint64_t now)
{
	struct signalfd_siginfo si;

	while (read(srv->sig.fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			resp_reap(srv, now);
		else
			loop_stop(srv, (int)si.ssi_signo, now);
	}
}

static void loop_dispatch(resp_server *srv, resp_watch *w, uint32_t events, uint64_t now)
{
	if (w->fd < 0)
		return; /* closed earlier in this batch */
	switch (w->kind) {
	case RESP_W_LISTEN:
		resp_accept(srv, w, now);
		break;
	case RESP_W_SIGNAL:
		loop_signals(srv, now);
		break;
	case RESP_W_STDIN:
		resp_broadcast_read(srv, now);
		break;
	case RESP_W_STDOUT:
		resp_outlet_flush(&srv->outlet, srv->ctx.epfd);
		break;
	case RESP_W_REFUSED:
		resp_refused_event(srv, w);
		break;
	case RESP_W_RESOLVED:
		resp_kdcs_on_event(&srv->kdcs);
		break;
	default:
		resp_session_on_event(w->owner, w, events, now);
		break;
	}
}

/* Frees the sessions that ended; a child still running is kept for reaping. */
static void loop_free_dead(resp_server *srv)
{
	resp_session *s = srv->sessions;
	while (s) {
		resp_session *next = resp_session_next(s);
		if (resp_session_dead(s)) {
			resp_session_unlink(&srv->sessions, s);
			srv->nsessions--;
			kd3_gauge_set(&srv->metrics.open, srv->nsessions);
			pid_t pid = resp_session_live_child(s);
			resp_session_free(s);
			if (pid > 0)
				resp_reap_keep(srv, pid);
		}
		s = next;
	}
}

void resp_outlet_resume(resp_server *srv, uint64_t now)
{
	if (!resp_outlet_may_resume(&srv->outlet))
		return;
	srv->outlet.waiting = 0; /* set again by any session that stops once more */
	for (resp_session *s = srv->sessions; s; s = resp_session_next(s))
		resp_session_resume(s, now);
}

static void loop_timers(resp_server *srv, uint64_t now)
{
	resp_refused_timers(srv, now);
	resp_kdcs_timer(&srv->kdcs, now);
	for (resp_session *s = srv->sessions; s; s = resp_session_next(s)) {
		uint64_t d = resp_session_deadline(s);
		if (d && now >= d)
			resp_session_on_timer(s, now);
	}
	if (srv->stopping && now >= srv->stop_deadline)
		for (resp_session *s = srv->sessions; s; s = resp_session_next(s))
			resp_session_abort(s);
	if (srv->accept_resume && now >= srv->accept_resume && !srv->stopping) {
		srv->accept_resume = 0;
		resp_accept_watch_all(srv, 1);
	}
}

/* Milliseconds until the earliest deadline, at most LOOP_MAX_WAIT_MS. */
static int loop_wait_ms(const resp_server *srv, uint64_t now)
{
	uint64_t next = now + LOOP_MAX_WAIT_MS;

	for (const resp_session *s = srv->sessions; s; s = resp_session_next(s)) {
		uint64_t d = resp_session_deadline(s);
		if (d && d < next)
			next = d;
	}
	if (srv->stopping && srv->stop_deadline < next)
		next = srv->stop_deadline;
	if (srv->accept_resume && srv->accept_resume < next)
		next = srv->accept_resume;
	uint64_t kdcs = resp_kdcs_deadline(&srv->kdcs);
	if (kdcs && kdcs < next)
		next = kdcs;
	uint64_t refused = resp_refused_deadline(srv);
	if (refused && refused < next)
		next = refused;
	return next > now ? (int)(next - now) : 0;
}

/* Stopped: every session is gone, and stdout took what was queued for it (or never
 * will: it failed, or the stop deadline passed). */
static int loop_done(const resp_server *srv, uint64_t now)
{
	if (!srv->stopping || srv->sessions != NULL)
		return 0;
	return resp_outlet_pending(&srv->outlet) == 0 || srv->outlet.failed ||
	       now >= srv->stop_deadline;
}

int resp_server_run(resp_server *srv)
{
	struct epoll_event ev[LOOP_EVENTS];

	while (!loop_done(srv, kd3_now_ms())) {
		int n = epoll_wait(srv->ctx.epfd, ev, LOOP_EVENTS, loop_wait_ms(srv, kd3_now_ms()));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kd3_log_error("epoll_wait: %s", strerror(errno));
			return KD3_E_IO;
		}
		uint64_t now = kd3_now_ms();
		for (int i = 0; i < n; i++)
			loop_dispatch(srv, ev[i].data.ptr, ev[i].events, now);
		resp_outlet_resume(srv, kd3_now_ms());
		loop_timers(srv, kd3_now_ms());
		loop_free_dead(srv);
	}
	kd3_log_info("stopped");
	return KD3_OK;
}
