/* kdc serve: load the first snapshot, start the workers and the reload thread, then
 * wait for signals: SIGHUP reads the configuration again, SIGTERM or SIGINT drains
 * and stops (a second one stops at once), then writes the last-used times not written
 * yet. Everything is wiped on the way out. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include "addrs.h"
#include "admin.h"
#include "crypto.h"
#include "db.h"
#include "err.h"
#include "live.h"
#include "lockout.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "notify.h"
#include "resolve.h"
#include "ratelimit.h"
#include "reload.h"
#include "trace.h"
#include "transcript.h"
#include "worker.h"

#define SERVE_ERR_MAX  768
#define KDC_LISTEN_MAX 8    /* addresses of one --listen name that are bound */
#define DRAIN_GRACE_MS 2000 /* past drain-timeout-ms, the main thread stops workers */
#define SIGNAL_POLL_MS 20

struct serve {
	kdc_serve_cfg cfg;
	kd3_kdc_config kcfg;            /* the realm secret: wiped at the end */
	kd3_addr addrs[KDC_LISTEN_MAX]; /* every address of --listen; workers per address */
	size_t naddrs;
	kdc_rcu rcu;
	int rcu_ready;
	kdc_lockout lockout;
	kdc_ratelimit ratelimit;
	kdc_reloader reloader;
	int reloader_ready;
	int64_t unlock_seen;
	kdc_worker *workers;
	size_t nworkers;
	kd3_transcript transcript; /* --transcript; shared by the workers, under its lock */
	kd3_addr metrics_addr;     /* --metrics */
	int metrics_on;
	kdc_metrics_view metrics_view;
	kd3_metrics_http *metrics;
};

static int serve_settings(struct serve *s, const kdc_opts *o)
{
	char err[SERVE_ERR_MAX];
	kdc_live_cfg probe; /* the snapshot builds them again; here only to refuse early */
	/* A name binds every address it gives (127.0.0.1 and ::1 for localhost). */
	if (kd3_addrs_resolve("listen", o->listen, KD3_KDC_PORT_DEFAULT, KD3_ADDRS_PASSIVE,
	                      KD3_RESOLVE_TIMEOUT_MS, s->addrs, KDC_LISTEN_MAX, &s->naddrs, err,
	                      sizeof(err)) != KD3_OK) {
		kd3_log_error("%s", err);
		return KD3_E_USAGE;
	}
	if (kdc_live_cfg_build(&probe, o, err, sizeof(err)) != KD3_OK) {
		kd3_log_error("%s%s%s", o->config[0] ? o->config : "", o->config[0] ? ": " : "",
		              err);
		return KD3_E_USAGE;
	}
	if (o->metrics[0]) {
		if (kd3_metrics_addr_parse(o->metrics, &s->metrics_addr, err, sizeof(err)) !=
		    KD3_OK) {
			kd3_log_error("%s", err);
			return KD3_E_USAGE;
		}
		s->metrics_on = 1;
	}
	if (o->reveal_keys && !o->transcript[0]) {
		kd3_log_error(
		    "--reveal-keys needs --transcript FILE (keys go only into a transcript)");
		return KD3_E_USAGE;
	}
	if (o->transcript[0] && kd3_transcript_open(&s->transcript, o->transcript, "kdc",
	                                            o->reveal_keys, err, sizeof(err)) != KD3_OK) {
		kd3_log_error("%s", err);
		return KD3_E_USAGE;
	}
	s->cfg.transcript = o->transcript[0] ? &s->transcript : NULL;
	s->cfg.idle_ms = o->idle_timeout_ms;
	s->cfg.max_conns = (size_t)o->max_conns;
	s->cfg.drain_ms = o->drain_timeout_ms;
	s->cfg.rcu = &s->rcu;
	s->cfg.lockout = &s->lockout;
	s->cfg.ratelimit = &s->ratelimit;
	s->nworkers = (size_t)o->workers * s->naddrs;
	if (s->nworkers > KDC_WORKERS_MAX) {
		kd3_log_error("listen: %zu addresses with %u workers each is more than %d workers",
		              s->naddrs, (unsigned)o->workers, KDC_WORKERS_MAX);
		return KD3_E_USAGE;
	}
	if (kdc_lockout_init(&s->lockout, KDC_LOCKOUT_SLOTS) != KD3_OK ||
	    kdc_ratelimit_init(&s->ratelimit, KDC_RATE_SLOTS, kd3_now_ms()) != KD3_OK) {
		kd3_log_error("out of memory for the lockout and rate-limit tables");
		return KD3_E_NOMEM;
	}
	return KD3_OK;
}

/* The first snapshot; the database is closed (and the master key wiped) before any
 * request is served. */
