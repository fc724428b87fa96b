/* kdc principal table: the bulk load (kdc import, then one pass with keys opened on
 * several threads) and subkeys derived on first lookup, by one worker while others
 * wait, each equal to what kd3_derive_subkeys gives for the imported key. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include <sqlite3.h>

#include "admin.h"
#include "crypto.h"
#include "db.h"
#include "err.h"
#include "schedule.h"
#include "seal.h"
#include "table.h"
#include "unit_kdc_realm.h"

#define PRINCIPALS 6000 /* more keys than KDC_TABLE_PARALLEL_KEYS: the openers run */
#define READERS    4

static char err[1024];

static int setup(void **state)
{
	(void)state;
	return realm_setup("table");
}

static int teardown(void **state)
{
	(void)state;
	return realm_teardown();
}

/* Principal i's key version v: bytes no two share. */
static void key_of(size_t i, uint32_t kvno, uint8_t key[KD3_KEY_LEN])
{
	for (size_t b = 0; b < KD3_KEY_LEN; b++)
		key[b] = (uint8_t)(i * 131 + kvno * 17 + b * 7 + (i >> 8));
}

static void name_of(size_t i, char out[32])
{
	snprintf(out, 32, "p%05zu", i);
}

/* p00000 .. with one key each, p00007 with kvnos 1 and 2; the import file's path. */
static void import_realm(size_t n)
{
	char path[256], name[32], hex[2 * KD3_KEY_LEN + 1];
	uint8_t key[KD3_KEY_LEN];
	snprintf(path, sizeof(path), "%s/batch", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(chmod(path, 0600), 0);
	for (size_t i = 0; i < n; i++) {
		name_of(i, name);
		fprintf(f, "principal = %s\n", name);
		for (uint32_t kvno = 1; kvno <= (i == 7 ? 2u : 1u); kvno++) {
			key_of(i, kvno, key);
			for (size_t b = 0; b < KD3_KEY_LEN; b++)
				snprintf(hex + 2 * b, 3, "%02x", key[b]);
			fprintf(f, "key = %u:%s\n", (unsigned)kvno, hex);
		}
	}
	assert_int_equal(fclose(f), 0);
	O.args[0] = NULL;
	O.nargs = 0;
	assert_int_equal(kdc_cmd_init(&O), KD3_OK);
	O.args[0] = path;
	O.nargs = 1;
	assert_int_equal(kdc_cmd_import(&O), KD3_OK);
}

static void load(kdc_table *t)
{
	kdc_db db;
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	int ret = kdc_table_load(t, &db, 0, err, sizeof(err));
	kdc_db_close(&db);
	if (ret != KD3_OK)
		fail_msg("load: %s", err);
}

/* The principal's subkeys are those of its imported keys, newest kvno first. */
static void check_principal(const kd3_principal *p, size_t i)
{
	kd3_subkeys want;
	uint8_t key[KD3_KEY_LEN];
	assert_non_null(p);
	assert_int_equal(p->nkeys, i == 7 ? 2 : 1);
	for (size_t j = 0; j < p->nkeys; j++) {
		uint32_t kvno = (uint32_t)(p->nkeys - j);
		assert_int_equal(p->keys[j].kvno, kvno);
		key_of(i, kvno, key);
		assert_int_equal(kd3_derive_subkeys(NULL, key, &want), KD3_OK);
		assert_memory_equal(p->keys[j].sub.auth, want.auth, KD3_KEY_LEN);
		assert_memory_equal(p->keys[j].sub.wrap, want.wrap, KD3_KEY_LEN);
		assert_memory_equal(&p->keys[j].sub.auth_key, &want.auth_key,
		                    sizeof(want.auth_key));
	}
}

static const kd3_principal *lookup(kdc_table *t, size_t i)
{
	char name[32];
	name_of(i, name);
	return kdc_table_lookup(t, (const uint8_t *)name, strlen(name));
}

static void test_load_then_derive_on_first_lookup(void **state)
{
	kdc_table t;
	(void)state;
	import_realm(PRINCIPALS);
	load(&t);
	assert_int_equal(t.n, PRINCIPALS);
	assert_int_equal(t.nkeys, PRINCIPALS + 1);
	for (size_t i = 1; i < t.n; i++) /* sorted */
		assert_true(strcmp(t.p[i - 1].name, t.p[i].name) < 0);
	/* Opened, not derived: raw keys waiting, no subkeys yet. */
	uint8_t key[KD3_KEY_LEN], zero[KD3_KEY_LEN] = {0};
	key_of(42, 1, key);
	assert_memory_equal(t.raw[t.p[42].keys - t.keys], key, KD3_KEY_LEN);
	assert_int_equal(t.state[42], KDC_KEYS_RAW);
	assert_memory_equal(t.p[42].keys[0].sub.auth, zero, KD3_KEY_LEN);

	check_principal(lookup(&t, 42), 42);
	assert_int_equal(t.state[42], KDC_KEYS_READY);
	assert_memory_equal(t.raw[t.p[42].keys - t.keys], zero, KD3_KEY_LEN);
	assert_int_equal(t.state[43], KDC_KEYS_RAW);
	check_principal(lookup(&t, 42), 42); /* the second lookup finds them ready */
	check_principal(lookup(&t, 7), 7);
	assert_null(kdc_table_lookup(&t, (const uint8_t *)"p0004", 5));
	kdc_table_free(&t);
	assert_null(t.p);
}

struct reader {
	kdc_table *t;
	size_t start;
	int bad;
};

static void *read_all(void *arg)
{
	struct reader *r = arg;
	for (size_t k = 0; k < r->t->n; k++) {
		size_t i = (r->start + k * 7) % r->t->n;
		const kd3_principal *p = lookup(r->t, i);
		uint8_t key[KD3_KEY_LEN];
		kd3_subkeys want;
		key_of(i, p ? p->keys[0].kvno : 0, key);
		if (!p || kd3_derive_subkeys(NULL, key, &want) != KD3_OK ||
		    memcmp(&p->keys[0].sub, &want, sizeof(want)) != 0)
			r->bad++;
	}
	return NULL;
}

/* Readers race for the same principals on a fresh table: every one of them sees whole,
 * right subkeys, and every raw key is wiped at the end. */
static void test_concurrent_first_lookups(void **state)
{
	kdc_table t;
	pthread_t th[READERS];
	struct reader r[READERS];
	(void)state;
	import_realm(PRINCIPALS);
	load(&t);
	for (size_t i = 0; i < READERS; i++) {
		r[i] = (struct reader){&t, i * 3, 0};
		assert_int_equal(pthread_create(&th[i], NULL, read_all, &r[i]), 0);
	}
	for (size_t i = 0; i < READERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(r[i].bad, 0);
	}
	uint8_t zero[KD3_KEY_LEN] = {0};
	for (size_t i = 0; i < t.n; i++)
		assert_int_equal(t.state[i], KDC_KEYS_READY);
	for (size_t j = 0; j < t.nkeys; j++)
		assert_memory_equal(t.raw[j], zero, KD3_KEY_LEN);
	kdc_table_free(&t);
}

/* Flips one bit of the ciphertext of name's sealed key, in place. */
static void damage_key(const char *name)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	uint8_t sealed[KDC_SEALED_LEN];
	assert_int_equal(sqlite3_open(db_path, &h), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(h, "SELECT sealed FROM keys WHERE name = ?1", -1, &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_bytes(st, 0), KDC_SEALED_LEN);
	memcpy(sealed, sqlite3_column_blob(st, 0), KDC_SEALED_LEN);
	sqlite3_finalize(st);
	sealed[30] ^= 1;
	assert_int_equal(
	    sqlite3_prepare_v2(h, "UPDATE keys SET sealed = ?2 WHERE name = ?1", -1, &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, sealed, KDC_SEALED_LEN, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(h);
}

/* A damaged row far into the table (opened by an opener thread) fails the whole load
 * with its name; a disabled principal is listed without keys. */
static void test_damaged_row_and_disabled(void **state)
{
	kdc_table t;
	kdc_db db;
	(void)state;
	import_realm(PRINCIPALS);
	O.args[0] = "p00010";
	O.nargs = 1;
	assert_int_equal(kdc_cmd_disable(&O), KD3_OK);
	load(&t);
	const kd3_principal *off = kdc_table_lookup(&t, (const uint8_t *)"p00010", 6);
	assert_non_null(off);
	assert_int_equal(off->enabled, 0);
	assert_int_equal(off->nkeys, 0);
	assert_int_equal(t.nkeys, PRINCIPALS);
	kdc_table_free(&t);

	damage_key("p05000");
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_table_load(&t, &db, 0, err, sizeof(err)), KD3_E_BLOB_AUTH);
	kdc_db_close(&db);
	assert_non_null(strstr(err, "the key p05000:1 does not open under master key"));
	assert_null(t.p);
}

/* More live kvnos than a principal holds: the newest KD3_KVNOS_MAX load, newest first,
 * and the rows of the next principal are not disturbed. */
static void test_newest_kvnos_kept(void **state)
{
	kdc_table t;
	(void)state;
	import_realm(20);
	snprintf(O.keyfile, sizeof(O.keyfile), "%s/p00003.key", dir);
	O.args[0] = "p00003";
	O.nargs = 1;
	for (int i = 1; i < KD3_KVNOS_MAX; i++) /* kvnos 2..8, the older ones in grace */
		assert_int_equal(kdc_cmd_rotate(&O), KD3_OK);
	O.keyfile[0] = '\0';
	/* The CLI stops at 8 kvnos; a database written otherwise may hold more. */
	uint8_t key[KD3_KEY_LEN];
	kdc_db db;
	assert_int_equal(kdc_db_open(db_path, stash_path, 1, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_db_begin(&db, err, sizeof(err)), KD3_OK);
	for (uint32_t kvno = KD3_KVNOS_MAX + 1; kvno <= KD3_KVNOS_MAX + 2; kvno++) {
		key_of(3, kvno, key);
		assert_int_equal(kdc_db_key_insert(&db, "p00003", kvno, key, 1, err, sizeof(err)),
		                 KD3_OK);
	}
	assert_int_equal(kdc_db_commit(&db, err, sizeof(err)), KD3_OK);
	kdc_db_close(&db);
	load(&t);
	const kd3_principal *p = lookup(&t, 3);
	assert_non_null(p);
	assert_int_equal(p->nkeys, KD3_KVNOS_MAX);
	for (size_t j = 0; j < p->nkeys; j++) /* 10, 9, .. 3 */
		assert_int_equal(p->keys[j].kvno, KD3_KVNOS_MAX + 2 - j);
	key_of(3, KD3_KVNOS_MAX + 2, key);
	kd3_subkeys want;
	assert_int_equal(kd3_derive_subkeys(NULL, key, &want), KD3_OK);
	assert_memory_equal(&p->keys[0].sub, &want, sizeof(want));
	check_principal(lookup(&t, 2), 2);
	check_principal(lookup(&t, 4), 4);
	assert_int_equal(t.nkeys, 19 + KD3_KVNOS_MAX + 1); /* p00007 has two */
	kdc_table_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_load_then_derive_on_first_lookup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_first_lookups, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_row_and_disabled, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newest_kvnos_kept, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
