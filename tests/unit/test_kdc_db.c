/* kdc/db.c and the admin subcommands over it: every path, and every failure leaves
 * the database as it was. Also the principal table and the policy built from it. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit_kdc_realm.h"
#include <sqlite3.h>

#include "admin.h"
#include "crypto.h"
#include "db.h"
#include "err.h"
#include "keyfile.h"
#include "policy.h"
#include "schedule.h"
#include "table.h"
#include "worker.h"

static char err[1024];

static int setup(void **state)
{
	(void)state;
	return realm_setup("kdcdb");
}

static int teardown(void **state)
{
	(void)state;
	return realm_teardown();
}

/* Options for one subcommand run: NAME, an optional second argument and key file. */
static kdc_opts *cmd(const char *name, const char *arg2, const char *keyfile, int force)
{
	O.args[0] = name;
	O.args[1] = arg2;
	O.nargs = arg2 ? 2 : name ? 1 : 0;
	O.keyfile[0] = '\0';
	if (keyfile)
		snprintf(O.keyfile, sizeof(O.keyfile), "%s/%s", dir, keyfile);
	O.force = force;
	O.kvno = 0;
	O.all = 0;
	return &O;
}

static void file_path(const char *name, char out[256])
{
	snprintf(out, 256, "%s/%s", dir, name);
}

/* The database's content (names, state, kvnos and key bytes) as one string. */
static int snapshot_row(void *ctx, const kdc_db_principal *p)
{
	char *out = ctx;
	size_t at = strlen(out);
	at += (size_t)snprintf(out + at, 4096 - at, "%s:%d:", p->name, p->enabled);
	for (size_t i = 0; i < p->nkvnos; i++)
		at += (size_t)snprintf(out + at, 4096 - at, "%u@%lld,", (unsigned)p->kvnos[i].kvno,
		                       (long long)p->kvnos[i].retire_at);
	snprintf(out + at, 4096 - at, ";");
	return KD3_OK;
}

static int snapshot_key(void *ctx, const char *name, uint32_t kvno, int64_t retire_at,
                        const uint8_t key[32])
{
	char *out = ctx;
	size_t at = strlen(out);
	snprintf(out + at, 4096 - at, "%s/%u=%02x%02x@%lld;", name, (unsigned)kvno, key[0], key[31],
	         (long long)retire_at);
	return KD3_OK;
}

static void snapshot(char out[4096])
{
	kdc_db db;
	out[0] = '\0';
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_each_principal(&db, snapshot_row, out, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_each_key(&db, 0, snapshot_key, out, err, sizeof(err)), KD3_OK);
	kdc_db_close(&db);
}

static void db_keys(const char *name, kd3_keyfile *kf)
{
	kdc_db db;
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_keys_get(&db, name, 0, kf, err, sizeof(err)), KD3_OK);
	kdc_db_close(&db);
}

static void init_db(void)
{
	assert_int_equal(kdc_cmd_init(cmd(NULL, NULL, NULL, 0)), KD3_OK);
}

static void add(const char *name, const char *keyfile)
{
	assert_int_equal(kdc_cmd_add(cmd(name, NULL, keyfile, 0)), KD3_OK);
}

/* ---- database file ----------------------------------------------------------- */

static void test_init(void **state)
{
	struct stat st;
	kdc_db db;
	(void)state;
	init_db();
	assert_int_equal(stat(db_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(kdc_cmd_init(cmd(NULL, NULL, NULL, 0)), KD3_E_EXISTS);
	assert_int_equal(kdc_db_open(db_path, stash_path, 1, &db, err, sizeof(err)), KD3_OK);
	size_t n = 99;
	assert_int_equal(kdc_db_count(&db, 0, &n, err, sizeof(err)), KD3_OK);
	assert_int_equal(n, 0);
	kdc_db_close(&db);
}

static void test_open_refuses(void **state)
{
	kdc_db db;
	char other[256];
	(void)state;
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)),
	                 KD3_E_NOT_FOUND);
	assert_non_null(strstr(err, "kdc init"));
	/* An empty file is a SQLite database without our schema. */
	file_path("empty.db", other);
	FILE *f = fopen(other, "w");
	assert_non_null(f);
	fclose(f);
	chmod(other, 0600);
	assert_int_equal(kdc_db_open(other, stash_path, 0, &db, err, sizeof(err)), KD3_E_DB);
	assert_non_null(strstr(err, "not a kd3 database (schema version 0"));
	/* Readable by others: refused. */
	init_db();
	chmod(db_path, 0644);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)),
	                 KD3_E_KEYFILE_PERMS);
	assert_non_null(strstr(err, "(mode 0644); run chmod 600"));
	chmod(db_path, 0600);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	kdc_db_close(&db);
}

