/* kdc database over SQLite: schema, open/create/upgrade, and one function per statement.
 * Keys are sealed and opened here (kdc/seal.h), so no caller handles a sealed blob
 * except dump and load, which move them unopened. */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "crash.h"
#include "crypto.h"
#include "err.h"
#include "msg.h"
#include "stash.h"

#define DB_BUSY_TIMEOUT_MS 5000

_Static_assert(KDC_SEALED_LEN == 61, "the schema's CHECK says 61");

/* How long a statement waits for another connection's lock. */
static int db_busy_timeout_ms = DB_BUSY_TIMEOUT_MS;

void kdc_db_set_busy_timeout_ms(int ms)
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

/* Copies a sealed blob column, refusing one of the wrong size. */
static int column_sealed(sqlite3_stmt *st, int col, uint8_t out[KDC_SEALED_LEN])
{
	const void *blob = sqlite3_column_blob(st, col);
	if (!blob || sqlite3_column_bytes(st, col) != KDC_SEALED_LEN)
		return KD3_E_DB;
	memcpy(out, blob, KDC_SEALED_LEN);
	return KD3_OK;
}

/* A nullable time column: NULL is 0 (none). */
static int64_t column_time(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, col);
}

/* Tables created after the schema (unlocks, last_used) may be missing: *has says. */
static int db_has_table(kdc_db *db, const char *table, int *has, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
	                     &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	*has = rc == SQLITE_ROW;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = db_fail(db, err, len, "cannot read the schema");
	db_finish(st);
	return ret;
}

static int key_open_fail(kdc_db *db, const char *name, uint32_t kvno, char *err, size_t len)
{
	return kdc_master_open_failed(&db->master, db->path, name, kvno, err, len);
}

/* ---- open, create, close ----------------------------------------------------- */

static int db_connect(kdc_db *db, const char *path, const char *stash, int flags, char *err,
                      size_t len)
{
	memset(db, 0, sizeof(*db));
	if (snprintf(db->path, sizeof(db->path), "%s", path) >= (int)sizeof(db->path) ||
	    snprintf(db->stash, sizeof(db->stash), "%s", stash) >= (int)sizeof(db->stash)) {
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
	kdc_master_free(&db->master);
}

/* The file (O_EXCL: refuses an existing one; mode 0600 from the first byte, which SQLite
 * gives its journal too), connected, with the schema inside an open transaction. */
static int db_create_file(const char *path, const char *stash, kdc_db *db, char *err, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		int saved = errno;
		memset(db, 0, sizeof(*db));
		if (saved == EEXIST)
			snprintf(err, len, "%s: already exists; refusing to overwrite it", path);
		else
			snprintf(err, len, "%s: %s", path, strerror(saved));
		return saved == EEXIST ? KD3_E_EXISTS : KD3_E_DB;
	}
	close(fd);
	int ret = db_connect(db, path, stash, SQLITE_OPEN_READWRITE, err, len);
	db->writable = 1;
	if (ret == KD3_OK)
		ret = db_exec(db, db_schema, err, len, "cannot create the schema");
	if (ret != KD3_OK) {
		kdc_db_close(db);
		unlink(path);
	}
	return ret;
}

static int db_realm_insert(kdc_db *db, const uint8_t sealed[KDC_SEALED_LEN], char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db, "INSERT INTO realm (id, secret, master_check) VALUES (1, ?1, ?2)",
	                     &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_blob(st, 1, sealed, KDC_SEALED_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, db->master.check, KD3_HASH_LEN, SQLITE_STATIC);
	ret = db_step_done(db, st, err, len, "cannot store the realm secret");
	db_finish(st);
	return ret;
}

int kdc_db_restore_begin(const char *path, const char *stash, const uint8_t master[KD3_KEY_LEN],
                         const uint8_t realm_sealed[KDC_SEALED_LEN], kdc_db *db, char *err,
                         size_t err_len)
{
	uint8_t secret[KD3_KEY_LEN];
	int ret = db_create_file(path, stash, db, err, err_len);
	if (ret != KD3_OK)
		return ret;
	ret = kdc_master_init(&db->master, master, 1);
	if (ret != KD3_OK)
		snprintf(err, err_len, "%s: cannot set up the master key", path);
	if (ret == KD3_OK &&
	    kdc_master_open(&db->master, NULL, 0, realm_sealed, secret) != KD3_OK) {
		snprintf(err, err_len, "the realm secret does not open under master key %s",
		         db->master.id);
		ret = KD3_E_BLOB_AUTH;
	}
	kd3_wipe(secret, sizeof(secret));
	if (ret == KD3_OK)
		ret = db_realm_insert(db, realm_sealed, err, err_len);
	if (ret != KD3_OK)
		kdc_db_restore_end(db, ret, err, err_len);
	return ret;
}

int kdc_db_restore_end(kdc_db *db, int ret, char *err, size_t err_len)
{
	if (ret == KD3_OK)
		ret = db_exec(db, "COMMIT;", err, err_len, "cannot commit the new database");
	if (ret != KD3_OK) {
		kdc_db_close(db); /* rolls back the open transaction, removes the journal */
		unlink(db->path);
	}
	return ret;
}

