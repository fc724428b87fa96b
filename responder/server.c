#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "addrs.h"
#include "log.h"

#define LISTEN_BACKLOG 128

static int server_listen_one(resp_server *srv, const kd3_addr *a, resp_watch *w)
{
	int one = 1;
	char where[64];
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		kd3_log_error("cannot create a socket: %s", strerror(errno));
		return KD3_E_IO;
	}
	w->fd = fd;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0) {
		kd3_addr_format(a, where, sizeof(where));
		kd3_log_error("cannot listen on %s (%s): %s", where, srv->opts->listen,
		              strerror(errno));
		return KD3_E_IO;
	}
	if (resp_watch_set(srv->ctx.epfd, w, EPOLLIN) != KD3_OK) {
		kd3_log_error("epoll_ctl: %s", strerror(errno));
		return KD3_E_IO;
	}
	return KD3_OK;
}

/* Every address of --listen (a name may give several). */
static int server_listen(resp_server *srv)
{
	int ret = KD3_OK;
	for (size_t i = 0; i < srv->opts->nlisten && ret == KD3_OK; i++) {
		srv->nlisten = i + 1;
		ret = server_listen_one(srv, &srv->opts->listen_addrs[i], &srv->listen[i]);
	}
	return ret;
}

/* SIGTERM, SIGINT and SIGCHLD arrive through a signalfd, in the loop; SIGPIPE is
 * ignored (sends use MSG_NOSIGNAL, a dead child's pipe gives EPIPE). */
static int server_signals(resp_server *srv)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return KD3_E_IO;
	srv->sig.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (srv->sig.fd < 0 || resp_watch_set(srv->ctx.epfd, &srv->sig, EPOLLIN) != KD3_OK) {
		kd3_log_error("signalfd: %s", strerror(errno));
		return KD3_E_IO;
	}
	return KD3_OK;
}

static void server_ready_line(resp_server *srv)
{
	kd3_addr bound[RESP_LISTEN_MAX];
	char addr[RESP_LISTEN_MAX * 50];

	for (size_t i = 0; i < srv->nlisten; i++) { /* port 0: the one the kernel chose */
		memset(&bound[i], 0, sizeof(bound[i]));
		bound[i].len = sizeof(bound[i].ss);
		if (getsockname(srv->listen[i].fd, (struct sockaddr *)&bound[i].ss,
		                &bound[i].len) != 0)
			bound[i] = srv->opts->listen_addrs[i];
	}
	kd3_addrs_format(bound, srv->nlisten, addr, sizeof(addr));
	kd3_log_info("listening on %s as %s", addr, srv->ctx.self);
}

/* --metrics: the endpoint, on its own thread, reading what the loop counts. */
static int server_metrics(resp_server *srv)
{
	char err[256], addr[64];
	resp_metrics_view *v = &srv->metrics_view;
	if (!srv->opts->metrics[0])
		return KD3_OK;
	v->m = &srv->metrics;
	v->started = (int64_t)time(NULL);
	if (kd3_metrics_http_start(&srv->metrics_http, &srv->opts->metrics_addr,
	                           resp_metrics_render, v, err, sizeof(err)) != KD3_OK) {
		kd3_log_error("%s", err);
		return KD3_E_IO;
	}
	kd3_addr_format(&srv->opts->metrics_addr, addr, sizeof(addr));
	kd3_log_info("metrics at http://%s/metrics", addr);
	return KD3_OK;
}

int resp_server_open(resp_server *srv, const resp_opts *o, const resp_settings *set,
                     const char *self, struct kd3_transcript *transcript)
{
	int ret;

	memset(srv, 0, sizeof(*srv));
	srv->opts = o;
	srv->ctx.set = set;
	srv->ctx.self = self;
	srv->ctx.transcript = transcript;
	srv->ctx.metrics = &srv->metrics;
	srv->ctx.json = o->json;
	srv->ctx.start_us = kd3_now_us();
	srv->ctx.kdcs = &srv->kdcs;
	srv->kdcs.pipe_wr = -1;
	srv->kdcs.w.fd = -1;
	srv->ctx.exec_cmd = o->exec_cmd[0] ? o->exec_cmd : NULL;
	srv->ctx.handshake_ms = (uint32_t)(o->handshake_timeout_s * 1000u);
	srv->ctx.kdc_timeout_ms = (uint32_t)o->kdc_timeout_ms;
	for (size_t i = 0; i < RESP_LISTEN_MAX; i++)
		resp_watch_init(&srv->listen[i], RESP_W_LISTEN, NULL);
	resp_watch_init(&srv->sig, RESP_W_SIGNAL, NULL);
	resp_watch_init(&srv->in, RESP_W_STDIN, NULL);
	resp_stdfd_init(&srv->in_fd, STDIN_FILENO);
	resp_linebuf_init(&srv->in_lines);
	resp_outlet_init(&srv->outlet);
	for (size_t i = 0; i < RESP_REFUSED_MAX; i++)
		resp_watch_init(&srv->refused[i].w, RESP_W_REFUSED, NULL);
	srv->ctx.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->ctx.epfd < 0) {
		kd3_log_error("epoll_create1: %s", strerror(errno));
		return KD3_E_IO;
	}
	if ((ret = server_signals(srv)) != KD3_OK || (ret = server_listen(srv)) != KD3_OK)
		return ret;
	if ((ret = resp_kdcs_open(&srv->kdcs, &o->kdc, srv->ctx.epfd, &srv->metrics)) != KD3_OK)
		return ret;
	if (!srv->ctx.exec_cmd || srv->ctx.json) {
		(void)resp_outlet_open(&srv->outlet); /* on failure: logged, deliveries fail */
		srv->ctx.outlet = &srv->outlet;
	}
	if (!srv->ctx.exec_cmd)
		resp_broadcast_open(srv);
	if ((ret = server_metrics(srv)) != KD3_OK)
		return ret;
	server_ready_line(srv);
	return KD3_OK;
}

void resp_server_close(resp_server *srv)
{
	kd3_metrics_http_stop(srv->metrics_http); /* first: it reads the counters */
	srv->metrics_http = NULL;
	while (srv->sessions) {
		resp_session *s = srv->sessions;
		resp_session_unlink(&srv->sessions, s);
		resp_session_abort(s);
		pid_t pid = resp_session_live_child(s);
		resp_session_free(s);
		if (pid > 0)
			resp_reap_keep(srv, pid);
	}
	srv->nsessions = 0;
	resp_reap_final(srv);
	free(srv->orphans);
	srv->orphans = NULL;
	resp_refused_close_all(srv);
	for (size_t i = 0; i < srv->nlisten; i++)
		resp_watch_close(srv->ctx.epfd, &srv->listen[i]);
	resp_watch_close(srv->ctx.epfd, &srv->sig);
	resp_kdcs_close(&srv->kdcs); /* after the sessions: they held its lists */
	resp_broadcast_close(srv);   /* fd 0 stays open: not ours */
	resp_linebuf_wipe(&srv->in_lines);
	resp_outlet_close(&srv->outlet, srv->ctx.epfd); /* fd 1 stays open too */
	if (srv->ctx.epfd >= 0)
		close(srv->ctx.epfd);
	srv->ctx.epfd = -1;
	kd3_wipe(srv->ctx.msg, sizeof(srv->ctx.msg));
}
