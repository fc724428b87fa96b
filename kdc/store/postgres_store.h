/* kdc storage over PostgreSQL: what postgres.c, postgres_load.c and postgres_watch.c
 * share. Every query goes through pg_query (parameters bound, never spliced into SQL;
 * results in binary, each value's length checked by the pg_get_* readers). */
#ifndef KDC_STORE_POSTGRES_H
#define KDC_STORE_POSTGRES_H

#include <libpq-fe.h>

#include "store.h"

/* How long a statement waits for a lock (an admin write behind another) and how long a
 * statement may run, at most; connect and TCP timeouts bound a dead server. */
#define PG_LOCK_TIMEOUT_MS      5000
#define PG_STATEMENT_TIMEOUT_MS 60000
#define PG_CONNECT_TIMEOUT_S    "5"
#define PG_TCP_USER_TIMEOUT_MS  "5000"

struct kdc_store {
	PGconn *c;
	char where[KDC_STORE_WHERE_MAX]; /* the URI, for messages (no password in it) */
	int writable;
	int in_write; /* a write transaction is open: commit bumps the generation */
};

/* A connection to uri (refused when the URI holds a password) with kd3's session
 * settings; application_name names the use. */
int pg_connect(const char *uri, const char *application_name, PGconn **out, char *shown, char *err,
               size_t len);
/* "WHERE: what: the server's first line", KD3_E_EXISTS for a unique or foreign-key
 * violation, KD3_E_DB otherwise; a read-only standby is named as such. */
int pg_fail(PGconn *c, const char *where, const PGresult *res, char *err, size_t len,
            const char *what);
/* Runs sql with n parameters (text, or binary where lens[i] > 0); *res gets the result
 * (caller PQclear()s it) when it is the expected status. */
int pg_query(PGconn *c, const char *where, const char *sql, int n, const char *const *vals,
             const int *lens, PGresult **res, char *err, size_t len, const char *what);
/* A statement without parameters or rows wanted. */
int pg_run(PGconn *c, const char *where, const char *sql, char *err, size_t len, const char *what);
/* COMMIT, and an error unless the server answered COMMIT (not ROLLBACK). */
int pg_commit_tx(PGconn *c, const char *where, char *err, size_t len);

/* Binary result values: 0 when the value has the expected size (NULL: *v = 0, *null = 1
 * where given). */
int pg_get_i64(const PGresult *res, int row, int col, int64_t *v);
int pg_get_bool(const PGresult *res, int row, int col, int *v);
int pg_get_name(const PGresult *res, int row, int col, char out[KD3_NAME_MAX + 1]);
int pg_get_fixed(const PGresult *res, int row, int col, uint8_t *out, size_t n);

void kdc_pg_load_prepare(kdc_store *s);
int kdc_pg_load_counts(kdc_store *s, size_t *principals, size_t *name_bytes, size_t *keys,
                       char *err, size_t len);
int kdc_pg_load_each(kdc_store *s, int64_t live_at, kdc_db_load_fn fn, void *ctx, char *err,
                     size_t len);

int kdc_pg_watch_open(const char *where, const char *write_where, kdc_store_watch **out, char *err,
                      size_t len);
int kdc_pg_watch_changed(kdc_store_watch *w);
int kdc_pg_watch_store_last_used(kdc_store_watch *w, int busy_ms, kdc_db_used_fn next, void *ctx,
                                 char *err, size_t len);
void kdc_pg_watch_close(kdc_store_watch *w);
int kdc_pg_watch_store_failures(kdc_store_watch *w, uint64_t kdc_id, const kdc_auth_failure *f,
                                size_t n, char *err, size_t len);
int kdc_pg_watch_failures_since(kdc_store_watch *w, uint64_t kdc_id, int64_t *last,
                                int64_t since_ms, kdc_auth_failure_fn fn, void *ctx, char *err,
                                size_t len);

#endif
