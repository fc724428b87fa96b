/* Keys at rest: the master key stash, sealing, upgrade from schema 2, rekey-master with
 * its crash windows, dump and load. Every refusal leaves the database as it was. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "admin.h"
#include "crypto.h"
#include "db.h"
#include "err.h"
#include "keyfile.h"
#include "seal.h"
#include "stash.h"
#include "table.h"
#include "unit_kdc_realm.h"

static char err[1024];

static int setup(void **state)
{
	(void)state;
	return realm_setup("stash");
}

static int teardown(void **state)
{
	(void)state;
	unsetenv("KD3_KDC_CRASH_AT");
	return realm_teardown();
}

static void path_in(const char *name, char out[256])
{
	snprintf(out, 256, "%s/%s", dir, name);
}

/* Options for one run: NAME or FILE, an optional key file, another database/stash. */
static kdc_opts *cmd(const char *arg, const char *keyfile)
{
	O.args[0] = arg;
	O.nargs = arg ? 1 : 0;
	O.keyfile[0] = '\0';
	if (keyfile)
		snprintf(O.keyfile, sizeof(O.keyfile), "%s/%s", dir, keyfile);
	O.force = 0;
	return &O;
}

static void use_db(const char *db, const char *stash)
{
	snprintf(O.db, sizeof(O.db), "%.200s", db);
	snprintf(O.stash, sizeof(O.stash), "%.200s", stash ? stash : "");
}

static void realm_with_principals(void)
{
	assert_int_equal(kdc_cmd_init(cmd(NULL, NULL)), KD3_OK);
	assert_int_equal(kdc_cmd_add(cmd("alice", "alice.key")), KD3_OK);
	assert_int_equal(kdc_cmd_add(cmd("bob", "bob.key")), KD3_OK);
	assert_int_equal(kdc_cmd_rotate(cmd("alice", "alice.key")), KD3_OK);
	assert_int_equal(kdc_cmd_disable(cmd("bob", NULL)), KD3_OK);
}

/* SHA-256 of a file's bytes: "unchanged" means the same digest. */
static void file_digest(const char *path, uint8_t out[32])
{
	static uint8_t buf[1 << 20];
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	kd3_iov part = {buf, n};
	assert_int_equal(kd3_sha256(&part, 1, out), KD3_OK);
}

static int file_has(const char *path, const uint8_t *needle, size_t len)
{
	static uint8_t buf[1 << 20];
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	for (size_t i = 0; i + len <= n; i++)
		if (memcmp(buf + i, needle, len) == 0)
			return 1;
	return 0;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	fchmod(fd, mode);
	close(fd);
}

static char *read_text(const char *path)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* A copy of text that must fit whole in dst[cap] (a cut copy would compare wrong). */
static void keep_text(char *dst, size_t cap, const char *text)
{
	size_t n = strlen(text);
	assert_true(n < cap);
	memcpy(dst, text, n + 1);
}

/* The whole content, keys opened, as one string (to compare two databases). */
static int snap_row(void *ctx, const kdc_db_principal *p)
{
	char *out = ctx;
	size_t at = strlen(out);
	at += (size_t)snprintf(out + at, 8192 - at, "%s:%d:%lld:", p->name, p->enabled,
	                       (long long)p->created);
	for (size_t i = 0; i < p->nkvnos; i++)
		at += (size_t)snprintf(out + at, 8192 - at, "%u@%lld/%lld,",
		                       (unsigned)p->kvnos[i].kvno, (long long)p->kvnos[i].created,
		                       (long long)p->kvnos[i].retire_at);
	snprintf(out + at, 8192 - at, ";");
	return KD3_OK;
}

static int snap_key(void *ctx, const char *name, uint32_t kvno, int64_t retire_at,
                    const uint8_t key[32])
{
	char *out = ctx;
	size_t at = strlen(out);
	(void)retire_at;
	at += (size_t)snprintf(out + at, 8192 - at, "%s/%u=", name, (unsigned)kvno);
	for (int i = 0; i < 32; i++)
		at += (size_t)snprintf(out + at, 8192 - at, "%02x", key[i]);
	snprintf(out + at, 8192 - at, ";");
	return KD3_OK;
}

