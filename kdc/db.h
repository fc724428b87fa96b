/* kdc database: principals and their long-term keys in SQLite.
 *
 *   principals(name TEXT PRIMARY KEY, enabled INTEGER, created INTEGER)
 *   keys(name, kvno, key BLOB, created, PRIMARY KEY(name, kvno))
 *
 * PRAGMA user_version holds the schema version. Every statement is prepared with bound
 * parameters; the admin commands wrap each change in one transaction (kdc_db_begin /
 * kdc_db_commit), so a failure leaves the database as it was. Errors fill err with
 * "PATH: reason". */
#ifndef KDC_DB_H
#define KDC_DB_H

#include <stddef.h>
#include <stdint.h>

#include "keyfile.h"
#include "wire.h"

#define KDC_DB_SCHEMA_VERSION 2

struct sqlite3;

typedef struct kdc_db {
	struct sqlite3 *h;
	char path[256];
} kdc_db;

/* Creates a new database file (mode 0600); refuses an existing path. */
int kdc_db_create(const char *path, const uint8_t realm_secret[KD3_KEY_LEN], kdc_db *db, char *err,
                  size_t err_len);
/* Opens an existing kd3 database; refuses a symbolic link, a file another user owns, and
 * one readable by group or others (checked on the opened file, not on its name). */
int kdc_db_open(const char *path, int writable, kdc_db *db, char *err, size_t err_len);
/* How long a statement waits for another connection's lock, for connections opened
 * after the call (default 5000 ms; < 0 restores it). For tests. */
void kdc_db_set_busy_timeout_ms(int ms);
void kdc_db_close(kdc_db *db);

/* BEGIN IMMEDIATE: takes the write lock now, so the checks inside see the final state. */
int kdc_db_begin(kdc_db *db, char *err, size_t err_len);
/* BEGIN (deferred): a read snapshot across several statements. */
int kdc_db_begin_read(kdc_db *db, char *err, size_t err_len);
int kdc_db_commit(kdc_db *db, char *err, size_t err_len);
void kdc_db_rollback(kdc_db *db);

typedef struct kdc_db_principal {
	char name[KD3_NAME_MAX + 1];
	int enabled;
	int64_t created;                      /* Unix seconds */
	uint32_t kvnos[KD3_KEYFILE_KEYS_MAX]; /* ascending */
	size_t nkvnos;                        /* how many fit in kvnos */
	size_t total_kvnos;                   /* how many the database holds */
	uint32_t kvno_max;
} kdc_db_principal;

/* KD3_E_NOT_FOUND when there is no such principal. */
int kdc_db_principal_get(kdc_db *db, const char *name, kdc_db_principal *p, char *err,
                         size_t err_len);
int kdc_db_principal_insert(kdc_db *db, const char *name, int64_t created, char *err,
                            size_t err_len);
/* Removes the principal and all its keys. KD3_E_NOT_FOUND when unknown. */
int kdc_db_principal_delete(kdc_db *db, const char *name, char *err, size_t err_len);
int kdc_db_principal_set_enabled(kdc_db *db, const char *name, int enabled, char *err,
                                 size_t err_len);

int kdc_db_key_insert(kdc_db *db, const char *name, uint32_t kvno, const uint8_t key[KD3_KEY_LEN],
                      int64_t created, char *err, size_t err_len);
/* KD3_E_NOT_FOUND when the principal has no such kvno. */
int kdc_db_key_delete(kdc_db *db, const char *name, uint32_t kvno, char *err, size_t err_len);
/* Every kvno of name, ascending, into kf (which the caller wipes). */
int kdc_db_keys_get(kdc_db *db, const char *name, kd3_keyfile *kf, char *err, size_t err_len);

/* Calls fn once per principal, by name. fn returns KD3_OK to go on. */
typedef int (*kdc_db_principal_fn)(void *ctx, const kdc_db_principal *p);
int kdc_db_each_principal(kdc_db *db, kdc_db_principal_fn fn, void *ctx, char *err, size_t err_len);

/* Calls fn once per key of every enabled principal, by name, then kvno descending.
 * The key is on the caller's stack only for the call (wiped after). */
typedef int (*kdc_db_key_fn)(void *ctx, const char *name, uint32_t kvno,
                             const uint8_t key[KD3_KEY_LEN]);
int kdc_db_each_key(kdc_db *db, kdc_db_key_fn fn, void *ctx, char *err, size_t err_len);

/* Counts principals (all, or only enabled ones). */
/* The realm secret (32 bytes) from which the KDC derives each SK; created once by
 * `kdc init`, kept with the principals, the same at every KDC of the realm. */
int kdc_db_realm_secret_set(kdc_db *db, const uint8_t secret[KD3_KEY_LEN], char *err,
                            size_t err_len);
int kdc_db_realm_secret_get(kdc_db *db, uint8_t secret[KD3_KEY_LEN], char *err, size_t err_len);

int kdc_db_count(kdc_db *db, int enabled_only, size_t *n, char *err, size_t err_len);

#endif
