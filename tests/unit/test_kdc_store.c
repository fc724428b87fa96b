/* kdc/store/store.c, kdc/lockout.c's outbox, kdc/status.c: the parts of the storage
 * interface and of scaling out that need no database server (tests/e2e/test_scale_out.py
 * and test_postgres_store.py run the rest against real PostgreSQL servers):
 *   - which backend a --db names, and a URI's password never shown;
 *   - the lockout outbox: counted failures queued (the oldest dropped when full, and
 *     counted), other KDCs' failures counted but not queued again;
 *   - the status file written and read back, and refused when it is not one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "lockout.h"
#include "status.h"
#include "store/store.h"
#include "unit_tmpdir.h"

static void shown(const char *uri, const char *want)
{
	char out[KDC_STORE_WHERE_MAX];
	kdc_store_redact(uri, out);
	assert_string_equal(out, want);
}

static void test_redact(void **state)
{
	(void)state;
	shown("./kd3.db", "./kd3.db");
	shown("postgresql://kd3@db1/kd3", "postgresql://kd3@db1/kd3");
	shown("postgresql://kd3:s3cret@db1:5432/kd3", "postgresql://kd3:***@db1:5432/kd3");
	shown("postgres://kd3:s3cret@db1,db2/kd3?target_session_attrs=read-write",
	      "postgres://kd3:***@db1,db2/kd3?target_session_attrs=read-write");
	shown("postgresql://db1/kd3?password=s3cret&sslmode=require",
	      "postgresql://db1/kd3?password=***&sslmode=require");
	shown("postgresql://db1/kd3?sslmode=require&password=s3cret",
	      "postgresql://db1/kd3?sslmode=require&password=***");
	/* Names percent-encoded, sslpassword, user info holding '?' or '/'-less hosts. */
	shown("postgresql://db1/kd3?pass%77ord=s3cret", "postgresql://db1/kd3?pass%77ord=***");
	shown("postgresql://db1/kd3?%70assword=s3cret&x=1",
	      "postgresql://db1/kd3?%70assword=***&x=1");
	shown("postgresql://db1/kd3?sslpassword=s3cret", "postgresql://db1/kd3?sslpassword=***");
	shown("postgresql://kd3:s3?cret@db1/kd3", "postgresql://kd3:***@db1/kd3");
	shown("postgresql://k?d3@db1/kd3?password=s3cret",
	      "postgresql://k?d3@db1/kd3?password=***");
	shown("postgresql://db1/kd3?passwordx=1&apassword=2",
	      "postgresql://db1/kd3?passwordx=1&apassword=2");
	/* A ':' in a host part without user info is not a password. */
	shown("postgresql://db1:5432/kd3", "postgresql://db1:5432/kd3");
	/* Cut to fit, the secret never shows. */
	char uri[600], out[KDC_STORE_WHERE_MAX];
	memset(uri, 'a', sizeof(uri));
	memcpy(uri, "postgresql://", 13);
	memcpy(uri + 400, "?password=TOPSECRET", 19);
	uri[sizeof(uri) - 1] = '\0';
	kdc_store_redact(uri, out);
	assert_true(strlen(out) < KDC_STORE_WHERE_MAX);
	assert_null(strstr(out, "TOPSECRET"));
	memcpy(uri + 240, "&password=TOPSECRET", 19);
	kdc_store_redact(uri, out);
	assert_null(strstr(out, "TOPSEC"));
}

static void test_backend_for(void **state)
{
	(void)state;
	char err[256];
	assert_ptr_equal(kdc_store_for("./kd3.db", err, sizeof(err)), &kdc_store_sqlite);
	assert_false(kdc_store_is_postgres("/var/lib/kd3/kd3.db"));
	assert_true(kdc_store_is_postgres("postgresql://db1/kd3"));
	assert_true(kdc_store_is_postgres("postgres://db1/kd3"));
	const kdc_store_ops *pg = kdc_store_for("postgresql://kd3:pw@db1/kd3", err, sizeof(err));
#ifdef KD3_HAVE_LIBPQ
	assert_ptr_equal(pg, &kdc_store_postgres);
#else
	assert_null(pg);
	assert_non_null(strstr(err, "built without PostgreSQL support"));
	assert_null(strstr(err, ":pw@"));
#endif
}

static const kdc_lockout_cfg cfg = {3, 60000, 300000};

