/* kdc storage over SQLite: what sqlite.c, sqlite_load.c and sqlite_watch.c share. */
#ifndef KDC_STORE_SQLITE_H
#define KDC_STORE_SQLITE_H

#include <sqlite3.h>

#include "store.h"

struct kdc_store {
	sqlite3 *h;
	char path[KDC_STORE_WHERE_MAX];
	int writable;
	int hot_journal; /* the last read failed on a journal only a writer may roll back */
};

int sq_fail(kdc_store *s, char *err, size_t len, const char *what);
int sq_prepare(kdc_store *s, const char *sql, sqlite3_stmt **st, char *err, size_t len);
int sq_exec(kdc_store *s, const char *sql, char *err, size_t len, const char *what);
void sq_finish(sqlite3_stmt *st);
/* A name column, refusing anything a principal name cannot be. */
int sq_column_name(sqlite3_stmt *st, int col, char out[KD3_NAME_MAX + 1]);
/* A nullable time column: NULL is 0 (none). */
int64_t sq_column_time(sqlite3_stmt *st, int col);
/* "PATH: no such database; ..." and the like for an errno from stat or open. */
int kdc_sqlite_stat_error(const char *path, int saved, char *err, size_t len);

void kdc_sqlite_load_prepare(kdc_store *s);
int kdc_sqlite_load_counts(kdc_store *s, size_t *principals, size_t *name_bytes, size_t *keys,
                           char *err, size_t len);
int kdc_sqlite_load_each(kdc_store *s, int64_t live_at, kdc_db_load_fn fn, void *ctx, char *err,
                         size_t len);

int kdc_sqlite_watch_open(const char *where, const char *write_where, kdc_store_watch **out,
                          char *err, size_t len);
int kdc_sqlite_watch_changed(kdc_store_watch *w);
int kdc_sqlite_watch_store_last_used(kdc_store_watch *w, int busy_ms, kdc_db_used_fn next,
                                     void *ctx, char *err, size_t len);
void kdc_sqlite_watch_close(kdc_store_watch *w);

#endif