/* A database file someone else owns could be changed under us: refused. */
static void test_open_refuses_other_owner(void **state)
{
	kdc_db db;
	(void)state;
	init_db();
	if (geteuid() != 0)
		skip(); /* only root can give a file away */
	assert_int_equal(chown(db_path, 4242, (gid_t)-1), 0);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)),
	                 KD3_E_KEYFILE_PERMS);
	assert_non_null(strstr(err, "database is owned by uid 4242, not by this user (uid 0)"));
	assert_int_equal(kdc_cmd_add(cmd("alice", NULL, "alice.key", 0)), KD3_E_KEYFILE_PERMS);
	assert_int_equal(chown(db_path, 0, (gid_t)-1), 0);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	kdc_db_close(&db);
}

static void test_open_refuses_symlink(void **state)
{
	char link_path[256];
	kdc_db db;
	(void)state;
	init_db();
	file_path("link.db", link_path);
	assert_int_equal(symlink(db_path, link_path), 0);
	assert_int_equal(kdc_db_open(link_path, stash_path, 0, &db, err, sizeof(err)), KD3_E_DB);
	assert_non_null(strstr(err, "not a regular file"));
}

/* ---- add ------------------------------------------------------------------------ */

static void test_add(void **state)
{
	char path[256];
	kd3_keyfile file, row;
	kdc_db_principal p;
	kdc_db db;
	(void)state;
	init_db();
	add("alice", "alice.key");
	file_path("alice.key", path);
	assert_int_equal(kd3_keyfile_load(path, &file, err, sizeof(err)), KD3_OK);
	assert_string_equal(file.principal, "alice");
	assert_int_equal(file.nkeys, 1);
	assert_int_equal(file.keys[0].kvno, 1);
	db_keys("alice", &row);
	assert_int_equal(row.nkeys, 1);
	assert_memory_equal(row.keys[0].key, file.keys[0].key, KD3_KEY_LEN);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_principal_get(&db, "alice", &p, err, sizeof(err)), KD3_OK);
	assert_int_equal(p.enabled, 1);
	assert_int_equal(p.kvno_max, 1);
	assert_true(p.created > 1600000000);
	kdc_db_close(&db);
	/* A second principal gets a different key. */
	add("bob", "bob.key");
	kd3_keyfile bob;
	db_keys("bob", &bob);
	assert_memory_not_equal(bob.keys[0].key, row.keys[0].key, KD3_KEY_LEN);
	kd3_keyfile_wipe(&file);
	kd3_keyfile_wipe(&row);
	kd3_keyfile_wipe(&bob);
}

static void test_add_existing_principal(void **state)
{
	char before[4096], after[4096], path[256];
	(void)state;
	init_db();
	add("alice", "alice.key");
	snapshot(before);
	assert_int_equal(kdc_cmd_add(cmd("alice", NULL, "again.key", 0)), KD3_E_EXISTS);
	snapshot(after);
	assert_string_equal(before, after);
	file_path("again.key", path);
	assert_int_not_equal(access(path, F_OK), 0); /* no key file for a refused add */
}

static void test_add_keyfile_exists_rolls_back(void **state)
{
	char before[4096], after[4096], path[256], text[64];
	(void)state;
	init_db();
	add("alice", "alice.key");
	snapshot(before);
	file_path("taken.key", path);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("not ours\n", f);
	fclose(f);
	assert_int_equal(kdc_cmd_add(cmd("bob", NULL, "taken.key", 0)), KD3_E_EXISTS);
	snapshot(after);
	assert_string_equal(before, after);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(text, sizeof(text), f));
	fclose(f);
	assert_string_equal(text, "not ours\n"); /* left alone */
}

static void test_add_keyfile_unwritable_rolls_back(void **state)
{
	char before[4096], after[4096];
	(void)state;
	init_db();
	snapshot(before);
	assert_int_equal(kdc_cmd_add(cmd("bob", NULL, "missing/dir/bob.key", 0)), KD3_E_IO);
	snapshot(after);
	assert_string_equal(before, after);
}

