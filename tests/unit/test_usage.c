/* kdc/usage.c and the last-used path around it: slots noted only for the table's own
 * principals, the flush bookkeeping (a failed write is written again, a value written
 * is not), the carry from one snapshot to the next by name; then on a real database
 * through the reloader: a flush writes the times without making the server reload its
 * own write, keeps the later time another server wrote, skips a principal removed or
 * added again since, waits out an admin transaction (retried at the next flush), and
 * the last flush at stop; kdc_db_principal_get reads the times back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "unit_kdc_realm.h"

#include "admin.h"
#include "db.h"
#include "err.h"
#include "live.h"
#include "lockout.h"
#include "reload.h"
#include "usage.h"

/* ---- the store alone ---------------------------------------------------------------- */

/* A table of the given names (sorted by the caller), without keys. */
static kdc_table table_of(kd3_principal *p, const char *const *names, size_t n)
{
	memset(p, 0, n * sizeof(*p));
	for (size_t i = 0; i < n; i++) {
		p[i].name = names[i];
		p[i].name_len = (uint8_t)strlen(names[i]);
		p[i].enabled = 1;
	}
	kdc_table t = {.p = p, .n = n};
	return t;
}

static int64_t last(const kdc_usage *u, size_t i)
{
	return atomic_load(&u->last[i]);
}

static void test_note_only_table_principals(void **state)
{
	static const char *const names[] = {"alice", "bob", "carol"};
	kd3_principal p[3], other;
	kdc_table t = table_of(p, names, 3);
	kdc_usage u;
	(void)state;
	assert_int_equal(kdc_usage_init(&u, t.n), KD3_OK);
	for (size_t i = 0; i < t.n; i++)
		assert_int_equal(last(&u, i), 0);

	kdc_usage_note(&u, &t, &p[1], 1000);
	kdc_usage_note(&u, &t, &p[2], 1001);
	kdc_usage_note(&u, &t, &p[2], 1002);  /* a later second replaces it */
	kdc_usage_note(&u, &t, &other, 1003); /* not in the table */
	kdc_usage_note(&u, &t, NULL, 1004);
	kdc_usage_note(&u, &t, p + 3, 1005); /* one past the end */
	assert_int_equal(last(&u, 0), 0);
	assert_int_equal(last(&u, 1), 1000);
	assert_int_equal(last(&u, 2), 1002);

	/* A snapshot whose usage has fewer slots than its table (built by hand): nothing. */
	kdc_usage none;
	assert_int_equal(kdc_usage_init(&none, 0), KD3_OK);
	kdc_usage_note(&none, &t, &p[0], 1000);
	assert_int_equal(last(&none, 0), 0);
	kdc_usage_free(&none);
	kdc_usage_free(&u);
}

static void test_flush_bookkeeping(void **state)
{
	static const char *const names[] = {"alice", "bob", "carol"};
	kd3_principal p[3];
	kdc_table t = table_of(p, names, 3);
	kdc_usage u;
	(void)state;
	assert_int_equal(kdc_usage_init(&u, t.n), KD3_OK);
	assert_int_equal(kdc_usage_flush_begin(&u), 0); /* nothing used yet */
	kdc_usage_flush_end(&u, 1);

	kdc_usage_note(&u, &t, &p[0], 1000);
	kdc_usage_note(&u, &t, &p[2], 1000);
	assert_int_equal(kdc_usage_flush_begin(&u), 2);
	assert_int_equal(u.writing[0], 1000);
	assert_int_equal(u.writing[1], 0);
	assert_int_equal(u.writing[2], 1000);
	kdc_usage_flush_end(&u, 0); /* not committed: both again next time */
	assert_int_equal(kdc_usage_flush_begin(&u), 2);
	kdc_usage_note(&u, &t, &p[0], 1001); /* while the rows are written */
	kdc_usage_flush_end(&u, 1);
	assert_int_equal(u.flushed[0], 1000); /* what was written, not what is there now */
	assert_int_equal(u.flushed[2], 1000);
	assert_int_equal(kdc_usage_flush_begin(&u), 1);
	assert_int_equal(u.writing[0], 1001);
	kdc_usage_flush_end(&u, 1);
	assert_int_equal(kdc_usage_flush_begin(&u), 0); /* all written */
	kdc_usage_flush_end(&u, 1);

	/* The wall clock stepped back: nothing to write until it passes the written time. */
	kdc_usage_note(&u, &t, &p[0], 900);
	assert_int_equal(kdc_usage_flush_begin(&u), 0);
	kdc_usage_flush_end(&u, 1);
	kdc_usage_free(&u);
}

