/* kdc storage over SQLite: one file, checked before it is opened, one function per
 * statement, every statement prepared with bound parameters.
 *
 *   principals(name TEXT PRIMARY KEY, enabled INTEGER, created INTEGER)
 *   keys(name, kvno, sealed BLOB, created, retire_at, PRIMARY KEY(name, kvno))
 *   realm(id = 1, secret BLOB (sealed), master_check BLOB)
 *   unlocks(id INTEGER PRIMARY KEY AUTOINCREMENT, name, at)   (created by kdc unlock)
 *   last_used(name PRIMARY KEY REFERENCES principals ON DELETE CASCADE, at)
 *                                                  (created by kdc serve's first write)
 *
 * PRAGMA user_version holds the schema version (3; 2 was kd3 0.1, keys in the clear).
 * The bulk load is in sqlite_load.c, the watcher in sqlite_watch.c. */
#include "sqlite_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "msg.h"

#define DB_BUSY_TIMEOUT_MS 5000

_Static_assert(KDC_SEALED_LEN == 61, "the schema's CHECK says 61");

static int db_busy_timeout_ms = DB_BUSY_TIMEOUT_MS;

void kdc_sqlite_set_busy_timeout_ms(int ms)
{
	db_busy_timeout_ms = ms >= 0 ? ms : DB_BUSY_TIMEOUT_MS;
}

#define DB_TABLE_KEYS                                                                              \
	"CREATE TABLE keys ("                                                                      \
	"  name TEXT NOT NULL REFERENCES principals(name) ON DELETE CASCADE,"                      \
	"  kvno INTEGER NOT NULL CHECK (kvno BETWEEN 1 AND 4294967295),"                           \
	"  sealed BLOB NOT NULL CHECK (length(sealed) = 61),"                                      \
	"  created INTEGER NOT NULL,"                                                              \
	"  retire_at INTEGER CHECK (retire_at IS NULL OR retire_at > 0),"                          \
	"  PRIMARY KEY (name, kvno)"                                                               \
	");"

#define DB_TABLE_REALM                                                                             \
	"CREATE TABLE realm ("                                                                     \
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"                                                 \
	"  secret BLOB NOT NULL CHECK (length(secret) = 61),"                                      \
	"  master_check BLOB NOT NULL CHECK (length(master_check) = 32)"                           \
	");"

static const char db_schema[] = "BEGIN;"
                                "CREATE TABLE principals ("
                                "  name TEXT PRIMARY KEY NOT NULL,"
                                "  enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),"
                                "  created INTEGER NOT NULL"
                                ");" DB_TABLE_KEYS DB_TABLE_REALM "PRAGMA user_version = 3;";

/* ---- statements ------------------------------------------------------------------- */

int sq_fail(kdc_store *s, char *err, size_t len, const char *what)
{
	snprintf(err, len, "%s: %s: %s", s->path, what, s->h ? sqlite3_errmsg(s->h) : "?");
	return KD3_E_DB;
}

int sq_prepare(kdc_store *s, const char *sql, sqlite3_stmt **st, char *err, size_t len)
{
	if (sqlite3_prepare_v2(s->h, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return sq_fail(s, err, len, "cannot prepare a statement");
	}
	return KD3_OK;
}

/* Runs a statement that returns no rows; a constraint violation is KD3_E_EXISTS. */
static int sq_step_done(kdc_store *s, sqlite3_stmt *st, char *err, size_t len, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return KD3_OK;
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		sq_fail(s, err, len, what);
		return KD3_E_EXISTS;
	}
	return sq_fail(s, err, len, what);
}

void sq_finish(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_clear_bindings(st); /* blobs were bound SQLITE_STATIC from our buffers */
		sqlite3_finalize(st);
	}
}

int sq_exec(kdc_store *s, const char *sql, char *err, size_t len, const char *what)
{
	if (sqlite3_exec(s->h, sql, NULL, NULL, NULL) != SQLITE_OK)
		return sq_fail(s, err, len, what);
	return KD3_OK;
}

int sq_column_name(sqlite3_stmt *st, int col, char out[KD3_NAME_MAX + 1])
{
	const unsigned char *v = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);
	if (!v || n < 1 || n > KD3_NAME_MAX || !kd3_name_valid(v, (size_t)n))
		return KD3_E_DB;
	memcpy(out, v, (size_t)n);
	out[n] = '\0';
	return KD3_OK;
}