static void test_add_invalid_name(void **state)
{
	char before[4096], after[4096];
	(void)state;
	init_db();
	snapshot(before);
	assert_int_equal(kdc_cmd_add(cmd("bad name", NULL, "x.key", 0)), KD3_E_USAGE);
	assert_int_equal(kdc_cmd_add(cmd("", NULL, "x.key", 0)), KD3_E_USAGE);
	assert_int_equal(kdc_cmd_add(cmd("caf\xc3\xa9", NULL, "x.key", 0)), KD3_E_USAGE);
	snapshot(after);
	assert_string_equal(before, after);
}

static void test_add_without_db(void **state)
{
	(void)state;
	assert_int_equal(kdc_cmd_add(cmd("alice", NULL, "alice.key", 0)), KD3_E_NOT_FOUND);
}

/* ---- rotate, retire, export ------------------------------------------------------ */

static void test_rotate_and_export(void **state)
{
	char path[256];
	kd3_keyfile file, row;
	(void)state;
	init_db();
	add("alice", "alice.key");
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	file_path("alice.key", path);
	assert_int_equal(kd3_keyfile_load(path, &file, err, sizeof(err)), KD3_OK);
	assert_int_equal(file.nkeys, 2);
	assert_int_equal(kd3_keyfile_latest(&file)->kvno, 2);
	db_keys("alice", &row);
	assert_int_equal(row.nkeys, 2);
	assert_memory_equal(row.keys[1].key, file.keys[1].key, KD3_KEY_LEN);

	assert_int_equal(kdc_cmd_export(cmd("alice", NULL, "export.key", 0)), KD3_OK);
	kd3_keyfile exported;
	file_path("export.key", path);
	assert_int_equal(kd3_keyfile_load(path, &exported, err, sizeof(err)), KD3_OK);
	assert_int_equal(exported.nkeys, 2);
	assert_memory_equal(exported.keys, row.keys, sizeof(row.keys[0]) * 2);
	assert_int_equal(kdc_cmd_export(cmd("alice", NULL, "export.key", 0)), KD3_E_EXISTS);
	assert_int_equal(kdc_cmd_export(cmd("alice", NULL, "export.key", 1)), KD3_OK);
	assert_int_equal(kdc_cmd_export(cmd("nobody", NULL, "nobody.key", 0)), KD3_E_NOT_FOUND);
	file_path("nobody.key", path);
	assert_int_not_equal(access(path, F_OK), 0);
	kd3_keyfile_wipe(&file);
	kd3_keyfile_wipe(&row);
	kd3_keyfile_wipe(&exported);
}

static void test_rotate_limit(void **state)
{
	char before[4096], after[4096];
	(void)state;
	init_db();
	add("alice", "alice.key");
	for (int i = 2; i <= KD3_KEYFILE_KEYS_MAX; i++)
		assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	snapshot(before);
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_E_EXISTS);
	assert_int_equal(kdc_cmd_rotate(cmd("bob", NULL, "bob.key", 0)), KD3_E_NOT_FOUND);
	snapshot(after);
	assert_string_equal(before, after);
}

static void test_retire(void **state)
{
	char before[4096], after[4096];
	kd3_keyfile row;
	(void)state;
	init_db();
	add("alice", "alice.key");
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	assert_int_equal(kdc_cmd_retire(cmd("alice", "1", NULL, 0)), KD3_OK);
	db_keys("alice", &row);
	assert_int_equal(row.nkeys, 1);
	assert_int_equal(row.keys[0].kvno, 2);
	kd3_keyfile_wipe(&row);
	snapshot(before);
	assert_int_equal(kdc_cmd_retire(cmd("alice", "1", NULL, 0)), KD3_E_NOT_FOUND);
	assert_int_equal(kdc_cmd_retire(cmd("alice", "2", NULL, 0)), KD3_E_USAGE); /* the last */
	assert_int_equal(kdc_cmd_retire(cmd("alice", "0", NULL, 0)), KD3_E_USAGE);
	assert_int_equal(kdc_cmd_retire(cmd("alice", "4294967296", NULL, 0)), KD3_E_USAGE);
	assert_int_equal(kdc_cmd_retire(cmd("alice", "x", NULL, 0)), KD3_E_USAGE);
	snapshot(after);
	assert_string_equal(before, after);
}

/* ---- grace periods, purge, export --kvno ----------------------------------------------- */

