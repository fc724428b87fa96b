/* responder: one registration in the epoll set.
 *
 * Every descriptor the loop waits on has a resp_watch; epoll hands the watch back
 * (data.ptr), and its kind and owner say who handles the event. A watch whose wanted
 * events are 0 is taken out of the set entirely, so a descriptor we are not reading
 * (paused, or the peer hung up) cannot wake the loop again and again. */
#ifndef RESP_WATCH_H
#define RESP_WATCH_H

#include <stdint.h>

typedef enum resp_watch_kind {
	RESP_W_LISTEN,    /* the listening socket */
	RESP_W_SIGNAL,    /* signalfd: SIGTERM, SIGINT, SIGCHLD */
	RESP_W_STDIN,     /* lines to broadcast (default mode) */
	RESP_W_STDOUT,    /* messages received (default mode), while some wait */
	RESP_W_REFUSED,   /* a connection refused with ERROR BUSY, lingering */
	RESP_W_PEER,      /* a session's TCP socket */
	RESP_W_KDC,       /* a session's socket to the KDC */
	RESP_W_CHILD_IN,  /* --exec: our end of the child's stdin */
	RESP_W_CHILD_OUT, /* --exec: our end of the child's stdout */
	RESP_W_RESOLVED,  /* the KDC list's refresh thread is done (kdcs.h) */
} resp_watch_kind;

typedef struct resp_watch {
	resp_watch_kind kind;
	int fd;          /* -1 when closed */
	uint32_t events; /* registered now; 0: not in the epoll set */
	void *owner;     /* the session, or NULL for the server's own */
} resp_watch;

void resp_watch_init(resp_watch *w, resp_watch_kind kind, void *owner);
/* Makes the registration match events (adds, modifies or removes). KD3_OK or KD3_E_IO. */
int resp_watch_set(int epfd, resp_watch *w, uint32_t events);
/* Removes the descriptor from the set and closes it. Safe when already closed. */
void resp_watch_close(int epfd, resp_watch *w);
/* Removes the descriptor from the set and forgets it without closing it (stdin). */
void resp_watch_forget(int epfd, resp_watch *w);

#endif