static void snapshot_of(const char *db_file, const char *stash, char out[8192])
{
	uint8_t secret[32];
	kdc_db db;
	out[0] = '\0';
	assert_int_equal(kdc_db_open(db_file, stash, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_each_principal(&db, snap_row, out, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_each_key(&db, 0, snap_key, out, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_realm_secret_get(&db, secret, err, sizeof(err)), KD3_OK);
	size_t at = strlen(out);
	for (int i = 0; i < 32; i++)
		at += (size_t)snprintf(out + at, 8192 - at, "%02x", secret[i]);
	kdc_db_close(&db);
}

static void snapshot(char out[8192])
{
	snapshot_of(db_path, stash_path, out);
}

static size_t stash_keys(const char *path)
{
	kdc_stash s;
	assert_int_equal(kdc_stash_load(path, &s, err, sizeof(err)), KD3_OK);
	size_t n = s.n;
	kdc_stash_wipe(&s);
	return n;
}

static void copy_file(const char *from, const char *to)
{
	char *text = read_text(from);
	write_text(to, text, 0600);
}

/* ---- the stash and sealing ------------------------------------------------------------ */

/* kdc init writes a private stash; no key or realm secret is in the database file. */
static void test_init_seals(void **state)
{
	char path[256];
	uint8_t secret[32];
	kd3_keyfile kf;
	struct stat st;
	kdc_db db;
	(void)state;
	realm_with_principals();
	assert_int_equal(stat(stash_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stash_keys(stash_path), 1);
	path_in("alice.key", path);
	assert_int_equal(kd3_keyfile_load(path, &kf, err, sizeof(err)), KD3_OK);
	assert_int_equal(kf.nkeys, 2);
	for (size_t i = 0; i < kf.nkeys; i++)
		assert_false(file_has(db_path, kf.keys[i].key, 32));
	kd3_keyfile_wipe(&kf);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_realm_secret_get(&db, secret, err, sizeof(err)), KD3_OK);
	kdc_db_close(&db);
	assert_false(file_has(db_path, secret, 32));
	/* The stash key is not in the database either, only its check. */
	kdc_stash s;
	assert_int_equal(kdc_stash_load(stash_path, &s, err, sizeof(err)), KD3_OK);
	assert_false(file_has(db_path, s.key[0], 32));
	assert_true(file_has(db_path, s.check[0], 32));
	kdc_stash_wipe(&s);
	/* A second init refuses both the database and an existing stash. */
	assert_int_equal(kdc_cmd_init(cmd(NULL, NULL)), KD3_E_EXISTS);
	char other[256];
	path_in("other.db", other);
	use_db(other, stash_path);
	assert_int_equal(kdc_cmd_init(cmd(NULL, NULL)), KD3_E_EXISTS);
	assert_int_not_equal(access(other, F_OK), 0);
}

static void test_seal_binds_row(void **state)
{
	uint8_t master[32], key[32], out[32], sealed[KDC_SEALED_LEN], again[KDC_SEALED_LEN];
	kdc_master m, other;
	(void)state;
	memset(master, 0x42, sizeof(master));
	memset(key, 0x17, sizeof(key));
	assert_int_equal(kdc_master_init(&m, master, 1), KD3_OK);
	assert_int_equal(kdc_master_seal(&m, "alice", 3, key, sealed), KD3_OK);
	assert_int_equal(sealed[0], KDC_SEAL_VERSION);
	assert_int_equal(kdc_master_open(&m, "alice", 3, sealed, out), KD3_OK);
	assert_memory_equal(out, key, 32);
	/* A random nonce: sealing again gives another blob. */
	assert_int_equal(kdc_master_seal(&m, "alice", 3, key, again), KD3_OK);
	assert_memory_not_equal(sealed, again, KDC_SEALED_LEN);
	assert_int_equal(kdc_master_open(&m, "alice", 4, sealed, out), KD3_E_BLOB_AUTH);
	assert_int_equal(kdc_master_open(&m, "alicf", 3, sealed, out), KD3_E_BLOB_AUTH);
	assert_int_equal(kdc_master_open(&m, NULL, 0, sealed, out), KD3_E_BLOB_AUTH);
	sealed[KDC_SEALED_LEN - 1] ^= 1;
	assert_int_equal(kdc_master_open(&m, "alice", 3, sealed, out), KD3_E_BLOB_AUTH);
	sealed[KDC_SEALED_LEN - 1] ^= 1;
	sealed[0] = 2; /* an unknown seal version */
	assert_int_equal(kdc_master_open(&m, "alice", 3, sealed, out), KD3_E_BLOB_AUTH);
	sealed[0] = KDC_SEAL_VERSION;
	master[0] ^= 1;
	assert_int_equal(kdc_master_init(&other, master, 0), KD3_OK);
	assert_memory_not_equal(other.check, m.check, 32);
	assert_int_equal(kdc_master_open(&other, "alice", 3, sealed, out), KD3_E_BLOB_AUTH);
	/* Open-only context: cannot seal. */
	assert_int_not_equal(kdc_master_seal(&other, "alice", 3, key, again), KD3_OK);
	kdc_master_free(&other);
	kdc_master_free(&m);
}

/* Every bad stash is refused with one line naming it, and nothing changes. */
static void test_stash_refused(void **state)
{
	uint8_t before[32], after[32];
	char saved[4096], link_path[256];
	(void)state;
	realm_with_principals();
	keep_text(saved, sizeof(saved), read_text(stash_path));
	file_digest(db_path, before);

	chmod(stash_path, 0640);
	assert_int_equal(kdc_cmd_add(cmd("carol", "carol.key")), KD3_E_KEYFILE_PERMS);
	kdc_db db;
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)),
	                 KD3_E_KEYFILE_PERMS);
	assert_non_null(strstr(err, "stash file is readable by group or others (mode 0640)"));
	chmod(stash_path, 0600);

	/* A symbolic link to the right stash is still refused. */
	path_in("link.stash", link_path);
	assert_int_equal(symlink(stash_path, link_path), 0);
	assert_int_not_equal(kdc_db_open(db_path, link_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_non_null(strstr(err, "symbolic link"));

	/* Missing: names both files. */
	char missing[256];
	path_in("none.stash", missing);
	assert_int_not_equal(kdc_db_open(db_path, missing, 1, &db, err, sizeof(err)), KD3_OK);
	assert_non_null(strstr(err, "none.stash: no such stash file; the database"));
	assert_non_null(strstr(err, "kd3.db needs the master key stash"));

	/* One hex digit changed: the key no longer matches its id. */
	char *bad = strdup(saved);
	char *key = strstr(bad, "master = ") + 9 + 17;
	*key = *key == '0' ? '1' : '0';
	write_text(stash_path, bad, 0600);
	assert_int_not_equal(kdc_cmd_list(cmd(NULL, NULL)), KD3_OK);
	assert_int_not_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_non_null(strstr(err, ":3: the key does not match its id (damaged)"));
	free(bad);
	static const char *const garbage[] = {"",
	                                      "version = 1\n",
	                                      "version = 2\nmaster = 00:00\n",
	                                      "master = x\n",
	                                      "version = 1\nsecret = 1\n",
	                                      "\x01\x02\x03"};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		write_text(stash_path, garbage[i], 0600);
		assert_int_equal(kdc_db_open(db_path, stash_path, 1, &db, err, sizeof(err)),
		                 KD3_E_KEYFILE);
		assert_non_null(strstr(err, "kd3.db.stash"));
	}
	write_text(stash_path, saved, 0600);
	file_digest(db_path, after);
	assert_memory_equal(before, after, 32);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	kdc_db_close(&db);
}

static void test_stash_other_owner(void **state)
{
	kdc_db db;
	(void)state;
	realm_with_principals();
	if (geteuid() != 0)
		skip(); /* only root can give a file away */
	assert_int_equal(chown(stash_path, 4242, (gid_t)-1), 0);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)),
	                 KD3_E_KEYFILE_PERMS);
	assert_non_null(strstr(err, "stash file is owned by uid 4242, not by this user"));
	assert_int_equal(chown(stash_path, 0, (gid_t)-1), 0);
}

