/* responder: splits a byte stream (stdin, a child's stdout) into lines, one DATA
 * record each. The buffer is bounded: a line longer than KD3_PAYLOAD_MAX bytes is
 * split into KD3_PAYLOAD_MAX-byte pieces (each its own record), so a child that
 * never writes '\n' cannot make us hold more. The '\n' itself is not sent. */
#ifndef RESP_LINEBUF_H
#define RESP_LINEBUF_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "wire.h"

#define RESP_LINE_MAX KD3_PAYLOAD_MAX

typedef struct resp_linebuf {
	uint8_t buf[RESP_LINE_MAX + 1]; /* a longest line and its '\n' */
	size_t start;                   /* first byte not yet handed out */
	size_t end;                     /* end of the bytes read */
} resp_linebuf;

void resp_linebuf_init(resp_linebuf *lb);
/* Where to read into, and how much fits (always > 0 after resp_linebuf_next said 0). */
uint8_t *resp_linebuf_space(resp_linebuf *lb, size_t *room);
void resp_linebuf_added(resp_linebuf *lb, size_t n);
/* 1 with *line set (without its '\n') when a line, or a full piece of an over-long
 * one, is ready; 0 when more bytes are needed. The view is valid until the next
 * resp_linebuf_space. */
int resp_linebuf_next(resp_linebuf *lb, kd3_view *line);
/* At EOF: the unterminated rest as a last line (1), or 0 when nothing is left. */
int resp_linebuf_rest(resp_linebuf *lb, kd3_view *line);
void resp_linebuf_wipe(resp_linebuf *lb);

#endif
