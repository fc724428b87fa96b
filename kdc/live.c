/* kdc live state: snapshot settings and the hazard-pointer swap. */
#include "live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "ratelimit.h"

#define RCU_WAIT_NS      200000 /* between two looks at the readers' hazards */
#define RCU_SLOW_WAIT_MS 1000   /* a reader holding on this long is worth a log line */

int kdc_live_cfg_build(kdc_live_cfg *c, const kdc_opts *o, char *err, size_t err_len)
{
	memset(c, 0, sizeof(*c));
	int ret = kdc_policy_init(&c->policy, &o->deny, (uint32_t)o->lifetime, err, err_len);
	if (ret == KD3_OK)
		ret = kdc_policy_add_rules(&c->policy, &o->rule, o->policy_default, err, err_len);
	if (ret != KD3_OK)
		return KD3_E_CONFIG;
	if (!o->suites) {
		snprintf(err, err_len, "suites: no suite allowed");
		return KD3_E_CONFIG;
	}
	if (strcmp(o->log, "stderr") != 0 && strcmp(o->log, "syslog") != 0) {
		snprintf(err, err_len, "log: '%.32s' is neither stderr nor syslog", o->log);
		return KD3_E_CONFIG;
	}
	c->suites = o->suites;
	c->require_fs = (uint8_t)(o->require_fs != 0);
	c->lifetime = (uint32_t)o->lifetime;
	c->cache_window_ms = (uint32_t)o->cache_window_ms;
	c->lockout.failures = (uint32_t)o->lockout_failures;
	c->lockout.window_ms = o->lockout_window_seconds * 1000u;
	c->lockout.lock_ms = o->lockout_seconds * 1000u;
	c->rate_limit = (uint32_t)o->rate_limit;
	c->rate_burst = (uint32_t)(o->rate_limit_burst > KDC_RATE_BURST_MAX ? KDC_RATE_BURST_MAX
	                                                                    : o->rate_limit_burst);
	c->log_requests = o->log_requests;
	return KD3_OK;
}

void kdc_snapshot_free(kdc_snapshot *s)
{
	if (!s)
		return;
	kdc_table_free(&s->table);
	kdc_usage_free(&s->usage);
	free(s);
}

int kdc_rcu_init(kdc_rcu *r, size_t nreaders, kdc_snapshot *first)
{
	memset(r, 0, sizeof(*r));
	r->hazard = calloc(nreaders ? nreaders : 1, sizeof(*r->hazard));
	if (!r->hazard)
		return KD3_E_NOMEM;
	for (size_t i = 0; i < nreaders; i++)
		atomic_init(&r->hazard[i], NULL);
	r->nreaders = nreaders;
	atomic_init(&r->current, first);
	return KD3_OK;
}

void kdc_rcu_free(kdc_rcu *r)
{
	if (r->hazard)
		kdc_snapshot_free(atomic_load(&r->current));
	free(r->hazard);
	memset(r, 0, sizeof(*r));
}

kdc_snapshot *kdc_rcu_enter(kdc_rcu *r, size_t reader)
{
	kdc_snapshot *p = atomic_load(&r->current);
	for (;;) { /* ends: the writer publishes a few times a second at most */
		atomic_store(&r->hazard[reader], p);
		kdc_snapshot *again = atomic_load(&r->current);
		if (again == p)
			return p;
		p = again;
	}
}

void kdc_rcu_leave(kdc_rcu *r, size_t reader)
{
	atomic_store(&r->hazard[reader], NULL);
}

kdc_snapshot *kdc_rcu_current(kdc_rcu *r)
{
	return atomic_load(&r->current);
}

static int held_by_a_reader(kdc_rcu *r, const kdc_snapshot *s)
{
	for (size_t i = 0; i < r->nreaders; i++)
		if (atomic_load(&r->hazard[i]) == s)
			return 1;
	return 0;
}

kdc_snapshot *kdc_rcu_publish(kdc_rcu *r, kdc_snapshot *next)
{
	const struct timespec pause = {0, RCU_WAIT_NS};
	kdc_snapshot *old = atomic_exchange(&r->current, next);
	unsigned long waits = 0, slow = RCU_SLOW_WAIT_MS * 1000000ul / RCU_WAIT_NS;
	/* No bound: freeing what a worker still reads is never an option, and a worker
	 * lets go between event batches (its work per batch is bounded). */
	while (held_by_a_reader(r, old)) {
		if (++waits == slow)
			kd3_log_error("reload: a worker has held the old principal table for %d ms",
			              RCU_SLOW_WAIT_MS);
		nanosleep(&pause, NULL);
	}
	return old;
}