int kdc_db_create(const char *path, const char *stash, const uint8_t master[KD3_KEY_LEN],
                  const uint8_t realm_secret[KD3_KEY_LEN], kdc_db *db, char *err, size_t err_len)
{
	uint8_t sealed[KDC_SEALED_LEN];
	kdc_master m;
	/* The realm secret sealed first, so restore_begin's checks hold for it too. */
	int ret = kdc_master_init(&m, master, 1);
	if (ret == KD3_OK)
		ret = kdc_master_seal(&m, NULL, 0, realm_secret, sealed);
	kdc_master_free(&m);
	if (ret != KD3_OK) {
		snprintf(err, err_len, "%s: cannot seal the realm secret", path);
		return ret;
	}
	/* Schema and realm row in one transaction: a database is whole or absent. */
	ret = kdc_db_restore_begin(path, stash, master, sealed, db, err, err_len);
	if (ret == KD3_OK)
		ret = kdc_db_restore_end(db, KD3_OK, err, err_len);
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

static int db_schema_version(kdc_db *db, int *version, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db, "PRAGMA user_version", &st, err, len);
	if (ret != KD3_OK)
		return ret;
	if (sqlite3_step(st) == SQLITE_ROW)
		*version = sqlite3_column_int(st, 0);
	else
		ret = db_fail(db, err, len, "cannot read the schema version");
	db_finish(st);
	return ret;
}

static int db_check_schema(kdc_db *db, char *err, size_t len)
{
	int version = -1;
	int ret = db_schema_version(db, &version, err, len);
	if (ret != KD3_OK || version == KDC_DB_SCHEMA_VERSION)
		return ret;
	if (version == KDC_DB_SCHEMA_V2)
		snprintf(err, len,
		         "%s: a kd3 0.1 database (schema 2, keys not sealed); convert it with 'kdc "
		         "upgrade --db %s' (creates the stash %s)",
		         db->path, db->path, db->stash);
	else
		snprintf(err, len, "%s: not a kd3 database (schema version %d, expected %d)",
		         db->path, version, KDC_DB_SCHEMA_VERSION);
	return KD3_E_DB;
}

/* A write killed in its transaction leaves a hot journal, which only a read-write
 * connection may roll back: a read-only one (serve, list, export, dump) reads nothing
 * and gets SQLITE_READONLY_ROLLBACK. One short read-write connection to the same, checked
 * file rolls it back (on its first read), as any admin command would. */
static int db_roll_back_journal(kdc_db *db, char *err, size_t len)
{
	kdc_db rw;
	int version = -1;
	int ret = db_connect(&rw, db->path, db->stash, SQLITE_OPEN_READWRITE, err, len);
	if (ret == KD3_OK)
		ret = db_schema_version(&rw, &version, err, len);
	kdc_db_close(&rw);
	return ret;
}

/* The file checks, the connection, and the schema version (*version). */
static int db_open_file(const char *path, const char *stash, int writable, kdc_db *db, int *version,
                        char *err, size_t len)
{
	struct stat id = {0};
	memset(db, 0, sizeof(*db));
	int ret = db_check_file(path, &id, err, len);
	for (int attempt = 0; ret == KD3_OK && attempt < 2; attempt++) {
		ret = db_connect(db, path, stash,
		                 writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, err, len);
		if (ret == KD3_OK)
			ret = db_same_file(path, &id, err, len);
		if (ret == KD3_OK)
			ret = db_schema_version(db, version, err, len);
		db->writable = writable;
		if (ret == KD3_OK)
			return KD3_OK;
		int hot = db->h && sqlite3_extended_errcode(db->h) == SQLITE_READONLY_ROLLBACK;
		kdc_db_close(db);
		if (!hot || attempt > 0)
			break;
		ret = db_roll_back_journal(db, err, len);
	}
	return ret;
}

int kdc_db_master_check_get(kdc_db *db, uint8_t check[KD3_HASH_LEN], char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db, "SELECT master_check FROM realm WHERE id = 1", &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == KD3_HASH_LEN) {
		memcpy(check, sqlite3_column_blob(st, 0), KD3_HASH_LEN);
	} else {
		snprintf(err, err_len, "%s: the realm row is missing or damaged", db->path);
		ret = KD3_E_DB;
	}
	db_finish(st);
	return ret;
}

static int stash_error(kdc_db *db, int ret, const char *why, char *err, size_t len)
{
	if (ret == KD3_E_NOT_FOUND)
		snprintf(err, len,
		         "%s: no such stash file; the database %s needs the master key stash made "
		         "with it (--stash FILE)",
		         db->stash, db->path);
	else
		snprintf(err, len, "%s (the master key stash of %s)", why, db->path);
	return ret == KD3_E_KEYFILE_PERMS ? ret : KD3_E_KEYFILE;
}

