/* kdc storage over PostgreSQL: the binary COPY stream of the bulk load, parsed. */
#include "pgcopy.h"

#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "msg.h"
#include "table.h"

#define COPY_FIELDS 5 /* name, enabled, kvno, sealed, retire_at */

static const uint8_t copy_signature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};

/* One tuple's fields. */
struct copy_row {
	kd3_view name;
	int enabled;
	int64_t kvno; /* 0: NULL (no key) */
	const uint8_t *sealed;
	int64_t retire_at; /* 0: NULL */
};

/* A field: its int32 length (-1: NULL) and bytes. */
static int copy_field(kd3_reader *rd, kd3_view *v, int *null)
{
	uint32_t n = 0;
	kd3_rd_u32(rd, &n);
	*null = n == UINT32_MAX;
	v->p = NULL;
	v->len = 0;
	return *null ? KD3_OK : kd3_rd_view(rd, n, v);
}

static int copy_i64(const kd3_view *v, int null, int64_t *out)
{
	*out = 0;
	if (null)
		return KD3_OK;
	if (v->len != 8)
		return KD3_E_MALFORMED;
	uint64_t u = 0;
	for (size_t i = 0; i < 8; i++)
		u = u << 8 | v->p[i];
	*out = (int64_t)u;
	return KD3_OK;
}

/* One tuple, or the trailer (*end = 1). */
static int copy_tuple(kd3_reader *rd, struct copy_row *row, int *end)
{
	uint16_t nfields = 0;
	kd3_view f[COPY_FIELDS];
	int null[COPY_FIELDS];
	kd3_rd_u16(rd, &nfields);
	*end = nfields == UINT16_MAX;
	if (*end)
		return kd3_rd_end(rd);
	if (nfields != COPY_FIELDS)
		return KD3_E_MALFORMED;
	for (int i = 0; i < COPY_FIELDS; i++)
		if (copy_field(rd, &f[i], &null[i]) != KD3_OK)
			return KD3_E_MALFORMED;
	if (null[0] || f[0].len < 1 || f[0].len > KD3_NAME_MAX ||
	    !kd3_name_valid(f[0].p, f[0].len) || null[1] || f[1].len != 1)
		return KD3_E_MALFORMED;
	row->name = f[0];
	row->enabled = f[1].p[0] != 0;
	if (copy_i64(&f[2], null[2], &row->kvno) || copy_i64(&f[4], null[4], &row->retire_at))
		return KD3_E_MALFORMED;
	row->sealed = null[3] ? NULL : f[3].p;
	if (!null[2] &&
	    (row->kvno < 1 || row->kvno > UINT32_MAX || null[3] || f[3].len != KDC_SEALED_LEN))
		return KD3_E_MALFORMED;
	return kd3_rd_end(rd);
}

/* The file header, at the start of the first message. */
static int copy_header(kd3_reader *rd)
{
	const uint8_t *sig = NULL;
	uint32_t flags = 0, ext = 0;
	kd3_view skip;
	kd3_rd_fixed(rd, sizeof(copy_signature), &sig);
	kd3_rd_u32(rd, &flags);
	kd3_rd_u32(rd, &ext);
	if (kd3_rd_view(rd, ext, &skip) != KD3_OK ||
	    memcmp(sig, copy_signature, sizeof(copy_signature)) != 0)
		return KD3_E_MALFORMED;
	return (flags & 0x10000u) ? KD3_E_MALFORMED : KD3_OK; /* OIDs: not asked for */
}

static int load_flush(kdc_pgcopy *l)
{
	if (!l->have)
		return KD3_OK;
	l->have = 0;
	return kdc_store_group_emit(&l->g, &l->r, l->fn, l->ctx);
}

/* A new principal: after the last one in byte order, or the stream is not the query's. */
static int load_start(kdc_pgcopy *l, const struct copy_row *row)
{
	if (l->started && kdc_name_cmp(row->name.p, row->name.len, (const uint8_t *)l->r.name,
	                               l->r.name_len) <= 0)
		return KD3_E_MALFORMED;
	int ret = load_flush(l);
	if (ret != KD3_OK)
		return ret;
	memcpy(l->r.name, row->name.p, row->name.len);
	l->r.name[row->name.len] = '\0';
	l->r.name_len = row->name.len;
	l->r.enabled = row->enabled;
	kdc_store_group_reset(&l->g);
	l->last_kvno = 0;
	l->rows = 0;
	l->have = l->started = 1;
	return KD3_OK;
}

static int load_row(kdc_pgcopy *l, const struct copy_row *row)
{
	int same = l->have && row->name.len == l->r.name_len &&
	           memcmp(row->name.p, l->r.name, row->name.len) == 0;
	int ret = same ? KD3_OK : load_start(l, row);
	if (ret != KD3_OK)
		return ret;
	/* One principal: one row without a key (LEFT JOIN), or its keys, kvno ascending; a
	 * disabled one has no keys joined. */
	if (row->enabled != l->r.enabled || (l->rows > 0 && l->last_kvno == 0) ||
	    (row->kvno == 0 && l->rows > 0) || (row->kvno > 0 && !row->enabled) ||
	    (row->kvno > 0 && (uint32_t)row->kvno <= l->last_kvno))
		return KD3_E_MALFORMED;
	l->rows++;
	if (row->kvno > 0) {
		l->last_kvno = (uint32_t)row->kvno;
		kdc_store_group_add(&l->g, (uint32_t)row->kvno, row->retire_at, row->sealed);
	}
	return KD3_OK;
}

void kdc_pgcopy_init(kdc_pgcopy *c, kdc_db_load_fn fn, void *ctx)
{
	memset(c, 0, sizeof(*c));
	c->fn = fn;
	c->ctx = ctx;
}

int kdc_pgcopy_message(kdc_pgcopy *c, const uint8_t *p, size_t n)
{
	kd3_reader rd;
	struct copy_row row;
	memset(&row, 0, sizeof(row));
	kd3_rd_init(&rd, p, n);
	if (c->ended)
		return KD3_E_MALFORMED; /* nothing may follow the trailer */
	if (!c->header) {
		if (copy_header(&rd) != KD3_OK)
			return KD3_E_MALFORMED;
		c->header = 1;
	}
	if (copy_tuple(&rd, &row, &c->ended) != KD3_OK)
		return KD3_E_MALFORMED;
	return c->ended ? KD3_OK : load_row(c, &row);
}

int kdc_pgcopy_finish(kdc_pgcopy *c)
{
	return c->ended ? load_flush(c) : KD3_E_MALFORMED;
}

void kdc_pgcopy_wipe(kdc_pgcopy *c)
{
	kd3_wipe(&c->g, sizeof(c->g));
}