/* Another realm's stash: refused with both files and both key ids named. */
static void test_wrong_stash(void **state)
{
	char other_db[256], other_stash[300], before[8192], after[8192];
	uint8_t d1[32], d2[32];
	kdc_db db;
	(void)state;
	realm_with_principals();
	snapshot(before);
	path_in("other.db", other_db);
	snprintf(other_stash, sizeof(other_stash), "%s.stash", other_db);
	use_db(other_db, NULL);
	assert_int_equal(kdc_cmd_init(cmd(NULL, NULL)), KD3_OK);
	file_digest(db_path, d1);
	use_db(db_path, other_stash);
	assert_int_equal(kdc_cmd_add(cmd("carol", "carol.key")), KD3_E_KEYFILE);
	assert_int_equal(kdc_cmd_rotate(cmd("alice", "alice.key")), KD3_E_KEYFILE);
	assert_int_equal(kdc_cmd_remove(cmd("alice", NULL)), KD3_E_KEYFILE);
	assert_int_equal(kdc_db_open(db_path, other_stash, 1, &db, err, sizeof(err)),
	                 KD3_E_KEYFILE);
	assert_non_null(strstr(err, "kd3.db: its master key "));
	assert_non_null(strstr(err, "is not in the stash "));
	assert_non_null(strstr(err, "other.db.stash (which holds "));
	file_digest(db_path, d2);
	assert_memory_equal(d1, d2, 32);
	snapshot(after);
	assert_string_equal(before, after);
}