static int serve_load(struct serve *s, const kdc_opts *o)
{
	char err[SERVE_ERR_MAX];
	kdc_snapshot *first = NULL;
	kdc_db db;
	int ret = kdc_admin_open(o, 0, &db);
	if (ret != KD3_OK)
		return ret;
	ret = kdc_db_realm_secret_get(&db, s->kcfg.realm_secret, err, sizeof(err));
	if (ret == KD3_OK)
		ret = kdc_snapshot_build(&db, o, &s->lockout, &s->unlock_seen, &first, err,
		                         sizeof(err));
	kdc_db_close(&db);
	kdc_stack_scrub();
	if (ret == KD3_OK) {
		first->generation = 1;
		ret = kdc_rcu_init(&s->rcu, s->nworkers, first);
		if (ret != KD3_OK) {
			kdc_snapshot_free(first);
			snprintf(err, sizeof(err), "out of memory");
		}
	}
	if (ret != KD3_OK) {
		kd3_log_error("%s", err);
		return ret;
	}
	s->rcu_ready = 1;
	return KD3_OK;
}

static int serve_log_setup(const kdc_opts *o)
{
	char err[SERVE_ERR_MAX];
	if (kdc_log_apply(o, err, sizeof(err)) == KD3_OK)
		return KD3_OK;
	kd3_log_error("%s", err);
	return KD3_E_USAGE;
}

/* Room for every worker's connections, best effort. */
static void raise_fd_limit(const struct serve *s)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)(s->nworkers * (s->cfg.max_conns + 8) + 64);
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

static int serve_workers_init(struct serve *s, const kdc_opts *o)
{
	char err[SERVE_ERR_MAX];
	int ret = KD3_OK;
	for (size_t i = 0; i < s->naddrs && ret == KD3_OK; i++)
		ret = kdc_socket_probe(&s->addrs[i], err, sizeof(err));
	if (ret != KD3_OK) {
		kd3_log_error("%s", err);
		return ret;
	}
	/* Aligned: each worker's counters have cache lines of their own (kdc/metrics.h). */
	size_t bytes = s->nworkers * sizeof(*s->workers);
	s->workers = aligned_alloc(_Alignof(kdc_worker), bytes);
	if (s->workers)
		memset(s->workers, 0, bytes);
	if (!s->workers) {
		kd3_log_error("out of memory for %zu workers", s->nworkers);
		return KD3_E_NOMEM;
	}
	size_t per_addr = s->nworkers / s->naddrs;
	for (size_t i = 0; i < s->nworkers; i++) {
		ret = kdc_worker_init(&s->workers[i], (unsigned)i, &s->cfg, &s->addrs[i / per_addr],
		                      &s->kcfg, err, sizeof(err));
		if (ret != KD3_OK) {
			kd3_log_error("%s", err);
			s->nworkers = i; /* only those set up are freed */
			return ret;
		}
	}
	ret = kdc_reloader_init(&s->reloader, o, &s->rcu, &s->lockout, s->unlock_seen, err,
	                        sizeof(err));
	s->reloader_ready = 1; /* kdc_reloader_free undoes a partial init too */
	if (ret != KD3_OK)
		kd3_log_error("%s", err);
	return ret;
}

/* Blocks SIGTERM, SIGINT and SIGHUP in every thread (the threads inherit the mask);
 * the main thread takes them with sigwait. */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* --metrics: the endpoint, reading every worker's counters and the reload thread's. */
static int serve_metrics_start(struct serve *s)
{
	char err[SERVE_ERR_MAX], addr[64];
	kdc_metrics_view *v = &s->metrics_view;
	if (!s->metrics_on)
		return KD3_OK;
	v->first = &s->workers[0].metrics;
	v->nworkers = s->nworkers;
	v->stride = sizeof(s->workers[0]);
	v->reload = &s->reloader.gauges;
	v->ratelimit = &s->ratelimit;
	v->started = (int64_t)time(NULL);
	if (kd3_metrics_http_start(&s->metrics, &s->metrics_addr, kdc_metrics_render, v, err,
	                           sizeof(err)) != KD3_OK) {
		kd3_log_error("%s", err);
		return KD3_E_IO;
	}
	kd3_addr_format(&s->metrics_addr, addr, sizeof(addr));
	kd3_log_info("metrics at http://%s/metrics", addr);
	return KD3_OK;
}

static int serve_start(struct serve *s)
{
	char addr[KDC_LISTEN_MAX * 50], status[sizeof(addr) + 100], each[48] = "";
	/* Read before the reload thread may replace (and free) the snapshot. */
	size_t n = kdc_rcu_current(&s->rcu)->table.n;
	for (size_t i = 0; i < s->nworkers; i++) {
		if (kdc_worker_start(&s->workers[i]) != KD3_OK) {
			kd3_log_error("cannot start worker %zu", i);
			return KD3_E_IO;
		}
	}
	if (kdc_reloader_start(&s->reloader) != KD3_OK) {
		kd3_log_error("cannot start the reload thread");
		return KD3_E_IO;
	}
	if (serve_metrics_start(s) != KD3_OK)
		return KD3_E_IO;
	kd3_addrs_format(s->addrs, s->naddrs, addr, sizeof(addr));
	if (s->naddrs > 1)
		snprintf(each, sizeof(each), " (%zu on each address)", s->nworkers / s->naddrs);
	kd3_log_info("serving on %s (udp+tcp), %zu workers%s, %zu principals", addr, s->nworkers,
	             each, n);
	snprintf(status, sizeof(status),
	         "READY=1\nSTATUS=serving on %s, %zu workers, %zu principals", addr, s->nworkers,
	         n);
	if (kdc_notify(status) != 0)
		kd3_log_error("cannot notify systemd ($NOTIFY_SOCKET): %s", strerror(errno));
	return KD3_OK;
}

