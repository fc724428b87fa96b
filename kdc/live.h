/* kdc live state: what a running server may change without a restart, as one
 * immutable snapshot (the principal table and every setting SIGHUP may change), and
 * the read-copy-update scheme that swaps snapshots under the workers.
 *
 * A snapshot is built off the request path (by the reload thread), published with one
 * atomic pointer store, and never changed after (but for its last-used slots, which
 * workers store into: kdc/usage.h). Each worker (a reader) announces the snapshot it
 * uses in its own hazard pointer:
 *
 *   enter:  p = current; hazard[w] = p; if (current != p) try again;  (seq_cst)
 *   leave:  hazard[w] = NULL                                          (before epoll_wait)
 *
 * The writer stores the new pointer (seq_cst), then waits until no hazard pointer holds
 * the old one, and only then frees it. Why that is safe: a reader that uses the old
 * snapshot stored it in its hazard and then read current == old, so both happened
 * before the writer's store in the single total order of seq_cst operations, and the
 * writer's later reads of that hazard see old (or a later value the reader stored once
 * it stopped using old). A reader that enters after the store reads the new pointer.
 * The same reads make a reader's stores into the old snapshot's usage slots visible
 * to the writer once it saw the hazard let go (the reader's store to its hazard comes
 * after them), so what the writer carries over then is complete.
 * Readers never wait and write no shared memory but their own hazard and the usage
 * slots; a worker leaves before it blocks in epoll_wait, so an idle worker holds
 * nothing, and a busy one lets go between two event batches (microseconds to a few
 * milliseconds). */
#ifndef KDC_LIVE_H
#define KDC_LIVE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lockout.h"
#include "options.h"
#include "policy.h"
#include "table.h"
#include "usage.h"

typedef struct kdc_live_cfg {
	kdc_policy policy;
	uint8_t suites;     /* bit (1 << suite) */
	uint8_t require_fs; /* for every pair */
	uint32_t lifetime;  /* default, seconds */
	uint32_t cache_window_ms;
	kdc_lockout_cfg lockout;
	uint32_t rate_limit; /* requests a second per source; 0: none */
	uint32_t rate_burst;
	int log_requests;
} kdc_live_cfg;

typedef struct kdc_snapshot {
	kdc_table table;
	kdc_usage usage; /* parallel to table; the one part workers write (kdc/usage.h) */
	kdc_live_cfg cfg;
	uint64_t generation; /* 1 for the one loaded at start */
} kdc_snapshot;

/* The settings of o that a snapshot holds. err gets the reason for a bad one. */
int kdc_live_cfg_build(kdc_live_cfg *c, const kdc_opts *o, char *err, size_t err_len);
/* Wipes the table, frees its usage slots and s (NULL is fine). */
void kdc_snapshot_free(kdc_snapshot *s);

typedef struct kdc_rcu {
	_Atomic(kdc_snapshot *) current;
	_Atomic(kdc_snapshot *) *hazard; /* one per reader */
	size_t nreaders;
} kdc_rcu;

/* first becomes the current snapshot (the rcu owns it from here). */
int kdc_rcu_init(kdc_rcu *r, size_t nreaders, kdc_snapshot *first);
/* Frees the current snapshot; no reader may run any more. */
void kdc_rcu_free(kdc_rcu *r);
/* Reader: the snapshot to use until kdc_rcu_leave. */
kdc_snapshot *kdc_rcu_enter(kdc_rcu *r, size_t reader);
void kdc_rcu_leave(kdc_rcu *r, size_t reader);
/* Writer (one at a time): publishes next, waits until no reader holds the snapshot it
 * replaced, and returns that one for the caller to free. */
kdc_snapshot *kdc_rcu_publish(kdc_rcu *r, kdc_snapshot *next);
/* Writer: the snapshot published last. */
kdc_snapshot *kdc_rcu_current(kdc_rcu *r);

#endif
