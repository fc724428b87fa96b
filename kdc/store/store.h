/* kdc storage: the one interface between the KDC and the engine that keeps its realm.
 *
 * A backend stores rows and nothing else: principals, key versions as sealed blobs, the
 * realm row (the sealed realm secret and the master key's check), unlock requests and
 * last-used times. Sealing and opening, the master key, the stash and every message a
 * person reads about them stay above, in kdc/db.c, so the serving path and the admin
 * commands never name a backend and a backend never sees a key in the clear.
 *
 * Backends: sqlite.c (the embedded default: a file), postgres.c (a PostgreSQL primary
 * and its hot standbys, chosen by a postgresql:// URI; built when libpq is found).
 *
 * Conventions, the same for every operation: KD3_OK or a kd3_err; err gets one line,
 * "WHERE: what: why", where WHERE is the store's display name (kdc_store_where). A
 * name or blob read back is checked (a valid principal name, a sealed blob of
 * KDC_SEALED_LEN bytes) before any caller sees it. Writes happen inside a transaction
 * the caller opened (begin), except those the watch does on its own. */
#ifndef KDC_STORE_H
#define KDC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "authfail.h"
#include "kdc_core.h"
#include "keyfile.h"
#include "seal.h"
#include "wire.h"

#define KDC_STORE_WHERE_MAX        256
#define KDC_STORE_SCHEMA_VERSION   3    /* the schema this build reads and writes */
#define KDC_STORE_SCHEMA_V2        2    /* kd3 0.1 (SQLite): keys not sealed */
#define KDC_STORE_UNLOCK_BATCH_MAX 1024 /* unlock rows read per reload; the rest next */

typedef struct kdc_store kdc_store;             /* a backend's connection */
typedef struct kdc_store_watch kdc_store_watch; /* a backend's change watcher */

/* ---- rows --------------------------------------------------------------------------- */

typedef struct kdc_db_kvno {
	uint32_t kvno;
	int64_t created;   /* Unix seconds */
	int64_t retire_at; /* 0: none */
} kdc_db_kvno;

typedef struct kdc_db_principal {
	char name[KD3_NAME_MAX + 1];
	int enabled;
	int64_t created;                         /* Unix seconds */
	int64_t last_used;                       /* Unix seconds of its last M3; 0: never */
	kdc_db_kvno kvnos[KD3_KEYFILE_KEYS_MAX]; /* ascending */
	size_t nkvnos;                           /* how many fit in kvnos */
	size_t total_kvnos;                      /* how many the database holds */
	uint32_t kvno_max;
} kdc_db_principal;

typedef struct kdc_db_sealed_key {
	char name[KD3_NAME_MAX + 1];
	uint32_t kvno;
	int64_t created;
	int64_t retire_at; /* 0: none */
	uint8_t sealed[KDC_SEALED_LEN];
} kdc_db_sealed_key;

/* Which key rows each_key returns. */
typedef struct kdc_store_key_query {
	const char *name; /* NULL: every principal */
	int64_t live_at;  /* 0: every key; else those with no retire time or one after it */
	int enabled_only; /* only keys of enabled principals */
	int kvno_desc;    /* by name, then kvno descending (else ascending) */
} kdc_store_key_query;

/* One row of the server's bulk load: a principal and one of its keys, still sealed. A
 * principal with no live key, or disabled, comes once with kvno 0 (no key). */
typedef struct kdc_db_load_row {
	char name[KD3_NAME_MAX + 1];
	size_t name_len;
	int enabled;
	uint32_t kvno; /* 0: no key in this row */
	int64_t retire_at;
	const uint8_t *sealed; /* KDC_SEALED_LEN bytes, as stored; valid during the call */
} kdc_db_load_row;

/* One principal's last use: next fills *row and returns 1, or returns 0 at the end. */
typedef struct kdc_db_used {
	const char *name;
	int64_t at; /* Unix seconds */
} kdc_db_used;

typedef int (*kdc_db_principal_fn)(void *ctx, const kdc_db_principal *p);
typedef int (*kdc_db_sealed_fn)(void *ctx, const kdc_db_sealed_key *k);
typedef int (*kdc_db_load_fn)(void *ctx, const kdc_db_load_row *row);
typedef void (*kdc_db_unlock_fn)(void *ctx, const char *name);
typedef int (*kdc_db_used_fn)(void *ctx, kdc_db_used *row);
/* A blob re-sealed: in (in_len bytes: KDC_SEALED_LEN, or KD3_KEY_LEN for a key of a
 * schema-2 database, in the clear) for the key name:kvno (name NULL: the realm secret)
 * into out. KD3_OK, or an error that ends the statement (the caller names the row). */
