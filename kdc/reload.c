/* kdc reload: the thread that notices admin writes, expiries and SIGHUP, and swaps in a
 * new snapshot built off the request path. */
#include "reload.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "net.h"
#include "notify.h"
#include "stash.h"

#define RELOAD_ERR_MAX KDC_RELOAD_ERR_MAX

/* ---- building a snapshot -------------------------------------------------------- */

static void unlock_apply(void *ctx, const char *name)
{
	if (kdc_lockout_clear(ctx, (const uint8_t *)name, strlen(name), kd3_now_ms()))
		kd3_log_info("principal %s unlocked ('kdc unlock'): served again", name);
}

int kdc_snapshot_build(kdc_db *db, const kdc_opts *o, kdc_lockout *lockout, int64_t *unlock_seen,
                       kdc_snapshot **out, char *err, size_t err_len)
{
	kdc_snapshot *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, err_len, "out of memory for a new principal table");
		return KD3_E_NOMEM;
	}
	int ret = kdc_live_cfg_build(&s->cfg, o, err, err_len);
	if (ret == KD3_OK)
		ret = kdc_table_load(&s->table, db, (int64_t)time(NULL), err, err_len);
	if (ret == KD3_OK && (ret = kdc_usage_init(&s->usage, s->table.n)) != KD3_OK)
		snprintf(err, err_len, "out of memory for %zu last-used slots", s->table.n);
	if (ret == KD3_OK && lockout)
		ret = kdc_db_unlocks_since(db, unlock_seen, unlock_apply, lockout, err, err_len);
	if (ret != KD3_OK) {
		kdc_snapshot_free(s);
		return ret;
	}
	*out = s;
	return KD3_OK;
}

int kdc_log_apply(const kdc_opts *o, char *err, size_t err_len)
{
	int to_syslog = strcmp(o->log, "syslog") == 0;
	if (!to_syslog && strcmp(o->log, "stderr") != 0) {
		snprintf(err, err_len, "log: '%.32s' is neither stderr nor syslog", o->log);
		return KD3_E_CONFIG;
	}
	if (to_syslog && kd3_log_open_syslog(o->syslog_socket, err, err_len) != 0)
		return KD3_E_CONFIG;
	/* Under journald each line is stamped already; elsewhere the time helps. */
	int with_time = o->log_time >= 0 ? o->log_time : !kd3_log_stderr_is_journal();
	kd3_log_set_format(o->log_json, with_time);
	kd3_log_set_sink(to_syslog ? KD3_LOG_TO_SYSLOG : KD3_LOG_TO_STDERR);
	return KD3_OK;
}

/* ---- SIGHUP: the configuration again ---------------------------------------------- */

/* Settings a running server cannot change (sockets, threads, files opened at start):
 * next keeps the value in force, and changed lists their names. */
static void keep_restart_only(kdc_opts *next, const kdc_opts *cur, char *changed, size_t len)
{
	struct {
		const char *name;
		char *next_s;
		const char *cur_s;
		void *next_v;
		const void *cur_v;
		size_t size;
	} fields[] = {
	    {"db", next->db, cur->db, NULL, NULL, 0},
	    {"stash", next->stash, cur->stash, NULL, NULL, 0},
	    {"db-write", next->db_write, cur->db_write, NULL, NULL, 0},
	    {"status-file", next->status_file, cur->status_file, NULL, NULL, 0},
	    {"listen", next->listen, cur->listen, NULL, NULL, 0},
	    {"transcript", next->transcript, cur->transcript, NULL, NULL, 0},
	    {"metrics", next->metrics, cur->metrics, NULL, NULL, 0},
	    {"syslog-socket", next->syslog_socket, cur->syslog_socket, NULL, NULL, 0},
	    {"workers", NULL, NULL, &next->workers, &cur->workers, sizeof(cur->workers)},
	    {"max-conns", NULL, NULL, &next->max_conns, &cur->max_conns, sizeof(cur->max_conns)},
	    {"idle-timeout-ms", NULL, NULL, &next->idle_timeout_ms, &cur->idle_timeout_ms,
	     sizeof(cur->idle_timeout_ms)},
	    {"drain-timeout-ms", NULL, NULL, &next->drain_timeout_ms, &cur->drain_timeout_ms,
	     sizeof(cur->drain_timeout_ms)},
	    {"reveal-keys", NULL, NULL, &next->reveal_keys, &cur->reveal_keys,
	     sizeof(cur->reveal_keys)},
	    {"trace", NULL, NULL, &next->trace, &cur->trace, sizeof(cur->trace)},
	};
	size_t at = 0;
	changed[0] = '\0';
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		int differs;
		if (fields[i].next_s) {
			differs = strcmp(fields[i].next_s, fields[i].cur_s) != 0;
			memcpy(fields[i].next_s, fields[i].cur_s, KD3_CONF_STR_MAX);
		} else {
			differs = memcmp(fields[i].next_v, fields[i].cur_v, fields[i].size) != 0;
			memcpy(fields[i].next_v, fields[i].cur_v, fields[i].size);
		}
		if (differs && at < len)
			at += (size_t)snprintf(changed + at, len - at, "%s%s", at ? ", " : "",
			                       fields[i].name);
	}
}