/* A sealed blob moved to another row, or damaged, does not open. */
static void test_sealed_blob_moved(void **state)
{
	sqlite3 *h = NULL;
	kd3_keyfile kf;
	kdc_db db;
	(void)state;
	realm_with_principals();
	assert_int_equal(sqlite3_open(db_path, &h), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(h,
	                 "UPDATE keys SET sealed = (SELECT sealed FROM keys WHERE"
	                 " name = 'bob' AND kvno = 1) WHERE name = 'alice' AND kvno = 1",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_keys_get(&db, "alice", 0, &kf, err, sizeof(err)), KD3_E_BLOB_AUTH);
	assert_non_null(strstr(err, "the key alice:1 does not open under master key"));
	kdc_db_close(&db);
	assert_int_equal(kdc_cmd_export(cmd("alice", "x.key")), KD3_E_BLOB_AUTH);
	assert_int_equal(kdc_cmd_dump(cmd("/dev/null/x", NULL)), KD3_E_BLOB_AUTH);
	/* rekey-master stops at the bad row, and the database keeps its old master key. */
	char before[256];
	keep_text(before, sizeof(before), read_text(stash_path));
	assert_int_equal(kdc_cmd_rekey_master(cmd(NULL, NULL)), KD3_E_BLOB_AUTH);
	assert_string_equal(read_text(stash_path), before);
	assert_int_equal(kdc_cmd_export(cmd("bob", "bob2.key")), KD3_OK);
}

/* ---- upgrade from kd3 0.1 ----------------------------------------------------------------- */

static const char v2_schema[] =
    "BEGIN;"
    "CREATE TABLE principals (name TEXT PRIMARY KEY NOT NULL, enabled INTEGER NOT NULL DEFAULT"
    " 1 CHECK (enabled IN (0, 1)), created INTEGER NOT NULL);"
    "CREATE TABLE keys (name TEXT NOT NULL REFERENCES principals(name) ON DELETE CASCADE,"
    " kvno INTEGER NOT NULL CHECK (kvno BETWEEN 1 AND 4294967295), key BLOB NOT NULL CHECK"
    " (length(key) = 32), created INTEGER NOT NULL, PRIMARY KEY (name, kvno));"
    "CREATE TABLE realm (id INTEGER PRIMARY KEY CHECK (id = 1), secret BLOB NOT NULL CHECK"
    " (length(secret) = 32));"
    "INSERT INTO principals VALUES ('alice', 1, 1700000000), ('bob', 0, 1700000001);"
    "INSERT INTO keys VALUES ('alice', 1, zeroblob(32), 1700000000),"
    " ('alice', 2, x'1212121212121212121212121212121212121212121212121212121212121212', "
    "1700000005),"
    " ('bob', 1, x'2121212121212121212121212121212121212121212121212121212121212121', 1700000001);"
    "INSERT INTO realm VALUES (1, "
    "x'5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e');"
    "PRAGMA user_version = 2;"
    "COMMIT;";

static void make_v2(void)
{
	sqlite3 *h = NULL;
	int fd = open(db_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sqlite3_open(db_path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, v2_schema, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
}

static void test_upgrade(void **state)
{
	uint8_t secret[32], want[32];
	kd3_keyfile kf;
	kdc_db db;
	(void)state;
	make_v2();
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_E_DB);
	assert_non_null(strstr(err, "a kd3 0.1 database (schema 2, keys not sealed); convert it "
	                            "with 'kdc upgrade --db "));
	assert_int_equal(kdc_cmd_add(cmd("carol", "carol.key")), KD3_E_DB);
	assert_int_not_equal(access(stash_path, F_OK), 0);

	assert_int_equal(kdc_cmd_upgrade(cmd(NULL, NULL)), KD3_OK);
	assert_int_equal(stash_keys(stash_path), 1);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_keys_get(&db, "alice", 0, &kf, err, sizeof(err)), KD3_OK);
	assert_int_equal(kf.nkeys, 2);
	memset(want, 0, 32);
	assert_memory_equal(kf.keys[0].key, want, 32);
	memset(want, 0x12, 32);
	assert_memory_equal(kf.keys[1].key, want, 32);
	assert_int_equal(kdc_db_realm_secret_get(&db, secret, err, sizeof(err)), KD3_OK);
	memset(want, 0x5e, 32);
	assert_memory_equal(secret, want, 32);
	kdc_db_principal p;
	assert_int_equal(kdc_db_principal_get(&db, "bob", &p, err, sizeof(err)), KD3_OK);
	assert_int_equal(p.enabled, 0);
	assert_int_equal(p.kvnos[0].created, 1700000001);
	assert_int_equal(p.kvnos[0].retire_at, 0);
	kdc_db_close(&db);
	kd3_keyfile_wipe(&kf);
	assert_false(file_has(db_path, want, 32)); /* no realm secret left in the clear */
	memset(want, 0x21, 32);
	assert_false(file_has(db_path, want, 32));
	/* A second upgrade has nothing to do. */
	assert_int_equal(kdc_cmd_upgrade(cmd(NULL, NULL)), KD3_E_EXISTS);
	assert_int_equal(kdc_cmd_add(cmd("carol", "carol.key")), KD3_OK);
}

/* An upgrade killed after writing the stash, or before its commit: the database is
 * still schema 2, and the next upgrade uses the stash it left. */
static void test_upgrade_crash(void **state)
{
	static const char *const points[] = {"upgrade-stash-written", "upgrade-before-commit"};
	(void)state;
	make_v2();
	for (size_t i = 0; i < 2; i++) {
		fflush(stdout);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			setenv("KD3_KDC_CRASH_AT", points[i], 1);
			_exit(kdc_cmd_upgrade(cmd(NULL, NULL)) == KD3_OK ? 0 : 1);
		}
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		kdc_db db;
		assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)),
		                 KD3_E_DB);
		assert_non_null(strstr(err, "schema 2"));
		assert_int_equal(stash_keys(stash_path), 1);
	}
	char stash_before[512];
	keep_text(stash_before, sizeof(stash_before), read_text(stash_path));
	assert_int_equal(kdc_cmd_upgrade(cmd(NULL, NULL)), KD3_OK);
	assert_string_equal(read_text(stash_path), stash_before); /* the same master key */
	assert_int_equal(kdc_cmd_export(cmd("alice", "alice.key")), KD3_OK);
}

