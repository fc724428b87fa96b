/* kdc database: principals and their long-term keys, sealed under the realm's master key
 * (kdc/seal.h), which lives in the stash file (kdc/stash.h), never in the database.
 *
 * This is the layer every command and the server use; it never names a backend. The
 * rows live behind kdc/store/store.h: SQLite (a file path, the default) or PostgreSQL
 * (a postgresql:// URI). Here the keys are sealed and opened, the master key the
 * database's check names is found in the stash (and followed across a rekey-master),
 * and the schema version is checked.
 *
 * The admin commands wrap each change in one transaction (kdc_db_begin /
 * kdc_db_commit), so a failure leaves the database as it was. Errors fill err with
 * "WHERE: reason", WHERE the path, or the URI without any password. */
#ifndef KDC_DB_H
#define KDC_DB_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "keyfile.h"
#include "seal.h"
#include "wire.h"

#include "store/store.h"

#define KDC_DB_SCHEMA_VERSION KDC_STORE_SCHEMA_VERSION
#define KDC_DB_SCHEMA_V2      KDC_STORE_SCHEMA_V2

typedef struct kdc_db {
	const kdc_store_ops *ops;
	kdc_store *st;
	char path[KDC_STORE_WHERE_MAX]; /* where, for messages (no password) */
	char stash[PATH_MAX];
	int writable;
	kdc_master master; /* the master key the database's check names */
	int stash_extra;   /* the stash also holds a key the database does not use */
} kdc_db;

/* Creates a new database file (mode 0600) whose keys are sealed under master (the stash
 * holding it is the caller's); refuses an existing path. stash names it in errors. */
int kdc_db_create(const char *path, const char *stash, const uint8_t master[KD3_KEY_LEN],
                  const uint8_t realm_secret[KD3_KEY_LEN], kdc_db *db, char *err, size_t err_len);
/* Opens an existing kd3 database and the stash beside it. Refuses a symbolic link, a
 * file another user owns or that group or others can read (checked on the opened file,
 * not on its name), a database of another schema (a kd3 0.1 one with how to upgrade),
 * and a stash that does not hold the database's master key. writable = 0 opens
 * read-only and without a DRBG (nothing can be sealed). */
int kdc_db_open(const char *path, const char *stash, int writable, kdc_db *db, char *err,
                size_t err_len);
/* Converts a kd3 0.1 (schema 2) database in one transaction: every key and the realm
 * secret sealed under the master key of stash, which is created when missing (an
 * existing stash with one key is used: an upgrade interrupted before its commit).
 * *nkeys gets the number of keys sealed. */
int kdc_db_upgrade(const char *path, const char *stash, size_t *nkeys, char *err, size_t err_len);
/* How long a statement waits for another connection's lock, for connections opened
 * after the call (default 5000 ms; < 0 restores it). For tests. */
void kdc_db_set_busy_timeout_ms(int ms);
void kdc_db_close(kdc_db *db);

/* BEGIN IMMEDIATE: takes the write lock now, so the checks inside see the final state.
 * Both begins also make db->master the key the database names in that transaction (a
 * rekey-master committed since is followed, never half-seen). */
int kdc_db_begin(kdc_db *db, char *err, size_t err_len);
/* BEGIN (deferred): a read snapshot across several statements. */
int kdc_db_begin_read(kdc_db *db, char *err, size_t err_len);
int kdc_db_commit(kdc_db *db, char *err, size_t err_len);
void kdc_db_rollback(kdc_db *db);

/* Live at time now: no retire time, or one still ahead. */
int kdc_db_kvno_live(const kdc_db_kvno *k, int64_t now);

/* KD3_E_NOT_FOUND when there is no such principal. */
int kdc_db_principal_get(kdc_db *db, const char *name, kdc_db_principal *p, char *err,
                         size_t err_len);
int kdc_db_principal_insert(kdc_db *db, const char *name, int enabled, int64_t created, char *err,
                            size_t err_len);
/* Removes the principal and all its keys. KD3_E_NOT_FOUND when unknown. */
int kdc_db_principal_delete(kdc_db *db, const char *name, char *err, size_t err_len);
int kdc_db_principal_set_enabled(kdc_db *db, const char *name, int enabled, char *err,
                                 size_t err_len);

/* Seals key under the database's master key and stores it (no retire time). */
int kdc_db_key_insert(kdc_db *db, const char *name, uint32_t kvno, const uint8_t key[KD3_KEY_LEN],
                      int64_t created, char *err, size_t err_len);
/* Gives every kvno of name below kvno that has no retire time this one. */
int kdc_db_keys_retire_below(kdc_db *db, const char *name, uint32_t kvno, int64_t retire_at,
                             char *err, size_t err_len);
/* KD3_E_NOT_FOUND when the principal has no such kvno. */
int kdc_db_key_delete(kdc_db *db, const char *name, uint32_t kvno, char *err, size_t err_len);
/* Deletes the kvnos of name (NULL: of every principal) whose retire time has come. */
int kdc_db_keys_purge(kdc_db *db, const char *name, int64_t now, size_t *n, char *err,
                      size_t err_len);
/* The kvnos of name live at live_at (0: every kvno), ascending, opened, into kf (which
 * the caller wipes). */
int kdc_db_keys_get(kdc_db *db, const char *name, int64_t live_at, kd3_keyfile *kf, char *err,
                    size_t err_len);

