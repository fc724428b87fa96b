/* kdc storage over PostgreSQL: a running server's watcher. It polls the realm's
 * generation counter, which every admin transaction bumps (LISTEN/NOTIFY would be
 * cheaper, but a hot standby delivers no notifications), on the server kdc serve loads
 * from, and writes last-used times to the primary (--db-write) on a connection of its
 * own. A connection that fails is dropped and made again at the next look, so a
 * server that lost its database goes on from its snapshot and catches up when the
 * database returns. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "postgres_store.h"

struct kdc_store_watch {
	char read_uri[KDC_STORE_WHERE_MAX], write_uri[KDC_STORE_WHERE_MAX];
	char read_where[KDC_STORE_WHERE_MAX], write_where[KDC_STORE_WHERE_MAX];
	PGconn *read, *write;
	int64_t generation; /* at the last look; -1: none yet */
};

static int watch_generation(kdc_store_watch *w, int64_t *gen)
{
	char err[256];
	if (!w->read && pg_connect(w->read_uri, "kdc serve (watch)", &w->read, w->read_where, err,
	                           sizeof(err)) != KD3_OK)
		return -1;
	PGresult *r = NULL;
	int ret = pg_query(w->read, w->read_where, "SELECT generation FROM realm WHERE id = 1", 0,
	                   NULL, NULL, &r, err, sizeof(err), "cannot read the generation");
	if (ret == KD3_OK && (PQntuples(r) != 1 || pg_get_i64(r, 0, 0, gen) != 0))
		ret = KD3_E_DB;
	PQclear(r);
	if (ret != KD3_OK && PQstatus(w->read) != CONNECTION_OK) {
		PQfinish(w->read); /* made again at the next look */
		w->read = NULL;
	}
	return ret == KD3_OK ? 1 : -1;
}

int kdc_pg_watch_open(const char *where, const char *write_where, kdc_store_watch **out, char *err,
                      size_t len)
{
	kdc_store_watch *w = calloc(1, sizeof(*w));
	*out = NULL;
	if (!w) {
		snprintf(err, len, "out of memory");
		return KD3_E_NOMEM;
	}
	if (!write_where)
		write_where = where;
	if (snprintf(w->read_uri, sizeof(w->read_uri), "%s", where) >= (int)sizeof(w->read_uri) ||
	    snprintf(w->write_uri, sizeof(w->write_uri), "%s", write_where) >=
	        (int)sizeof(w->write_uri)) {
		snprintf(err, len, "a database URI is too long");
		free(w);
		return KD3_E_USAGE;
	}
	kdc_store_redact(w->read_uri, w->read_where);
	kdc_store_redact(w->write_uri, w->write_where);
	w->generation = -1;
	/* The baseline: connected now or at a later look. */
	int64_t gen = 0;
	if (watch_generation(w, &gen) > 0)
		w->generation = gen;
	*out = w;
	return KD3_OK;
}

int kdc_pg_watch_changed(kdc_store_watch *w)
{
	int64_t gen = 0;
	if (watch_generation(w, &gen) < 0)
		return -1;
	int changed = w->generation != gen;
	w->generation = gen;
	return changed;
}

void kdc_pg_watch_close(kdc_store_watch *w)
{
	if (!w)
		return;
	PQfinish(w->read);
	PQfinish(w->write);
	free(w);
}

/* From the principals row, so that a name removed meanwhile (or added again after the
 * time) inserts nothing; greatest(): another server may have written a later time. */
static const char last_used_sql[] =
    "INSERT INTO last_used (name, at) SELECT name, $2 FROM principals"
    " WHERE name = $1 AND created <= $2"
    " ON CONFLICT (name) DO UPDATE SET at = greatest(last_used.at, excluded.at)";

static int last_used_rows(kdc_store_watch *w, kdc_db_used_fn next, void *ctx, char *err, size_t len)
{
	kdc_db_used row;
	int ret = KD3_OK;
	while (ret == KD3_OK && next(ctx, &row)) {
		char at[24];
		snprintf(at, sizeof(at), "%" PRId64, row.at);
		const char *vals[] = {row.name, at};
		ret = pg_query(w->write, w->write_where, last_used_sql, 2, vals, NULL, NULL, err,
		               len, "cannot store a last-used time");
	}
	return ret;
}

int kdc_pg_watch_store_last_used(kdc_store_watch *w, int busy_ms, kdc_db_used_fn next, void *ctx,
                                 char *err, size_t len)
{
	if (!w->write) {
		int ret = pg_connect(w->write_uri, "kdc serve (writes)", &w->write, w->write_where,
		                     err, len);
		if (ret != KD3_OK)
			return ret;
	}
	char lock[64];
	snprintf(lock, sizeof(lock), "SET LOCAL lock_timeout = %d", busy_ms > 0 ? busy_ms : 1);
	int ret =
	    pg_run(w->write, w->write_where, "BEGIN", err, len, "cannot store last-used times");
	if (ret == KD3_OK)
		ret = pg_run(w->write, w->write_where, lock, err, len,
		             "cannot store last-used times");
	if (ret == KD3_OK)
		ret = last_used_rows(w, next, ctx, err, len);
	if (ret == KD3_OK)
		ret = pg_run(w->write, w->write_where, "COMMIT", err, len,
		             "cannot commit last-used times");
	if (ret == KD3_OK && PQtransactionStatus(w->write) != PQTRANS_IDLE)
		ret = pg_fail(w->write, w->write_where, NULL, err, len,
		              "cannot commit last-used times");
	if (PQstatus(w->write) != CONNECTION_OK) {
		PQfinish(w->write); /* the primary went away: connect again next time */
		w->write = NULL;
	} else if (PQtransactionStatus(w->write) != PQTRANS_IDLE) {
		PQclear(PQexec(w->write, "ROLLBACK"));
	}
	return ret;
}