static int workers_done(const struct serve *s)
{
	for (size_t i = 0; i < s->nworkers; i++)
		if (!atomic_load(&s->workers[i].done))
			return 0;
	return 1;
}

/* SIGTERM: the workers finish what is under way (each bounded by drain-timeout-ms);
 * a second signal, or the drain running past its bound, stops them at once. */
static void serve_drain(struct serve *s, const sigset_t *set, int sig)
{
	const struct timespec poll_every = {0, SIGNAL_POLL_MS * 1000000L};
	uint64_t give_up = kd3_now_ms() + s->cfg.drain_ms + DRAIN_GRACE_MS;
	(void)kdc_notify("STOPPING=1");
	kd3_log_info("signal %d: draining (no new requests; up to %llu ms for those under way)",
	             sig, (unsigned long long)s->cfg.drain_ms);
	kdc_reloader_stop(&s->reloader); /* no swap under the drain */
	for (size_t i = 0; i < s->nworkers; i++)
		kdc_worker_drain(&s->workers[i]);
	while (!workers_done(s)) {
		int again = sigtimedwait(set, NULL, &poll_every);
		if ((again == SIGTERM || again == SIGINT) || kd3_now_ms() >= give_up) {
			kd3_log_info(again > 0 ? "signal %d again: stopping now"
			                       : "drain took too long: stopping now",
			             again);
			for (size_t i = 0; i < s->nworkers; i++)
				kdc_worker_stop(&s->workers[i]);
			break;
		}
	}
}

static int serve_run(struct serve *s, sigset_t *set)
{
	int sig = 0, ret = serve_start(s);
	while (ret == KD3_OK) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		kd3_log_info("SIGHUP: reading the configuration again");
		kdc_reloader_hup(&s->reloader);
	}
	if (ret == KD3_OK)
		serve_drain(s, set, sig);
	else
		for (size_t i = 0; i < s->nworkers; i++)
			kdc_worker_stop(&s->workers[i]);
	for (size_t i = 0; i < s->nworkers; i++) {
		kdc_worker_free(&s->workers[i]);
		if (s->workers[i].failed)
			ret = KD3_E_IO;
	}
	/* Every worker is joined: the last-used times noted during the drain are final. */
	kdc_reloader_stop(&s->reloader);
	(void)kdc_reloader_flush(&s->reloader);
	return ret;
}

static void serve_free(struct serve *s, int ret)
{
	kd3_metrics_http_stop(s->metrics); /* first: it reads the workers and the reloader */
	s->metrics = NULL;
	if (s->reloader_ready)
		kdc_reloader_free(&s->reloader);
	for (size_t i = 0; s->workers && i < s->nworkers; i++)
		kdc_worker_free(&s->workers[i]);
	free(s->workers);
	if (s->rcu_ready)
		kdc_rcu_free(&s->rcu);
	kdc_lockout_free(&s->lockout);
	kdc_ratelimit_free(&s->ratelimit);
	kd3_transcript_close(&s->transcript, ret == KD3_OK ? 0 : 1);
	kd3_wipe(&s->kcfg, sizeof(s->kcfg)); /* the realm secret */
}

int kdc_cmd_serve(kdc_opts *o)
{
	struct serve *s = calloc(1, sizeof(*s));
	sigset_t set;
	int ret;

	if (!s) {
		kd3_log_error("out of memory");
		return KD3_E_NOMEM;
	}
	/* Before any thread exists, so that every thread inherits the mask. */
	block_signals(&set);
	kd3_trace_enable(o->trace);
	/* No core dumps or ptrace by others of the same user: the table holds subkeys. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if ((ret = serve_settings(s, o)) != KD3_OK || (ret = serve_load(s, o)) != KD3_OK)
		goto out;
	/* From here on the log format asked for (time, JSON, syslog); a refusal at start
	 * is one plain line, like every other kdc command's. */
	if ((ret = serve_log_setup(o)) != KD3_OK)
		goto out;
	raise_fd_limit(s);
	if ((ret = serve_workers_init(s, o)) != KD3_OK)
		goto out;
	ret = serve_run(s, &set);
	if (ret == KD3_OK)
		kd3_log_info("stopped");
	else
		kd3_log_error("stopped after a failure");
out:
	serve_free(s, ret);
	free(s);
	return ret;
}