/* ---- rekey-master ---------------------------------------------------------------------------- */

static void test_rekey_master(void **state)
{
	char before[8192], after[8192], old_stash[256];
	kd3_keyfile kf;
	kdc_db db, reader;
	(void)state;
	realm_with_principals();
	snapshot(before);
	/* A connection opened before the rekey follows it at its next transaction. */
	assert_int_equal(kdc_db_open(db_path, stash_path, 1, &reader, err, sizeof(err)), KD3_OK);
	char old_id[KDC_MASTER_ID_TEXT];
	memcpy(old_id, reader.master.id, sizeof(old_id));
	path_in("old.stash", old_stash);
	copy_file(stash_path, old_stash);
	assert_int_equal(kdc_cmd_rekey_master(cmd(NULL, NULL)), KD3_OK);
	snapshot(after);
	assert_string_equal(before, after); /* every key and the secret, unchanged */
	assert_int_equal(stash_keys(stash_path), 1);
	assert_int_equal(kdc_db_begin(&reader, err, sizeof(err)), KD3_OK);
	assert_string_not_equal(reader.master.id, old_id);
	assert_int_equal(kdc_db_keys_get(&reader, "alice", 0, &kf, err, sizeof(err)), KD3_OK);
	assert_int_equal(kf.nkeys, 2);
	uint8_t key[32] = {0};
	assert_int_equal(kdc_db_key_insert(&reader, "alice", 9, key, 1, err, sizeof(err)), KD3_OK);
	kdc_db_rollback(&reader);
	kdc_db_close(&reader);
	kd3_keyfile_wipe(&kf);
	char old_text[512];
	keep_text(old_text, sizeof(old_text), read_text(old_stash));
	assert_string_not_equal(read_text(stash_path), old_text);
	/* The old stash no longer opens the database. */
	assert_int_equal(kdc_db_open(db_path, old_stash, 0, &db, err, sizeof(err)), KD3_E_KEYFILE);
	assert_non_null(strstr(err, "is not in the stash"));
	/* And the admin commands go on under the new key. */
	assert_int_equal(kdc_cmd_rotate(cmd("alice", "alice.key")), KD3_OK);
	assert_int_equal(kdc_cmd_rekey_master(cmd(NULL, NULL)), KD3_OK);
	assert_int_equal(kdc_cmd_export(cmd("alice", "alice2.key")), KD3_OK);
}

