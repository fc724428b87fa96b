/* kdc/live.c and kdc/reload.c: the hazard-pointer swap under reader threads (no
 * snapshot is freed while a reader holds it: poisoned before free, checked by the
 * readers; ASan builds see any use after free), and the reloader on a real database:
 * nothing to do, an add, a disable, an unlock, a grace period ending, a file put in
 * place of the database, SIGHUP, and a reload that fails (stash unreadable) keeping
 * the running snapshot until it works again. Also the readiness notification. */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit_kdc_realm.h"

#include "admin.h"
#include "db.h"
#include "err.h"
#include "live.h"
#include "lockout.h"
#include "net.h"
#include "notify.h"
#include "reload.h"
#include "stash.h"

/* ---- the swap ----------------------------------------------------------------------- */

#define READERS 4
#define CANARY  0x6b64335f6c697665ull

static kdc_snapshot *snapshot_new(uint64_t generation)
{
	kdc_snapshot *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->generation = generation;
	s->cfg.lifetime = (uint32_t)generation;
	s->table.next_expiry = (int64_t)CANARY; /* a field no one else uses here */
	return s;
}

static void snapshot_poison_free(kdc_snapshot *s)
{
	memset(s, 0xa5, sizeof(*s));
	free(s);
}

struct reader {
	kdc_rcu *rcu;
	size_t id;
	atomic_int *stop;
	unsigned long reads, bad;
	atomic_ulong newer; /* generations seen go up: the writer waits for a few */
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint64_t last = 0;
	while (!atomic_load(r->stop)) {
		kdc_snapshot *s = kdc_rcu_enter(r->rcu, r->id);
		for (int i = 0; i < 50; i++) /* hold it a while, as a batch of requests does */
			if (s->table.next_expiry != (int64_t)CANARY ||
			    s->cfg.lifetime != (uint32_t)s->generation)
				r->bad++;
		if (s->generation > last)
			atomic_fetch_add(&r->newer, 1);
		if (s->generation < last)
			r->bad++; /* went back in time */
		last = s->generation;
		r->reads++;
		kdc_rcu_leave(r->rcu, r->id);
	}
	return NULL;
}

static void test_rcu_readers_never_see_freed_snapshots(void **state)
{
	kdc_rcu rcu;
	pthread_t t[READERS];
	struct reader rd[READERS];
	atomic_int stop;
	(void)state;
	atomic_init(&stop, 0);
	assert_int_equal(kdc_rcu_init(&rcu, READERS, snapshot_new(1)), KD3_OK);
	for (size_t i = 0; i < READERS; i++) {
		rd[i] = (struct reader){&rcu, i, &stop, 0, 0, 0};
		atomic_init(&rd[i].newer, 0);
		assert_int_equal(pthread_create(&t[i], NULL, reader_main, &rd[i]), 0);
	}
	/* 3,000 swaps at least, pausing now and then so that every reader runs between
	 * them on a loaded machine, until each has seen three generations (10 s at most). */
	const struct timespec pause = {0, 1000 * 1000};
	uint64_t g = 2, deadline = kd3_now_ms() + 10000;
	for (int all_seen = 0; (g <= 3000 || !all_seen) && kd3_now_ms() < deadline; g++) {
		snapshot_poison_free(kdc_rcu_publish(&rcu, snapshot_new(g)));
		if (g % 100 == 0)
			nanosleep(&pause, NULL);
		all_seen = 1;
		for (size_t i = 0; i < READERS; i++)
			all_seen &= atomic_load(&rd[i].newer) >= 3;
	}
	atomic_store(&stop, 1);
	unsigned long reads = 0;
	for (size_t i = 0; i < READERS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(rd[i].bad, 0);
		assert_true(atomic_load(&rd[i].newer) >= 3); /* each reader saw the swaps */
		reads += rd[i].reads;
	}
	assert_true(reads > 3000);
	assert_int_equal(kdc_rcu_current(&rcu)->generation, g - 1);
	kdc_rcu_free(&rcu);
}

/* A reader that holds a snapshot keeps it alive: publish waits for its leave. */
struct late_leave {
	kdc_rcu *rcu;
	atomic_int left;
};

static void *leave_later(void *arg)
{
	struct late_leave *l = arg;
	const struct timespec wait = {0, 100 * 1000 * 1000};
	nanosleep(&wait, NULL);
	atomic_store(&l->left, 1);
	kdc_rcu_leave(l->rcu, 0);
	return NULL;
}

