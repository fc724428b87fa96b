/* responder --exec: one child process per established session.
 *
 * The child is /bin/sh -c CMD with its stdin and stdout on pipes (our ends
 * non-blocking, in the epoll loop) and its stderr shared with ours. It gets a minimal
 * environment: PATH, HOME, LANG and TERM when we have them, plus
 * KD3_PEER=<initiator principal> and KD3_SESSION=<session id> (nothing else of ours:
 * no secrets passed down by whoever started us). It gets the default signal mask and
 * SIGPIPE disposition back, and no descriptor beyond 0, 1 and 2.
 *
 * Each child leads its own process group, and the group is what we signal (SIGTERM)
 * when the session ends: so what the command started in the background ends with it
 * too, unless it left the group (setsid). Being in another group than our terminal's
 * foreground job, the command does not get the terminal's ^C: we pass it on as
 * SIGTERM when we stop. */
#ifndef RESP_CHILD_H
#define RESP_CHILD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "linebuf.h"
#include "outq.h"
#include "watch.h"

typedef struct resp_child {
	pid_t pid;  /* 0: none started */
	int exited; /* reaped; status holds the waitpid status */
	int status;
	resp_watch in;          /* our end of its stdin */
	resp_watch out;         /* our end of its stdout */
	resp_outq inq;          /* DATA payloads + '\n', waiting for the child to read */
	resp_linebuf lines;     /* its stdout, gathered into lines */
	int out_eof;            /* its stdout ended */
	int close_in;           /* close its stdin once inq is sent (the peer closed) */
	uint64_t reap_deadline; /* after stdout EOF: how long to wait for the exit status */
	uint64_t out_deadline;  /* after its exit: how long its stdout may stay open */
	int group_signaled;     /* its process group was sent SIGTERM */
} resp_child;

void resp_child_init(resp_child *c, void *owner);
/* Starts CMD. err gets one line on failure (KD3_E_IO). */
int resp_child_spawn(resp_child *c, const char *cmd, const char *peer, uint64_t sid, char *err,
                     size_t err_len);
/* Closes our ends of both pipes; with kill, sends SIGTERM to the child's process
 * group (once): the child if it still runs, and whatever it left running. */
void resp_child_release(resp_child *c, int epfd, int kill_it);
/* SIGTERM to the child's process group, once. */
void resp_child_kill_group(resp_child *c);
/* "exited with status 0", "killed by signal 9", "still running". */
void resp_child_describe(const resp_child *c, char *out, size_t len);

#endif
