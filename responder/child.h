/* responder --exec: one child process per established session.
 *
 * The child is /bin/sh -c CMD with its stdin and stdout on pipes (our ends
 * non-blocking, in the epoll loop) and its stderr shared with ours. Its environment
 * is ours plus KD3_PEER=<initiator principal> and KD3_SESSION=<session id>. It gets
 * the default signal mask and SIGPIPE disposition back, and no descriptor beyond
 * 0, 1 and 2. */
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
} resp_child;

void resp_child_init(resp_child *c, void *owner);
/* Starts CMD. err gets one line on failure (KD3_E_IO). */
int resp_child_spawn(resp_child *c, const char *cmd, const char *peer, uint64_t sid, char *err,
                     size_t err_len);
/* Closes our ends of both pipes; with kill, sends SIGTERM to a child still running. */
void resp_child_release(resp_child *c, int epfd, int kill_it);
/* "exited with status 0", "killed by signal 9", "still running". */
void resp_child_describe(const resp_child *c, char *out, size_t len);

#endif