static void test_carry_by_name(void **state)
{
	static const char *const old_names[] = {"a", "b", "bob", "d"};
	static const char *const new_names[] = {"a", "bo", "bob", "c", "d"};
	kd3_principal po[4], pn[5];
	kdc_table to = table_of(po, old_names, 4), tn = table_of(pn, new_names, 5);
	kdc_usage uo, un;
	(void)state;
	assert_int_equal(kdc_usage_init(&uo, to.n), KD3_OK);
	assert_int_equal(kdc_usage_init(&un, tn.n), KD3_OK);
	kdc_usage_note(&uo, &to, &po[0], 1000); /* a */
	kdc_usage_note(&uo, &to, &po[1], 1001); /* b: removed */
	kdc_usage_note(&uo, &to, &po[2], 1002); /* bob */
	kdc_usage_note(&uo, &to, &po[3], 1003); /* d */
	uo.flushed[0] = 1000;                   /* a was written, d was not */
	uo.flushed[3] = 900;
	kdc_usage_note(&un, &tn, &pn[4], 2000); /* d used on the new snapshot already */

	kdc_usage_carry(&un, &tn, &uo, &to);
	assert_int_equal(last(&un, 0), 1000); /* a */
	assert_int_equal(last(&un, 1), 0);    /* bo: new, a prefix of bob */
	assert_int_equal(last(&un, 2), 1002); /* bob */
	assert_int_equal(last(&un, 3), 0);    /* c: new */
	assert_int_equal(last(&un, 4), 2000); /* d: the later of the two */
	assert_int_equal(un.flushed[0], 1000);
	assert_int_equal(un.flushed[4], 900);
	/* a is written already; bob and d are not. */
	assert_int_equal(kdc_usage_flush_begin(&un), 2);
	assert_int_equal(un.writing[2], 1002);
	assert_int_equal(un.writing[4], 2000);
	kdc_usage_flush_end(&un, 1);
	kdc_usage_free(&uo);
	kdc_usage_free(&un);
}

/* ---- on a database, through the reloader ---------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	if (realm_setup("usage") != 0)
		return -1;
	realm_serve_defaults();
	O.last_used_flush_seconds = 60; /* flushes happen when a test says */
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return realm_teardown();
}

/* What a worker does for an M3 naming name. */
static void use(struct world *w, const char *name, int64_t now)
{
	kdc_snapshot *s = kdc_rcu_current(&w->rcu);
	const kd3_principal *p = kdc_table_lookup(&s->table, (const uint8_t *)name, strlen(name));
	assert_non_null(p);
	kdc_usage_note(&s->usage, &s->table, p, now);
}

/* One tick with the flush due: whether a snapshot was published. */
static int tick_flush(struct world *w)
{
	w->r.flush_due_ms = 0;
	return kdc_reloader_tick(&w->r);
}

static int64_t stored(const char *name)
{
	char err[768];
	kdc_db db;
	kdc_db_principal p;
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	int ret = kdc_db_principal_get(&db, name, &p, err, sizeof(err));
	kdc_db_close(&db);
	assert_int_equal(ret, KD3_OK);
	return p.last_used;
}

static void sql(sqlite3 *h, const char *text)
{
	char *msg = NULL;
	if (sqlite3_exec(h, text, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", text, msg ? msg : "?");
}

static sqlite3 *other_connection(void)
{
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(db_path, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sql(h, "PRAGMA foreign_keys = ON");
	return h;
}

static void test_flush_is_not_a_reload(void **state)
{
	struct world w;
	(void)state;
	assert_int_equal(kdc_cmd_init(realm_cmd(NULL, NULL)), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("alice", "alice.key")), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("bob", "bob.key")), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("carol", "carol.key")), KD3_OK);
	int64_t now = (int64_t)time(NULL);
	world_start(&w);
	assert_int_equal(stored("alice"), 0); /* no last_used table yet */
	assert_int_equal(tick_flush(&w), 0);  /* nothing used: nothing written */

	use(&w, "alice", now + 1);
	use(&w, "bob", now + 1);
	assert_int_equal(tick_flush(&w), 0);
	assert_int_equal(w.r.flush_failing, 0);
	assert_int_equal(stored("alice"), now + 1);
	assert_int_equal(stored("bob"), now + 1);
	assert_int_equal(stored("carol"), 0);
	/* Our own commit is not an admin write: no reload now or later. */
	assert_int_equal(kdc_reloader_tick(&w.r), 0);
	assert_int_equal(kdc_rcu_current(&w.rcu)->generation, 1);

	/* Another server wrote a later time for alice: it stays. That commit is another
	 * connection's, so it reloads (and alice's slot is carried over). */
	sqlite3 *h = other_connection();
	char text[128];
	snprintf(text, sizeof(text), "UPDATE last_used SET at = %lld WHERE name = 'alice'",
	         (long long)(now + 100));
	sql(h, text);
	sqlite3_close(h);
	use(&w, "alice", now + 2);
	assert_int_equal(tick_flush(&w), 1);
	assert_int_equal(stored("alice"), now + 100);
	assert_int_equal(last(&kdc_rcu_current(&w.rcu)->usage, 0), now + 2);

	/* A later session moves the time on; the rest stays written. */
	use(&w, "bob", now + 3);
	assert_int_equal(tick_flush(&w), 0);
	assert_int_equal(stored("bob"), now + 3);
	assert_int_equal(kdc_usage_flush_begin(&kdc_rcu_current(&w.rcu)->usage), 0);
	kdc_usage_flush_end(&kdc_rcu_current(&w.rcu)->usage, 1);

	/* The table reloaded after an admin write: written slots are not written again. */
	assert_int_equal(kdc_cmd_add(realm_cmd("dave", "dave.key")), KD3_OK);
	assert_int_equal(kdc_reloader_tick(&w.r), 1);
	kdc_usage *u = &kdc_rcu_current(&w.rcu)->usage;
	assert_int_equal(last(u, 1), now + 3); /* bob, carried */
	assert_int_equal(kdc_usage_flush_begin(u), 0);
	kdc_usage_flush_end(u, 1);
	world_stop(&w);
}

