#include "stream.h"

#include <string.h>

#include "crypto.h"
#include "err.h"
#include "msg.h"

void kd3_stream_init(kd3_stream *s)
{
	s->len = 0;
}

uint8_t *kd3_stream_space(kd3_stream *s, size_t *room)
{
	*room = sizeof(s->buf) - s->len;
	return s->buf + s->len;
}

void kd3_stream_added(kd3_stream *s, size_t n)
{
	s->len += n;
}

int kd3_stream_next(kd3_stream *s, uint8_t **frame, size_t *len)
{
	long need = kd3_frame_size(s->buf, s->len);
	if (need < 0)
		return (int)need;
	if (need == 0 || (size_t)need > s->len)
		return 0;
	*frame = s->buf;
	*len = (size_t)need;
	return 1;
}

void kd3_stream_consume(kd3_stream *s, size_t len)
{
	if (len >= s->len) {
		kd3_wipe(s->buf, s->len);
		s->len = 0;
		return;
	}
	memmove(s->buf, s->buf + len, s->len - len);
	kd3_wipe(s->buf + s->len - len, len);
	s->len -= len;
}

void kd3_stream_wipe(kd3_stream *s)
{
	kd3_wipe(s->buf, sizeof(s->buf));
	s->len = 0;
}
