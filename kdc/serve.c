/* kdc serve: load the principal table once, start the workers, wait for SIGTERM or
 * SIGINT, stop them, wipe everything, exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include "admin.h"
#include "db.h"
#include "crypto.h"
#include "err.h"
#include "log.h"
#include "policy.h"
#include "table.h"
#include "trace.h"
#include "transcript.h"
#include "worker.h"

#define SERVE_ERR_MAX 640

struct serve {
	kdc_table table;
	kdc_policy policy;
	kdc_serve_cfg cfg;
	kd3_kdc_config kcfg;
	kd3_addr addr;
	kdc_worker *workers;
	size_t nworkers;
	kd3_transcript transcript; /* --transcript; shared by the workers, under its lock */
};

static int serve_settings(struct serve *s, const kdc_opts *o)
{
	char err[SERVE_ERR_MAX];
	if (kd3_addr_parse(o->listen, KD3_KDC_PORT_DEFAULT, &s->addr) != KD3_OK) {
		kd3_log_error(
		    "listen: '%.64s' is not an IP literal with a port (e.g. 127.0.0.1:%d)",
		    o->listen, KD3_KDC_PORT_DEFAULT);
		return KD3_E_USAGE;
	}
	if (kdc_policy_init(&s->policy, &o->deny, (uint32_t)o->lifetime, err, sizeof(err))) {
		kd3_log_error("%s", err);
		return KD3_E_USAGE;
	}
	if (!o->suites) {
		kd3_log_error("suites: no suite allowed");
		return KD3_E_USAGE;
	}
	s->cfg.log_requests = o->log_requests;
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
	s->kcfg.suites_allowed = o->suites;
	s->kcfg.require_fs = (uint8_t)(o->require_fs != 0);
	s->kcfg.lifetime = (uint32_t)o->lifetime;
	s->kcfg.cache_window_ms = (uint32_t)o->cache_window_ms;
	s->nworkers = (size_t)o->workers;
	return KD3_OK;
}

/* The table is built with a crypto context of its own (no DRBG needed), and the
 * database is closed before any request is served. */
static int serve_load(struct serve *s, const kdc_opts *o)
{
	char err[SERVE_ERR_MAX];
	kd3_crypto c;
	kdc_db db;
	/* The stash's master key opens every key and the realm secret; it is wiped with
	 * db at the end of this function, so it never stays in a serving process. */
	int ret = kdc_admin_open(o, 0, &db);
	if (ret != KD3_OK)
		return ret;
	ret = kdc_db_realm_secret_get(&db, s->kcfg.realm_secret, err, sizeof(err));
	if (ret != KD3_OK) {
		kdc_db_close(&db);
		kd3_log_error("%s", err);
		return ret;
	}
	ret = kd3_crypto_init(&c, "kd3 kdc load", 0);
	if (ret == KD3_OK) {
		ret = kdc_table_load(&s->table, &db, &c, (int64_t)time(NULL), err, sizeof(err));
		kd3_crypto_free(&c);
	} else {
		snprintf(err, sizeof(err), "cannot set up crypto");
	}
	kdc_db_close(&db);
	if (ret != KD3_OK)
		kd3_log_error("%s", err);
	return ret;
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

static int serve_workers_init(struct serve *s)
{
	char err[SERVE_ERR_MAX];
	int ret = kdc_socket_probe(&s->addr, err, sizeof(err));
	if (ret != KD3_OK) {
		kd3_log_error("%s", err);
		return ret;
	}
	s->workers = calloc(s->nworkers, sizeof(*s->workers));
	if (!s->workers) {
		kd3_log_error("out of memory for %zu workers", s->nworkers);
		return KD3_E_NOMEM;
	}
	for (size_t i = 0; i < s->nworkers; i++) {
		ret = kdc_worker_init(&s->workers[i], (unsigned)i, &s->cfg, &s->addr, &s->table,
		                      &s->policy, &s->kcfg, err, sizeof(err));
		if (ret != KD3_OK) {
			kd3_log_error("%s", err);
			s->nworkers = i; /* only those set up are freed */
			return ret;
		}
	}
	return KD3_OK;
}

/* Blocks SIGTERM and SIGINT in every thread (the workers inherit the mask); the main
 * thread takes them with sigwait. */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

static int serve_run(struct serve *s)
{
	char addr[64];
	sigset_t set;
	int sig = 0, ret = KD3_OK;

	block_signals(&set);
	for (size_t i = 0; i < s->nworkers; i++) {
		if (kdc_worker_start(&s->workers[i]) != KD3_OK) {
			kd3_log_error("cannot start worker %zu", i);
			ret = KD3_E_IO;
			break;
		}
	}
	if (ret == KD3_OK) {
		kd3_addr_format(&s->addr, addr, sizeof(addr));
		kd3_log_info("serving on %s (udp+tcp), %zu workers, %zu principals", addr,
		             s->nworkers, s->table.n);
		sigwait(&set, &sig);
		kd3_log_info("signal %d: stopping", sig);
	}
	for (size_t i = 0; i < s->nworkers; i++)
		kdc_worker_stop(&s->workers[i]);
	for (size_t i = 0; i < s->nworkers; i++) {
		kdc_worker_free(&s->workers[i]);
		if (s->workers[i].failed)
			ret = KD3_E_IO;
	}
	return ret;
}

int kdc_cmd_serve(kdc_opts *o)
{
	struct serve s;
	int ret;

	memset(&s, 0, sizeof(s));
	kd3_trace_enable(o->trace);
	/* No core dumps or ptrace by others of the same user: the table holds subkeys. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if ((ret = serve_settings(&s, o)) != KD3_OK || (ret = serve_load(&s, o)) != KD3_OK)
		goto out;
	raise_fd_limit(&s);
	if ((ret = serve_workers_init(&s)) != KD3_OK)
		goto out;
	ret = serve_run(&s);
	if (ret == KD3_OK)
		kd3_log_info("stopped");
	else
		kd3_log_error("stopped after a failure");
out:
	for (size_t i = 0; s.workers && i < s.nworkers; i++)
		kdc_worker_free(&s.workers[i]);
	free(s.workers);
	kdc_table_free(&s.table);
	kd3_transcript_close(&s.transcript, ret == KD3_OK ? 0 : 1);
	kd3_wipe(&s.kcfg, sizeof(s.kcfg)); /* the realm secret */
	return ret;
}
