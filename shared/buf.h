/* kd3: the one bounds-checked reader and writer for every byte on the wire.
 *
 * Both are cursors over caller-owned memory. Errors are sticky: after the first
 * failure every further call fails with the same code and reads or writes nothing,
 * so a parser can be written as a straight list of reads with one check at the end
 * (docs/PROTOCOL.md: parsers are strict, exact lengths, no trailing bytes). */
#ifndef KD3_BUF_H
#define KD3_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct kd3_view {
	const uint8_t *p;
	size_t len;
} kd3_view;

typedef struct kd3_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
	int err; /* sticky; KD3_OK or KD3_E_MALFORMED */
} kd3_reader;

typedef struct kd3_writer {
	uint8_t *p;
	size_t cap;
	size_t len;
	int err; /* sticky; KD3_OK or KD3_E_NO_SPACE */
} kd3_writer;

void kd3_rd_init(kd3_reader *r, const uint8_t *p, size_t len);
size_t kd3_rd_left(const kd3_reader *r);
int kd3_rd_u8(kd3_reader *r, uint8_t *v);
int kd3_rd_u16(kd3_reader *r, uint16_t *v);
int kd3_rd_u32(kd3_reader *r, uint32_t *v);
int kd3_rd_u64(kd3_reader *r, uint64_t *v);
/* A view of the next n bytes, without copying. */
int kd3_rd_view(kd3_reader *r, size_t n, kd3_view *v);
/* Fixed-size field: *p points into the input. */
int kd3_rd_fixed(kd3_reader *r, size_t n, const uint8_t **p);
int kd3_rd_str(kd3_reader *r, kd3_view *v);    /* u8 length + bytes */
int kd3_rd_blob16(kd3_reader *r, kd3_view *v); /* u16 length + bytes */
/* The rest of the input, which may be empty. */
int kd3_rd_rest(kd3_reader *r, kd3_view *v);
/* KD3_OK only when no error happened and every byte was consumed. */
int kd3_rd_end(kd3_reader *r);

void kd3_wr_init(kd3_writer *w, uint8_t *p, size_t cap);
int kd3_wr_u8(kd3_writer *w, uint8_t v);
int kd3_wr_u16(kd3_writer *w, uint16_t v);
int kd3_wr_u32(kd3_writer *w, uint32_t v);
int kd3_wr_u64(kd3_writer *w, uint64_t v);
int kd3_wr_bytes(kd3_writer *w, const void *p, size_t n);
int kd3_wr_str(kd3_writer *w, const void *p, size_t n);    /* n <= 255 */
int kd3_wr_blob16(kd3_writer *w, const void *p, size_t n); /* n <= 65535 */
/* Reserve n bytes and return where they start, for fields filled in later. */
uint8_t *kd3_wr_reserve(kd3_writer *w, size_t n);

/* Big-endian helpers for fixed positions in already-checked buffers. */
static inline void kd3_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline uint16_t kd3_get_u16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}
static inline void kd3_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void kd3_put_u64(uint8_t *p, uint64_t v)
{
	kd3_put_u32(p, (uint32_t)(v >> 32));
	kd3_put_u32(p + 4, (uint32_t)v);
}

#endif
