/* responder: the server. One process, one epoll loop, every descriptor non-blocking.
 *
 * server.c     opening and closing: epoll, the listening socket, signals, stdin
 * kdcs.c       the KDC list: names and dns: resolved at start, refreshed off the loop
 * loop.c       the loop: events, deadlines, stopping
 * accept.c     new connections, within --max-sessions
 * reap.c       --exec children: SIGCHLD, waitpid, the ones whose session is gone
 * refuse.c     over --max-sessions: ERROR BUSY, then a short linger before close
 * broadcast.c  default mode: stdin lines to every established session
 * outlet.c     default mode: messages to stdout through a bounded queue
 * stdfd.c      our own non-blocking descriptors for stdin and stdout
 *
 * Nothing in the loop waits for another process, except the log: stderr is written
 * blocking, one line at a time (keep it drained, or send it to a file). */
#ifndef RESP_SERVER_H
#define RESP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctx.h"
#include "kdcs.h"
#include "linebuf.h"
#include "metrics.h"
#include "metrics_http.h"
#include "opts.h"
#include "outlet.h"
#include "session.h"
#include "watch.h"

/* After SIGTERM/SIGINT: how long sessions get to send their CLOSE. */
#define RESP_STOP_MS 3000
/* accept() ran out of descriptors: pause accepting this long. */
#define RESP_ACCEPT_PAUSE_MS 200
/* Refused connections lingering at once (more are closed right away), and how long
 * each waits for the initiator's EOF so that our ERROR BUSY is not lost to a reset. */
#define RESP_REFUSED_MAX       32
#define RESP_REFUSED_LINGER_MS 1000

typedef struct resp_refused {
	resp_watch w; /* fd -1: slot free */
	uint64_t deadline;
} resp_refused;

typedef struct resp_server {
	resp_ctx ctx;
	resp_metrics metrics;
	resp_metrics_view metrics_view;
	resp_kdcs kdcs;
	kd3_metrics_http *metrics_http; /* --metrics */
	const resp_opts *opts;
	resp_watch listen[RESP_LISTEN_MAX]; /* one per address of --listen */
	size_t nlisten;
	resp_watch sig;
	resp_watch in; /* stdin, default mode only */
	resp_stdfd in_fd;
	resp_linebuf in_lines;
	resp_outlet outlet; /* stdout, default mode only */
	resp_refused refused[RESP_REFUSED_MAX];

	resp_session *sessions;
	size_t nsessions;
	uint64_t next_id;

	int stopping;
	uint64_t stop_deadline;
	uint64_t accept_resume; /* 0: accepting */

	pid_t *orphans; /* children still running whose session was freed */
	size_t norphans;
	size_t orphans_cap;
} resp_server;

/* KD3_OK, or KD3_E_IO with the reason logged (cannot bind, ...). transcript: where
 * every session's frames are recorded, or NULL. */
int resp_server_open(resp_server *srv, const resp_opts *o, const resp_settings *set,
                     const char *self, struct kd3_transcript *transcript);
/* Until stopped by a signal: KD3_OK; KD3_E_IO when the loop itself failed. */
int resp_server_run(resp_server *srv);
void resp_server_close(resp_server *srv);

/* accept.c */
void resp_accept(resp_server *srv, resp_watch *listening, uint64_t now);
/* Every listening socket: watched for connections (on 1) or not (on 0). */
void resp_accept_watch_all(resp_server *srv, int on);
/* reap.c */
void resp_reap(resp_server *srv, uint64_t now);
void resp_reap_keep(resp_server *srv, pid_t pid);
void resp_reap_final(resp_server *srv);
/* refuse.c */
void resp_refuse(resp_server *srv, int fd, const kd3_addr *from, uint64_t now);
void resp_refused_event(resp_server *srv, resp_watch *w);
uint64_t resp_refused_deadline(const resp_server *srv);
void resp_refused_timers(resp_server *srv, uint64_t now);
void resp_refused_close_all(resp_server *srv);
/* broadcast.c */
void resp_broadcast_open(resp_server *srv);
void resp_broadcast_read(resp_server *srv, uint64_t now);
void resp_broadcast_close(resp_server *srv);
/* loop.c: stdout drained (or failed): the sessions that waited read again. */
void resp_outlet_resume(resp_server *srv, uint64_t now);

#endif
