/* Unit-test helper for the KDC's modules: a scratch folder for a database and its stash,
 * the options O that the test's kdc commands read (its database in that folder), and,
 * for tests of the running server, a snapshot, RCU and reloader over that database.
 * A test program includes it once; the state is that program's. */
#ifndef KD3_UNIT_KDC_REALM_H
#define KD3_UNIT_KDC_REALM_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "live.h"
#include "lockout.h"
#include "options.h"
#include "reload.h"
#include "unit_tmpdir.h"

static char dir[64];
static char db_path[128];    /* dir/kd3.db */
static char stash_path[160]; /* its default stash */
static kdc_opts O;

/* A new /tmp/kd3-test-TAG-XXXXXX, and O with only the database and the grace period
 * set. 0, or -1 when the folder cannot be made. */
static inline int realm_setup(const char *tag)
{
	snprintf(dir, sizeof(dir), "/tmp/kd3-test-%.16s-XXXXXX", tag);
	if (!mkdtemp(dir))
		return -1;
	snprintf(db_path, sizeof(db_path), "%s/kd3.db", dir);
	snprintf(stash_path, sizeof(stash_path), "%s.stash", db_path);
	memset(&O, 0, sizeof(O));
	snprintf(O.db, sizeof(O.db), "%s", db_path);
	O.grace_period = KDC_GRACE_DEFAULT;
	return 0;
}

static inline int realm_teardown(void)
{
	return tmpdir_remove(dir);
}

/* What kdc serve's option parsing fills in that the server's code reads: allow by
 * default, plain stderr lines, lifetime 3600, both suites. */
static inline void realm_serve_defaults(void)
{
	snprintf(O.policy_default, sizeof(O.policy_default), "allow");
	snprintf(O.log, sizeof(O.log), "stderr");
	O.log_time = 0;
	O.lifetime = 3600;
	O.suites = 3 << 1; /* both */
}

/* O for one subcommand on name (NULL: none), with dir/keyfile as its key file. */
static inline kdc_opts *realm_cmd(const char *name, const char *keyfile)
{
	static kdc_opts o;
	o = O;
	o.args[0] = name;
	o.nargs = name ? 1 : 0;
	if (keyfile)
		snprintf(o.keyfile, sizeof(o.keyfile), "%s/%s", dir, keyfile);
	return &o;
}

/* A running server's state without its workers: the first snapshot, the RCU that holds
 * it, the lockout table and the reloader (not started: tests call kdc_reloader_tick). */
struct world {
	kdc_rcu rcu;
	kdc_lockout lockout;
	kdc_reloader r;
};

static inline void world_start(struct world *w)
{
	char err[768];
	kdc_db db;
	kdc_snapshot *first = NULL;
	int64_t seen = 0;
	assert_int_equal(kdc_lockout_init(&w->lockout, 64), KD3_OK);
	assert_int_equal(kdc_db_open(db_path, stash_path, 0, &db, err, sizeof(err)), KD3_OK);
	assert_int_equal(kdc_snapshot_build(&db, &O, &w->lockout, &seen, &first, err, sizeof(err)),
	                 KD3_OK);
	kdc_db_close(&db);
	first->generation = 1;
	assert_int_equal(kdc_rcu_init(&w->rcu, 1, first), KD3_OK);
	assert_int_equal(kdc_reloader_init(&w->r, &O, &w->rcu, &w->lockout, seen, err, sizeof(err)),
	                 KD3_OK);
}

static inline void world_stop(struct world *w)
{
	kdc_reloader_free(&w->r);
	kdc_rcu_free(&w->rcu);
	kdc_lockout_free(&w->lockout);
}

#endif
