/* responder: a byte queue for a non-blocking descriptor (a session's socket, a
 * child's stdin). Producers write into reserved room at the tail (a kd3_writer over
 * it), the loop sends from the head. The buffer grows on demand up to a hard cap;
 * callers compare resp_outq_pending with their own bound (RESP_OUTQ_LIMIT) to drop a
 * peer that does not read. Bytes are wiped once written (a child's stdin and our
 * stdout get plaintext), when moved, and when freed. */
#ifndef RESP_OUTQ_H
#define RESP_OUTQ_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A session whose unsent output passes this is dropped: the peer is not reading. */
#define RESP_OUTQ_LIMIT (1024u * 1024u)

typedef struct resp_outq {
	uint8_t *buf;
	size_t cap;
	size_t head; /* first unsent byte */
	size_t tail; /* end of queued bytes */
} resp_outq;

void resp_outq_init(resp_outq *q);
void resp_outq_free(resp_outq *q);
size_t resp_outq_pending(const resp_outq *q);

/* A writer over at least room free bytes at the tail. KD3_E_NOMEM when the queue
 * cannot grow (it never grows past RESP_OUTQ_LIMIT plus room). */
int resp_outq_writer(resp_outq *q, size_t room, kd3_writer *w);
/* Queues what the writer wrote (nothing when the writer failed). */
void resp_outq_commit(resp_outq *q, const kd3_writer *w);
/* Copies n bytes to the tail. */
int resp_outq_append(resp_outq *q, const void *p, size_t n);

/* Sends as much as fd takes now. KD3_OK (possibly with bytes left: EAGAIN), or
 * KD3_E_IO with *sys_err set (the other end is gone). sock: use send(MSG_NOSIGNAL). */
int resp_outq_flush(resp_outq *q, int fd, int sock, int *sys_err);

#endif