static void principal(const char *name, kdc_db_principal *p)
{
	kdc_db db;
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_principal_get(&db, name, p, err, sizeof(err)), KD3_OK);
	kdc_db_close(&db);
}

static void load_table(kdc_table *t, int64_t now)
{
	kdc_db db;
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_table_load(t, &db, now, err, sizeof(err)), KD3_OK);
	kdc_db_close(&db);
}

/* A rotation leaves the older kvno live for the grace period: in the key file, in the
 * loaded table until its retire time, and out of both after it. */
static void test_rotate_grace(void **state)
{
	char path[256];
	kd3_keyfile file;
	kdc_db_principal p;
	kdc_table t;
	(void)state;
	init_db();
	add("alice", "alice.key");
	O.grace_period = 100;
	int64_t before = (int64_t)time(NULL);
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	principal("alice", &p);
	assert_int_equal(p.nkvnos, 2);
	assert_true(p.kvnos[0].retire_at >= before + 100 && p.kvnos[0].retire_at <= before + 102);
	assert_int_equal(p.kvnos[1].retire_at, 0);
	int64_t retire1 = p.kvnos[0].retire_at;
	file_path("alice.key", path);
	assert_int_equal(kd3_keyfile_load(path, &file, err, sizeof(err)), KD3_OK);
	assert_int_equal(file.nkeys, 2);
	kd3_keyfile_wipe(&file);

	load_table(&t, retire1 - 1);
	const kd3_principal *a = kdc_table_lookup(&t, (const uint8_t *)"alice", 5);
	assert_int_equal(a->nkeys, 2);
	assert_int_equal(t.next_expiry, retire1);
	kdc_table_free(&t);
	load_table(&t, retire1); /* the grace period is over: kvno 1 is not loaded */
	a = kdc_table_lookup(&t, (const uint8_t *)"alice", 5);
	assert_int_equal(a->nkeys, 1);
	assert_int_equal(a->keys[0].kvno, 2);
	assert_int_equal(t.next_expiry, 0);
	kdc_table_free(&t);

	/* A second rotation does not move kvno 1's retire time. */
	O.grace_period = 5000;
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	principal("alice", &p);
	assert_int_equal(p.nkvnos, 3);
	assert_int_equal(p.kvnos[0].retire_at, retire1);
	assert_true(p.kvnos[1].retire_at >= before + 5000);
	assert_int_equal(p.kvnos[2].retire_at, 0);
}

/* Grace 0: the older kvno stops at once; purge drops it; export leaves it out. */
static void test_purge(void **state)
{
	char before[4096], after[4096], path[256];
	kd3_keyfile file;
	kdc_db_principal p;
	kdc_table t;
	(void)state;
	init_db();
	add("alice", "alice.key");
	add("bob", "bob.key");
	O.grace_period = 0;
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	assert_int_equal(kdc_cmd_rotate(cmd("bob", NULL, "bob.key", 0)), KD3_OK);
	file_path("alice.key", path);
	assert_int_equal(kd3_keyfile_load(path, &file, err, sizeof(err)), KD3_OK);
	assert_int_equal(file.nkeys, 1); /* only the live kvno */
	assert_int_equal(file.keys[0].kvno, 2);
	kd3_keyfile_wipe(&file);
	load_table(&t, (int64_t)time(NULL));
	assert_int_equal(t.nkeys, 2); /* kvno 2 of each */
	kdc_table_free(&t);

	snapshot(before);
	assert_int_equal(kdc_cmd_purge(cmd("nobody", NULL, NULL, 0)), KD3_E_NOT_FOUND);
	assert_int_equal(kdc_cmd_purge(cmd("bad name", NULL, NULL, 0)), KD3_E_USAGE);
	snapshot(after);
	assert_string_equal(before, after);

	assert_int_equal(kdc_cmd_purge(cmd("alice", NULL, NULL, 0)), KD3_OK);
	principal("alice", &p);
	assert_int_equal(p.total_kvnos, 1);
	assert_int_equal(p.kvnos[0].kvno, 2);
	principal("bob", &p);
	assert_int_equal(p.total_kvnos, 2); /* not named */
	O.all = 1;
	O.args[0] = NULL;
	O.nargs = 0;
	assert_int_equal(kdc_cmd_purge(&O), KD3_OK);
	principal("bob", &p);
	assert_int_equal(p.total_kvnos, 1);
	/* Nothing left to purge: still a success, nothing changes. */
	snapshot(before);
	assert_int_equal(kdc_cmd_purge(&O), KD3_OK);
	snapshot(after);
	assert_string_equal(before, after);
}

