/* kdc storage over PostgreSQL: the server's bulk read. One COPY of one query in binary,
 * read as it streams (no result set of a million rows in memory), each message through
 * the parser in pgcopy.c. Rows come by name in the "C" collation
 * (the table's byte order) with the keys of each enabled principal, oldest first, and
 * are grouped as SQLite's load groups them (kdc_store_group). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "msg.h"
#include "pgcopy.h"
#include "postgres_store.h"

void kdc_pg_load_prepare(kdc_store *s)
{
	(void)s; /* nothing to tune: the server plans the join on the primary keys */
}

int kdc_pg_load_counts(kdc_store *s, size_t *principals, size_t *name_bytes, size_t *keys,
                       char *err, size_t len)
{
	PGresult *r = NULL;
	int64_t v[3] = {0, 0, 0};
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

/* Reads the COPY stream to its end (also after an error, so that the connection stays
 * usable for the rollback), each message through the parser. */
static int load_stream(kdc_store *s, kdc_pgcopy *c, char *err, size_t len)
{
	int ret = KD3_OK, n;
	char *buf = NULL;
	while ((n = PQgetCopyData(s->c, &buf, 0)) > 0) {
		if (ret == KD3_OK)
			ret = kdc_pgcopy_message(c, (const uint8_t *)buf, (size_t)n);
		PQfreemem(buf);
		buf = NULL;
	}
	PGresult *r = PQgetResult(s->c);
	int copied = n == -1 && r && PQresultStatus(r) == PGRES_COMMAND_OK;
	if (ret == KD3_OK && !copied)
		ret = pg_fail(s->c, s->where, r, err, len, "cannot read the principals");
	else if (ret == KD3_OK)
		ret = kdc_pgcopy_finish(c);
	if (ret == KD3_E_MALFORMED) {
		snprintf(err, len, "%s: the principal table read back is not valid", s->where);
		ret = KD3_E_DB;
	}
	while (r) {
		PQclear(r);
		r = PQgetResult(s->c);
	}
	return ret;
}

int kdc_pg_load_each(kdc_store *s, int64_t live_at, kdc_db_load_fn fn, void *ctx, char *err,
                     size_t len)
{
	char sql[512];
	kdc_pgcopy c;
	kdc_pgcopy_init(&c, fn, ctx);
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
	int ret = load_stream(s, &c, err, len);
	kdc_pgcopy_wipe(&c);
	return ret;
}
