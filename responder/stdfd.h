/* responder: a non-blocking descriptor for our stdin or stdout, without changing the
 * one we were given where we can avoid it.
 *
 * O_NONBLOCK belongs to the open file description, which a terminal or pipe shares
 * with the shell and its other jobs. So a pipe, FIFO or terminal is opened again
 * through /proc/self/fd/N: our own description of the same object, non-blocking. When
 * that is not possible (a socket, no /proc) O_NONBLOCK is set on the descriptor itself
 * and its flags are put back at close. A regular file is used as it is: reading or
 * writing one never waits for another process (and epoll refuses it). */
#ifndef RESP_STDFD_H
#define RESP_STDFD_H

typedef struct resp_stdfd {
	int fd;      /* to read or write; -1: none */
	int orig;    /* STDIN_FILENO or STDOUT_FILENO */
	int own;     /* fd was opened by us: close it */
	int restore; /* orig's file status flags to put back at close; -1: none */
	int regular; /* a regular file: blocking, and not pollable */
} resp_stdfd;

/* None yet (fd -1): resp_stdfd_close does nothing. */
void resp_stdfd_init(resp_stdfd *f, int orig);
/* orig: STDIN_FILENO (read) or STDOUT_FILENO (write). KD3_OK, or KD3_E_IO when orig is
 * not open for that direction (then f->fd is -1). */
int resp_stdfd_open(resp_stdfd *f, int orig);
/* Closes what we opened, puts flags back; orig itself stays open. */
void resp_stdfd_close(resp_stdfd *f);

#endif