static void test_rcu_publish_waits_for_the_reader(void **state)
{
	kdc_rcu rcu;
	pthread_t t;
	struct late_leave l = {&rcu, 0};
	(void)state;
	atomic_init(&l.left, 0);
	assert_int_equal(kdc_rcu_init(&rcu, 2, snapshot_new(1)), KD3_OK);
	kdc_snapshot *held = kdc_rcu_enter(&rcu, 0);
	assert_int_equal(held->generation, 1);
	assert_int_equal(pthread_create(&t, NULL, leave_later, &l), 0);
	uint64_t t0 = kd3_now_ms();
	kdc_snapshot *old = kdc_rcu_publish(&rcu, snapshot_new(2));
	assert_ptr_equal(old, held);
	assert_int_equal(atomic_load(&l.left), 1);
	assert_true(kd3_now_ms() - t0 >= 90);
	pthread_join(t, NULL);
	snapshot_poison_free(old);
	/* Idle readers (left) hold nothing: publishing does not wait for them. */
	t0 = kd3_now_ms();
	snapshot_poison_free(kdc_rcu_publish(&rcu, snapshot_new(3)));
	assert_true(kd3_now_ms() - t0 < 50);
	kdc_rcu_free(&rcu);
}

/* ---- the reloader on a real database ---------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	if (realm_setup("reload") != 0)
		return -1;
	realm_serve_defaults();
	O.log_requests = 1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return realm_teardown();
}

static const kd3_principal *find(struct world *w, const char *name)
{
	return kdc_table_lookup(&kdc_rcu_current(&w->rcu)->table, (const uint8_t *)name,
	                        strlen(name));
}

static void test_reload_follows_admin_writes(void **state)
{
	struct world w;
	(void)state;
	assert_int_equal(kdc_cmd_init(realm_cmd(NULL, NULL)), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("alice", "alice.key")), KD3_OK);
	world_start(&w);
	assert_int_equal(kdc_reloader_tick(&w.r), 0); /* nothing changed */
	assert_null(find(&w, "bob"));

	assert_int_equal(kdc_cmd_add(realm_cmd("bob", "bob.key")), KD3_OK);
	assert_int_equal(kdc_reloader_tick(&w.r), 1);
	assert_non_null(find(&w, "bob"));
	assert_int_equal(kdc_rcu_current(&w.rcu)->generation, 2);
	assert_int_equal(kdc_reloader_tick(&w.r), 0);

	assert_int_equal(kdc_cmd_disable(realm_cmd("bob", NULL)), KD3_OK);
	assert_int_equal(kdc_reloader_tick(&w.r), 1);
	assert_int_equal(find(&w, "bob")->enabled, 0);

	/* unlock: through the database, applied by the reload. */
	kdc_lockout_cfg lc = {.failures = 1, .window_ms = 60000, .lock_ms = 600000};
	assert_int_equal(
	    kdc_lockout_failure(&w.lockout, &lc, (const uint8_t *)"alice", 5, 1, kd3_now_ms()), 1);
	assert_int_equal(kdc_lockout_locked(&w.lockout, (const uint8_t *)"alice", 5, kd3_now_ms()),
	                 1);
	assert_int_equal(kdc_cmd_unlock(realm_cmd("alice", NULL)), KD3_OK);
	assert_int_equal(kdc_cmd_unlock(realm_cmd("nobody", NULL)), KD3_E_NOT_FOUND);
	assert_int_equal(kdc_reloader_tick(&w.r), 1);
	assert_int_equal(kdc_lockout_locked(&w.lockout, (const uint8_t *)"alice", 5, kd3_now_ms()),
	                 0);

	/* SIGHUP without a command line to read again: a reload all the same. */
	kdc_reloader_hup(&w.r);
	assert_int_equal(kdc_reloader_tick(&w.r), 1);
	assert_int_equal(atomic_load(&w.r.reloads), 4);
	world_stop(&w);
}

