/* kdc lockshare: failed authentications out to the primary and in from the others. */
#include "lockshare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "net.h"

int kdc_lockshare_init(kdc_lockshare *s, kdc_lockout *lockout)
{
	memset(s, 0, sizeof(*s));
	s->lockout = lockout;
	if (getrandom(&s->kdc_id, sizeof(s->kdc_id), 0) != sizeof(s->kdc_id))
		return KD3_E_RNG;
	s->pending = calloc(KDC_LOCKSHARE_PENDING, sizeof(*s->pending));
	if (!s->pending)
		return KD3_E_NOMEM;
	return kdc_lockout_share(lockout);
}

void kdc_lockshare_free(kdc_lockshare *s)
{
	free(s->pending);
	memset(s, 0, sizeof(*s));
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_out(kdc_lockshare *s, kdc_db_watch *w)
{
	char err[512];
	uint64_t dropped = 0;
	size_t room = KDC_LOCKSHARE_PENDING - s->npending;
	s->npending += kdc_lockout_take(s->lockout, s->pending + s->npending, room, &dropped);
	s->lost += dropped;
	if (s->lost) {
		kd3_log_error("lockout: %llu failed authentications not shared with the other KDCs "
		              "(more than %d waited for the database)",
		              (unsigned long long)s->lost, KDC_LOCKSHARE_PENDING);
		s->lost = 0;
	}
	if (s->npending == 0)
		return;
	int ret =
	    kdc_db_watch_store_failures(w, s->kdc_id, s->pending, s->npending, err, sizeof(err));
	if (ret == KD3_OK) {
		if (s->failing)
			kd3_log_info(
			    "lockout: the database is back; %zu failed authentications that "
			    "waited are shared",
			    s->npending);
		s->npending = 0;
		s->failing = 0;
		return;
	}
	if (!s->failing)
		kd3_log_error("lockout: failed authentications not shared: %s; kept (up to %d) and "
		              "sent when the database returns (said once)",
		              err, KDC_LOCKSHARE_PENDING);
	s->failing = 1;
}

struct seen_ctx {
	kdc_lockshare *s;
	const kdc_lockout_cfg *cfg;
	int64_t wall_now;
	uint64_t mono_now;
};

/* Another KDC's failure, counted at the time it happened on our monotonic clock. */
static void count_theirs(void *ctx, const kdc_auth_failure *f)
{
	struct seen_ctx *c = ctx;
	int64_t age = c->wall_now - f->at_ms;
	if (age < 0)
		age = 0; /* the other host's clock is ahead */
	uint64_t at = (uint64_t)age < c->mono_now ? c->mono_now - (uint64_t)age : 0;
	size_t len = strnlen(f->name, sizeof(f->name));
	int locked = kdc_lockout_failure_seen(c->s->lockout, c->cfg, (const uint8_t *)f->name, len,
	                                      f->tag, at);
	if (locked > 0)
		kd3_log_info("principal %s locked out for %llu s after %u failed authentications "
		             "within %llu s, counted across KDCs ('kdc unlock %s' ends it)",
		             f->name, (unsigned long long)(c->cfg->lock_ms / 1000),
		             (unsigned)c->cfg->failures,
		             (unsigned long long)(c->cfg->window_ms / 1000), f->name);
}

static void take_in(kdc_lockshare *s, kdc_db_watch *w, const kdc_lockout_cfg *cfg)
{
	char err[512];
	struct seen_ctx c = {s, cfg, wall_ms(), kd3_now_ms()};
	/* Older failures cannot count toward a lock still in force. */
	int64_t since = c.wall_now - (int64_t)(cfg->window_ms + cfg->lock_ms);
	int ret = kdc_db_watch_failures_since(w, s->kdc_id, &s->seen, since, count_theirs, &c, err,
	                                      sizeof(err));
	if (ret != KD3_OK && !s->reading_failing)
		kd3_log_error("lockout: the other KDCs' failed authentications not read: %s (said "
		              "once)",
		              err);
	s->reading_failing = ret != KD3_OK;
}

void kdc_lockshare_tick(kdc_lockshare *s, kdc_db_watch *w, const kdc_lockout_cfg *cfg)
{
	if (!s->pending || cfg->failures == 0)
		return;
	send_out(s, w);
	take_in(s, w, cfg);
}
