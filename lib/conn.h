/* libkd3's blocking layer, internals: a kd3_conn is a session over a non-blocking TCP
 * socket that every call waits on with poll() and a deadline. conn.c holds the I/O
 * both sides use and kd3_connect; server.c the listening side and the KDC exchange. */
#ifndef KD3_LIB_CONN_H
#define KD3_LIB_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "lib.h"
#include "net.h"

#define KD3_LIB_TIMEOUT_DEFAULT_MS 10000
#define KD3_LIB_REKEY_DEFAULT      ((uint64_t)1 << 20)

struct kd3_conn {
	kd3_session *s;
	int fd;
	int timeout_ms;
	int eof;                   /* the peer's stream ended */
	int broken;                /* a send or receive failed: this error from then on
	                            * (bytes taken from the session may be lost) */
	uint8_t in[KD3_FRAME_MAX]; /* bytes read, in[in_off..in_len) not yet taken */
	size_t in_off, in_len;
	char err_text[KD3_LIB_ERRTEXT_MAX];
};

/* errno's text, thread-safe (strerror's buffer is shared). */
#define KD3_LIB_SYSERR_MAX 96
const char *kd3_lib_syserr(int e, char buf[KD3_LIB_SYSERR_MAX]);

/* opts with the defaults filled in (opts may be NULL). */
kd3_options kd3_lib_options(const kd3_options *opts);
/* A new kd3_conn around a connected socket (made non-blocking) and a session. */
int kd3_lib_conn_new(kd3_conn **c, int fd, kd3_session *s, int timeout_ms);
/* Everything in the session's output sent, by deadline_ms. */
int kd3_lib_conn_flush(kd3_conn *c, uint64_t deadline_ms);
/* One wait for bytes from the peer (by deadline_ms), given to the session, and what
 * the session wrote for the peer sent. KD3_E_TIMEOUT at the deadline. */
int kd3_lib_conn_pump(kd3_conn *c, uint64_t deadline_ms);
/* The failure as the call's result: c->err_text names it (what, then why). */
int kd3_lib_conn_fail(kd3_conn *c, int err, const char *what);
/* Waits until the session leaves the handshake (by deadline_ms). */
int kd3_lib_conn_handshake(kd3_conn *c, uint64_t deadline_ms);

#endif