static void test_export_kvno(void **state)
{
	char path[256];
	kd3_keyfile file, row;
	(void)state;
	init_db();
	add("alice", "alice.key");
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	O.grace_period = 0;
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	/* kvno 1 in its grace period (7 days), kvno 2 expired, kvno 3 live. */
	db_keys("alice", &row);
	assert_int_equal(row.nkeys, 3);

	kdc_opts *o = cmd("alice", NULL, "k1.key", 0);
	o->kvno = 1;
	assert_int_equal(kdc_cmd_export(o), KD3_OK);
	file_path("k1.key", path);
	assert_int_equal(kd3_keyfile_load(path, &file, err, sizeof(err)), KD3_OK);
	assert_int_equal(file.nkeys, 1);
	assert_int_equal(file.keys[0].kvno, 1);
	assert_memory_equal(file.keys[0].key, row.keys[0].key, KD3_KEY_LEN);
	kd3_keyfile_wipe(&file);

	o = cmd("alice", NULL, "k2.key", 0);
	o->kvno = 2;
	assert_int_equal(kdc_cmd_export(o), KD3_E_KVNO_UNKNOWN); /* expired */
	o = cmd("alice", NULL, "k9.key", 0);
	o->kvno = 9;
	assert_int_equal(kdc_cmd_export(o), KD3_E_NOT_FOUND);
	file_path("k2.key", path);
	assert_int_not_equal(access(path, F_OK), 0);
	file_path("k9.key", path);
	assert_int_not_equal(access(path, F_OK), 0);

	/* Without --kvno: every live one (1 and 3). */
	assert_int_equal(kdc_cmd_export(cmd("alice", NULL, "all.key", 0)), KD3_OK);
	file_path("all.key", path);
	assert_int_equal(kd3_keyfile_load(path, &file, err, sizeof(err)), KD3_OK);
	assert_int_equal(file.nkeys, 2);
	assert_int_equal(file.keys[0].kvno, 1);
	assert_int_equal(file.keys[1].kvno, 3);
	assert_memory_equal(file.keys[1].key, row.keys[2].key, KD3_KEY_LEN);
	kd3_keyfile_wipe(&file);
	kd3_keyfile_wipe(&row);
}

/* ---- a commit that fails ------------------------------------------------------------ */

static void read_text(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
}

/* Entries in the test directory: a staged key file left behind would show here. */
static int count_files(void)
{
	struct dirent *e;
	int n = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* A second connection in a read transaction holds a SHARED lock: BEGIN IMMEDIATE still
 * works, but COMMIT cannot get its EXCLUSIVE lock and fails with SQLITE_BUSY once the
 * (shortened) busy timeout runs out. */
static sqlite3 *hold_read_lock(void)
{
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(db_path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(h, "BEGIN; SELECT count(*) FROM principals;", NULL, NULL, NULL),
	    SQLITE_OK);
	kdc_db_set_busy_timeout_ms(50);
	return h;
}

static void release_read_lock(sqlite3 *h)
{
	kdc_db_set_busy_timeout_ms(-1);
	sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(h);
}

/* The new key file goes into place only after the commit: a failed commit leaves the
 * old key file (which the database still matches) and nothing staged. */
static void test_rotate_commit_fails_keeps_key_file(void **state)
{
	char before[4096], after[4096], path[256], text_before[2048], text_after[2048];
	kd3_keyfile file;
	(void)state;
	init_db();
	add("alice", "alice.key");
	snapshot(before);
	file_path("alice.key", path);
	read_text(path, text_before, sizeof(text_before));

	sqlite3 *reader = hold_read_lock();
	int ret = kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0));
	release_read_lock(reader);
	assert_int_equal(ret, KD3_E_DB);
	snapshot(after);
	assert_string_equal(before, after);
	read_text(path, text_after, sizeof(text_after));
	assert_string_equal(text_before, text_after);
	assert_int_equal(count_files(), 3); /* kd3.db, its stash and alice.key */

	/* Without the lock the same rotate goes through. */
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	assert_int_equal(kd3_keyfile_load(path, &file, err, sizeof(err)), KD3_OK);
	assert_int_equal(kd3_keyfile_latest(&file)->kvno, 2);
	assert_int_equal(count_files(), 3);
	kd3_keyfile_wipe(&file);
}