/* KD3_OK with r->opts replaced, or the running settings kept and the reason logged. */
static int reread_config(kdc_reloader *r)
{
	char err[RELOAD_ERR_MAX], changed[256];
	kdc_live_cfg probe;
	kdc_opts *next = malloc(sizeof(*next)); /* large; not on the thread's stack */
	int ret = next ? KD3_OK : KD3_E_NOMEM;

	if (ret != KD3_OK)
		snprintf(err, sizeof(err), "out of memory");
	else if (!r->opts.cmd)
		*next = r->opts; /* nothing to read again (a unit test's settings) */
	else
		ret = kdc_options_parse(r->opts.cmd, r->opts.argc, r->opts.argv, next, err,
		                        sizeof(err));
	if (ret == KD3_OK)
		ret = kdc_live_cfg_build(&probe, next, err, sizeof(err));
	if (ret == KD3_OK) {
		keep_restart_only(next, &r->opts, changed, sizeof(changed));
		ret = kdc_log_apply(next, err, sizeof(err));
	}
	if (ret != KD3_OK) {
		kd3_log_error("SIGHUP: %s; the running configuration stays", err);
		free(next);
		return ret;
	}
	if (changed[0])
		kd3_log_info(
		    "warning: SIGHUP: %s changed, which needs a restart; ignored until then",
		    changed);
	r->opts = *next;
	free(next);
	return KD3_OK;
}

/* ---- the loop --------------------------------------------------------------------- */

/* The watcher of the database in force; shared writes go to db-write when set. */
static int watch_open(kdc_reloader *r, char *err, size_t len)
{
	const char *write_where = r->opts.db_write[0] ? r->opts.db_write : NULL;
	return kdc_db_watch_open(&r->watch, r->opts.db, write_where, err, len);
}

int kdc_reloader_init(kdc_reloader *r, const kdc_opts *o, kdc_rcu *rcu, kdc_lockout *lockout,
                      int64_t unlock_seen, char *err, size_t err_len)
{
	memset(r, 0, sizeof(*r));
	r->wake_fd = -1;
	r->rcu = rcu;
	r->lockout = lockout;
	r->opts = *o;
	r->unlock_seen = unlock_seen;
	r->generation = kdc_rcu_current(rcu)->generation;
	r->loaded_at = time(NULL);
	r->db_ok = 1;
	r->db_checked = r->loaded_at;
	atomic_init(&r->hup, 0);
	atomic_init(&r->stop, 0);
	atomic_init(&r->reloads, 0);
	r->flush_due_ms = kd3_now_ms() + o->last_used_flush_seconds * 1000u;
	r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->wake_fd < 0) {
		snprintf(err, err_len, "reload: eventfd: %s", strerror(errno));
		return KD3_E_IO;
	}
	/* The baseline: a commit from here on is noticed (one since the table was loaded
	 * only costs a reload more). */
	char werr[RELOAD_ERR_MAX];
	r->watching = watch_open(r, werr, sizeof(werr)) == KD3_OK;
	if (kdc_store_is_postgres(o->db)) {
		int ret = kdc_lockshare_init(&r->share, lockout);
		if (ret != KD3_OK) {
			snprintf(err, err_len, "lockout: cannot set up sharing: %s",
			         kd3_strerror(ret));
			return ret;
		}
		r->sharing = 1;
	}
	return KD3_OK;
}