/* Kills rekey-master at each point between its two files; every time the database
 * opens with its stash, the keys are the same, and a second run finishes the job. */
static void test_rekey_master_crash_windows(void **state)
{
	static const struct {
		const char *point;
		int new_key_in_use;
	} cases[] = {{"rekey-stash-both", 0}, {"rekey-resealed", 0}, {"rekey-committed", 1}};
	char before[8192], after[8192];
	uint8_t check_before[32];
	(void)state;
	realm_with_principals();
	snapshot(before);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kdc_db db;
		assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)),
		                 KD3_OK);
		memcpy(check_before, db.master.check, 32);
		kdc_db_close(&db);
		fflush(stdout);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			setenv("KD3_KDC_CRASH_AT", cases[i].point, 1);
			_exit(kdc_cmd_rekey_master(cmd(NULL, NULL)) == KD3_OK ? 0 : 1);
		}
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

		assert_int_equal(stash_keys(stash_path), 2); /* old and new */
		assert_int_equal(kdc_db_open(db_path, stash_path, 1, &db, err, sizeof(err)),
		                 KD3_OK);
		assert_int_equal(db.stash_extra, 1);
		assert_int_equal(memcmp(db.master.check, check_before, 32) != 0,
		                 cases[i].new_key_in_use);
		kdc_db_close(&db);
		snapshot(after);
		assert_string_equal(before, after);
		/* Admin commands work meanwhile (and say the stash needs finishing). */
		char keyfile[32];
		snprintf(keyfile, sizeof(keyfile), "alice-%zu.key", i);
		assert_int_equal(kdc_cmd_export(cmd("alice", keyfile)), KD3_OK);
		assert_int_equal(kdc_cmd_rekey_master(cmd(NULL, NULL)), KD3_OK);
		assert_int_equal(stash_keys(stash_path), 1);
		snapshot(after);
		assert_string_equal(before, after);
	}
}