struct rows {
	kdc_db_used row[4];
	size_t at, n;
};

static int rows_next(void *ctx, kdc_db_used *row)
{
	struct rows *r = ctx;
	if (r->at >= r->n)
		return 0;
	*row = r->row[r->at++];
	return 1;
}

static void test_flush_skips_removed_and_new(void **state)
{
	char err[768];
	kdc_db_watch watch;
	(void)state;
	assert_int_equal(kdc_cmd_init(realm_cmd(NULL, NULL)), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("alice", "alice.key")), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("bob", "bob.key")), KD3_OK);
	int64_t now = (int64_t)time(NULL);
	assert_int_equal(kdc_db_watch_open(&watch, db_path, NULL, err, sizeof(err)), KD3_OK);

	/* A name that is gone, a time before alice was created (a use of an earlier
	 * principal of that name), and one that is fine. */
	struct rows rows = {{{"ghost", now}, {"alice", now - 3600}, {"bob", now + 5}}, 0, 3};
	assert_int_equal(
	    kdc_db_watch_store_last_used(&watch, 100, rows_next, &rows, err, sizeof(err)), KD3_OK);
	assert_int_equal(stored("alice"), 0);
	assert_int_equal(stored("bob"), now + 5);
	assert_int_equal(kdc_db_watch_changed(&watch), 0); /* its own write */

	/* A principal removed takes its time along; added again, it starts at never. */
	assert_int_equal(kdc_cmd_remove(realm_cmd("bob", NULL)), KD3_OK);
	assert_int_equal(kdc_db_watch_changed(&watch), 1);
	sqlite3 *h = other_connection();
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT count(*) FROM last_used", -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	assert_int_equal(kdc_cmd_add(realm_cmd("bob", "bob2.key")), KD3_OK);
	assert_int_equal(stored("bob"), 0);
	kdc_db_watch_close(&watch);
}

static void test_flush_waits_out_an_admin(void **state)
{
	struct world w;
	(void)state;
	assert_int_equal(kdc_cmd_init(realm_cmd(NULL, NULL)), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("alice", "alice.key")), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("bob", "bob.key")), KD3_OK);
	int64_t now = (int64_t)time(NULL);
	world_start(&w);
	use(&w, "alice", now + 1);

	/* An admin transaction holds the write lock: the flush gives up (after its short
	 * wait), says so once, and keeps the time for the next one. */
	sqlite3 *h = other_connection();
	sql(h, "BEGIN IMMEDIATE");
	assert_int_equal(tick_flush(&w), 0);
	assert_int_equal(w.r.flush_failing, 1);
	assert_int_equal(tick_flush(&w), 0);
	assert_int_equal(w.r.flush_failing, 1);
	sql(h, "ROLLBACK");
	sqlite3_close(h);
	assert_int_equal(stored("alice"), 0);
	assert_int_equal(tick_flush(&w), 0);
	assert_int_equal(w.r.flush_failing, 0);
	assert_int_equal(stored("alice"), now + 1);

	/* At stop: what the workers noted since the last flush. */
	use(&w, "bob", now + 2);
	kdc_reloader_stop(&w.r);
	assert_int_equal(kdc_reloader_flush(&w.r), KD3_OK);
	assert_int_equal(stored("bob"), now + 2);
	world_stop(&w);
}

static void test_flush_off(void **state)
{
	struct world w;
	(void)state;
	O.last_used_flush_seconds = 0;
	assert_int_equal(kdc_cmd_init(realm_cmd(NULL, NULL)), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("alice", "alice.key")), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("bob", "bob.key")), KD3_OK);
	world_start(&w);
	use(&w, "alice", (int64_t)time(NULL));
	assert_int_equal(tick_flush(&w), 0);
	kdc_reloader_stop(&w.r);
	assert_int_equal(kdc_reloader_flush(&w.r), KD3_OK);
	assert_int_equal(stored("alice"), 0);
	world_stop(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_note_only_table_principals),
	    cmocka_unit_test(test_flush_bookkeeping),
	    cmocka_unit_test(test_carry_by_name),
	    cmocka_unit_test_setup_teardown(test_flush_is_not_a_reload, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_skips_removed_and_new, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_waits_out_an_admin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_off, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
