/* kdc lockout: failures counted per principal in a fixed table of atomics. */
#include "lockout.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "keyhash.h"

int kdc_lockout_init(kdc_lockout *l, size_t nslots)
{
	memset(l, 0, sizeof(*l));
	if (nslots < KDC_LOCKOUT_PROBE || (nslots & (nslots - 1)) != 0)
		return KD3_E_USAGE;
	l->slot = calloc(nslots, sizeof(*l->slot));
	if (!l->slot)
		return KD3_E_NOMEM;
	for (size_t i = 0; i < nslots; i++) {
		atomic_init(&l->slot[i].id, 0);
		atomic_init(&l->slot[i].failures, 0);
		atomic_init(&l->slot[i].window_start, 0);
		atomic_init(&l->slot[i].locked_until, 0);
		atomic_init(&l->slot[i].last_tag, 0);
	}
	atomic_init(&l->used, 0);
	l->mask = nslots - 1;
	l->seed = kdc_hash_seed();
	if (pthread_mutex_init(&l->lock, NULL) != 0) {
		free(l->slot);
		l->slot = NULL;
		return KD3_E_NOMEM;
	}
	l->lock_ready = 1;
	return KD3_OK;
}

void kdc_lockout_free(kdc_lockout *l)
{
	if (l->lock_ready)
		pthread_mutex_destroy(&l->lock);
	free(l->slot);
	free(l->outbox);
	memset(l, 0, sizeof(*l));
}

static uint64_t name_id(const kdc_lockout *l, const uint8_t *name, size_t len)
{
	uint64_t h = kdc_hash64(l->seed, name, len);
	return h ? h : 1; /* 0 marks a free slot */
}

/* Whether a failure at now falls in the window opened at start. A failure older than
 * the window's start (another KDC's, read late) counts in it: the clock must not wrap. */
static int in_window(uint64_t now, uint64_t start, uint64_t window_ms)
{
	return now < start || now - start < window_ms;
}

static kdc_lockout_slot *slot_find(kdc_lockout *l, uint64_t id)
{
	for (size_t k = 0; k < KDC_LOCKOUT_PROBE; k++) {
		kdc_lockout_slot *s = &l->slot[(id + k) & l->mask];
		if (atomic_load(&s->id) == id)
			return s;
	}
	return NULL;
}

/* Under the lock: a free slot near id's home, or one whose principal neither is
 * locked nor has failures in its window any more. */
static kdc_lockout_slot *slot_take(kdc_lockout *l, uint64_t id, const kdc_lockout_cfg *cfg,
                                   uint64_t now)
{
	for (size_t k = 0; k < KDC_LOCKOUT_PROBE; k++) {
		kdc_lockout_slot *s = &l->slot[(id + k) & l->mask];
		uint64_t held = atomic_load(&s->id);
		int stale = atomic_load(&s->locked_until) <= now &&
		            (atomic_load(&s->failures) == 0 ||
		             !in_window(now, atomic_load(&s->window_start), cfg->window_ms));
		if (held != 0 && !stale)
			continue;
		/* Fields first, id last: a reader that finds the new id sees them reset. */
		atomic_store(&s->locked_until, 0);
		atomic_store(&s->failures, 0);
		atomic_store(&s->window_start, now);
		atomic_store(&s->last_tag, 0);
		atomic_store(&s->id, id);
		if (held == 0)
			atomic_fetch_add(&l->used, 1);
		return s;
	}
	return NULL;
}

int kdc_lockout_locked(kdc_lockout *l, const uint8_t *name, size_t len, uint64_t now_ms)
{
	if (atomic_load(&l->used) == 0)
		return 0;
	kdc_lockout_slot *s = slot_find(l, name_id(l, name, len));
	return s && atomic_load(&s->locked_until) > now_ms;
}

int kdc_lockout_failed_last(kdc_lockout *l, const uint8_t *name, size_t len, uint64_t tag)
{
	kdc_lockout_slot *s = slot_find(l, name_id(l, name, len));
	return s && tag && atomic_load(&s->last_tag) == tag;
}

/* *counted: the failure was a new guess (not one refused anyway, or the same M2). */
static int count_failure(kdc_lockout_slot *s, const kdc_lockout_cfg *cfg, uint64_t tag,
                         uint64_t now, int *counted)
{
	*counted = 0;
	if (atomic_load(&s->locked_until) > now)
		return 0; /* refused anyway: nothing to count */
	if (tag && atomic_exchange(&s->last_tag, tag) == tag)
		return 0; /* the same M2 again: one guess, not two */
	*counted = 1;
	if (!in_window(now, atomic_load(&s->window_start), cfg->window_ms)) {
		atomic_store(&s->window_start, now);
		atomic_store(&s->failures, 0);
	}
	if (atomic_fetch_add(&s->failures, 1) + 1 < cfg->failures)
		return 0;
	atomic_store(&s->failures, 0);
	atomic_store(&s->locked_until, now + cfg->lock_ms);
	return 1;
}