typedef int (*kdc_store_reseal_fn)(void *ctx, const char *name, uint32_t kvno, const uint8_t *in,
                                   size_t in_len, uint8_t out[KDC_SEALED_LEN]);

/* ---- the operations ------------------------------------------------------------------ */

typedef struct kdc_store_ops {
	const char *name; /* "sqlite", "postgresql" */

	/* A new, empty realm store at where (refusing one that holds a realm), its schema
	 * written inside a write transaction left open. */
	int (*create)(const char *where, kdc_store **out, char *err, size_t len);
	/* Ends a create or restore that failed: rolls back and leaves nothing behind. */
	void (*discard)(kdc_store *s);
	/* An existing store; *version gets its schema version (checked above). writable = 0
	 * opens it read-only. */
	int (*open)(const char *where, int writable, kdc_store **out, int *version, char *err,
	            size_t len);
	void (*close)(kdc_store *s);
	const char *(*where)(const kdc_store *s);

	/* write = 1 takes the write lock now (checks inside see the final state); 0 is a
	 * read snapshot across several statements. */
	int (*begin)(kdc_store *s, int write, char *err, size_t len);
	int (*commit)(kdc_store *s, char *err, size_t len);
	void (*rollback)(kdc_store *s);

	/* The realm row. realm_get fills whichever of sealed and check is not NULL. */
	int (*realm_insert)(kdc_store *s, const uint8_t sealed[KDC_SEALED_LEN],
	                    const uint8_t check[KD3_HASH_LEN], char *err, size_t len);
	int (*realm_get)(kdc_store *s, uint8_t *sealed, uint8_t *check, char *err, size_t len);

	/* Principals. get: KD3_E_NOT_FOUND when unknown; insert: KD3_E_EXISTS when present;
	 * delete takes its keys along; set_enabled: KD3_E_NOT_FOUND when unknown. */
	int (*principal_get)(kdc_store *s, const char *name, kdc_db_principal *p, char *err,
	                     size_t len);
	int (*principal_insert)(kdc_store *s, const char *name, int enabled, int64_t created,
	                        char *err, size_t len);
	int (*principal_delete)(kdc_store *s, const char *name, char *err, size_t len);
	int (*principal_set_enabled)(kdc_store *s, const char *name, int enabled, char *err,
	                             size_t len);
	/* By name, with their kvnos ascending and last-used times. */
	int (*each_principal)(kdc_store *s, kdc_db_principal_fn fn, void *ctx, char *err,
	                      size_t len);
	int (*count)(kdc_store *s, int enabled_only, size_t *n, char *err, size_t len);

	/* Key rows, sealed. key_insert: KD3_E_EXISTS for a kvno present or no principal. */
	int (*key_insert)(kdc_store *s, const kdc_db_sealed_key *k, char *err, size_t len);
	/* Gives every kvno of name below kvno that has no retire time this one. */
	int (*keys_retire_below)(kdc_store *s, const char *name, uint32_t kvno, int64_t retire_at,
	                         char *err, size_t len);
	/* KD3_E_NOT_FOUND when the principal has no such kvno. */
	int (*key_delete)(kdc_store *s, const char *name, uint32_t kvno, char *err, size_t len);
	/* The kvnos of name (NULL: of every principal) whose retire time has come. */
	int (*keys_purge)(kdc_store *s, const char *name, int64_t now, size_t *n, char *err,
	                  size_t len);
	int (*each_key)(kdc_store *s, const kdc_store_key_query *q, kdc_db_sealed_fn fn, void *ctx,
	                char *err, size_t len);
	/* Inside a write transaction: every key row and the realm secret through fn, and the
	 * master check replaced by check; *nkeys gets the key rows done. */
	int (*reseal)(kdc_store *s, kdc_store_reseal_fn fn, void *ctx,
	              const uint8_t check[KD3_HASH_LEN], size_t *nkeys, char *err, size_t len);
	/* Inside a write transaction on a schema-2 store (SQLite only; NULL elsewhere): the
	 * tables of schema 3 with every clear key through fn, the old ones dropped. */
	int (*upgrade_v2)(kdc_store *s, kdc_store_reseal_fn fn, void *ctx,
	                  const uint8_t check[KD3_HASH_LEN], size_t *nkeys, char *err, size_t len);

	/* The server's bulk read, inside one read transaction: bounds for the table (every
	 * principal, the bytes of all names, every key row), then every principal by name
	 * bytes (kdc_name_cmp's order) with, for an enabled one, its keys live at live_at,
	 * kvno descending, at most KD3_KVNOS_MAX of them (the newest; the rest logged). */
	void (*load_prepare)(kdc_store *s);
	int (*load_counts)(kdc_store *s, size_t *principals, size_t *name_bytes, size_t *keys,
	                   char *err, size_t len);
	int (*load_each)(kdc_store *s, int64_t live_at, kdc_db_load_fn fn, void *ctx, char *err,
	                 size_t len);

	/* kdc unlock: a request to running servers to end name's lockout. */
	int (*unlock_add)(kdc_store *s, const char *name, int64_t now, char *err, size_t len);
	/* Unlock requests with an id above *last, oldest first; *last gets the highest. */
	int (*unlocks_since)(kdc_store *s, int64_t *last, kdc_db_unlock_fn fn, void *ctx, char *err,
	                     size_t len);

	/* A running server's watcher: one connection that tells when an admin write
	 * committed, and writes that server's last-used times (which must not look like an
	 * admin write). write_where: where those writes go (NULL: where itself). */
	int (*watch_open)(const char *where, const char *write_where, kdc_store_watch **out,
	                  char *err, size_t len);
	/* 1 changed since the last call, 0 not (or busy: look again), -1 unreadable. */
	int (*watch_changed)(kdc_store_watch *w);
	/* In one transaction (waiting up to busy_ms for a lock): each row's time unless a
	 * later one is stored; names gone, or created after the time, are skipped. */
	int (*watch_store_last_used)(kdc_store_watch *w, int busy_ms, kdc_db_used_fn next,
	                             void *ctx, char *err, size_t len);
	void (*watch_close)(kdc_store_watch *w);

	/* Failed authentications shared between KDCs (NULL where a backend does not share
	 * them: SQLite, whose KDCs each keep a copy of the file). store: this KDC's (kdc_id)
	 * failures, in one transaction on the write connection; since: the others', with an
	 * id above *last (which gets the highest seen) and at_ms >= since_ms, oldest first. */
	int (*watch_store_failures)(kdc_store_watch *w, uint64_t kdc_id, const kdc_auth_failure *f,
	                            size_t n, char *err, size_t len);
	int (*watch_failures_since)(kdc_store_watch *w, uint64_t kdc_id, int64_t *last,
	                            int64_t since_ms, kdc_auth_failure_fn fn, void *ctx, char *err,
	                            size_t len);
} kdc_store_ops;

