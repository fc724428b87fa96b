#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#include "log.h"

/* At exit: how long children get to end after SIGTERM before SIGKILL. */
#define REAP_FINAL_MS 1000
#define REAP_POLL_MS  10

static void reap_forget(resp_server *srv, pid_t pid)
{
	for (size_t i = 0; i < srv->norphans; i++) {
		if (srv->orphans[i] == pid) {
			srv->orphans[i] = srv->orphans[--srv->norphans];
			return;
		}
	}
}

/* A child whose session was freed while it ran (it was sent SIGTERM): reaped later. */
void resp_reap_keep(resp_server *srv, pid_t pid)
{
	if (srv->norphans == srv->orphans_cap) {
		size_t cap = srv->orphans_cap ? srv->orphans_cap * 2 : 16;
		pid_t *grown = realloc(srv->orphans, cap * sizeof(*grown));
		if (!grown)
			return; /* still reaped by waitpid(-1); only the final wait misses it */
		srv->orphans = grown;
		srv->orphans_cap = cap;
	}
	srv->orphans[srv->norphans++] = pid;
}

/* After SIGCHLD: every child that ended, to its session (or off the orphan list). */
void resp_reap(resp_server *srv, uint64_t now)
{
	int status = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int found = 0;
		for (resp_session *s = srv->sessions; s && !found; s = resp_session_next(s))
			found = resp_session_child_exited(s, pid, status, now);
		if (!found)
			reap_forget(srv, pid);
	}
}

/* At exit: no zombies and no strays. The children's process groups were sent SIGTERM
 * when their sessions ended; those still running after REAP_FINAL_MS get SIGKILL,
 * with their groups. */
void resp_reap_final(resp_server *srv)
{
	struct timespec pause = {0, REAP_POLL_MS * 1000000L};
	int status = 0;

	for (int waited = 0; srv->norphans > 0 && waited < REAP_FINAL_MS; waited += REAP_POLL_MS) {
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			reap_forget(srv, pid);
		if (pid < 0 && errno == ECHILD)
			srv->norphans = 0;
		if (srv->norphans > 0)
			nanosleep(&pause, NULL);
	}
	for (size_t i = 0; i < srv->norphans; i++) {
		kd3_log_info("command pid %d did not stop; killing it", (int)srv->orphans[i]);
		kill(-srv->orphans[i], SIGKILL); /* its process group (child.h) */
		kill(srv->orphans[i], SIGKILL);
		waitpid(srv->orphans[i], &status, 0);
	}
	srv->norphans = 0;
}
