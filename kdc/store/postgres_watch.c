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
	int64_t pruned_ms;  /* when old failed authentications were last dropped */
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

/* The write connection, made when missing. */
static int write_conn(kdc_store_watch *w, char *err, size_t len)
{
	if (w->write)
		return KD3_OK;
	return pg_connect(w->write_uri, "kdc serve (writes)", &w->write, w->write_where, err, len);
}

/* After a write transaction: a connection that broke is dropped (the primary went
 * away: connect again next time), one left inside a transaction rolled back. */
static void write_done(kdc_store_watch *w)
{
	if (PQstatus(w->write) != CONNECTION_OK) {
		PQfinish(w->write);
		w->write = NULL;
	} else if (PQtransactionStatus(w->write) != PQTRANS_IDLE) {
		PQclear(PQexec(w->write, "ROLLBACK"));
	}
}

static int write_begin(kdc_store_watch *w, int busy_ms, char *err, size_t len)
{
	char lock[64];
	snprintf(lock, sizeof(lock), "SET LOCAL lock_timeout = %d", busy_ms > 0 ? busy_ms : 1);
	int ret = write_conn(w, err, len);
	if (ret == KD3_OK)
		ret = pg_run(w->write, w->write_where, "BEGIN", err, len,
		             "cannot start a transaction");
	if (ret == KD3_OK)
		ret = pg_run(w->write, w->write_where, lock, err, len, "cannot set a lock timeout");
	return ret;
}

static int write_commit(kdc_store_watch *w, int ret, char *err, size_t len)
{
	if (ret == KD3_OK)
		ret = pg_commit_tx(w->write, w->write_where, err, len);
	if (w->write)
		write_done(w);
	return ret;
}

int kdc_pg_watch_store_last_used(kdc_store_watch *w, int busy_ms, kdc_db_used_fn next, void *ctx,
                                 char *err, size_t len)
{
	int ret = write_begin(w, busy_ms, err, len);
	if (ret == KD3_OK)
		ret = last_used_rows(w, next, ctx, err, len);
	return write_commit(w, ret, err, len);
}

/* ---- failed authentications ------------------------------------------------------------- */

#define FAILURES_KEEP_MS  ((int64_t)24 * 3600 * 1000) /* longer than any lockout window */
#define FAILURES_BATCH    1024                        /* rows read per look; the rest next */
#define FAILURES_PRUNE_MS 60000                       /* old rows dropped at most this often */

int kdc_pg_watch_store_failures(kdc_store_watch *w, uint64_t kdc_id, const kdc_auth_failure *f,
                                size_t n, char *err, size_t len)
{
	char id_s[24];
	snprintf(id_s, sizeof(id_s), "%" PRId64, (int64_t)kdc_id);
	int ret = write_begin(w, PG_LOCK_TIMEOUT_MS, err, len);
	/* One writer at a time, from taking ids to commit: ids then become visible in
	 * increasing order, so a reader that has seen id N has seen every committed id
	 * below it (two writers interleaved could otherwise commit 10 before 9, and 9
	 * would never be read). Readers are not blocked. */
	if (ret == KD3_OK)
		ret = pg_run(w->write, w->write_where, "LOCK TABLE auth_failures IN EXCLUSIVE MODE",
		             err, len, "cannot lock the failed authentications");
	for (size_t i = 0; ret == KD3_OK && i < n; i++) {
		char tag[24], at[24];
		snprintf(tag, sizeof(tag), "%" PRId64, (int64_t)f[i].tag);
		snprintf(at, sizeof(at), "%" PRId64, f[i].at_ms);
		const char *vals[] = {f[i].name, tag, at, id_s};
		ret = pg_query(
		    w->write, w->write_where,
		    "INSERT INTO auth_failures (name, tag, at_ms, kdc) VALUES ($1, $2, $3, $4)", 4,
		    vals, NULL, NULL, err, len, "cannot record a failed authentication");
	}
	int64_t now = n ? f[n - 1].at_ms : 0;
	if (ret == KD3_OK && now - w->pruned_ms >= FAILURES_PRUNE_MS) {
		char cut[24];
		snprintf(cut, sizeof(cut), "%" PRId64, now - FAILURES_KEEP_MS);
		const char *vals[] = {cut};
		ret = pg_query(w->write, w->write_where,
		               "DELETE FROM auth_failures WHERE at_ms < $1", 1, vals, NULL, NULL,
		               err, len, "cannot drop old failed authentications");
		if (ret == KD3_OK)
			w->pruned_ms = now;
	}
	return write_commit(w, ret, err, len);
}

int kdc_pg_watch_failures_since(kdc_store_watch *w, uint64_t kdc_id, int64_t *last,
                                int64_t since_ms, kdc_auth_failure_fn fn, void *ctx, char *err,
                                size_t len)
{
	char last_s[24], since_s[24], max_s[16];
	PGresult *r = NULL;
	if (!w->read) {
		snprintf(err, len, "%s: not connected", w->read_where);
		return KD3_E_DB;
	}
	snprintf(last_s, sizeof(last_s), "%" PRId64, *last);
	snprintf(since_s, sizeof(since_s), "%" PRId64, since_ms);
	snprintf(max_s, sizeof(max_s), "%d", FAILURES_BATCH);
	const char *vals[] = {last_s, since_s, max_s};
	int ret = pg_query(w->read, w->read_where,
	                   "SELECT id, name, tag, at_ms, kdc FROM auth_failures"
	                   " WHERE id > $1 AND at_ms >= $2 ORDER BY id LIMIT $3",
	                   3, vals, NULL, &r, err, len, "cannot read failed authentications");
	for (int i = 0; ret == KD3_OK && i < PQntuples(r); i++) {
		kdc_auth_failure f;
		int64_t id, tag, by;
		if (pg_get_i64(r, i, 0, &id))
			continue;
		*last = id; /* first: a bad row further on must not be read again every time */
		if (pg_get_name(r, i, 1, f.name) || pg_get_i64(r, i, 2, &tag) ||
		    pg_get_i64(r, i, 3, &f.at_ms) || pg_get_i64(r, i, 4, &by))
			continue; /* a bad row is skipped, not fatal */
		f.tag = (uint64_t)tag;
		if ((uint64_t)by != kdc_id) /* ours were counted when they happened */
			fn(ctx, &f);
	}
	PQclear(r);
	return ret;
}