extern const kdc_store_ops kdc_store_sqlite;
#ifdef KD3_HAVE_LIBPQ
extern const kdc_store_ops kdc_store_postgres;
#endif

/* For backends filling a kdc_db_principal: one more kvno (kept while there is room;
 * counted and kvno_max followed either way). */
void kdc_store_principal_add_kvno(kdc_db_principal *p, uint32_t kvno, int64_t created,
                                  int64_t retire_at);

/* SQLite: how long a statement waits for another connection's lock, for connections
 * opened after the call (default 5000 ms; < 0 restores it). For tests. */
void kdc_sqlite_set_busy_timeout_ms(int ms);

/* where for messages: a URI's password (user:password@) left out, cut to fit. */
void kdc_store_redact(const char *where, char out[KDC_STORE_WHERE_MAX]);

/* For backends' bulk loads: one principal's live keys as they come (oldest first), of
 * which the newest KD3_KVNOS_MAX are kept, then given to fn newest first. */
typedef struct kdc_store_group {
	size_t n, dropped;
	struct {
		uint32_t kvno;
		int64_t retire_at;
		uint8_t sealed[KDC_SEALED_LEN];
	} key[KD3_KVNOS_MAX];
} kdc_store_group;

void kdc_store_group_reset(kdc_store_group *g);
void kdc_store_group_add(kdc_store_group *g, uint32_t kvno, int64_t retire_at,
                         const uint8_t sealed[KDC_SEALED_LEN]);
/* The rows of r's principal: its keys newest first, or one row without a key (kvno 0);
 * logs how many older live versions were not kept. */
int kdc_store_group_emit(kdc_store_group *g, kdc_db_load_row *r, kdc_db_load_fn fn, void *ctx);

/* 1 when where names a PostgreSQL database (a postgresql:// or postgres:// URI). */
int kdc_store_is_postgres(const char *where);
/* The backend for where: PostgreSQL for a URI, else SQLite (a file path). A URI in a
 * build without libpq: NULL, err says so. */
const kdc_store_ops *kdc_store_for(const char *where, char *err, size_t len);

#endif
