/* kdc database over SQLite: schema, open/create, and one function per statement. */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "crypto.h"
#include "err.h"
#include "msg.h"

#define DB_BUSY_TIMEOUT_MS 5000

/* How long a statement waits for another connection's lock. */
static int db_busy_timeout_ms = DB_BUSY_TIMEOUT_MS;

void kdc_db_set_busy_timeout_ms(int ms)
{
	db_busy_timeout_ms = ms >= 0 ? ms : DB_BUSY_TIMEOUT_MS;
}

static const char db_schema[] =
    "BEGIN;"
    "CREATE TABLE principals ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),"
    "  created INTEGER NOT NULL"
    ");"
    "CREATE TABLE keys ("
    "  name TEXT NOT NULL REFERENCES principals(name) ON DELETE CASCADE,"
    "  kvno INTEGER NOT NULL CHECK (kvno BETWEEN 1 AND 4294967295),"
    "  key BLOB NOT NULL CHECK (length(key) = 32),"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (name, kvno)"
    ");"
    "CREATE TABLE realm ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  secret BLOB NOT NULL CHECK (length(secret) = 32)"
    ");"
    "PRAGMA user_version = 2;";

static int db_fail(kdc_db *db, char *err, size_t len, const char *what)
{
	snprintf(err, len, "%s: %s: %s", db->path, what, db->h ? sqlite3_errmsg(db->h) : "?");
	return KD3_E_DB;
}

static int db_prepare(kdc_db *db, const char *sql, sqlite3_stmt **st, char *err, size_t len)
{
	if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return db_fail(db, err, len, "cannot prepare a statement");
	}
	return KD3_OK;
}

/* Runs a statement that returns no rows; a constraint violation is KD3_E_EXISTS. */
static int db_step_done(kdc_db *db, sqlite3_stmt *st, char *err, size_t len, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return KD3_OK;
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		db_fail(db, err, len, what);
		return KD3_E_EXISTS;
	}
	return db_fail(db, err, len, what);
}

static void db_finish(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_clear_bindings(st); /* keys were bound SQLITE_STATIC from our buffers */
		sqlite3_finalize(st);
	}
}