__attribute__((noinline)) void kdc_stack_scrub(void)
{
	uint8_t pad[KDC_STACK_SCRUB];
	kd3_wipe(pad, sizeof(pad));
}

/* Opens the database and its stash quietly (errors into err), builds, closes: the
 * master key is wiped by kdc_db_close. */
static int reload_build(kdc_reloader *r, kdc_snapshot **out, char *err, size_t len)
{
	char stash[PATH_MAX];
	kdc_db db;
	if (kdc_stash_path(r->opts.db, r->opts.stash, stash) != KD3_OK) {
		snprintf(err, len, "stash: path is too long");
		return KD3_E_USAGE;
	}
	int ret = kdc_db_open(r->opts.db, stash, 0, &db, err, len);
	if (ret != KD3_OK)
		return ret;
	ret = kdc_snapshot_build(&db, &r->opts, r->lockout, &r->unlock_seen, out, err, len);
	kdc_db_close(&db);
	kdc_stack_scrub();
	return ret;
}

static const char *reason_text(unsigned why)
{
	if (why & KDC_RELOAD_CONFIG)
		return "SIGHUP";
	if (why & KDC_RELOAD_DATABASE)
		return "the database changed";
	return "a key version's grace period ended";
}

static int reload_now(kdc_reloader *r, unsigned why)
{
	char err[RELOAD_ERR_MAX];
	kdc_snapshot *next = NULL;
	uint64_t start = kd3_now_us();
	int ret = reload_build(r, &next, err, sizeof(err));
	if (ret != KD3_OK) {
		if (strcmp(err, r->last_err) != 0)
			kd3_log_error(
			    "reload (%s) failed: %s; still serving generation %llu, loaded "
			    "%lld s ago, trying again each second",
			    reason_text(why), err, (unsigned long long)r->generation,
			    (long long)(time(NULL) - r->loaded_at));
		snprintf(r->last_err, sizeof(r->last_err), "%s", err);
		kd3_count(&r->gauges.reload_failures, 1);
		r->pending |= why;
		r->retry_ms = kd3_now_ms() + KDC_RELOAD_RETRY_MS;
		return 0;
	}
	next->generation = ++r->generation;
	r->loaded_at = time(NULL);
	if (r->last_err[0])
		kd3_log_info("reload: the database is readable again");
	uint64_t built = kd3_now_us();
	kdc_snapshot *old = kdc_rcu_publish(r->rcu, next);
	/* No worker writes into old's slots any more (kdc/live.h): what they hold is whole. */
	kdc_usage_carry(&next->usage, &next->table, &old->usage, &old->table);
	kdc_snapshot_free(old);
	atomic_fetch_add(&r->reloads, 1);
	r->last_err[0] = '\0';
	r->pending = 0;
	kd3_log_info("reloaded (%s): %zu principals, %zu key versions, generation %llu, built "
	             "in %.1f ms, swapped in %.1f ms",
	             reason_text(why), next->table.n, next->table.nkeys,
	             (unsigned long long)next->generation, (double)(built - start) / 1000.0,
	             (double)(kd3_now_us() - built) / 1000.0);
	return 1;
}

/* What changed on disk: a commit, or the database is unreadable (a reload says why). */
static unsigned database_changed(kdc_reloader *r)
{
	char err[RELOAD_ERR_MAX];
	if (!r->watching) {
		r->watching = watch_open(r, err, sizeof(err)) == KD3_OK;
		return KDC_RELOAD_DATABASE; /* it was unreadable: whatever it holds now */
	}
	int changed = kdc_db_watch_changed(&r->watch);
	r->db_ok = changed >= 0;
	if (r->db_ok)
		r->db_checked = time(NULL);
	return changed != 0 ? KDC_RELOAD_DATABASE : 0;
}

