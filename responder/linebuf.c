#include "linebuf.h"

#include <string.h>

#include "crypto.h"

void resp_linebuf_init(resp_linebuf *lb)
{
	lb->start = lb->end = 0;
}

uint8_t *resp_linebuf_space(resp_linebuf *lb, size_t *room)
{
	if (lb->start > 0) {
		size_t kept = lb->end - lb->start;
		memmove(lb->buf, lb->buf + lb->start, kept);
		/* Lines already handed out (and copies of the moved bytes): plaintext. */
		kd3_wipe(lb->buf + kept, lb->end - kept);
		lb->end = kept;
		lb->start = 0;
	}
	*room = sizeof(lb->buf) - lb->end;
	return lb->buf + lb->end;
}

void resp_linebuf_added(resp_linebuf *lb, size_t n)
{
	lb->end += n;
}

int resp_linebuf_next(resp_linebuf *lb, kd3_view *line)
{
	const uint8_t *at = lb->buf + lb->start;
	size_t len = lb->end - lb->start;
	const uint8_t *nl = memchr(at, '\n', len);

	if (nl) {
		line->p = at;
		line->len = (size_t)(nl - at);
		lb->start += line->len + 1;
		return 1;
	}
	if (len > RESP_LINE_MAX) { /* the buffer is full and holds no '\n': split */
		line->p = at;
		line->len = RESP_LINE_MAX;
		lb->start += RESP_LINE_MAX;
		return 1;
	}
	return 0;
}

int resp_linebuf_rest(resp_linebuf *lb, kd3_view *line)
{
	if (resp_linebuf_next(lb, line))
		return 1;
	if (lb->end == lb->start)
		return 0;
	line->p = lb->buf + lb->start;
	line->len = lb->end - lb->start;
	lb->start = lb->end;
	return 1;
}

void resp_linebuf_wipe(resp_linebuf *lb)
{
	kd3_wipe(lb->buf, sizeof(lb->buf));
	lb->start = lb->end = 0;
}