static void test_add_commit_fails_writes_no_key_file(void **state)
{
	char before[4096], after[4096], path[256];
	(void)state;
	init_db();
	snapshot(before);
	sqlite3 *reader = hold_read_lock();
	int ret = kdc_cmd_add(cmd("bob", NULL, "bob.key", 0));
	release_read_lock(reader);
	assert_int_equal(ret, KD3_E_DB);
	snapshot(after);
	assert_string_equal(before, after);
	file_path("bob.key", path);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(count_files(), 2); /* kd3.db and its stash only */
	add("bob", "bob.key");
	assert_int_equal(count_files(), 3);
}

/* ---- remove, disable, enable ------------------------------------------------------ */

static void test_remove(void **state)
{
	char before[4096], after[4096];
	kd3_keyfile row;
	kdc_db_principal p;
	kdc_db db;
	(void)state;
	init_db();
	add("alice", "alice.key");
	add("bob", "bob.key");
	assert_int_equal(kdc_cmd_remove(cmd("alice", NULL, NULL, 0)), KD3_OK);
	db_keys("alice", &row);
	assert_int_equal(row.nkeys, 0); /* the keys went with it */
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_principal_get(&db, "alice", &p, err, sizeof(err)), KD3_E_NOT_FOUND);
	assert_int_equal(kdc_db_principal_get(&db, "bob", &p, err, sizeof(err)), KD3_OK);
	kdc_db_close(&db);
	snapshot(before);
	assert_int_equal(kdc_cmd_remove(cmd("alice", NULL, NULL, 0)), KD3_E_NOT_FOUND);
	snapshot(after);
	assert_string_equal(before, after);
	/* The name is free again. */
	char path[256];
	file_path("alice.key", path);
	assert_int_equal(unlink(path), 0);
	add("alice", "alice.key");
}

static void test_disable_enable(void **state)
{
	kdc_db_principal p;
	kdc_db db;
	(void)state;
	init_db();
	add("alice", "alice.key");
	assert_int_equal(kdc_cmd_disable(cmd("alice", NULL, NULL, 0)), KD3_OK);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_principal_get(&db, "alice", &p, err, sizeof(err)), KD3_OK);
	assert_int_equal(p.enabled, 0);
	size_t n = 99;
	assert_int_equal(kdc_db_count(&db, 1, &n, err, sizeof(err)), KD3_OK);
	assert_int_equal(n, 0);
	kdc_db_close(&db);
	assert_int_equal(kdc_cmd_enable(cmd("alice", NULL, NULL, 0)), KD3_OK);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_principal_get(&db, "alice", &p, err, sizeof(err)), KD3_OK);
	assert_int_equal(p.enabled, 1);
	kdc_db_close(&db);
	assert_int_equal(kdc_cmd_disable(cmd("nobody", NULL, NULL, 0)), KD3_E_NOT_FOUND);
}

/* ---- list ------------------------------------------------------------------------- */