static int db_exec(kdc_db *db, const char *sql, char *err, size_t len, const char *what)
{
	if (sqlite3_exec(db->h, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(db, err, len, what);
	return KD3_OK;
}

/* ---- open, create, close ----------------------------------------------------- */

static int db_connect(kdc_db *db, const char *path, int flags, char *err, size_t len)
{
	memset(db, 0, sizeof(*db));
	if (snprintf(db->path, sizeof(db->path), "%s", path) >= (int)sizeof(db->path)) {
		snprintf(err, len, "%.64s...: path is too long", path);
		return KD3_E_DB;
	}
	if (sqlite3_open_v2(path, &db->h, flags | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
		int ret = db_fail(db, err, len, "cannot open");
		kdc_db_close(db);
		return ret;
	}
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, db_busy_timeout_ms);
	sqlite3_db_config(db->h, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	/* secure_delete: a removed key is overwritten in the file, not left in a free page. */
	int ret = db_exec(db, "PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;", err, len,
	                  "cannot configure");
	if (ret != KD3_OK)
		kdc_db_close(db);
	return ret;
}

void kdc_db_close(kdc_db *db)
{
	if (db->h)
		sqlite3_close_v2(db->h);
	db->h = NULL;
}

int kdc_db_create(const char *path, const uint8_t realm_secret[KD3_KEY_LEN], kdc_db *db, char *err,
                  size_t err_len)
{
	/* Create the file ourselves: O_EXCL refuses an existing one, and mode 0600 holds
	 * from the first byte (SQLite gives its journal the database file's mode). */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		int saved = errno;
		memset(db, 0, sizeof(*db));
		if (saved == EEXIST)
			snprintf(err, err_len, "%s: already exists; refusing to overwrite it",
			         path);
		else
			snprintf(err, err_len, "%s: %s", path, strerror(saved));
		return saved == EEXIST ? KD3_E_EXISTS : KD3_E_DB;
	}
	close(fd);
	int ret = db_connect(db, path, SQLITE_OPEN_READWRITE, err, err_len);
	/* Schema and realm secret in one transaction: a database is whole or absent. */
	if (ret == KD3_OK)
		ret = db_exec(db, db_schema, err, err_len, "cannot create the schema");
	if (ret == KD3_OK)
		ret = kdc_db_realm_secret_set(db, realm_secret, err, err_len);
	if (ret == KD3_OK)
		ret = db_exec(db, "COMMIT;", err, err_len, "cannot create the database");
	if (ret != KD3_OK) {
		kdc_db_close(db);
		unlink(path);
	}
	return ret;
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

static int db_check_schema(kdc_db *db, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db, "PRAGMA user_version", &st, err, len);
	if (ret != KD3_OK)
		return ret;
	ret = KD3_E_DB;
	if (sqlite3_step(st) != SQLITE_ROW) {
		db_fail(db, err, len, "cannot read the schema version");
		goto out;
	}
	int version = sqlite3_column_int(st, 0);
	if (version != KDC_DB_SCHEMA_VERSION) {
		snprintf(err, len, "%s: not a kd3 database (schema version %d, expected %d)",
		         db->path, version, KDC_DB_SCHEMA_VERSION);
		goto out;
	}
	ret = KD3_OK;
out:
	db_finish(st);
	return ret;
}

int kdc_db_open(const char *path, int writable, kdc_db *db, char *err, size_t err_len)
{
	struct stat id = {0};
	memset(db, 0, sizeof(*db));
	int ret = db_check_file(path, &id, err, err_len);
	if (ret != KD3_OK)
		return ret;
	ret = db_connect(db, path, writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, err,
	                 err_len);
	if (ret == KD3_OK)
		ret = db_same_file(path, &id, err, err_len);
	if (ret == KD3_OK)
		ret = db_check_schema(db, err, err_len);
	if (ret != KD3_OK)
		kdc_db_close(db);
	return ret;
}

/* ---- transactions ------------------------------------------------------------- */

int kdc_db_begin(kdc_db *db, char *err, size_t err_len)
{
	return db_exec(db, "BEGIN IMMEDIATE", err, err_len, "cannot start a transaction");
}

int kdc_db_begin_read(kdc_db *db, char *err, size_t err_len)
{
	return db_exec(db, "BEGIN", err, err_len, "cannot start a transaction");
}

int kdc_db_commit(kdc_db *db, char *err, size_t err_len)
{
	int ret = db_exec(db, "COMMIT", err, err_len, "cannot commit");
	if (ret != KD3_OK)
		kdc_db_rollback(db);
	return ret;
}

void kdc_db_rollback(kdc_db *db)
{
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- principals ----------------------------------------------------------------- */

/* Copies a name column, refusing anything a principal name cannot be. */
static int column_name(sqlite3_stmt *st, int col, char out[KD3_NAME_MAX + 1])
{
	const unsigned char *s = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);
	if (!s || n < 1 || n > KD3_NAME_MAX || !kd3_name_valid(s, (size_t)n))
		return KD3_E_DB;
	memcpy(out, s, (size_t)n);
	out[n] = '\0';
	return KD3_OK;
}

static void principal_add_kvno(kdc_db_principal *p, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return; /* LEFT JOIN: a principal without keys */
	uint32_t kvno = (uint32_t)sqlite3_column_int64(st, col);
	if (p->nkvnos < KD3_KEYFILE_KEYS_MAX)
		p->kvnos[p->nkvnos++] = kvno;
	p->total_kvnos++;
	if (kvno > p->kvno_max)
		p->kvno_max = kvno;
}

int kdc_db_principal_get(kdc_db *db, const char *name, kdc_db_principal *p, char *err,
                         size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = db_prepare(db,
	                         "SELECT p.enabled, p.created, k.kvno FROM principals p"
	                         " LEFT JOIN keys k ON k.name = p.name WHERE p.name = ?1"
	                         " ORDER BY k.kvno",
	                         &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	ret = KD3_E_NOT_FOUND;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		p->enabled = sqlite3_column_int(st, 0);
		p->created = sqlite3_column_int64(st, 1);
		principal_add_kvno(p, st, 2);
		ret = KD3_OK;
	}
	if (rc != SQLITE_DONE)
		ret = db_fail(db, err, err_len, "cannot read a principal");
	else if (ret == KD3_E_NOT_FOUND)
		snprintf(err, err_len, "no principal '%s'", name);
	db_finish(st);
	return ret;
}

int kdc_db_principal_insert(kdc_db *db, const char *name, int64_t created, char *err,
                            size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret =
	    db_prepare(db, "INSERT INTO principals (name, enabled, created) VALUES (?1, 1, ?2)",
	               &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, created);
	ret = db_step_done(db, st, err, err_len, "cannot add the principal");
	if (ret == KD3_E_EXISTS)
		snprintf(err, err_len, "principal '%s' already exists", name);
	db_finish(st);
	return ret;
}

/* Runs a one-parameter-name statement that must change a row. */
static int db_change_named(kdc_db *db, const char *sql, const char *name, int64_t arg2, char *err,
                           size_t err_len, const char *what)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db, sql, &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, arg2);
	ret = db_step_done(db, st, err, err_len, what);
	if (ret == KD3_OK && sqlite3_changes(db->h) == 0) {
		snprintf(err, err_len, "no principal '%s'", name);
		ret = KD3_E_NOT_FOUND;
	}
	db_finish(st);
	return ret;
}