static int column_sealed(sqlite3_stmt *st, int col, uint8_t out[KDC_SEALED_LEN])
{
	const void *blob = sqlite3_column_blob(st, col);
	if (!blob || sqlite3_column_bytes(st, col) != KDC_SEALED_LEN)
		return KD3_E_DB;
	memcpy(out, blob, KDC_SEALED_LEN);
	return KD3_OK;
}

int64_t sq_column_time(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, col);
}

/* Tables created after the schema (unlocks, last_used) may be missing: *has says. */
static int sq_has_table(kdc_store *s, const char *table, int *has, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = sq_prepare(s, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
	                     &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	*has = rc == SQLITE_ROW;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = sq_fail(s, err, len, "cannot read the schema");
	sq_finish(st);
	return ret;
}

/* ---- open, create, close ------------------------------------------------------------ */

static void sq_close(kdc_store *s)
{
	if (!s)
		return;
	if (s->h)
		sqlite3_close_v2(s->h);
	free(s);
}

static int sq_connect(const char *path, int flags, kdc_store **out, char *err, size_t len)
{
	kdc_store *s = calloc(1, sizeof(*s));
	*out = NULL;
	if (!s) {
		snprintf(err, len, "%s: out of memory", path);
		return KD3_E_NOMEM;
	}
	if (snprintf(s->path, sizeof(s->path), "%s", path) >= (int)sizeof(s->path)) {
		snprintf(err, len, "%.64s...: path is too long", path);
		free(s);
		return KD3_E_DB;
	}
	s->writable = (flags & SQLITE_OPEN_READWRITE) != 0;
	if (sqlite3_open_v2(path, &s->h, flags | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
		int ret = sq_fail(s, err, len, "cannot open");
		s->hot_journal = s->h && sqlite3_extended_errcode(s->h) == SQLITE_READONLY_ROLLBACK;
		sq_close(s);
		return ret;
	}
	sqlite3_extended_result_codes(s->h, 1);
	sqlite3_busy_timeout(s->h, db_busy_timeout_ms);
	sqlite3_db_config(s->h, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	/* secure_delete: a removed key is overwritten in the file, not left in a free page. */
	int ret = sq_exec(s, "PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;", err, len,
	                  "cannot configure");
	if (ret != KD3_OK) {
		sq_close(s);
		return ret;
	}
	*out = s;
	return KD3_OK;
}

/* The file (O_EXCL: refuses an existing one; mode 0600 from the first byte, which SQLite
 * gives its journal too), connected, with the schema inside an open transaction. */
static int sq_create(const char *path, kdc_store **out, char *err, size_t len)
{
	*out = NULL;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		int saved = errno;
		if (saved == EEXIST)
			snprintf(err, len, "%s: already exists; refusing to overwrite it", path);
		else
			snprintf(err, len, "%s: %s", path, strerror(saved));
		return saved == EEXIST ? KD3_E_EXISTS : KD3_E_DB;
	}
	close(fd);
	int ret = sq_connect(path, SQLITE_OPEN_READWRITE, out, err, len);
	if (ret == KD3_OK)
		ret = sq_exec(*out, db_schema, err, len, "cannot create the schema");
	if (ret != KD3_OK) {
		sq_close(*out);
		*out = NULL;
		unlink(path);
	}
	return ret;
}

static void sq_discard(kdc_store *s)
{
	char path[sizeof(s->path)];
	memcpy(path, s->path, sizeof(path));
	sq_close(s); /* rolls back the open transaction, removes the journal */
	unlink(path);
}

static int db_stat_error(const char *path, int saved, char *err, size_t len)
{
	if (saved == ENOENT) {
		snprintf(err, len, "%s: no such database; create it with 'kdc init'", path);
		return KD3_E_NOT_FOUND;
	}
	if (saved == ELOOP)
		snprintf(err, len, "%s: is a symbolic link; refusing to follow it", path);
	else
		snprintf(err, len, "%s: %s", path, strerror(saved));
	return KD3_E_DB;
}

int kdc_sqlite_stat_error(const char *path, int saved, char *err, size_t len)
{
	return db_stat_error(path, saved, err, len);
}

/* What was opened: a regular file, ours, private. */
static int db_check_stat(const char *path, const struct stat *st, char *err, size_t len)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, len, "%s: not a regular file", path);
		return KD3_E_DB;
	}
	/* Someone else's file could be changed or swapped under us. */
	if (st->st_uid != geteuid()) {
		snprintf(err, len, "%s: database is owned by uid %u, not by this user (uid %u)",
		         path, (unsigned)st->st_uid, (unsigned)geteuid());
		return KD3_E_KEYFILE_PERMS;
	}
	if ((st->st_mode & 077) != 0) {
		snprintf(
		    err, len,
		    "%s: database is readable by group or others (mode 0%03o); run chmod 600 %s",
		    path, (unsigned)(st->st_mode & 0777), path);
		return KD3_E_KEYFILE_PERMS;
	}
	return KD3_OK;
}