/* ---- last-used times -------------------------------------------------------------- */

struct used_rows {
	const kdc_snapshot *s;
	size_t at;
};

/* kdc_db_used_fn over the slots kdc_usage_flush_begin marked. */
static int used_next(void *ctx, kdc_db_used *row)
{
	struct used_rows *u = ctx;
	const kdc_usage *usage = &u->s->usage;
	while (u->at < usage->n) {
		size_t i = u->at++;
		if (usage->writing[i]) {
			row->name = u->s->table.p[i].name;
			row->at = usage->writing[i];
			return 1;
		}
	}
	return 0;
}

/* Writes the last-used times that changed. Through the watch's connection, so the
 * commit does not look like an admin write (no reload of our own); a failure (the
 * database locked by an admin transaction, ...) keeps them for the next flush. */
static int usage_flush(kdc_reloader *r, int busy_ms, char *err, size_t len)
{
	kdc_snapshot *s = kdc_rcu_current(r->rcu);
	struct used_rows rows = {s, 0};
	if (!r->opts.last_used_flush_seconds || kdc_usage_flush_begin(&s->usage) == 0)
		return KD3_OK;
	int ret = KD3_E_DB;
	/* A database that does not load (pending) is not the one the table came from. */
	if (!r->watching || r->pending)
		snprintf(err, len, "the database cannot be read now");
	else
		ret = kdc_db_watch_store_last_used(&r->watch, busy_ms, used_next, &rows, err, len);
	kdc_usage_flush_end(&s->usage, ret == KD3_OK);
	return ret;
}

static void usage_flush_tick(kdc_reloader *r)
{
	char err[RELOAD_ERR_MAX];
	uint64_t now = kd3_now_ms();
	if (now < r->flush_due_ms)
		return;
	r->flush_due_ms = now + r->opts.last_used_flush_seconds * 1000u;
	int ret = usage_flush(r, KDC_USED_BUSY_MS, err, sizeof(err));
	if (ret != KD3_OK && !r->flush_failing)
		kd3_log_error("last-used times not written: %s; trying again every %llu s "
		              "(said once)",
		              err, (unsigned long long)r->opts.last_used_flush_seconds);
	r->flush_failing = ret != KD3_OK;
}

int kdc_reloader_flush(kdc_reloader *r)
{
	char err[RELOAD_ERR_MAX];
	if (r->sharing && r->watching) /* the last failed authentications out */
		kdc_lockshare_tick(&r->share, &r->watch, &kdc_rcu_current(r->rcu)->cfg.lockout);
	int ret = usage_flush(r, KDC_USED_LAST_BUSY_MS, err, sizeof(err));
	if (ret != KD3_OK)
		kd3_log_error("last-used times of the last %llu s not written: %s",
		              (unsigned long long)r->opts.last_used_flush_seconds, err);
	return ret;
}

/* The figures the metrics show (kdc/metrics.h), current after every tick. */
static void gauges_tick(kdc_reloader *r)
{
	const kdc_snapshot *s = kdc_rcu_current(r->rcu);
	kdc_reload_gauges *g = &r->gauges;
	kd3_gauge_set(&g->generation, r->generation);
	kd3_gauge_set(&g->loaded_at, (uint64_t)r->loaded_at);
	kd3_gauge_set(&g->principals, s->table.n);
	kd3_gauge_set(&g->keys, s->table.nkeys);
	kd3_gauge_set(&g->database_ok, r->db_ok && !r->pending);
	kd3_gauge_set(&g->rate_limit, s->cfg.rate_limit);
	kd3_gauge_set(&g->rate_burst, s->cfg.rate_burst);
}

/* The status file (--status-file): rewritten when something in it changed and every
 * KDC_STATUS_HEARTBEAT_S, so that a stale one shows a server that stopped. */
