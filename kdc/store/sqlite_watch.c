/* kdc storage over SQLite: a running server's watcher. One connection of its own that
 * notices commits (PRAGMA data_version changes when another connection commits) and a
 * file put in place of the path (a restore), and writes the server's last-used times:
 * its own commits do not change the version it reads, so they do not look like an
 * admin write. No transaction left open; busy waits of 100 ms unless told. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "sqlite_store.h"

#define WATCH_BUSY_MS 100

struct kdc_store_watch {
	sqlite3 *h;
	char path[KDC_STORE_WHERE_MAX];
	uint64_t dev, ino; /* the file the connection has open */
	int64_t version;   /* data_version at the last look */
};

static int watch_connect(kdc_store_watch *w, char *err, size_t len)
{
	struct stat st;
	if (lstat(w->path, &st) != 0)
		return kdc_sqlite_stat_error(w->path, errno, err, len);
	/* Read-write for the last-used times (read-only when the file is write-protected:
	 * then only those writes fail). */
	if (sqlite3_open_v2(w->path, &w->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) !=
	    SQLITE_OK) {
		snprintf(err, len, "%s: cannot open: %s", w->path,
		         w->h ? sqlite3_errmsg(w->h) : "?");
		sqlite3_close_v2(w->h);
		w->h = NULL;
		return KD3_E_DB;
	}
	sqlite3_busy_timeout(w->h, WATCH_BUSY_MS);
	w->dev = (uint64_t)st.st_dev;
	w->ino = (uint64_t)st.st_ino;
	w->version = -1;
	(void)kdc_sqlite_watch_changed(w); /* the baseline */
	return KD3_OK;
}

int kdc_sqlite_watch_open(const char *where, const char *write_where, kdc_store_watch **out,
                          char *err, size_t len)
{
	kdc_store_watch *w = calloc(1, sizeof(*w));
	*out = NULL;
	if (!w) {
		snprintf(err, len, "%s: out of memory", where);
		return KD3_E_NOMEM;
	}
	(void)write_where; /* one file: the writes go where the reads come from */
	if (snprintf(w->path, sizeof(w->path), "%s", where) >= (int)sizeof(w->path)) {
		snprintf(err, len, "%.64s...: path is too long", where);
		free(w);
		return KD3_E_DB;
	}
	int ret = watch_connect(w, err, len);
	if (ret != KD3_OK) {
		free(w);
		return ret;
	}
	*out = w;
	return KD3_OK;
}

static int watch_version(kdc_store_watch *w, int64_t *version)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(w->h, "PRAGMA data_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ? 0 : -1;
}

int kdc_sqlite_watch_changed(kdc_store_watch *w)
{
	struct stat st;
	int64_t version = 0;
	char err[64];
	if (!w->h && watch_connect(w, err, sizeof(err)) != KD3_OK)
		return -1;
	/* Another file under the path (a restore moved into place): watch that one. */
	if (lstat(w->path, &st) != 0)
		return -1;
	if ((uint64_t)st.st_dev != w->dev || (uint64_t)st.st_ino != w->ino) {
		sqlite3_close_v2(w->h);
		w->h = NULL;
		return watch_connect(w, err, sizeof(err)) == KD3_OK ? 1 : -1;
	}
	int got = watch_version(w, &version);
	if (got <= 0)
		return got;
	int changed = w->version >= 0 && version != w->version;
	w->version = version;
	return changed;
}

void kdc_sqlite_watch_close(kdc_store_watch *w)
{
	if (!w)
		return;
	if (w->h)
		sqlite3_close_v2(w->h);
	free(w);
}

static int watch_fail(kdc_store_watch *w, char *err, size_t len, const char *what)
{
	snprintf(err, len, "%s: %s: %s", w->path, what, w->h ? sqlite3_errmsg(w->h) : "not open");
	return KD3_E_DB;
}

static int watch_exec(kdc_store_watch *w, const char *sql, char *err, size_t len, const char *what)
{
	if (sqlite3_exec(w->h, sql, NULL, NULL, NULL) != SQLITE_OK)
		return watch_fail(w, err, len, what);
	return KD3_OK;
}

/* Not part of the schema (no version bump): a database kdc serve never wrote to has
 * none. A principal removed takes its row along (kdc's connections enforce foreign
 * keys). */
#define DB_TABLE_LAST_USED                                                                         \
	"CREATE TABLE IF NOT EXISTS last_used ("                                                   \
	"  name TEXT PRIMARY KEY NOT NULL REFERENCES principals(name) ON DELETE CASCADE,"          \
	"  at INTEGER NOT NULL"                                                                    \
	");"

static int last_used_rows(kdc_store_watch *w, kdc_db_used_fn next, void *ctx, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	kdc_db_used row;
	/* From the principals row, so that a name removed meanwhile (or added again after
	 * the time) inserts nothing; max(): another server may have written a later time. */
	if (sqlite3_prepare_v2(w->h,
	                       "INSERT INTO last_used (name, at) SELECT name, ?2 FROM principals"
	                       " WHERE name = ?1 AND created <= ?2"
	                       " ON CONFLICT (name) DO UPDATE SET at = max(at, excluded.at)",
	                       -1, &st, NULL) != SQLITE_OK)
		return watch_fail(w, err, len, "cannot prepare a statement");
	int ret = KD3_OK;
	while (ret == KD3_OK && next(ctx, &row)) {
		sqlite3_bind_text(st, 1, row.name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, row.at);
		if (sqlite3_step(st) != SQLITE_DONE)
			ret = watch_fail(w, err, len, "cannot store a last-used time");
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return ret;
}

int kdc_sqlite_watch_store_last_used(kdc_store_watch *w, int busy_ms, kdc_db_used_fn next,
                                     void *ctx, char *err, size_t len)
{
	if (!w->h)
		return watch_fail(w, err, len, "cannot store last-used times");
	sqlite3_busy_timeout(w->h, busy_ms);
	int ret = watch_exec(w, "BEGIN IMMEDIATE", err, len, "cannot store last-used times");
	if (ret == KD3_OK)
		ret = watch_exec(w, DB_TABLE_LAST_USED, err, len,
		                 "cannot create the last_used table");
	if (ret == KD3_OK)
		ret = last_used_rows(w, next, ctx, err, len);
	if (ret == KD3_OK)
		ret = watch_exec(w, "COMMIT", err, len, "cannot commit last-used times");
	if (!sqlite3_get_autocommit(w->h))
		sqlite3_exec(w->h, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_busy_timeout(w->h, WATCH_BUSY_MS);
	return ret;
}