/* Checks the file itself, not its name: lstat names it (a symbolic link is refused),
 * open without following links, and fstat on that descriptor must show the same file
 * (device and inode), so the checks apply to what was opened. *id gets that file, for
 * db_same_file once SQLite opened the path. */
static int db_check_file(const char *path, struct stat *id, char *err, size_t len)
{
	struct stat named, opened;
	if (lstat(path, &named) != 0)
		return db_stat_error(path, errno, err, len);
	if (!S_ISREG(named.st_mode)) {
		snprintf(err, len, "%s: not a regular file", path);
		return KD3_E_DB;
	}
	/* O_NONBLOCK: a FIFO swapped in after lstat cannot block the open. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return db_stat_error(path, errno, err, len);
	int ret = KD3_E_DB;
	if (fstat(fd, &opened) != 0) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (opened.st_dev != named.st_dev || opened.st_ino != named.st_ino) {
		snprintf(err, len, "%s: the file changed while it was being opened", path);
		goto out;
	}
	ret = db_check_stat(path, &opened, err, len);
	*id = opened;
out:
	close(fd);
	return ret;
}

/* The path still names the file db_check_file checked (SQLite opened it by name). */
static int db_same_file(const char *path, const struct stat *id, char *err, size_t len)
{
	struct stat now;
	if (lstat(path, &now) == 0 && now.st_dev == id->st_dev && now.st_ino == id->st_ino)
		return KD3_OK;
	snprintf(err, len, "%s: the file changed while it was being opened", path);
	return KD3_E_DB;
}

static int sq_schema_version(kdc_store *s, int *version, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = sq_prepare(s, "PRAGMA user_version", &st, err, len);
	if (ret != KD3_OK)
		return ret;
	if (sqlite3_step(st) == SQLITE_ROW)
		*version = sqlite3_column_int(st, 0);
	else
		ret = sq_fail(s, err, len, "cannot read the schema version");
	s->hot_journal = sqlite3_extended_errcode(s->h) == SQLITE_READONLY_ROLLBACK;
	sq_finish(st);
	return ret;
}

/* A write killed in its transaction leaves a hot journal, which only a read-write
 * connection may roll back: a read-only one (serve, list, export, dump) reads nothing
 * and gets SQLITE_READONLY_ROLLBACK. One short read-write connection to the same, checked
 * file rolls it back (on its first read), as any admin command would. */
static int db_roll_back_journal(const char *path, char *err, size_t len)
{
	kdc_store *rw = NULL;
	int version = -1;
	int ret = sq_connect(path, SQLITE_OPEN_READWRITE, &rw, err, len);
	if (ret == KD3_OK)
		ret = sq_schema_version(rw, &version, err, len);
	sq_close(rw);
	return ret;
}

/* The file checks, the connection, and the schema version (*version). */
static int sq_open(const char *path, int writable, kdc_store **out, int *version, char *err,
                   size_t len)
{
	struct stat id = {0};
	*out = NULL;
	int ret = db_check_file(path, &id, err, len);
	for (int attempt = 0; ret == KD3_OK && attempt < 2; attempt++) {
		kdc_store *s = NULL;
		ret = sq_connect(path, writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, &s,
		                 err, len);
		if (ret == KD3_OK)
			ret = db_same_file(path, &id, err, len);
		if (ret == KD3_OK)
			ret = sq_schema_version(s, version, err, len);
		if (ret == KD3_OK) {
			*out = s;
			return KD3_OK;
		}
		int hot = s && s->hot_journal;
		sq_close(s);
		if (!hot || attempt > 0)
			break;
		ret = db_roll_back_journal(path, err, len);
	}
	return ret;
}

static const char *sq_where(const kdc_store *s)
{
	return s->path;
}

/* ---- transactions -------------------------------------------------------------------- */

static int sq_begin(kdc_store *s, int write, char *err, size_t len)
{
	return sq_exec(s, write ? "BEGIN IMMEDIATE" : "BEGIN", err, len,
	               "cannot start a transaction");
}

static void sq_rollback(kdc_store *s)
{
	if (!sqlite3_get_autocommit(s->h))
		sqlite3_exec(s->h, "ROLLBACK", NULL, NULL, NULL);
}

static int sq_commit(kdc_store *s, char *err, size_t len)
{
	int ret = sq_exec(s, "COMMIT", err, len, "cannot commit");
	if (ret != KD3_OK)
		sq_rollback(s);
	return ret;
}

/* ---- the realm row ------------------------------------------------------------------ */

static int sq_realm_insert(kdc_store *s, const uint8_t sealed[KDC_SEALED_LEN],
                           const uint8_t check[KD3_HASH_LEN], char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = sq_prepare(s, "INSERT INTO realm (id, secret, master_check) VALUES (1, ?1, ?2)",
	                     &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_blob(st, 1, sealed, KDC_SEALED_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, check, KD3_HASH_LEN, SQLITE_STATIC);
	ret = sq_step_done(s, st, err, len, "cannot store the realm secret");
	sq_finish(st);
	return ret;
}

static int sq_realm_get(kdc_store *s, uint8_t *sealed, uint8_t *check, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret =
	    sq_prepare(s, "SELECT secret, master_check FROM realm WHERE id = 1", &st, err, len);
	if (ret != KD3_OK)
		return ret;
	if (sqlite3_step(st) != SQLITE_ROW || (sealed && column_sealed(st, 0, sealed) != KD3_OK) ||
	    sqlite3_column_bytes(st, 1) != KD3_HASH_LEN) {
		snprintf(err, len, "%s: the realm row is missing or damaged", s->path);
		ret = KD3_E_DB;
	} else if (check) {
		memcpy(check, sqlite3_column_blob(st, 1), KD3_HASH_LEN);
	}
	sq_finish(st);
	return ret;
}

static int sq_set_check(kdc_store *s, const uint8_t check[KD3_HASH_LEN], char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = sq_prepare(s, "UPDATE realm SET master_check = ?1 WHERE id = 1", &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_blob(st, 1, check, KD3_HASH_LEN, SQLITE_STATIC);
	ret = sq_step_done(s, st, err, len, "cannot store the master check");
	if (ret == KD3_OK && sqlite3_changes(s->h) != 1)
		ret = sq_fail(s, err, len, "no realm row");
	sq_finish(st);
	return ret;
}

/* ---- re-sealing inside SQL: one statement re-seals a whole table ---------------------- */

struct sq_reseal {
	kdc_store_reseal_fn fn;
	void *ctx;
};

static void sql_reseal(sqlite3_context *sc, int argc, sqlite3_value **argv)
{
	struct sq_reseal *r = sqlite3_user_data(sc);
	uint8_t out[KDC_SEALED_LEN];
	const char *name = (const char *)sqlite3_value_text(argv[0]);
	uint32_t kvno = (uint32_t)sqlite3_value_int64(argv[1]);
	const uint8_t *in = sqlite3_value_blob(argv[2]);
	int in_len = sqlite3_value_bytes(argv[2]);
	(void)argc;
	if (in && in_len > 0 && r->fn(r->ctx, name, kvno, in, (size_t)in_len, out) == KD3_OK) {
		sqlite3_result_blob(sc, out, KDC_SEALED_LEN, SQLITE_TRANSIENT);
		return;
	}
	sqlite3_result_error(sc, "a key did not open", -1);
}

static int reseal_register(kdc_store *s, struct sq_reseal *r, char *err, size_t len)
{
	if (sqlite3_create_function(s->h, "kd3_reseal", 3, SQLITE_UTF8 | SQLITE_DIRECTONLY, r,
	                            sql_reseal, NULL, NULL) != SQLITE_OK)
		return sq_fail(s, err, len, "cannot set up re-sealing");
	return KD3_OK;
}

static void reseal_unregister(kdc_store *s)
{
	sqlite3_create_function(s->h, "kd3_reseal", 3, SQLITE_UTF8, NULL, NULL, NULL, NULL);
}

static int sq_reseal(kdc_store *s, kdc_store_reseal_fn fn, void *ctx,
                     const uint8_t check[KD3_HASH_LEN], size_t *nkeys, char *err, size_t len)
{
	struct sq_reseal r = {fn, ctx};
	int ret = reseal_register(s, &r, err, len);
	if (ret != KD3_OK)
		return ret;
	/* One statement per table: SQLite calls kd3_reseal once per row. */
	ret = sq_exec(s, "UPDATE keys SET sealed = kd3_reseal(name, kvno, sealed)", err, len,
	              "cannot re-seal the keys");
	*nkeys = ret == KD3_OK ? (size_t)sqlite3_changes(s->h) : 0;
	if (ret == KD3_OK)
		ret =
		    sq_exec(s, "UPDATE realm SET secret = kd3_reseal(NULL, 0, secret) WHERE id = 1",
		            err, len, "cannot re-seal the realm secret");
	reseal_unregister(s);
	return ret == KD3_OK ? sq_set_check(s, check, err, len) : ret;
}

/* ---- upgrade from schema 2 ------------------------------------------------------------ */

static const char upgrade_tables[] =
    "ALTER TABLE keys RENAME TO keys_v2;"
    "ALTER TABLE realm RENAME TO realm_v2;" DB_TABLE_KEYS DB_TABLE_REALM;

/* The realm row of schema 2, sealed, with the new master check. */
static int upgrade_realm(kdc_store *s, const uint8_t check[KD3_HASH_LEN], char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret =
	    sq_prepare(s,
	               "INSERT INTO realm (id, secret, master_check)"
	               " SELECT 1, kd3_reseal(NULL, 0, secret), ?1 FROM realm_v2 WHERE id = 1",
	               &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_blob(st, 1, check, KD3_HASH_LEN, SQLITE_STATIC);
	ret = sq_step_done(s, st, err, len, "cannot seal the realm secret");
	if (ret == KD3_OK && sqlite3_changes(s->h) != 1) {
		snprintf(err, len, "%s: the realm secret is missing", s->path);
		ret = KD3_E_DB;
	}
	sq_finish(st);
	return ret;
}

/* Inside the transaction: new tables, every row sealed, the old tables gone. */
static int sq_upgrade_v2(kdc_store *s, kdc_store_reseal_fn fn, void *ctx,
                         const uint8_t check[KD3_HASH_LEN], size_t *nkeys, char *err, size_t len)
{
	struct sq_reseal r = {fn, ctx};
	int version = -1;
	int ret = sq_schema_version(s, &version, err, len);
	if (ret == KD3_OK && version != KDC_STORE_SCHEMA_V2) { /* another upgrade was first */
		snprintf(err, len, "%s: schema version %d, not 2: nothing to upgrade", s->path,
		         version);
		return KD3_E_DB;
	}
	if (ret == KD3_OK)
		ret = sq_exec(s, upgrade_tables, err, len, "cannot create the new tables");
	if (ret == KD3_OK)
		ret = reseal_register(s, &r, err, len);
	if (ret != KD3_OK)
		return ret;
	ret = sq_exec(s,
	              "INSERT INTO keys (name, kvno, sealed, created)"
	              " SELECT name, kvno, kd3_reseal(name, kvno, key), created FROM keys_v2",
	              err, len, "cannot seal the keys");
	*nkeys = ret == KD3_OK ? (size_t)sqlite3_changes(s->h) : 0;
	if (ret == KD3_OK)
		ret = upgrade_realm(s, check, err, len);
	reseal_unregister(s);
	if (ret == KD3_OK)
		ret =
		    sq_exec(s, "DROP TABLE keys_v2; DROP TABLE realm_v2; PRAGMA user_version = 3;",
		            err, len, "cannot drop the old tables");
	return ret;
}

/* ---- principals ----------------------------------------------------------------- */

/* Columns kvno, created, retire_at from col on (NULL kvno: a principal without keys). */
static void principal_add_kvno(kdc_db_principal *p, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return; /* LEFT JOIN: a principal without keys */
	kdc_store_principal_add_kvno(p, (uint32_t)sqlite3_column_int64(st, col),
	                             sqlite3_column_int64(st, col + 1),
	                             sq_column_time(st, col + 2));
}

/* The last_used table exists once a kdc serve wrote to it: without it, every
 * principal's last use is NULL (never). */
#define DB_LAST_USED_JOIN " LEFT JOIN last_used u ON u.name = p.name"

static int sq_principal_get(kdc_store *s, const char *name, kdc_db_principal *p, char *err,
                            size_t len)
{
	static const char *const sql[2] = {
	    "SELECT p.enabled, p.created, k.kvno, k.created, k.retire_at, NULL"
	    " FROM principals p LEFT JOIN keys k ON k.name = p.name"
	    " WHERE p.name = ?1 ORDER BY k.kvno",
	    "SELECT p.enabled, p.created, k.kvno, k.created, k.retire_at, u.at"
	    " FROM principals p LEFT JOIN keys k ON k.name = p.name" DB_LAST_USED_JOIN
	    " WHERE p.name = ?1 ORDER BY k.kvno"};
	sqlite3_stmt *st = NULL;
	int rc, used = 0;
	int ret = sq_has_table(s, "last_used", &used, err, len);
	if (ret == KD3_OK)
		ret = sq_prepare(s, sql[used], &st, err, len);
	if (ret != KD3_OK)
		return ret;
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	ret = KD3_E_NOT_FOUND;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		p->enabled = sqlite3_column_int(st, 0);
		p->created = sqlite3_column_int64(st, 1);
		p->last_used = sq_column_time(st, 5);
		principal_add_kvno(p, st, 2);
		ret = KD3_OK;
	}
	if (rc != SQLITE_DONE)
		ret = sq_fail(s, err, len, "cannot read a principal");
	else if (ret == KD3_E_NOT_FOUND)
		snprintf(err, len, "no principal '%s'", name);
	sq_finish(st);
	return ret;
}

static int sq_principal_insert(kdc_store *s, const char *name, int enabled, int64_t created,
                               char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret =
	    sq_prepare(s, "INSERT INTO principals (name, enabled, created) VALUES (?1, ?2, ?3)",
	               &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, enabled ? 1 : 0);
	sqlite3_bind_int64(st, 3, created);
	ret = sq_step_done(s, st, err, len, "cannot add the principal");
	if (ret == KD3_E_EXISTS)
		snprintf(err, len, "principal '%s' already exists", name);
	sq_finish(st);
	return ret;
}

/* Runs a statement on name (?1) and an optional ?2 that must change a row. */
static int sq_change_named(kdc_store *s, const char *sql, const char *name, int64_t arg2, char *err,
                           size_t len, const char *what)
{
	sqlite3_stmt *st = NULL;
	int ret = sq_prepare(s, sql, &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, arg2);
	ret = sq_step_done(s, st, err, len, what);
	if (ret == KD3_OK && sqlite3_changes(s->h) == 0) {
		snprintf(err, len, "no principal '%s'", name);
		ret = KD3_E_NOT_FOUND;
	}
	sq_finish(st);
	return ret;
}

static int sq_principal_delete(kdc_store *s, const char *name, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = sq_prepare(s, "DELETE FROM keys WHERE name = ?1", &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	ret = sq_step_done(s, st, err, len, "cannot remove the keys");
	sq_finish(st);
	if (ret != KD3_OK)
		return ret;
	return sq_change_named(s, "DELETE FROM principals WHERE name = ?1", name, 0, err, len,
	                       "cannot remove the principal");
}

static int sq_principal_set_enabled(kdc_store *s, const char *name, int enabled, char *err,
                                    size_t len)
{
	return sq_change_named(s, "UPDATE principals SET enabled = ?2 WHERE name = ?1", name,
	                       enabled ? 1 : 0, err, len, "cannot change the principal");
}

static int sq_each_principal(kdc_store *s, kdc_db_principal_fn fn, void *ctx, char *err, size_t len)
{
	static const char *const sql[2] = {
	    "SELECT p.name, p.enabled, p.created, k.kvno, k.created, k.retire_at, NULL"
	    " FROM principals p LEFT JOIN keys k ON k.name = p.name ORDER BY p.name, k.kvno",
	    "SELECT p.name, p.enabled, p.created, k.kvno, k.created, k.retire_at, u.at"
	    " FROM principals p LEFT JOIN keys k ON k.name = p.name" DB_LAST_USED_JOIN
	    " ORDER BY p.name, k.kvno"};
	sqlite3_stmt *st = NULL;
	kdc_db_principal p;
	char name[KD3_NAME_MAX + 1];
	int have = 0, rc, used = 0;
	int ret = sq_has_table(s, "last_used", &used, err, len);
	if (ret == KD3_OK)
		ret = sq_prepare(s, sql[used], &st, err, len);
	if (ret != KD3_OK)
		return ret;
	ret = KD3_E_DB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sq_column_name(st, 0, name) != KD3_OK) {
			snprintf(err, len, "%s: a principal name is not valid", s->path);
			goto out;
		}
		if (have && strcmp(name, p.name) != 0) {
			if ((ret = fn(ctx, &p)) != KD3_OK)
				goto out;
			ret = KD3_E_DB;
			have = 0;
		}
		if (!have) {
			memset(&p, 0, sizeof(p));
			memcpy(p.name, name, sizeof(p.name));
			p.enabled = sqlite3_column_int(st, 1);
			p.created = sqlite3_column_int64(st, 2);
			p.last_used = sq_column_time(st, 6);
			have = 1;
		}
		principal_add_kvno(&p, st, 3);
	}
	if (rc != SQLITE_DONE) {
		sq_fail(s, err, len, "cannot list principals");
		goto out;
	}
	ret = have ? fn(ctx, &p) : KD3_OK;
out:
	sq_finish(st);
	return ret;
}

static int sq_count(kdc_store *s, int enabled_only, size_t *n, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = sq_prepare(s,
	                     enabled_only ? "SELECT count(*) FROM principals WHERE enabled = 1"
	                                  : "SELECT count(*) FROM principals",
	                     &st, err, len);
	if (ret != KD3_OK)
		return ret;
	if (sqlite3_step(st) == SQLITE_ROW)
		*n = (size_t)sqlite3_column_int64(st, 0);
	else
		ret = sq_fail(s, err, len, "cannot count principals");
	sq_finish(st);
	return ret;
}

/* ---- keys --------------------------------------------------------------------------- */

static int sq_key_insert(kdc_store *s, const kdc_db_sealed_key *k, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = sq_prepare(s,
	                     "INSERT INTO keys (name, kvno, sealed, created, retire_at)"
	                     " VALUES (?1, ?2, ?3, ?4, ?5)",
	                     &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, k->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, k->kvno);
	sqlite3_bind_blob(st, 3, k->sealed, KDC_SEALED_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, k->created);
	if (k->retire_at)
		sqlite3_bind_int64(st, 5, k->retire_at);
	else
		sqlite3_bind_null(st, 5);
	ret = sq_step_done(s, st, err, len, "cannot add the key");
	if (ret == KD3_E_EXISTS)
		snprintf(err, len, "principal '%s' already has kvno %u (or no such principal)",
		         k->name, (unsigned)k->kvno);
	sq_finish(st);
	return ret;
}

static int sq_keys_retire_below(kdc_store *s, const char *name, uint32_t kvno, int64_t retire_at,
                                char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = sq_prepare(s,
	                     "UPDATE keys SET retire_at = ?3"
	                     " WHERE name = ?1 AND kvno < ?2 AND retire_at IS NULL",
	                     &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, kvno);
	sqlite3_bind_int64(st, 3, retire_at);
	ret = sq_step_done(s, st, err, len, "cannot set the retire time");
	sq_finish(st);
	return ret;
}

static int sq_key_delete(kdc_store *s, const char *name, uint32_t kvno, char *err, size_t len)
{
	int ret = sq_change_named(s, "DELETE FROM keys WHERE name = ?1 AND kvno = ?2", name, kvno,
	                          err, len, "cannot remove the key");
	if (ret == KD3_E_NOT_FOUND)
		snprintf(err, len, "principal '%s' has no kvno %u", name, (unsigned)kvno);
	return ret;
}

static int sq_keys_purge(kdc_store *s, const char *name, int64_t now, size_t *n, char *err,
                         size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = sq_prepare(s,
	                     "DELETE FROM keys WHERE retire_at IS NOT NULL AND retire_at <= ?2"
	                     " AND (?1 IS NULL OR name = ?1)",
	                     &st, err, len);
	if (ret != KD3_OK)
		return ret;
	if (name)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	ret = sq_step_done(s, st, err, len, "cannot purge keys");
	*n = ret == KD3_OK ? (size_t)sqlite3_changes(s->h) : 0;
	sq_finish(st);
	return ret;
}

static int sq_each_key(kdc_store *s, const kdc_store_key_query *q, kdc_db_sealed_fn fn, void *ctx,
                       char *err, size_t len)
{
	/* [enabled_only][kvno_desc]; ?1 the name or NULL, ?2 live_at or 0. */
#define EACH_KEY_SELECT                                                                            \
	"SELECT k.name, k.kvno, k.sealed, k.created, k.retire_at FROM keys k"                      \
	" JOIN principals p ON p.name = k.name WHERE (?1 IS NULL OR k.name = ?1)"                  \
	" AND (?2 = 0 OR k.retire_at IS NULL OR k.retire_at > ?2)"
	static const char *const sql[2][2] = {
	    {EACH_KEY_SELECT " ORDER BY k.name, k.kvno",
	     EACH_KEY_SELECT " ORDER BY k.name, k.kvno DESC"},
	    {EACH_KEY_SELECT " AND p.enabled = 1 ORDER BY k.name, k.kvno",
	     EACH_KEY_SELECT " AND p.enabled = 1 ORDER BY k.name, k.kvno DESC"}};
#undef EACH_KEY_SELECT
	sqlite3_stmt *st = NULL;
	kdc_db_sealed_key k;
	int rc, ret = sq_prepare(s, sql[q->enabled_only != 0][q->kvno_desc != 0], &st, err, len);
	if (ret != KD3_OK)
		return ret;
	if (q->name)
		sqlite3_bind_text(st, 1, q->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, q->live_at);
	ret = KD3_E_DB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&k, 0, sizeof(k));
		int64_t kvno = sqlite3_column_int64(st, 1);
		k.kvno = (uint32_t)kvno;
		k.created = sqlite3_column_int64(st, 3);
		k.retire_at = sq_column_time(st, 4);
		if (sq_column_name(st, 0, k.name) != KD3_OK ||
		    column_sealed(st, 2, k.sealed) != KD3_OK || kvno < 1 || kvno > UINT32_MAX) {
			snprintf(err, len, "%s: a key row is not valid", s->path);
			goto out;
		}
		if ((ret = fn(ctx, &k)) != KD3_OK)
			goto out;
		ret = KD3_E_DB;
	}
	if (rc != SQLITE_DONE) {
		sq_fail(s, err, len, "cannot read keys");
		goto out;
	}
	ret = KD3_OK;
out:
	kd3_wipe(&k, sizeof(k));
	sq_finish(st);
	return ret;
}