/* Under the lock: a counted failure into the outbox, the oldest making room. */
static void outbox_put(kdc_lockout *l, const uint8_t *name, size_t len, uint64_t tag)
{
	struct timespec ts;
	if (!l->outbox || len > KD3_NAME_MAX)
		return;
	if (l->out_n == KDC_LOCKOUT_OUTBOX) {
		l->out_first = (l->out_first + 1) % KDC_LOCKOUT_OUTBOX;
		l->out_n--;
		l->out_dropped++;
	}
	kdc_auth_failure *f = &l->outbox[(l->out_first + l->out_n++) % KDC_LOCKOUT_OUTBOX];
	memcpy(f->name, name, len);
	f->name[len] = '\0';
	f->tag = tag;
	clock_gettime(CLOCK_REALTIME, &ts);
	f->at_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int failure(kdc_lockout *l, const kdc_lockout_cfg *cfg, const uint8_t *name, size_t len,
                   uint64_t tag, uint64_t now_ms, int queue)
{
	uint64_t id = name_id(l, name, len);
	int ret = -1, counted = 0;
	if (cfg->failures == 0)
		return 0;
	pthread_mutex_lock(&l->lock);
	kdc_lockout_slot *s = slot_find(l, id);
	if (!s)
		s = slot_take(l, id, cfg, now_ms);
	if (s)
		ret = count_failure(s, cfg, tag, now_ms, &counted);
	if (counted && queue)
		outbox_put(l, name, len, tag);
	pthread_mutex_unlock(&l->lock);
	return ret;
}

int kdc_lockout_failure(kdc_lockout *l, const kdc_lockout_cfg *cfg, const uint8_t *name, size_t len,
                        uint64_t tag, uint64_t now_ms)
{
	return failure(l, cfg, name, len, tag, now_ms, 1);
}

int kdc_lockout_failure_seen(kdc_lockout *l, const kdc_lockout_cfg *cfg, const uint8_t *name,
                             size_t len, uint64_t tag, uint64_t now_ms)
{
	return failure(l, cfg, name, len, tag, now_ms, 0);
}

int kdc_lockout_share(kdc_lockout *l)
{
	kdc_auth_failure *box = calloc(KDC_LOCKOUT_OUTBOX, sizeof(*box));
	if (!box)
		return KD3_E_NOMEM;
	pthread_mutex_lock(&l->lock);
	if (!l->outbox) {
		l->outbox = box;
		box = NULL;
	}
	pthread_mutex_unlock(&l->lock);
	free(box);
	return KD3_OK;
}

size_t kdc_lockout_take(kdc_lockout *l, kdc_auth_failure *out, size_t cap, uint64_t *dropped)
{
	size_t n = 0;
	pthread_mutex_lock(&l->lock);
	while (n < cap && l->out_n > 0) {
		out[n++] = l->outbox[l->out_first];
		l->out_first = (l->out_first + 1) % KDC_LOCKOUT_OUTBOX;
		l->out_n--;
	}
	*dropped = l->out_dropped;
	l->out_dropped = 0;
	pthread_mutex_unlock(&l->lock);
	return n;
}

void kdc_lockout_success(kdc_lockout *l, const uint8_t *name, size_t len)
{
	if (atomic_load(&l->used) == 0)
		return;
	uint64_t id = name_id(l, name, len);
	kdc_lockout_slot *s = slot_find(l, id);
	if (!s || atomic_load(&s->failures) == 0)
		return; /* the common case: no lock taken */
	pthread_mutex_lock(&l->lock);
	if (atomic_load(&s->id) == id)
		atomic_store(&s->failures, 0);
	pthread_mutex_unlock(&l->lock);
}

int kdc_lockout_clear(kdc_lockout *l, const uint8_t *name, size_t len, uint64_t now_ms)
{
	int was = 0;
	pthread_mutex_lock(&l->lock);
	kdc_lockout_slot *s = slot_find(l, name_id(l, name, len));
	if (s) {
		was = atomic_load(&s->locked_until) > now_ms;
		atomic_store(&s->locked_until, 0);
		atomic_store(&s->failures, 0);
	}
	pthread_mutex_unlock(&l->lock);
	return was;
}