static void test_outbox(void **state)
{
	(void)state;
	kdc_lockout l;
	kdc_auth_failure got[8];
	uint64_t dropped = 99;
	assert_int_equal(kdc_lockout_init(&l, KDC_LOCKOUT_SLOTS), KD3_OK);
	/* Not shared: nothing queued. */
	kdc_lockout_failure(&l, &cfg, (const uint8_t *)"alice", 5, 1, 1000);
	assert_int_equal(kdc_lockout_share(&l), KD3_OK);
	assert_int_equal(kdc_lockout_take(&l, got, 8, &dropped), 0);
	assert_int_equal(dropped, 0);
	/* Counted: queued with the name and the tag; the same M2 again is not. */
	kdc_lockout_failure(&l, &cfg, (const uint8_t *)"alice", 5, 2, 1001);
	kdc_lockout_failure(&l, &cfg, (const uint8_t *)"alice", 5, 2, 1002);
	/* Another KDC's failure: counted, not queued. It locks alice (3 of 3). */
	assert_int_equal(kdc_lockout_failure_seen(&l, &cfg, (const uint8_t *)"alice", 5, 3, 1003),
	                 1);
	assert_true(kdc_lockout_locked(&l, (const uint8_t *)"alice", 5, 1004));
	assert_int_equal(kdc_lockout_take(&l, got, 8, &dropped), 1);
	assert_string_equal(got[0].name, "alice");
	assert_int_equal(got[0].tag, 2);
	assert_true(got[0].at_ms > 1600000000000LL);
	/* A full outbox drops its oldest and says how many. The table's hash is seeded at
	 * random: a name whose probe run is full gets no slot (-1) and is not queued, so
	 * the test counts the names that were. */
	int queued[KDC_LOCKOUT_OUTBOX + 40];
	size_t nqueued = 0;
	for (int i = 0; i < KDC_LOCKOUT_OUTBOX + 40; i++) {
		char name[16];
		int n = snprintf(name, sizeof(name), "p%d", i);
		if (kdc_lockout_failure(&l, &cfg, (const uint8_t *)name, (size_t)n,
		                        100 + (uint64_t)i, 2000) >= 0)
			queued[nqueued++] = i;
	}
	assert_true(nqueued > KDC_LOCKOUT_OUTBOX);
	size_t total = 0;
	kdc_auth_failure *all = calloc(KDC_LOCKOUT_OUTBOX + 8, sizeof(*all));
	assert_non_null(all);
	total = kdc_lockout_take(&l, all, KDC_LOCKOUT_OUTBOX + 8, &dropped);
	assert_int_equal(total, KDC_LOCKOUT_OUTBOX);
	assert_int_equal(dropped, nqueued - KDC_LOCKOUT_OUTBOX);
	char oldest[16];
	snprintf(oldest, sizeof(oldest), "p%d", queued[nqueued - KDC_LOCKOUT_OUTBOX]);
	assert_string_equal(all[0].name, oldest);
	assert_int_equal(kdc_lockout_take(&l, all, 8, &dropped), 0);
	assert_int_equal(dropped, 0);
	free(all);
	kdc_lockout_free(&l);
}

static void test_status_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/kd3-store-XXXXXX", path[128], err[768];
	kdc_status st, back;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/kdc.status", dir);
	memset(&st, 0, sizeof(st));
	st.pid = (long)getpid();
	snprintf(st.database, sizeof(st.database), "postgresql://kd3@db2/kd3");
	st.generation = 7;
	st.loaded = 1765000000;
	st.principals = 1000000;
	st.keys = 1000001;
	st.database_ok = 0;
	st.checked = 1765000100;
	snprintf(st.database_error, sizeof(st.database_error), "db2: cannot connect: refused");
	st.lockout_queued = 3;
	st.written = 1765000123;
	assert_int_equal(kdc_status_write(path, &st, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_status_read(path, &back, err, sizeof(err)), KD3_OK);
	assert_int_equal(back.pid, st.pid);
	assert_string_equal(back.database, st.database);
	assert_int_equal(back.generation, 7);
	assert_int_equal(back.loaded, st.loaded);
	assert_int_equal(back.principals, st.principals);
	assert_int_equal(back.keys, st.keys);
	assert_int_equal(back.database_ok, 0);
	assert_int_equal(back.checked, st.checked);
	assert_string_equal(back.database_error, st.database_error);
	assert_int_equal(back.lockout_queued, 3);
	assert_int_equal(back.written, st.written);
	/* Not a status file, a number that is not one: refused with the file's name. */
	FILE *f = fopen(path, "w");
	fputs("principal = alice\n", f);
	fclose(f);
	assert_int_not_equal(kdc_status_read(path, &back, err, sizeof(err)), KD3_OK);
	assert_non_null(strstr(err, "kdc.status"));
	f = fopen(path, "w");
	fputs("kd3 kdc status 1\npid = 12x\n", f);
	fclose(f);
	assert_int_not_equal(kdc_status_read(path, &back, err, sizeof(err)), KD3_OK);
	unlink(path);
	assert_int_equal(kdc_status_read(path, &back, err, sizeof(err)), KD3_E_NOT_FOUND);
	assert_int_equal(tmpdir_remove(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_redact),
	    cmocka_unit_test(test_backend_for),
	    cmocka_unit_test(test_outbox),
	    cmocka_unit_test(test_status_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