static void status_tick(kdc_reloader *r)
{
	char err[RELOAD_ERR_MAX];
	const kdc_snapshot *s = kdc_rcu_current(r->rcu);
	kdc_status st;
	if (!r->opts.status_file[0])
		return;
	memset(&st, 0, sizeof(st)); /* padding too: compared whole below */
	st.pid = (long)getpid();
	kdc_store_redact(r->opts.db, st.database);
	st.generation = r->generation;
	st.loaded = r->loaded_at;
	st.principals = s->table.n;
	st.keys = s->table.nkeys;
	st.database_ok = r->db_ok && !r->pending;
	st.checked = r->db_checked;
	snprintf(st.database_error, sizeof(st.database_error), "%.400s", r->last_err);
	st.lockout_queued = r->sharing ? r->share.npending : 0;
	int64_t now = time(NULL);
	st.written = r->status.written;
	if (memcmp(&st, &r->status, sizeof(st)) == 0 && now - st.written < KDC_STATUS_HEARTBEAT_S)
		return;
	st.written = now;
	int ret = kdc_status_write(r->opts.status_file, &st, err, sizeof(err));
	if (ret != KD3_OK && r->status.written >= 0)
		kd3_log_error("status file not written: %s (said once)", err);
	st.written = ret == KD3_OK ? now : -1;
	r->status = st;
}

int kdc_reloader_tick(kdc_reloader *r)
{
	unsigned why = 0;
	int hup = atomic_exchange(&r->hup, 0);
	if (hup) {
		(void)kdc_notify("RELOADING=1");
		if (reread_config(r) == KD3_OK)
			why |= KDC_RELOAD_CONFIG;
	}
	why |= database_changed(r);
	int64_t expiry = kdc_rcu_current(r->rcu)->table.next_expiry;
	if (expiry && (int64_t)time(NULL) >= expiry)
		why |= KDC_RELOAD_EXPIRY;
	if (r->pending) { /* a reload failed: try again at most each second */
		r->pending |= why;
		why = kd3_now_ms() >= r->retry_ms ? r->pending : 0;
	}
	int published = why ? reload_now(r, why) : 0;
	if (hup)
		(void)kdc_notify("READY=1");
	usage_flush_tick(r);
	if (r->sharing && r->watching)
		kdc_lockshare_tick(&r->share, &r->watch, &kdc_rcu_current(r->rcu)->cfg.lockout);
	status_tick(r);
	gauges_tick(r);
	return published;
}

static void *reloader_main(void *arg)
{
	kdc_reloader *r = arg;
	while (!atomic_load(&r->stop)) {
		struct pollfd p = {.fd = r->wake_fd, .events = POLLIN};
		uint64_t count;
		if (poll(&p, 1, KDC_RELOAD_TICK_MS) > 0 &&
		    read(r->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
			kd3_log_error("reload: cannot read its wake-up counter: %s",
			              strerror(errno));
		if (!atomic_load(&r->stop))
			kdc_reloader_tick(r);
	}
	return NULL;
}

static void wake(kdc_reloader *r)
{
	uint64_t one = 1;
	if (r->wake_fd >= 0 && write(r->wake_fd, &one, sizeof(one)) < 0)
		kd3_log_error("reload: cannot wake the reload thread: %s", strerror(errno));
}

int kdc_reloader_start(kdc_reloader *r)
{
	status_tick(r); /* there before the first tick: kdc status works from the start */
	gauges_tick(r);
	if (pthread_create(&r->thread, NULL, reloader_main, r) != 0)
		return KD3_E_IO;
	r->started = 1;
	return KD3_OK;
}

void kdc_reloader_hup(kdc_reloader *r)
{
	atomic_store(&r->hup, 1);
	wake(r);
}

void kdc_reloader_stop(kdc_reloader *r)
{
	atomic_store(&r->stop, 1);
	if (r->started) {
		wake(r);
		pthread_join(r->thread, NULL);
	}
	r->started = 0;
}

void kdc_reloader_free(kdc_reloader *r)
{
	kdc_reloader_stop(r);
	if (r->watching)
		kdc_db_watch_close(&r->watch);
	r->watching = 0;
	if (r->sharing)
		kdc_lockshare_free(&r->share);
	r->sharing = 0;
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	r->wake_fd = -1;
}
