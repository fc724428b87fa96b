#include "buf.h"

#include <string.h>

#include "err.h"

void kd3_rd_init(kd3_reader *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->len = p ? len : 0;
	r->off = 0;
	r->err = KD3_OK;
}

size_t kd3_rd_left(const kd3_reader *r)
{
	return r->err ? 0 : r->len - r->off;
}

/* The single bounds check every read goes through. */
static const uint8_t *rd_take(kd3_reader *r, size_t n)
{
	if (r->err)
		return NULL;
	if (n > r->len - r->off) {
		r->err = KD3_E_MALFORMED;
		return NULL;
	}
	const uint8_t *at = r->p + r->off;
	r->off += n;
	return at;
}

int kd3_rd_u8(kd3_reader *r, uint8_t *v)
{
	const uint8_t *p = rd_take(r, 1);
	if (!p)
		return r->err;
	*v = p[0];
	return KD3_OK;
}

int kd3_rd_u16(kd3_reader *r, uint16_t *v)
{
	const uint8_t *p = rd_take(r, 2);
	if (!p)
		return r->err;
	*v = kd3_get_u16(p);
	return KD3_OK;
}

int kd3_rd_u32(kd3_reader *r, uint32_t *v)
{
	const uint8_t *p = rd_take(r, 4);
	if (!p)
		return r->err;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return KD3_OK;
}

int kd3_rd_u64(kd3_reader *r, uint64_t *v)
{
	uint32_t hi = 0, lo = 0;
	kd3_rd_u32(r, &hi);
	if (kd3_rd_u32(r, &lo))
		return r->err;
	*v = (uint64_t)hi << 32 | lo;
	return KD3_OK;
}

int kd3_rd_view(kd3_reader *r, size_t n, kd3_view *v)
{
	const uint8_t *p = rd_take(r, n);
	if (!p)
		return r->err;
	v->p = p;
	v->len = n;
	return KD3_OK;
}

int kd3_rd_fixed(kd3_reader *r, size_t n, const uint8_t **p)
{
	const uint8_t *at = rd_take(r, n);
	if (!at)
		return r->err;
	*p = at;
	return KD3_OK;
}

int kd3_rd_str(kd3_reader *r, kd3_view *v)
{
	uint8_t n = 0;
	if (kd3_rd_u8(r, &n))
		return r->err;
	return kd3_rd_view(r, n, v);
}

int kd3_rd_blob16(kd3_reader *r, kd3_view *v)
{
	uint16_t n = 0;
	if (kd3_rd_u16(r, &n))
		return r->err;
	return kd3_rd_view(r, n, v);
}

int kd3_rd_rest(kd3_reader *r, kd3_view *v)
{
	return kd3_rd_view(r, kd3_rd_left(r), v);
}

int kd3_rd_end(kd3_reader *r)
{
	if (r->err)
		return r->err;
	if (r->off != r->len)
		r->err = KD3_E_MALFORMED; /* trailing bytes */
	return r->err;
}

void kd3_wr_init(kd3_writer *w, uint8_t *p, size_t cap)
{
	w->p = p;
	w->cap = p ? cap : 0;
	w->len = 0;
	w->err = KD3_OK;
}

uint8_t *kd3_wr_reserve(kd3_writer *w, size_t n)
{
	if (w->err)
		return NULL;
	if (n > w->cap - w->len) {
		w->err = KD3_E_NO_SPACE;
		return NULL;
	}
	uint8_t *at = w->p + w->len;
	w->len += n;
	return at;
}

int kd3_wr_bytes(kd3_writer *w, const void *p, size_t n)
{
	uint8_t *at = kd3_wr_reserve(w, n);
	if (!at)
		return w->err;
	if (n)
		memcpy(at, p, n);
	return KD3_OK;
}

int kd3_wr_u8(kd3_writer *w, uint8_t v)
{
	return kd3_wr_bytes(w, &v, 1);
}

int kd3_wr_u16(kd3_writer *w, uint16_t v)
{
	uint8_t b[2];
	kd3_put_u16(b, v);
	return kd3_wr_bytes(w, b, sizeof(b));
}

int kd3_wr_u32(kd3_writer *w, uint32_t v)
{
	uint8_t b[4];
	kd3_put_u32(b, v);
	return kd3_wr_bytes(w, b, sizeof(b));
}

int kd3_wr_u64(kd3_writer *w, uint64_t v)
{
	uint8_t b[8];
	kd3_put_u64(b, v);
	return kd3_wr_bytes(w, b, sizeof(b));
}

int kd3_wr_str(kd3_writer *w, const void *p, size_t n)
{
	if (n > 255) {
		if (!w->err)
			w->err = KD3_E_NO_SPACE;
		return w->err;
	}
	kd3_wr_u8(w, (uint8_t)n);
	return kd3_wr_bytes(w, p, n);
}

int kd3_wr_blob16(kd3_writer *w, const void *p, size_t n)
{
	if (n > 65535) {
		if (!w->err)
			w->err = KD3_E_NO_SPACE;
		return w->err;
	}
	kd3_wr_u16(w, (uint16_t)n);
	return kd3_wr_bytes(w, p, n);
}