/* ---- unlock requests ---------------------------------------------------------------- */

#define UNLOCK_KEEP_SECONDS 86400 /* an unlock row is read by servers within a second */

static int sq_unlock_add(kdc_store *s, const char *name, int64_t now, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = sq_exec(s,
	                  "CREATE TABLE IF NOT EXISTS unlocks ("
	                  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	                  "  name TEXT NOT NULL,"
	                  "  at INTEGER NOT NULL"
	                  ");",
	                  err, len, "cannot create the unlocks table");
	if (ret == KD3_OK)
		ret = sq_prepare(s, "DELETE FROM unlocks WHERE at < ?1", &st, err, len);
	if (ret == KD3_OK) {
		sqlite3_bind_int64(st, 1, now - UNLOCK_KEEP_SECONDS);
		ret = sq_step_done(s, st, err, len, "cannot drop old unlocks");
		sq_finish(st);
		st = NULL;
	}
	if (ret == KD3_OK)
		ret =
		    sq_prepare(s, "INSERT INTO unlocks (name, at) VALUES (?1, ?2)", &st, err, len);
	if (ret == KD3_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now);
		ret = sq_step_done(s, st, err, len, "cannot record the unlock");
	}
	sq_finish(st);
	return ret;
}

static int sq_unlocks_since(kdc_store *s, int64_t *last, kdc_db_unlock_fn fn, void *ctx, char *err,
                            size_t len)
{
	sqlite3_stmt *st = NULL;
	char name[KD3_NAME_MAX + 1];
	int has = 0, rc;
	int ret = sq_has_table(s, "unlocks", &has, err, len);
	if (ret != KD3_OK || !has)
		return ret;
	ret = sq_prepare(s, "SELECT id, name FROM unlocks WHERE id > ?1 ORDER BY id LIMIT ?2", &st,
	                 err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_int64(st, 1, *last);
	sqlite3_bind_int(st, 2, KDC_STORE_UNLOCK_BATCH_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*last = sqlite3_column_int64(st, 0);
		if (sq_column_name(st, 1, name) == KD3_OK) /* a bad row is skipped, not fatal */
			fn(ctx, name);
	}
	if (rc != SQLITE_DONE)
		ret = sq_fail(s, err, len, "cannot read the unlocks");
	sq_finish(st);
	return ret;
}

const kdc_store_ops kdc_store_sqlite = {
    .name = "sqlite",
    .create = sq_create,
    .discard = sq_discard,
    .open = sq_open,
    .close = sq_close,
    .where = sq_where,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .realm_insert = sq_realm_insert,
    .realm_get = sq_realm_get,
    .principal_get = sq_principal_get,
    .principal_insert = sq_principal_insert,
    .principal_delete = sq_principal_delete,
    .principal_set_enabled = sq_principal_set_enabled,
    .each_principal = sq_each_principal,
    .count = sq_count,
    .key_insert = sq_key_insert,
    .keys_retire_below = sq_keys_retire_below,
    .key_delete = sq_key_delete,
    .keys_purge = sq_keys_purge,
    .each_key = sq_each_key,
    .reseal = sq_reseal,
    .upgrade_v2 = sq_upgrade_v2,
    .load_prepare = kdc_sqlite_load_prepare,
    .load_counts = kdc_sqlite_load_counts,
    .load_each = kdc_sqlite_load_each,
    .unlock_add = sq_unlock_add,
    .unlocks_since = sq_unlocks_since,
    .watch_open = kdc_sqlite_watch_open,
    .watch_changed = kdc_sqlite_watch_changed,
    .watch_store_last_used = kdc_sqlite_watch_store_last_used,
    .watch_close = kdc_sqlite_watch_close,
};