/* Inside a transaction: the stash key the database's check names, set up in db->master.
 * rekey-master replaces the stash only while it holds the write lock, and cannot commit
 * while this transaction reads, so the check and the stash read here belong together. */
static int db_attach_master_in_tx(kdc_db *db, char *err, size_t len)
{
	uint8_t check[KD3_HASH_LEN];
	char serr[512], db_id[KDC_MASTER_ID_TEXT], have[64];
	kdc_stash s;
	memset(&s, 0, sizeof(s));
	kdc_master_free(&db->master);
	int ret = kdc_db_master_check_get(db, check, err, len);
	if (ret == KD3_OK && (ret = kdc_stash_load(db->stash, &s, serr, sizeof(serr))) != KD3_OK)
		ret = stash_error(db, ret, serr, err, len);
	int at = ret == KD3_OK ? kdc_stash_find(&s, check) : -1;
	if (ret == KD3_OK && at < 0) {
		kdc_master_id_text(check, db_id);
		kdc_stash_ids(&s, have, sizeof(have));
		snprintf(err, len,
		         "%s: its master key %s is not in the stash %s (which holds %s); give the "
		         "stash made with this database (--stash)",
		         db->path, db_id, db->stash, have);
		ret = KD3_E_KEYFILE;
	}
	if (ret == KD3_OK && kdc_master_init(&db->master, s.key[at], db->writable) != KD3_OK) {
		snprintf(err, len, "%s: cannot set up the master key", db->stash);
		ret = KD3_E_CRYPTO;
	}
	db->stash_extra = ret == KD3_OK && s.n > 1;
	kdc_stash_wipe(&s);
	return ret;
}

static int db_attach_master(kdc_db *db, char *err, size_t len)
{
	int ret = db_exec(db, "BEGIN", err, len, "cannot start a transaction");
	if (ret != KD3_OK)
		return ret;
	ret = db_attach_master_in_tx(db, err, len);
	kdc_db_rollback(db);
	return ret;
}

int kdc_db_open(const char *path, const char *stash, int writable, kdc_db *db, char *err,
                size_t err_len)
{
	int version = -1;
	int ret = db_open_file(path, stash, writable, db, &version, err, err_len);
	if (ret != KD3_OK)
		return ret;
	ret = db_check_schema(db, err, err_len);
	if (ret == KD3_OK)
		ret = db_attach_master(db, err, err_len);
	if (ret != KD3_OK)
		kdc_db_close(db);
	return ret;
}

/* ---- transactions ------------------------------------------------------------- */

/* Inside a transaction: the master key the database names now. A rekey-master that
 * committed since the last transaction changed it: follow it (the stash holds the new
 * key by then), so a long-running reader or a command that raced it goes on. */
static int db_check_master(kdc_db *db, char *err, size_t len)
{
	uint8_t check[KD3_HASH_LEN];
	if (!db->master.ready)
		return KD3_OK;
	int ret = kdc_db_master_check_get(db, check, err, len);
	if (ret == KD3_OK && !kd3_ct_equal(check, db->master.check, KD3_HASH_LEN))
		ret = db_attach_master_in_tx(db, err, len);
	if (ret != KD3_OK)
		kdc_db_rollback(db);
	return ret;
}

int kdc_db_begin(kdc_db *db, char *err, size_t err_len)
{
	int ret = db_exec(db, "BEGIN IMMEDIATE", err, err_len, "cannot start a transaction");
	return ret == KD3_OK ? db_check_master(db, err, err_len) : ret;
}