static void capture_stdout(int (*fn)(kdc_opts *), kdc_opts *o, char *out, size_t cap)
{
	char path[256];
	file_path("stdout.txt", path);
	fflush(stdout);
	int saved = dup(1);
	FILE *f = fopen(path, "w+");
	assert_non_null(f);
	dup2(fileno(f), 1);
	int ret = fn(o);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	assert_int_equal(ret, KD3_OK);
	rewind(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
	unlink(path);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_list(void **state)
{
	char out[4096], key_hex[2 * KD3_KEY_LEN + 1];
	kd3_keyfile row;
	(void)state;
	init_db();
	add("alice", "alice.key");
	add("host/long-name.example", "host.key");
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	assert_int_equal(kdc_cmd_disable(cmd("host/long-name.example", NULL, NULL, 0)), KD3_OK);
	capture_stdout(kdc_cmd_list, cmd(NULL, NULL, NULL, 0), out, sizeof(out));
	/* alice's kvno 1 is in its grace period: "1(until 2...Z),2" (31 characters). */
	assert_non_null(strstr(out,
	                       "NAME                    KVNOS                            STATE "
	                       "    CREATED               LAST USED\n"));
	char *alice = strstr(out, "\nalice                   1(until 20");
	assert_non_null(alice);
	assert_memory_equal(alice + 52, "Z),2  enabled   20", 18);
	assert_non_null(strstr(out, "\nhost/long-name.example  1                                "
	                            "disabled  20"));
	assert_non_null(strstr(out, "Z  never\n"));
	/* Past its grace period: "(expired)". */
	O.grace_period = 0;
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	capture_stdout(kdc_cmd_list, cmd(NULL, NULL, NULL, 0), out, sizeof(out));
	assert_non_null(strstr(out, ",2(expired),3  enabled"));
	db_keys("alice", &row);
	for (size_t i = 0; i < row.nkeys; i++) {
		hex(row.keys[i].key, KD3_KEY_LEN, key_hex);
		assert_null(strstr(out, key_hex));
		key_hex[8] = '\0'; /* not even a prefix */
		assert_null(strstr(out, key_hex));
	}
	kd3_keyfile_wipe(&row);
}

/* ---- the table the server loads ----------------------------------------------------- */

static void test_table(void **state)
{
	kdc_table t;
	kdc_db db;
	kd3_keyfile row;
	kd3_subkeys want;
	(void)state;
	init_db();
	add("carol", "carol.key");
	add("alice", "alice.key");
	add("bob", "bob.key");
	assert_int_equal(kdc_cmd_rotate(cmd("alice", NULL, "alice.key", 0)), KD3_OK);
	assert_int_equal(kdc_cmd_disable(cmd("carol", NULL, NULL, 0)), KD3_OK);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_table_load(&t, &db, (int64_t)time(NULL), err, sizeof(err)), KD3_OK);
	kdc_db_close(&db);
	assert_int_equal(t.n, 3);
	assert_int_equal(t.nkeys, 3); /* alice 2, bob 1, carol none (disabled) */

	const kd3_principal *a = kdc_table_lookup(&t, (const uint8_t *)"alice", 5);
	assert_non_null(a);
	assert_int_equal(a->enabled, 1);
	assert_int_equal(a->nkeys, 2);
	assert_int_equal(a->keys[0].kvno, 2); /* newest first */
	db_keys("alice", &row);
	assert_int_equal(kd3_derive_subkeys(NULL, row.keys[1].key, &want), KD3_OK);
	assert_memory_equal(&a->keys[0].sub, &want, sizeof(want));
	kd3_keyfile_wipe(&row);

	const kd3_principal *carol = kdc_table_lookup(&t, (const uint8_t *)"carol", 5);
	assert_non_null(carol);
	assert_int_equal(carol->enabled, 0);
	assert_int_equal(carol->nkeys, 0);
	assert_non_null(kdc_table_lookup(&t, (const uint8_t *)"bob", 3));
	assert_null(kdc_table_lookup(&t, (const uint8_t *)"alic", 4));
	assert_null(kdc_table_lookup(&t, (const uint8_t *)"alicex", 6));
	assert_null(kdc_table_lookup(&t, (const uint8_t *)"bob\0", 4));
	assert_null(kdc_table_lookup(&t, (const uint8_t *)"", 0));
	kdc_table_free(&t);
	assert_null(t.p);
}

static void test_policy(void **state)
{
	kd3_conf_list deny;
	kdc_policy p;
	kd3_principal alice = {.name = "alice", .name_len = 5, .enabled = 1};
	kd3_principal bob = {.name = "bob", .name_len = 3, .enabled = 1};
	kd3_principal eve = {.name = "eve", .name_len = 3, .enabled = 1};
	uint32_t lifetime = 0;
	(void)state;
	memset(&deny, 0, sizeof(deny));
	assert_int_equal(kdc_policy_init(&p, &deny, 600, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_policy_check(&p, &alice, &bob, &lifetime), KD3_OK);
	assert_int_equal(lifetime, 600);

	deny.n = 2;
	snprintf(deny.item[0], sizeof(deny.item[0]), "eve->*");
	snprintf(deny.item[1], sizeof(deny.item[1]), " alice -> bob ");
	assert_int_equal(kdc_policy_init(&p, &deny, 60, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_policy_check(&p, &alice, &bob, &lifetime), KD3_E_POLICY_DENIED);
	assert_int_equal(kdc_policy_check(&p, &bob, &alice, &lifetime), KD3_OK);
	assert_int_equal(kdc_policy_check(&p, &eve, &alice, &lifetime), KD3_E_POLICY_DENIED);
	assert_int_equal(kdc_policy_check(&p, &alice, &eve, &lifetime), KD3_OK);

	static const char *const bad[] = {"alice", "->bob", "alice->", "a b->c", "*->**"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		deny.n = 1;
		snprintf(deny.item[0], sizeof(deny.item[0]), "%s", bad[i]);
		assert_int_equal(kdc_policy_init(&p, &deny, 60, err, sizeof(err)), KD3_E_CONFIG);
		assert_non_null(strstr(err, "is not INITIATOR->RESPONDER"));
	}
}

/* ---- the example kdc.conf ------------------------------------------------------------ */

/* config/kdc.conf loads with the real option table and sets what it says. */
static void test_example_config_loads(void **state)
{
	static const kdc_cmd serve = {"serve", NULL, "", 0, KDC_TAKES_SERVE, ""};
	char conf[PATH_MAX];
	kdc_opts o;
	(void)state;
	snprintf(conf, sizeof(conf), "%s", __FILE__); /* .../tests/unit/test_kdc_db.c */
	for (int up = 0; up < 3; up++) {
		char *slash = strrchr(conf, '/');
		assert_non_null(slash);
		*slash = '\0';
	}
	strncat(conf, "/config/kdc.conf", sizeof(conf) - strlen(conf) - 1);
	char *argv[] = {"serve", "--config", conf, NULL};
	assert_int_equal(kdc_options_parse(&serve, 3, argv, &o, err, sizeof(err)), KD3_OK);
	assert_string_equal(o.db, "./kd3.db");
	assert_string_equal(o.stash, "");
	assert_int_equal(o.grace_period, 604800);
	assert_string_equal(o.listen, "127.0.0.1:7088");
	assert_int_equal(o.lifetime, 3600);
	assert_int_equal(o.deny.n, 0);
	assert_int_equal(o.max_conns, 1024);
	assert_int_equal(o.log_requests, 1);
}

/* ---- TCP out of descriptors ------------------------------------------------------------ */

/* A worker whose spare descriptor another thread took (the descriptor table is the
 * process's) must not spin on a listening socket that stays readable: it stops watching
 * it for KDC_TCP_PAUSE_MS, then watches it again with a new spare. */
static void test_tcp_out_of_fds_does_not_spin(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	struct epoll_event ev = {.events = EPOLLIN}, got[4];
	struct rlimit saved, low;
	(void)state;
	kdc_worker *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	w->spare_fd = -1; /* lost to another worker */
	assert_true(w->epfd >= 0 && w->tcp_fd >= 0);
	assert_int_equal(bind(w->tcp_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(w->tcp_fd, (struct sockaddr *)&a, &alen), 0);
	assert_int_equal(listen(w->tcp_fd, 8), 0);
	ev.data.u64 = KDC_TAG_LISTEN;
	assert_int_equal(epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->tcp_fd, &ev), 0);
	int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(client, (struct sockaddr *)&a, sizeof(a)), 0);

	/* No descriptor left: the lowest free one becomes the limit. */
	int lowest = open("/dev/null", O_RDONLY);
	assert_true(lowest >= 0);
	close(lowest);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = (rlim_t)lowest;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(epoll_wait(w->epfd, got, 4, 0), 1);
	kdc_tcp_accept(w);
	int ready = epoll_wait(w->epfd, got, 4, 0); /* before the fix: 1, a busy loop */
	int timeout = kdc_tcp_expire(w, kd3_now_ms());
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_int_equal(ready, 0);
	assert_true(timeout >= 0 && timeout <= KDC_TCP_PAUSE_MS);

	/* After the pause: a spare again, and the connection is taken (and refused: this
	 * worker has no connection slots). */
	assert_int_equal(kdc_tcp_expire(w, kd3_now_ms() + KDC_TCP_PAUSE_MS), -1);
	assert_true(w->spare_fd >= 0);
	assert_int_equal(epoll_wait(w->epfd, got, 4, 0), 1);
	kdc_tcp_accept(w);
	uint8_t reply[64];
	assert_true(recv(client, reply, sizeof(reply), 0) >= 0);
	close(client);
	close(w->spare_fd);
	close(w->tcp_fd);
	close(w->epfd);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_init, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_refuses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_refuses_other_owner, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_refuses_symlink, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_existing_principal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_keyfile_exists_rolls_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_keyfile_unwritable_rolls_back, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_add_invalid_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_without_db, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotate_and_export, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotate_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotate_commit_fails_keeps_key_file, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_add_commit_fails_writes_no_key_file, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_retire, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotate_grace, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_export_kvno, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disable_enable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_policy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_example_config_loads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tcp_out_of_fds_does_not_spin, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
