/* kd3 stream framing: gathers bytes from a TCP stream into whole frames.
 * The buffer is fixed (one largest frame), so a peer can never make us hold more. */
#ifndef KD3_STREAM_H
#define KD3_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef struct kd3_stream {
	uint8_t buf[KD3_FRAME_MAX];
	size_t len;
} kd3_stream;

void kd3_stream_init(kd3_stream *s);
/* Where to read more bytes into, and how many fit. */
uint8_t *kd3_stream_space(kd3_stream *s, size_t *room);
void kd3_stream_added(kd3_stream *s, size_t n);
/* 1 with frame and len set when a whole frame is at the front; 0 when more bytes are
 * needed; a negative kd3_err (-KD3_E_MALFORMED, or -KD3_E_UNSUPPORTED for another
 * version) when the header is not one kd3 accepts. */
int kd3_stream_next(kd3_stream *s, uint8_t **frame, size_t *len);
/* Drop the frame returned by kd3_stream_next (after it was handled). */
void kd3_stream_consume(kd3_stream *s, size_t len);
/* Wipes the buffer (it may hold decrypted plaintext). */
void kd3_stream_wipe(kd3_stream *s);

#endif