int kdc_db_begin_read(kdc_db *db, char *err, size_t err_len)
{
	int ret = db_exec(db, "BEGIN", err, err_len, "cannot start a transaction");
	return ret == KD3_OK ? db_check_master(db, err, err_len) : ret;
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

/* ---- sealing inside SQL: one statement re-seals a whole table ------------------------ */

/* kd3_reseal(name, kvno, blob): blob opened under from (or, with from NULL, a key in the
 * clear: the upgrade from schema 2) and sealed under to. name NULL: the realm secret. */
struct reseal {
	kdc_master *from, *to;
	char failed[KD3_NAME_MAX + 32]; /* the row that did not open */
};

static void sql_reseal(sqlite3_context *sc, int argc, sqlite3_value **argv)
{
	struct reseal *r = sqlite3_user_data(sc);
	uint8_t key[KD3_KEY_LEN], out[KDC_SEALED_LEN];
	const char *name = (const char *)sqlite3_value_text(argv[0]);
	uint32_t kvno = (uint32_t)sqlite3_value_int64(argv[1]);
	const void *in = sqlite3_value_blob(argv[2]);
	int in_len = sqlite3_value_bytes(argv[2]);
	int ret = KD3_E_BLOB_AUTH;
	(void)argc;

	if (r->from && in && in_len == KDC_SEALED_LEN)
		ret = kdc_master_open(r->from, name, kvno, in, key);
	else if (!r->from && in && in_len == KD3_KEY_LEN) {
		memcpy(key, in, KD3_KEY_LEN);
		ret = KD3_OK;
	}
	if (ret == KD3_OK)
		ret = kdc_master_seal(r->to, name, kvno, key, out);
	kd3_wipe(key, sizeof(key));
	if (ret == KD3_OK) {
		sqlite3_result_blob(sc, out, KDC_SEALED_LEN, SQLITE_TRANSIENT);
		return;
	}
	snprintf(r->failed, sizeof(r->failed), name ? "%.255s:%u" : "the realm secret",
	         name ? name : "", (unsigned)kvno);
	sqlite3_result_error(sc, "a key did not open", -1);
}

static int reseal_register(kdc_db *db, struct reseal *r, char *err, size_t len)
{
	if (sqlite3_create_function(db->h, "kd3_reseal", 3, SQLITE_UTF8 | SQLITE_DIRECTONLY, r,
	                            sql_reseal, NULL, NULL) != SQLITE_OK)
		return db_fail(db, err, len, "cannot set up re-sealing");
	return KD3_OK;
}

static void reseal_unregister(kdc_db *db)
{
	sqlite3_create_function(db->h, "kd3_reseal", 3, SQLITE_UTF8, NULL, NULL, NULL, NULL);
}

/* A statement using kd3_reseal failed: name the row that did not open, if one did not. */
static int reseal_error(kdc_db *db, const struct reseal *r, int ret, char *err, size_t len)
{
	if (ret == KD3_OK || !r->failed[0])
		return ret;
	snprintf(err, len, "%s: %s does not open under master key %s (damaged?)", db->path,
	         r->failed, r->from ? r->from->id : "?");
	return KD3_E_BLOB_AUTH;
}

static int db_set_check(kdc_db *db, const uint8_t check[KD3_HASH_LEN], char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db, "UPDATE realm SET master_check = ?1 WHERE id = 1", &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_blob(st, 1, check, KD3_HASH_LEN, SQLITE_STATIC);
	ret = db_step_done(db, st, err, len, "cannot store the master check");
	if (ret == KD3_OK && sqlite3_changes(db->h) != 1)
		ret = db_fail(db, err, len, "no realm row");
	db_finish(st);
	return ret;
}

int kdc_db_rekey(kdc_db *db, kdc_master *next, size_t *nkeys, char *err, size_t err_len)
{
	struct reseal r = {&db->master, next, ""};
	int ret = reseal_register(db, &r, err, err_len);
	if (ret != KD3_OK)
		return ret;
	/* One statement per table: SQLite calls kd3_reseal once per row. */
	ret = db_exec(db, "UPDATE keys SET sealed = kd3_reseal(name, kvno, sealed)", err, err_len,
	              "cannot re-seal the keys");
	*nkeys = ret == KD3_OK ? (size_t)sqlite3_changes(db->h) : 0;
	if (ret == KD3_OK)
		ret = db_exec(db,
		              "UPDATE realm SET secret = kd3_reseal(NULL, 0, secret) WHERE id = 1",
		              err, err_len, "cannot re-seal the realm secret");
	ret = reseal_error(db, &r, ret, err, err_len);
	reseal_unregister(db);
	return ret == KD3_OK ? db_set_check(db, next->check, err, err_len) : ret;
}

/* ---- upgrade from schema 2 ------------------------------------------------------------ */

static const char upgrade_tables[] =
    "ALTER TABLE keys RENAME TO keys_v2;"
    "ALTER TABLE realm RENAME TO realm_v2;" DB_TABLE_KEYS DB_TABLE_REALM;

/* The stash of an upgrade: the existing one when it holds one key (an upgrade that
 * stopped before its commit created it), else a new one with a new master key. */
static int upgrade_stash(const char *path, kdc_stash *s, char *err, size_t len)
{
	uint8_t key[KD3_KEY_LEN];
	kd3_crypto c;
	int ret = kdc_stash_load(path, s, err, len);
	if (ret == KD3_OK && s->n != 1) {
		snprintf(err, len, "%s: holds %zu master keys; an upgrade needs one", path, s->n);
		ret = KD3_E_KEYFILE;
	}
	if (ret != KD3_E_NOT_FOUND)
		return ret;
	ret = kd3_crypto_init(&c, "kd3 kdc master key", 1);
	if (ret == KD3_OK)
		ret = kd3_crypto_rng(&c, key, sizeof(key));
	kd3_crypto_free(&c);
	if (ret == KD3_OK)
		ret = kdc_stash_add(s, key);
	kd3_wipe(key, sizeof(key));
	if (ret != KD3_OK) {
		snprintf(err, len, "%s: cannot draw a master key", path);
		return ret;
	}
	return kdc_stash_write(path, s, 1, err, len);
}

/* The realm row of schema 2, sealed, with the new master check. */
static int upgrade_realm(kdc_db *db, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret =
	    db_prepare(db,
	               "INSERT INTO realm (id, secret, master_check)"
	               " SELECT 1, kd3_reseal(NULL, 0, secret), ?1 FROM realm_v2 WHERE id = 1",
	               &st, err, len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_blob(st, 1, db->master.check, KD3_HASH_LEN, SQLITE_STATIC);
	ret = db_step_done(db, st, err, len, "cannot seal the realm secret");
	if (ret == KD3_OK && sqlite3_changes(db->h) != 1) {
		snprintf(err, len, "%s: the realm secret is missing", db->path);
		ret = KD3_E_DB;
	}
	db_finish(st);
	return ret;
}

/* Inside the transaction: new tables, every row sealed, the old tables gone. */
static int upgrade_in_tx(kdc_db *db, size_t *nkeys, char *err, size_t len)
{
	struct reseal r = {NULL, &db->master, ""};
	int version = -1;
	int ret = db_schema_version(db, &version, err, len);
	if (ret == KD3_OK && version != KDC_DB_SCHEMA_V2) { /* another upgrade was first */
		snprintf(err, len, "%s: schema version %d, not 2: nothing to upgrade", db->path,
		         version);
		return KD3_E_DB;
	}
	if (ret == KD3_OK)
		ret = db_exec(db, upgrade_tables, err, len, "cannot create the new tables");
	if (ret == KD3_OK)
		ret = reseal_register(db, &r, err, len);
	if (ret != KD3_OK)
		return ret;
	ret = db_exec(db,
	              "INSERT INTO keys (name, kvno, sealed, created)"
	              " SELECT name, kvno, kd3_reseal(name, kvno, key), created FROM keys_v2",
	              err, len, "cannot seal the keys");
	*nkeys = ret == KD3_OK ? (size_t)sqlite3_changes(db->h) : 0;
	if (ret == KD3_OK)
		ret = upgrade_realm(db, err, len);
	ret = reseal_error(db, &r, ret, err, len);
	reseal_unregister(db);
	if (ret == KD3_OK)
		ret =
		    db_exec(db, "DROP TABLE keys_v2; DROP TABLE realm_v2; PRAGMA user_version = 3;",
		            err, len, "cannot drop the old tables");
	return ret;
}

int kdc_db_upgrade(const char *path, const char *stash, size_t *nkeys, char *err, size_t err_len)
{
	kdc_stash s;
	kdc_db db;
	int version = -1;
	int ret = db_open_file(path, stash, 1, &db, &version, err, err_len);
	if (ret != KD3_OK)
		return ret;
	memset(&s, 0, sizeof(s));
	if (version != KDC_DB_SCHEMA_V2) {
		snprintf(err, err_len, "%s: schema version %d, not 2 (kd3 0.1): nothing to upgrade",
		         path, version);
		ret = version == KDC_DB_SCHEMA_VERSION ? KD3_E_EXISTS : KD3_E_DB;
		goto out;
	}
	/* The stash first: a crash before the commit leaves it and the old database. */
	if ((ret = upgrade_stash(stash, &s, err, err_len)) != KD3_OK)
		goto out;
	kdc_crash_point("upgrade-stash-written");
	if ((ret = kdc_master_init(&db.master, s.key[0], 1)) != KD3_OK) {
		snprintf(err, err_len, "%s: cannot set up the master key", stash);
		goto out;
	}
	if ((ret = db_exec(&db, "BEGIN IMMEDIATE", err, err_len, "cannot start")) != KD3_OK)
		goto out;
	ret = upgrade_in_tx(&db, nkeys, err, err_len);
	kdc_crash_point("upgrade-before-commit");
	if (ret == KD3_OK)
		ret = kdc_db_commit(&db, err, err_len);
	else
		kdc_db_rollback(&db);
out:
	kdc_stash_wipe(&s);
	kdc_db_close(&db);
	return ret;
}

/* ---- principals ----------------------------------------------------------------- */

int kdc_db_kvno_live(const kdc_db_kvno *k, int64_t now)
{
	return k->retire_at == 0 || k->retire_at > now;
}

/* Columns kvno, created, retire_at from col on (NULL kvno: a principal without keys). */
static void principal_add_kvno(kdc_db_principal *p, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return; /* LEFT JOIN: a principal without keys */
	uint32_t kvno = (uint32_t)sqlite3_column_int64(st, col);
	if (p->nkvnos < KD3_KEYFILE_KEYS_MAX) {
		kdc_db_kvno *k = &p->kvnos[p->nkvnos++];
		k->kvno = kvno;
		k->created = sqlite3_column_int64(st, col + 1);
		k->retire_at = column_time(st, col + 2);
	}
	p->total_kvnos++;
	if (kvno > p->kvno_max)
		p->kvno_max = kvno;
}

/* The last_used table exists once a kdc serve wrote to it: without it, every
 * principal's last use is NULL (never). */
#define DB_LAST_USED_JOIN " LEFT JOIN last_used u ON u.name = p.name"

int kdc_db_principal_get(kdc_db *db, const char *name, kdc_db_principal *p, char *err,
                         size_t err_len)
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
	int ret = db_has_table(db, "last_used", &used, err, err_len);
	if (ret == KD3_OK)
		ret = db_prepare(db, sql[used], &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	ret = KD3_E_NOT_FOUND;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		p->enabled = sqlite3_column_int(st, 0);
		p->created = sqlite3_column_int64(st, 1);
		p->last_used = column_time(st, 5);
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

int kdc_db_principal_insert(kdc_db *db, const char *name, int enabled, int64_t created, char *err,
                            size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret =
	    db_prepare(db, "INSERT INTO principals (name, enabled, created) VALUES (?1, ?2, ?3)",
	               &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, enabled ? 1 : 0);
	sqlite3_bind_int64(st, 3, created);
	ret = db_step_done(db, st, err, err_len, "cannot add the principal");
	if (ret == KD3_E_EXISTS)
		snprintf(err, err_len, "principal '%s' already exists", name);
	db_finish(st);
	return ret;
}

/* Runs a statement on name (?1) and an optional ?2 that must change a row. */
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

static int db_sealed_insert(kdc_db *db, const kdc_db_sealed_key *k, char *err, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db,
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
	ret = db_step_done(db, st, err, len, "cannot add the key");
	if (ret == KD3_E_EXISTS)
		snprintf(err, len, "principal '%s' already has kvno %u (or no such principal)",
		         k->name, (unsigned)k->kvno);
	db_finish(st);
	return ret;
}

int kdc_db_key_insert(kdc_db *db, const char *name, uint32_t kvno, const uint8_t key[KD3_KEY_LEN],
                      int64_t created, char *err, size_t err_len)
{
	kdc_db_sealed_key k = {.kvno = kvno, .created = created};
	if (snprintf(k.name, sizeof(k.name), "%s", name) >= (int)sizeof(k.name) ||
	    kdc_master_seal(&db->master, name, kvno, key, k.sealed) != KD3_OK) {
		snprintf(err, err_len, "%s: cannot seal the key %.64s:%u", db->path, name,
		         (unsigned)kvno);
		return KD3_E_CRYPTO;
	}
	return db_sealed_insert(db, &k, err, err_len);
}

int kdc_db_sealed_key_insert(kdc_db *db, const kdc_db_sealed_key *k, char *err, size_t err_len)
{
	uint8_t key[KD3_KEY_LEN];
	int ret = kdc_master_open(&db->master, k->name, k->kvno, k->sealed, key);
	kd3_wipe(key, sizeof(key));
	if (ret != KD3_OK)
		return key_open_fail(db, k->name, k->kvno, err, err_len);
	return db_sealed_insert(db, k, err, err_len);
}

int kdc_db_keys_retire_below(kdc_db *db, const char *name, uint32_t kvno, int64_t retire_at,
                             char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db,
	                     "UPDATE keys SET retire_at = ?3"
	                     " WHERE name = ?1 AND kvno < ?2 AND retire_at IS NULL",
	                     &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, kvno);
	sqlite3_bind_int64(st, 3, retire_at);
	ret = db_step_done(db, st, err, err_len, "cannot set the retire time");
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

int kdc_db_keys_purge(kdc_db *db, const char *name, int64_t now, size_t *n, char *err,
                      size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db,
	                     "DELETE FROM keys WHERE retire_at IS NOT NULL AND retire_at <= ?2"
	                     " AND (?1 IS NULL OR name = ?1)",
	                     &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	if (name)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	ret = db_step_done(db, st, err, err_len, "cannot purge keys");
	*n = ret == KD3_OK ? (size_t)sqlite3_changes(db->h) : 0;
	db_finish(st);
	return ret;
}

int kdc_db_keys_get(kdc_db *db, const char *name, int64_t live_at, kd3_keyfile *kf, char *err,
                    size_t err_len)
{
	uint8_t sealed[KDC_SEALED_LEN];
	sqlite3_stmt *st = NULL;
	int rc, ret = db_prepare(db,
	                         "SELECT kvno, sealed FROM keys WHERE name = ?1 AND (?2 = 0 OR"
	                         " retire_at IS NULL OR retire_at > ?2) ORDER BY kvno",
	                         &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	memset(kf, 0, sizeof(*kf));
	snprintf(kf->principal, sizeof(kf->principal), "%s", name);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, live_at);
	ret = KD3_E_DB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (kf->nkeys >= KD3_KEYFILE_KEYS_MAX) {
			snprintf(err, err_len, "principal '%s' has more than %d keys", name,
			         KD3_KEYFILE_KEYS_MAX);
			goto out;
		}
		kd3_keyfile_entry *e = &kf->keys[kf->nkeys++];
		e->kvno = (uint32_t)sqlite3_column_int64(st, 0);
		if (column_sealed(st, 1, sealed) != KD3_OK ||
		    kdc_master_open(&db->master, name, e->kvno, sealed, e->key) != KD3_OK) {
			ret = key_open_fail(db, name, e->kvno, err, err_len);
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
	int ret = db_has_table(db, "last_used", &used, err, err_len);
	if (ret == KD3_OK)
		ret = db_prepare(db, sql[used], &st, err, err_len);
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
			p.last_used = column_time(st, 6);
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

int kdc_db_each_key(kdc_db *db, int64_t live_at, kdc_db_key_fn fn, void *ctx, char *err,
                    size_t err_len)
{
	sqlite3_stmt *st = NULL;
	uint8_t key[KD3_KEY_LEN], sealed[KDC_SEALED_LEN];
	char name[KD3_NAME_MAX + 1];
	int rc, ret = db_prepare(db,
	                         "SELECT k.name, k.kvno, k.sealed, k.retire_at FROM keys k"
	                         " JOIN principals p ON p.name = k.name WHERE p.enabled = 1"
	                         " AND (?1 = 0 OR k.retire_at IS NULL OR k.retire_at > ?1)"
	                         " ORDER BY k.name, k.kvno DESC",
	                         &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_int64(st, 1, live_at);
	ret = KD3_E_DB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t kvno = (uint32_t)sqlite3_column_int64(st, 1);
		if (column_name(st, 0, name) != KD3_OK || column_sealed(st, 2, sealed) != KD3_OK) {
			snprintf(err, err_len, "%s: a key row is not valid", db->path);
			goto out;
		}
		if (kdc_master_open(&db->master, name, kvno, sealed, key) != KD3_OK) {
			ret = key_open_fail(db, name, kvno, err, err_len);
			goto out;
		}
		ret = fn(ctx, name, kvno, column_time(st, 3), key);
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

int kdc_db_each_sealed_key(kdc_db *db, kdc_db_sealed_fn fn, void *ctx, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	kdc_db_sealed_key k;
	int rc, ret = db_prepare(db,
	                         "SELECT name, kvno, sealed, created, retire_at FROM keys"
	                         " ORDER BY name, kvno",
	                         &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	ret = KD3_E_DB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&k, 0, sizeof(k));
		k.kvno = (uint32_t)sqlite3_column_int64(st, 1);
		k.created = sqlite3_column_int64(st, 3);
		k.retire_at = column_time(st, 4);
		if (column_name(st, 0, k.name) != KD3_OK ||
		    column_sealed(st, 2, k.sealed) != KD3_OK) {
			snprintf(err, err_len, "%s: a key row is not valid", db->path);
			goto out;
		}
		if ((ret = fn(ctx, &k)) != KD3_OK)
			goto out;
		ret = KD3_E_DB;
	}
	if (rc != SQLITE_DONE) {
		db_fail(db, err, err_len, "cannot read keys");
		goto out;
	}
	ret = KD3_OK;
out:
	db_finish(st);
	return ret;
}

int kdc_db_realm_sealed_get(kdc_db *db, uint8_t sealed[KDC_SEALED_LEN], char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_prepare(db, "SELECT secret FROM realm WHERE id = 1", &st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	if (sqlite3_step(st) != SQLITE_ROW || column_sealed(st, 0, sealed) != KD3_OK) {
		snprintf(err, err_len, "%s: the realm secret is missing or damaged", db->path);
		ret = KD3_E_DB;
	}
	db_finish(st);
	return ret;
}

int kdc_db_realm_secret_get(kdc_db *db, uint8_t secret[KD3_KEY_LEN], char *err, size_t err_len)
{
	uint8_t sealed[KDC_SEALED_LEN];
	int ret = kdc_db_realm_sealed_get(db, sealed, err, err_len);
	if (ret == KD3_OK && kdc_master_open(&db->master, NULL, 0, sealed, secret) != KD3_OK) {
		snprintf(err, err_len, "%s: the realm secret does not open under master key %s",
		         db->path, db->master.id);
		ret = KD3_E_BLOB_AUTH;
	}
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

/* ---- for a running kdc serve ------------------------------------------------------ */

#define UNLOCK_KEEP_SECONDS 86400 /* an unlock row is read by servers within a second */
#define UNLOCK_BATCH_MAX    1024  /* rows read per reload; the rest at the next */
#define WATCH_BUSY_MS       100

int kdc_db_unlock_add(kdc_db *db, const char *name, int64_t now, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret = db_exec(db,
	                  "CREATE TABLE IF NOT EXISTS unlocks ("
	                  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	                  "  name TEXT NOT NULL,"
	                  "  at INTEGER NOT NULL"
	                  ");",
	                  err, err_len, "cannot create the unlocks table");
	if (ret == KD3_OK)
		ret = db_prepare(db, "DELETE FROM unlocks WHERE at < ?1", &st, err, err_len);
	if (ret == KD3_OK) {
		sqlite3_bind_int64(st, 1, now - UNLOCK_KEEP_SECONDS);
		ret = db_step_done(db, st, err, err_len, "cannot drop old unlocks");
		db_finish(st);
		st = NULL;
	}
	if (ret == KD3_OK)
		ret = db_prepare(db, "INSERT INTO unlocks (name, at) VALUES (?1, ?2)", &st, err,
		                 err_len);
	if (ret == KD3_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now);
		ret = db_step_done(db, st, err, err_len, "cannot record the unlock");
	}
	db_finish(st);
	return ret;
}

int kdc_db_unlocks_since(kdc_db *db, int64_t *last, kdc_db_unlock_fn fn, void *ctx, char *err,
                         size_t err_len)
{
	sqlite3_stmt *st = NULL;
	char name[KD3_NAME_MAX + 1];
	int has = 0, rc;
	int ret = db_has_table(db, "unlocks", &has, err, err_len);
	if (ret != KD3_OK || !has)
		return ret;
	ret = db_prepare(db, "SELECT id, name FROM unlocks WHERE id > ?1 ORDER BY id LIMIT ?2", &st,
	                 err, err_len);
	if (ret != KD3_OK)
		return ret;
	sqlite3_bind_int64(st, 1, *last);
	sqlite3_bind_int(st, 2, UNLOCK_BATCH_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*last = sqlite3_column_int64(st, 0);
		if (column_name(st, 1, name) == KD3_OK) /* a bad row is skipped, not fatal */
			fn(ctx, name);
	}
	if (rc != SQLITE_DONE)
		ret = db_fail(db, err, err_len, "cannot read the unlocks");
	db_finish(st);
	return ret;
}

int kdc_db_watch_open(kdc_db_watch *w, const char *path, char *err, size_t err_len)
{
	struct stat st;
	memset(w, 0, sizeof(*w));
	if (snprintf(w->path, sizeof(w->path), "%s", path) >= (int)sizeof(w->path)) {
		snprintf(err, err_len, "%.64s...: path is too long", path);
		return KD3_E_DB;
	}
	if (lstat(path, &st) != 0)
		return db_stat_error(path, errno, err, err_len);
	/* Read-write for the last-used times (read-only when the file is write-protected:
	 * then only those writes fail). */
	if (sqlite3_open_v2(path, &w->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) !=
	    SQLITE_OK) {
		snprintf(err, err_len, "%s: cannot open: %s", path,
		         w->h ? sqlite3_errmsg(w->h) : "?");
		kdc_db_watch_close(w);
		return KD3_E_DB;
	}
	sqlite3_busy_timeout(w->h, WATCH_BUSY_MS);
	w->dev = (uint64_t)st.st_dev;
	w->ino = (uint64_t)st.st_ino;
	w->version = -1;
	(void)kdc_db_watch_changed(w); /* the baseline */
	return KD3_OK;
}

static int watch_version(kdc_db_watch *w, int64_t *version)
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

int kdc_db_watch_changed(kdc_db_watch *w)
{
	struct stat st;
	int64_t version = 0;
	if (!w->h)
		return -1;
	/* Another file under the path (a restore moved into place): watch that one. */
	if (lstat(w->path, &st) != 0)
		return -1;
	if ((uint64_t)st.st_dev != w->dev || (uint64_t)st.st_ino != w->ino) {
		char path[256], err[64];
		memcpy(path, w->path, sizeof(path));
		kdc_db_watch_close(w);
		return kdc_db_watch_open(w, path, err, sizeof(err)) == KD3_OK ? 1 : -1;
	}
	int got = watch_version(w, &version);
	if (got <= 0)
		return got;
	int changed = w->version >= 0 && version != w->version;
	w->version = version;
	return changed;
}

void kdc_db_watch_close(kdc_db_watch *w)
{
	if (w->h)
		sqlite3_close_v2(w->h);
	w->h = NULL;
}

static int watch_fail(kdc_db_watch *w, char *err, size_t len, const char *what)
{
	snprintf(err, len, "%s: %s: %s", w->path, what, w->h ? sqlite3_errmsg(w->h) : "not open");
	return KD3_E_DB;
}

static int watch_exec(kdc_db_watch *w, const char *sql, char *err, size_t len, const char *what)
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

static int last_used_rows(kdc_db_watch *w, kdc_db_used_fn next, void *ctx, char *err, size_t len)
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

int kdc_db_watch_store_last_used(kdc_db_watch *w, int busy_ms, kdc_db_used_fn next, void *ctx,
                                 char *err, size_t err_len)
{
	if (!w->h)
		return watch_fail(w, err, err_len, "cannot store last-used times");
	sqlite3_busy_timeout(w->h, busy_ms);
	int ret = watch_exec(w, "BEGIN IMMEDIATE", err, err_len, "cannot store last-used times");
	if (ret == KD3_OK)
		ret = watch_exec(w, DB_TABLE_LAST_USED, err, err_len,
		                 "cannot create the last_used table");
	if (ret == KD3_OK)
		ret = last_used_rows(w, next, ctx, err, err_len);
	if (ret == KD3_OK)
		ret = watch_exec(w, "COMMIT", err, err_len, "cannot commit last-used times");
	if (!sqlite3_get_autocommit(w->h))
		sqlite3_exec(w->h, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_busy_timeout(w->h, WATCH_BUSY_MS);
	return ret;
}