static void test_reload_when_a_grace_period_ends(void **state)
{
	struct world w;
	(void)state;
	assert_int_equal(kdc_cmd_init(realm_cmd(NULL, NULL)), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("alice", "alice.key")), KD3_OK);
	kdc_opts *o = realm_cmd("alice", "alice.key");
	o->grace_period = 1;
	assert_int_equal(kdc_cmd_rotate(o), KD3_OK);
	world_start(&w);
	assert_int_equal(find(&w, "alice")->nkeys, 2);
	int64_t expiry = kdc_rcu_current(&w.rcu)->table.next_expiry;
	assert_true(expiry > 0);
	assert_int_equal(kdc_reloader_tick(&w.r), 0);
	for (int i = 0; i < 40 && (int64_t)time(NULL) < expiry; i++)
		usleep(100 * 1000);
	assert_int_equal(kdc_reloader_tick(&w.r), 1);
	assert_int_equal(find(&w, "alice")->nkeys, 1);
	assert_int_equal(find(&w, "alice")->keys[0].kvno, 2);
	assert_int_equal(kdc_rcu_current(&w.rcu)->table.next_expiry, 0);
	assert_int_equal(kdc_reloader_tick(&w.r), 0);
	world_stop(&w);
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ssize_t n;
	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

static void test_reload_failure_keeps_serving(void **state)
{
	char other[200];
	struct world w;
	(void)state;
	assert_int_equal(kdc_cmd_init(realm_cmd(NULL, NULL)), KD3_OK);
	assert_int_equal(kdc_cmd_add(realm_cmd("alice", "alice.key")), KD3_OK);
	world_start(&w);
	assert_int_equal(kdc_cmd_add(realm_cmd("bob", "bob.key")), KD3_OK);
	assert_int_equal(chmod(stash_path, 0644), 0); /* kdc refuses such a stash */
	assert_int_equal(kdc_reloader_tick(&w.r), 0);
	assert_non_null(strstr(w.r.last_err, "readable by group or others"));
	assert_null(find(&w, "bob")); /* the old table still serves */
	assert_int_equal(chmod(stash_path, 0600), 0);
	assert_int_equal(kdc_reloader_tick(&w.r), 0); /* not before a second has passed */
	usleep((KDC_RELOAD_RETRY_MS + 50) * 1000);
	assert_int_equal(kdc_reloader_tick(&w.r), 1);
	assert_non_null(find(&w, "bob"));
	assert_string_equal(w.r.last_err, "");

	/* A restore: another file moved into the database's place. */
	snprintf(other, sizeof(other), "%s/restored.db", dir);
	copy_file(db_path, other);
	assert_int_equal(kdc_cmd_remove(realm_cmd("bob", NULL)), KD3_OK);
	assert_int_equal(kdc_reloader_tick(&w.r), 1);
	assert_null(find(&w, "bob"));
	assert_int_equal(rename(other, db_path), 0); /* bob is back in this one */
	assert_int_equal(kdc_reloader_tick(&w.r), 1);
	assert_non_null(find(&w, "bob"));
	world_stop(&w);
}

/* ---- readiness notification ---------------------------------------------------------------- */

static void test_notify(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[96], got[64];
	(void)state;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	snprintf(path, sizeof(path), "%s/notify", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(kdc_notify("READY=1"), 0); /* not asked for: nothing sent */
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(kdc_notify("READY=1\nSTATUS=serving"), 0);
	ssize_t n = recv(fd, got, sizeof(got) - 1, MSG_DONTWAIT);
	assert_int_equal(n, 22);
	got[n] = '\0';
	assert_string_equal(got, "READY=1\nSTATUS=serving");
	assert_true(recv(fd, got, sizeof(got), MSG_DONTWAIT) < 0); /* one datagram only */
	close(fd);

	/* The abstract namespace ('@'). */
	char name[64];
	snprintf(name, sizeof(name), "@kd3-test-notify-%ld", (long)getpid());
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
	                      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))),
	                 0);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(kdc_notify("STOPPING=1"), 0);
	n = recv(fd, got, sizeof(got) - 1, MSG_DONTWAIT);
	assert_int_equal(n, 10);
	close(fd);

	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(kdc_notify("READY=1"), -1);
	setenv("NOTIFY_SOCKET", path, 1); /* nobody listens there any more */
	unlink(path);
	assert_int_equal(kdc_notify("READY=1"), -1);
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rcu_readers_never_see_freed_snapshots),
	    cmocka_unit_test(test_rcu_publish_waits_for_the_reader),
	    cmocka_unit_test_setup_teardown(test_reload_follows_admin_writes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_when_a_grace_period_ends, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_failure_keeps_serving, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
