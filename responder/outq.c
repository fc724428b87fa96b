#include "outq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"

#define OUTQ_INITIAL 4096

void resp_outq_init(resp_outq *q)
{
	memset(q, 0, sizeof(*q));
}

void resp_outq_free(resp_outq *q)
{
	if (q->buf) {
		kd3_wipe(q->buf, q->cap);
		free(q->buf);
	}
	memset(q, 0, sizeof(*q));
}

size_t resp_outq_pending(const resp_outq *q)
{
	return q->tail - q->head;
}

/* Makes room free bytes at the tail: first by moving the queued bytes to the front,
 * then by growing (doubling) the buffer. */
static int outq_make_room(resp_outq *q, size_t room)
{
	size_t pending = resp_outq_pending(q);

	if (q->cap - q->tail >= room)
		return KD3_OK;
	if (q->head > 0) {
		memmove(q->buf, q->buf + q->head, pending);
		/* The bytes past the moved ones are stale copies: leave no plaintext. */
		kd3_wipe(q->buf + pending, q->tail - pending);
		q->head = 0;
		q->tail = pending;
		if (q->cap - q->tail >= room)
			return KD3_OK;
	}
	if (pending > RESP_OUTQ_LIMIT)
		return KD3_E_NOMEM;
	size_t cap = q->cap ? q->cap : OUTQ_INITIAL;
	while (cap - pending < room)
		cap *= 2;
	uint8_t *grown = malloc(cap);
	if (!grown)
		return KD3_E_NOMEM;
	if (q->buf) {
		memcpy(grown, q->buf, pending);
		kd3_wipe(q->buf, q->cap); /* records are sealed, but leave nothing behind */
		free(q->buf);
	}
	q->buf = grown;
	q->cap = cap;
	return KD3_OK;
}

int resp_outq_writer(resp_outq *q, size_t room, kd3_writer *w)
{
	int ret = outq_make_room(q, room);
	if (ret != KD3_OK)
		return ret;
	kd3_wr_init(w, q->buf + q->tail, q->cap - q->tail);
	return KD3_OK;
}

void resp_outq_commit(resp_outq *q, const kd3_writer *w)
{
	if (w->err == KD3_OK)
		q->tail += w->len;
}

int resp_outq_append(resp_outq *q, const void *p, size_t n)
{
	int ret = outq_make_room(q, n);
	if (ret != KD3_OK)
		return ret;
	memcpy(q->buf + q->tail, p, n);
	q->tail += n;
	return KD3_OK;
}

int resp_outq_flush(resp_outq *q, int fd, int sock, int *sys_err)
{
	while (q->head < q->tail) {
		size_t n = q->tail - q->head;
		ssize_t sent = sock ? send(fd, q->buf + q->head, n, MSG_NOSIGNAL)
		                    : write(fd, q->buf + q->head, n);
		if (sent > 0) {
			/* Written: a child's stdin or our stdout gets plaintext; do not keep it. */
			kd3_wipe(q->buf + q->head, (size_t)sent);
			q->head += (size_t)sent;
			continue;
		}
		if (sent < 0 && errno == EINTR)
			continue;
		if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return KD3_OK;
		*sys_err = sent < 0 ? errno : EPIPE;
		return KD3_E_IO;
	}
	q->head = q->tail = 0;
	return KD3_OK;
}
