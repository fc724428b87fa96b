/* kdc storage over PostgreSQL: the server's bulk read. One COPY of one query in binary,
 * read as it streams (no result set of a million rows in memory), each tuple parsed
 * with the bounds-checked reader (shared/buf.h). Rows come by name in the "C" collation
 * (the table's byte order) with the keys of each enabled principal, oldest first, and
 * are grouped as SQLite's load groups them (kdc_store_group). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "msg.h"
#include "postgres_store.h"

#define COPY_FIELDS 5 /* name, enabled, kvno, sealed, retire_at */

static const uint8_t copy_signature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};

void kdc_pg_load_prepare(kdc_store *s)
{
	(void)s; /* nothing to tune: the server plans the join on the primary keys */
}

int kdc_pg_load_counts(kdc_store *s, size_t *principals, size_t *name_bytes, size_t *keys,
                       char *err, size_t len)
{
	PGresult *r = NULL;
	int64_t v[3];
	int ret = pg_query(s->c, s->where,
	                   "SELECT (SELECT count(*) FROM principals),"
	                   " (SELECT coalesce(sum(octet_length(name)), 0)::bigint FROM principals),"
	                   " (SELECT count(*) FROM keys)",
	                   0, NULL, NULL, &r, err, len, "cannot count principals");
	if (ret != KD3_OK)
		return ret;
	if (PQntuples(r) != 1 || pg_get_i64(r, 0, 0, &v[0]) || pg_get_i64(r, 0, 1, &v[1]) ||
	    pg_get_i64(r, 0, 2, &v[2]) || v[0] < 0 || v[1] < 0 || v[2] < 0) {
		snprintf(err, len, "%s: cannot count principals", s->where);
		ret = KD3_E_DB;
	}
	PQclear(r);
	*principals = (size_t)v[0];
	*name_bytes = (size_t)v[1];
	*keys = (size_t)v[2];
	return ret;
}

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

struct load {
	kdc_db_load_fn fn;
	void *ctx;
	kdc_db_load_row r;
	kdc_store_group g;
	int have; /* r names a principal whose rows are being gathered */
};

static int load_flush(struct load *l)
{
	if (!l->have)
		return KD3_OK;
	l->have = 0;
	return kdc_store_group_emit(&l->g, &l->r, l->fn, l->ctx);
}

static int load_row(struct load *l, const struct copy_row *row)
{
	int same = l->have && row->name.len == l->r.name_len &&
	           memcmp(row->name.p, l->r.name, row->name.len) == 0;
	if (!same) {
		int ret = load_flush(l);
		if (ret != KD3_OK)
			return ret;
		memcpy(l->r.name, row->name.p, row->name.len);
		l->r.name[row->name.len] = '\0';
		l->r.name_len = row->name.len;
		l->r.enabled = row->enabled;
		kdc_store_group_reset(&l->g);
		l->have = 1;
	}
	if (row->kvno > 0 && row->enabled)
		kdc_store_group_add(&l->g, (uint32_t)row->kvno, row->retire_at, row->sealed);
	return KD3_OK;
}

/* Reads the COPY stream to its end (also after an error, so the connection stays
 * usable for the rollback). */
static int load_stream(kdc_store *s, struct load *l, char *err, size_t len)
{
	int ret = KD3_OK, header = 0, ended = 0;
	char *buf = NULL;
	int n;
	while ((n = PQgetCopyData(s->c, &buf, 0)) > 0) {
		kd3_reader rd;
		kd3_rd_init(&rd, (const uint8_t *)buf, (size_t)n);
		if (ret == KD3_OK && !header) {
			ret = copy_header(&rd);
			header = 1;
		}
		/* A message is one tuple (the first also carries the header). */
		struct copy_row row;
		if (ret == KD3_OK && ended)
			ret = KD3_E_MALFORMED; /* nothing may follow the trailer */
		if (ret == KD3_OK)
			ret = copy_tuple(&rd, &row, &ended);
		if (ret == KD3_OK && !ended)
			ret = load_row(l, &row);
		PQfreemem(buf);
		buf = NULL;
	}
	if (ret != KD3_OK) {
		snprintf(err, len, "%s: a row of the principal table is not valid", s->where);
		ret = KD3_E_DB;
	}
	PGresult *r = PQgetResult(s->c);
	if (ret == KD3_OK && (n == -2 || !r || PQresultStatus(r) != PGRES_COMMAND_OK || !ended))
		ret = pg_fail(s->c, s->where, r, err, len, "cannot read the principals");
	while (r) {
		PQclear(r);
		r = PQgetResult(s->c);
	}
	if (ret == KD3_OK)
		ret = load_flush(l);
	return ret;
}

int kdc_pg_load_each(kdc_store *s, int64_t live_at, kdc_db_load_fn fn, void *ctx, char *err,
                     size_t len)
{
	char sql[512];
	struct load l;
	memset(&l, 0, sizeof(l));
	l.fn = fn;
	l.ctx = ctx;
	/* COPY takes no parameters: live_at is an integer we format ourselves. */
	snprintf(sql, sizeof(sql),
	         "COPY (SELECT p.name, p.enabled, k.kvno, k.sealed, k.retire_at FROM principals p"
	         " LEFT JOIN keys k ON p.enabled AND k.name = p.name AND (%" PRId64
	         " = 0 OR k.retire_at IS NULL OR k.retire_at > %" PRId64 ")"
	         " ORDER BY p.name, k.kvno) TO STDOUT (FORMAT binary)",
	         live_at, live_at);
	PGresult *r = PQexec(s->c, sql);
	if (!r || PQresultStatus(r) != PGRES_COPY_OUT) {
		int ret = pg_fail(s->c, s->where, r, err, len, "cannot read the principals");
		PQclear(r);
		return ret;
	}
	PQclear(r);
	int ret = load_stream(s, &l, err, len);
	kd3_wipe(&l.g, sizeof(l.g));
	return ret;
}