/* Calls fn once per principal, by name. fn returns KD3_OK to go on. */
int kdc_db_each_principal(kdc_db *db, kdc_db_principal_fn fn, void *ctx, char *err, size_t err_len);

/* Calls fn once per key of every enabled principal live at live_at (0: every key), by
 * name, then kvno descending. The key is opened on the stack only for the call. */
typedef int (*kdc_db_key_fn)(void *ctx, const char *name, uint32_t kvno, int64_t retire_at,
                             const uint8_t key[KD3_KEY_LEN]);
int kdc_db_each_key(kdc_db *db, int64_t live_at, kdc_db_key_fn fn, void *ctx, char *err,
                    size_t err_len);

/* The realm secret (32 bytes) from which the KDC derives each SK; created once by
 * `kdc init`, the same at every KDC of the realm. Opened from its sealed row. */
int kdc_db_realm_secret_get(kdc_db *db, uint8_t secret[KD3_KEY_LEN], char *err, size_t err_len);

int kdc_db_count(kdc_db *db, int enabled_only, size_t *n, char *err, size_t err_len);

/* ---- master key rotation ---------------------------------------------------------- */

/* Inside a transaction: every key and the realm secret opened under the current master
 * key and sealed under next, and the check replaced by next's. The database keeps
 * using db->master until the caller swaps them after the commit. */
int kdc_db_rekey(kdc_db *db, kdc_master *next, size_t *nkeys, char *err, size_t err_len);
/* The master check the database holds now (inside a transaction: of that snapshot). */
int kdc_db_master_check_get(kdc_db *db, uint8_t check[KD3_HASH_LEN], char *err, size_t err_len);

/* ---- dump and load: rows with their keys still sealed ------------------------------ */

/* Every key row of every principal, by name then kvno ascending. */
int kdc_db_each_sealed_key(kdc_db *db, kdc_db_sealed_fn fn, void *ctx, char *err, size_t err_len);
int kdc_db_realm_sealed_get(kdc_db *db, uint8_t sealed[KDC_SEALED_LEN], char *err, size_t err_len);

/* A new database for a restore: the file (mode 0600, refusing an existing path), the
 * schema and the realm row, in a transaction left open; master is the stash key the
 * rows were sealed under. Then kdc_db_principal_insert and kdc_db_sealed_key_insert,
 * then kdc_db_restore_end, which commits (ret == KD3_OK) or removes the file. */
int kdc_db_restore_begin(const char *path, const char *stash, const uint8_t master[KD3_KEY_LEN],
                         const uint8_t realm_sealed[KDC_SEALED_LEN], kdc_db *db, char *err,
                         size_t err_len);
/* Refuses a row whose key does not open under the database's master key. */
int kdc_db_sealed_key_insert(kdc_db *db, const kdc_db_sealed_key *k, char *err, size_t err_len);
int kdc_db_restore_end(kdc_db *db, int ret, char *err, size_t err_len);

/* ---- for a running kdc serve ------------------------------------------------------ */

/* kdc unlock: a row telling running servers to end name's lockout (the unlocks table is
 * created when first needed; rows older than a day are dropped). Inside a transaction. */
int kdc_db_unlock_add(kdc_db *db, const char *name, int64_t now, char *err, size_t err_len);
/* Calls fn for each unlock row with an id above *last, oldest first, and sets *last to
 * the highest id seen. No unlocks table yet: none. */
int kdc_db_unlocks_since(kdc_db *db, int64_t *last, kdc_db_unlock_fn fn, void *ctx, char *err,
                         size_t err_len);

/* A running server's watcher (the backend's): tells when an admin write committed
 * (SQLite: another connection's commit or another file under the path; PostgreSQL: the
 * realm's generation counter), and writes that server's last-used times, which do not
 * look like an admin write. write_where: where those writes go (NULL: where; for
 * PostgreSQL the primary, when where is a hot standby). */
typedef struct kdc_db_watch {
	const kdc_store_ops *ops;
	kdc_store_watch *w;
} kdc_db_watch;

int kdc_db_watch_open(kdc_db_watch *w, const char *where, const char *write_where, char *err,
                      size_t err_len);
/* 1 when the database changed since the last call (or since open), 0 when not (or
 * when it is busy: look again later), -1 when it cannot be read (reload to find out
 * why: kdc_db_open says). */
int kdc_db_watch_changed(kdc_db_watch *w);
void kdc_db_watch_close(kdc_db_watch *w);

/* In one transaction (waiting up to busy_ms for the write lock): each row's time,
 * unless the database holds a later one for the name (several servers may share it).
 * A name no longer in the database, or created after the time (removed and added
 * again since), is skipped. */
int kdc_db_watch_store_last_used(kdc_db_watch *w, int busy_ms, kdc_db_used_fn next, void *ctx,
                                 char *err, size_t err_len);

/* Shared failed authentications (kdc_store_ops): 1 when the backend shares them. */
int kdc_db_watch_shares_failures(const kdc_db_watch *w);
int kdc_db_watch_store_failures(kdc_db_watch *w, uint64_t kdc_id, const kdc_auth_failure *f,
                                size_t n, char *err, size_t err_len);
int kdc_db_watch_failures_since(kdc_db_watch *w, uint64_t kdc_id, int64_t *last, int64_t since_ms,
                                kdc_auth_failure_fn fn, void *ctx, char *err, size_t err_len);

#endif