int kdc_db_principal_delete(kdc_db *db, const char *name, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db, "DELETE FROM keys WHERE name = ?1", &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	ret = db_step_done(db, st, err, err_len, "cannot remove the keys");
	db_finish(st);
	if (ret != KD3_OK)
		return ret;
	return db_change_named(db, "DELETE FROM principals WHERE name = ?1", name, 0, err, err_len,
	                       "cannot remove the principal");
}

int kdc_db_principal_set_enabled(kdc_db *db, const char *name, int enabled, char *err,
                                 size_t err_len)
{
	return db_change_named(db, "UPDATE principals SET enabled = ?2 WHERE name = ?1", name,
	                       enabled ? 1 : 0, err, err_len, "cannot change the principal");
}

/* ---- keys --------------------------------------------------------------------------- */

int kdc_db_key_insert(kdc_db *db, const char *name, uint32_t kvno, const uint8_t key[KD3_KEY_LEN],
                      int64_t created, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret =
	    db_prepare(db, "INSERT INTO keys (name, kvno, key, created) VALUES (?1, ?2, ?3, ?4)",
	               &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, kvno);
	/* SQLITE_STATIC: SQLite reads the key from our buffer and keeps no copy of its own. */
	sqlite3_bind_blob(st, 3, key, KD3_KEY_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, created);
	ret = db_step_done(db, st, err, err_len, "cannot add the key");
	if (ret == KD3_E_EXISTS)
		snprintf(err, err_len, "principal '%s' already has kvno %u", name, (unsigned)kvno);
	db_finish(st);
	return ret;
}

int kdc_db_key_delete(kdc_db *db, const char *name, uint32_t kvno, char *err, size_t err_len)
{
	int ret = db_change_named(db, "DELETE FROM keys WHERE name = ?1 AND kvno = ?2", name, kvno,
	                          err, err_len, "cannot remove the key");
	if (ret == KD3_E_NOT_FOUND)
		snprintf(err, err_len, "principal '%s' has no kvno %u", name, (unsigned)kvno);
	return ret;
}

/* Copies a key column into out, refusing a blob of the wrong size. */
static int column_key(sqlite3_stmt *st, int col, uint8_t out[KD3_KEY_LEN])
{
	const void *blob = sqlite3_column_blob(st, col);
	if (!blob || sqlite3_column_bytes(st, col) != KD3_KEY_LEN)
		return KD3_E_DB;
	memcpy(out, blob, KD3_KEY_LEN);
	return KD3_OK;
}