/* ---- dump and load ------------------------------------------------------------------------------
 */

static void dump_to(const char *name, char out[256])
{
	path_in(name, out);
	assert_int_equal(kdc_cmd_dump(cmd(out, NULL)), KD3_OK);
}

static void test_dump_load(void **state)
{
	char dump[256], restored[256], before[8192], after[8192];
	struct stat st;
	(void)state;
	realm_with_principals();
	O.grace_period = 0; /* a kvno past its grace, to carry over too */
	assert_int_equal(kdc_cmd_rotate(cmd("alice", "alice.key")), KD3_OK);
	snapshot(before);
	dump_to("backup.json", dump);
	assert_int_equal(stat(dump, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* No key in the clear in the dump. */
	kd3_keyfile kf;
	char path[256];
	path_in("alice.key", path);
	assert_int_equal(kd3_keyfile_load(path, &kf, err, sizeof(err)), KD3_OK);
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", kf.keys[0].key[i]);
	assert_null(strstr(read_text(dump), hex));
	kd3_keyfile_wipe(&kf);
	/* dump refuses to overwrite, unless --force. */
	assert_int_equal(kdc_cmd_dump(cmd(dump, NULL)), KD3_E_EXISTS);
	O.force = 1;
	assert_int_equal(kdc_cmd_dump(&O), KD3_OK);

	path_in("restored.db", restored);
	use_db(restored, stash_path);
	assert_int_equal(kdc_cmd_load(cmd(dump, NULL)), KD3_OK);
	assert_int_equal(stat(restored, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snapshot_of(restored, stash_path, after);
	assert_string_equal(before, after);
	/* Into an existing database: refused, and that database is left alone. */
	uint8_t d1[32], d2[32];
	file_digest(restored, d1);
	assert_int_equal(kdc_cmd_load(cmd(dump, NULL)), KD3_E_EXISTS);
	file_digest(restored, d2);
	assert_memory_equal(d1, d2, 32);
	/* The restored database serves: its table loads. */
	kdc_table t;
	kdc_db db;
	assert_int_equal(kdc_db_open(restored, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_table_load(&t, &db, (int64_t)time(NULL), err, sizeof(err)), KD3_OK);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.nkeys, 2); /* alice kvnos 1 (grace) and 3; bob is disabled */
	kdc_table_free(&t);
	kdc_db_close(&db);
}

/* Loads text as a dump into a new database: must fail, leaving no database file. */
static void load_refused(const char *text, int want, const char *why)
{
	char dump[256], target[256];
	path_in("bad.json", dump);
	path_in("target.db", target);
	write_text(dump, text, 0600);
	use_db(target, stash_path);
	int ret = kdc_cmd_load(cmd(dump, NULL));
	if (want)
		assert_int_equal(ret, want);
	assert_int_not_equal(ret, KD3_OK);
	assert_int_not_equal(access(target, F_OK), 0);
	strncat(target, "-journal", sizeof(target) - strlen(target) - 1);
	assert_int_not_equal(access(target, F_OK), 0);
	(void)why;
}

/* Changes one field of a dump and returns the new text (static). */
static char *tampered(const char *dump, const char *array, int index, const char *field,
                      cJSON *value)
{
	static char out[1 << 16];
	cJSON *root = cJSON_Parse(read_text(dump));
	assert_non_null(root);
	cJSON *obj = array ? cJSON_GetArrayItem(cJSON_GetObjectItem(root, array), index) : root;
	assert_non_null(obj);
	if (value)
		cJSON_ReplaceItemInObject(obj, field, value);
	else
		cJSON_DeleteItemFromArray(cJSON_GetObjectItem(root, array), index);
	char *text = cJSON_Print(root);
	keep_text(out, sizeof(out), text);
	cJSON_free(text);
	cJSON_Delete(root);
	return out;
}

static void test_load_refuses(void **state)
{
	char dump[256], other_db[256], other_stash[300];
	(void)state;
	realm_with_principals();
	dump_to("backup.json", dump);
	char good[1 << 16];
	keep_text(good, sizeof(good), read_text(dump));

	/* Altered anywhere: the MAC (or the blob's own tag) catches it. */
	load_refused(tampered(dump, "principals", 1, "enabled", cJSON_CreateTrue()),
	             KD3_E_BLOB_AUTH, "bob enabled again");
	load_refused(tampered(dump, "keys", 0, "retire_at", cJSON_CreateNumber(4e9)),
	             KD3_E_BLOB_AUTH, "grace moved");
	load_refused(tampered(dump, "keys", 1, NULL, NULL), KD3_E_BLOB_AUTH, "a key dropped");
	load_refused(tampered(dump, "keys", 0, "kvno", cJSON_CreateNumber(7)), KD3_E_BLOB_AUTH,
	             "a kvno changed");
	load_refused(tampered(dump, "keys", 0, "sealed", cJSON_CreateString("00")), KD3_E_MALFORMED,
	             "a short blob");
	load_refused(tampered(dump, NULL, 0, "version", cJSON_CreateNumber(2)), KD3_E_UNSUPPORTED,
	             "a newer format");
	load_refused(tampered(dump, NULL, 0, "format", cJSON_CreateString("x")), KD3_E_MALFORMED,
	             "not a dump");
	load_refused(tampered(dump, "principals", 0, "name", cJSON_CreateString("a b")),
	             KD3_E_MALFORMED, "a bad name");
	load_refused(tampered(dump, "keys", 0, "created", cJSON_CreateNumber(1.5)), KD3_E_MALFORMED,
	             "a fraction");
	load_refused("not json", KD3_E_MALFORMED, "not JSON");
	load_refused("", KD3_E_MALFORMED, "empty");
	load_refused("[]", KD3_E_MALFORMED, "not an object");

	/* Another realm's stash: refused with the ids named. */
	path_in("other.db", other_db);
	snprintf(other_stash, sizeof(other_stash), "%s.stash", other_db);
	use_db(other_db, NULL);
	assert_int_equal(kdc_cmd_init(cmd(NULL, NULL)), KD3_OK);
	char target[256];
	path_in("target.db", target);
	use_db(target, other_stash);
	assert_int_equal(kdc_cmd_load(cmd(dump, NULL)), KD3_E_KEYFILE);
	assert_int_not_equal(access(target, F_OK), 0);
	/* No stash at all (the default next to target.db does not exist). */
	use_db(target, NULL);
	assert_int_equal(kdc_cmd_load(cmd(dump, NULL)), KD3_E_NOT_FOUND);
	assert_int_not_equal(access(target, F_OK), 0);
	/* The untouched dump loads. */
	write_text(dump, good, 0600);
	use_db(target, stash_path);
	assert_int_equal(kdc_cmd_load(cmd(dump, NULL)), KD3_OK);
}

/* A corrupt or foreign database file: one clear error, file unchanged. */
static void test_corrupt_database(void **state)
{
	char text[4096];
	uint8_t d1[32], d2[32];
	kdc_db db;
	(void)state;
	realm_with_principals();
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	unlink(db_path);
	write_text(db_path, text, 0600);
	file_digest(db_path, d1);
	assert_int_equal(kdc_db_open(db_path, stash_path, 1, &db, err, sizeof(err)), KD3_E_DB);
	assert_non_null(
	    strstr(err, "kd3.db: cannot read the schema version: file is not a database"));
	assert_int_equal(kdc_cmd_add(cmd("carol", "carol.key")), KD3_E_DB);
	assert_int_equal(kdc_cmd_rekey_master(cmd(NULL, NULL)), KD3_E_DB);
	assert_int_equal(kdc_cmd_upgrade(cmd(NULL, NULL)), KD3_E_DB);
	file_digest(db_path, d2);
	assert_memory_equal(d1, d2, 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_init_seals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_seal_binds_row, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stash_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stash_other_owner, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_stash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sealed_blob_moved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upgrade, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upgrade_crash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rekey_master, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rekey_master_crash_windows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dump_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_refuses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_database, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