int kdc_db_keys_get(kdc_db *db, const char *name, kd3_keyfile *kf, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = db_prepare(db, "SELECT kvno, key FROM keys WHERE name = ?1 ORDER BY kvno",
	                         &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	memset(kf, 0, sizeof(*kf));
	snprintf(kf->principal, sizeof(kf->principal), "%s", name);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	ret = KD3_E_DB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (kf->nkeys >= KD3_KEYFILE_KEYS_MAX) {
			snprintf(err, err_len, "principal '%s' has more than %d keys", name,
			         KD3_KEYFILE_KEYS_MAX);
			goto out;
		}
		kd3_keyfile_entry *e = &kf->keys[kf->nkeys++];
		e->kvno = (uint32_t)sqlite3_column_int64(st, 0);
		if (column_key(st, 1, e->key) != KD3_OK) {
			snprintf(err, err_len, "%s: key %s:%u is not %d bytes", db->path, name,
			         (unsigned)e->kvno, KD3_KEY_LEN);
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		db_fail(db, err, err_len, "cannot read keys");
		goto out;
	}
	ret = KD3_OK;
out:
	db_finish(st);
	if (ret != KD3_OK)
		kd3_keyfile_wipe(kf);
	return ret;
}

int kdc_db_each_principal(kdc_db *db, kdc_db_principal_fn fn, void *ctx, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	kdc_db_principal p;
	char name[KD3_NAME_MAX + 1];
	int have = 0, rc;
	int ret = db_prepare(db,
	                     "SELECT p.name, p.enabled, p.created, k.kvno FROM principals p"
	                     " LEFT JOIN keys k ON k.name = p.name ORDER BY p.name, k.kvno",
	                     &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	ret = KD3_E_DB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (column_name(st, 0, name) != KD3_OK) {
			snprintf(err, err_len, "%s: a principal name is not valid", db->path);
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
			have = 1;
		}
		principal_add_kvno(&p, st, 3);
	}
	if (rc != SQLITE_DONE) {
		db_fail(db, err, err_len, "cannot list principals");
		goto out;
	}
	ret = have ? fn(ctx, &p) : KD3_OK;
out:
	db_finish(st);
	return ret;
}

int kdc_db_each_key(kdc_db *db, kdc_db_key_fn fn, void *ctx, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	uint8_t key[KD3_KEY_LEN];
	char name[KD3_NAME_MAX + 1];
	int rc, ret = db_prepare(db,
	                         "SELECT k.name, k.kvno, k.key FROM keys k"
	                         " JOIN principals p ON p.name = k.name WHERE p.enabled = 1"
	                         " ORDER BY k.name, k.kvno DESC",
	                         &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	ret = KD3_E_DB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t kvno = (uint32_t)sqlite3_column_int64(st, 1);
		if (column_name(st, 0, name) != KD3_OK || column_key(st, 2, key) != KD3_OK) {
			snprintf(err, err_len, "%s: a key row is not valid", db->path);
			goto out;
		}
		ret = fn(ctx, name, kvno, key);
		kd3_wipe(key, sizeof(key));
		if (ret != KD3_OK)
			goto out;
		ret = KD3_E_DB;
	}
	if (rc != SQLITE_DONE) {
		db_fail(db, err, err_len, "cannot read keys");
		goto out;
	}
	ret = KD3_OK;
out:
	kd3_wipe(key, sizeof(key));
	db_finish(st);
	return ret;
}

int kdc_db_realm_secret_set(kdc_db *db, const uint8_t secret[KD3_KEY_LEN], char *err,
                            size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret =
	    db_prepare(db, "INSERT INTO realm (id, secret) VALUES (1, ?1)", &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	ret = sqlite3_bind_blob(st, 1, secret, KD3_KEY_LEN, SQLITE_STATIC) == SQLITE_OK &&
	              sqlite3_step(st) == SQLITE_DONE
	          ? KD3_OK
	          : db_fail(db, err, err_len, "cannot store the realm secret");
	db_finish(st);
	return ret;
}

int kdc_db_realm_secret_get(kdc_db *db, uint8_t secret[KD3_KEY_LEN], char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db, "SELECT secret FROM realm WHERE id = 1", &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	ret = KD3_E_DB;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == KD3_KEY_LEN) {
		memcpy(secret, sqlite3_column_blob(st, 0), KD3_KEY_LEN);
		ret = KD3_OK;
	} else {
		snprintf(err, err_len, "%s: the realm secret is missing or damaged", db->path);
	}
	db_finish(st);
	return ret;
}

int kdc_db_count(kdc_db *db, int enabled_only, size_t *n, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db,
	                     enabled_only ? "SELECT count(*) FROM principals WHERE enabled = 1"
	                                  : "SELECT count(*) FROM principals",
	                     &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*n = (size_t)sqlite3_column_int64(st, 0);
		ret = KD3_OK;
	} else {
		ret = db_fail(db, err, err_len, "cannot count principals");
	}
	db_finish(st);
	return ret;
}
