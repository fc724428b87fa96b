/* kdc lockout: a principal whose authenticator failed (BAD_AUTH) lockout-failures times
 * within lockout-window-seconds is refused for lockout-seconds, whatever it sends.
 *
 * One table for the whole server, shared by every worker, fixed in size (allocated at
 * start) and keyed by a 64-bit hash of the name under a random seed, so a reload of
 * the principal table keeps it. Readers (every request, when lockout is on) take no
 * lock: each slot's fields are atomics, and a slot is only ever taken over under the
 * writers' mutex, which the failure path (BAD_AUTH: rare unless under attack, and
 * already paying for an HMAC), the reset after a success of a principal that has a
 * slot, and `kdc unlock` take. A reader racing a writer sees the slot before or after
 * the change: at worst one request more or less is refused at the boundary.
 *
 * Only principals in the table ever fail authentication (unknown names are refused
 * before), so the table fills only with real names. A full neighbourhood (every
 * probed slot busy with a principal failing or locked right now) drops the count for
 * a new one; the log says so. Times are monotonic milliseconds.
 *
 * Shared (kdc_lockout_share, a realm on a database server): each failure this KDC
 * counts is also queued in a bounded outbox, which the reload thread takes
 * (kdc_lockout_take) and writes for the other KDCs; their failures come back through
 * kdc_lockout_failure_seen, counted the same way but not queued again. */
#ifndef KDC_LOCKOUT_H
#define KDC_LOCKOUT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "authfail.h"

#define KDC_LOCKOUT_SLOTS  4096 /* a power of two */
#define KDC_LOCKOUT_PROBE  8    /* slots looked at from a name's home slot */
#define KDC_LOCKOUT_OUTBOX 1024 /* failures queued for the other KDCs at most */

typedef struct kdc_lockout_cfg {
	uint32_t failures;  /* 0: lockout off */
	uint64_t window_ms; /* failures are counted within this */
	uint64_t lock_ms;   /* how long a locked principal is refused */
} kdc_lockout_cfg;

typedef struct kdc_lockout_slot {
	atomic_uint_fast64_t id;           /* the name's hash; 0: free */
	atomic_uint_fast32_t failures;     /* in the current window */
	atomic_uint_fast64_t window_start; /* ms */
	atomic_uint_fast64_t locked_until; /* ms; 0: not locked */
	atomic_uint_fast64_t last_tag;     /* the request that failed last */
} kdc_lockout_slot;

typedef struct kdc_lockout {
	kdc_lockout_slot *slot;
	size_t mask;
	uint64_t seed;
	atomic_size_t used; /* slots taken: 0 lets every request skip the lookup */
	pthread_mutex_t lock;
	int lock_ready;
	/* Shared: failures for the other KDCs, a ring under lock (NULL: not shared). */
	kdc_auth_failure *outbox;
	size_t out_first, out_n;
	uint64_t out_dropped; /* the oldest overwritten since the last take */
} kdc_lockout;

int kdc_lockout_init(kdc_lockout *l, size_t nslots);
void kdc_lockout_free(kdc_lockout *l);

/* 1 when name is locked at now_ms. Lock-free. */
int kdc_lockout_locked(kdc_lockout *l, const uint8_t *name, size_t len, uint64_t now_ms);
/* 1 when tag names the request that failed last for name (lock-free). */
int kdc_lockout_failed_last(kdc_lockout *l, const uint8_t *name, size_t len, uint64_t tag);
/* Counts a BAD_AUTH of name. tag names the request (the first bytes of its transcript
 * hash; 0: unknown): the same request failing again is not counted again, since a
 * responder resends the same M2 (UDP retransmits, and an ERROR that came over UDP is
 * confirmed over TCP). 1 when this one locked it (log it), 0 otherwise, -1 when there
 * was no slot for it. */
int kdc_lockout_failure(kdc_lockout *l, const kdc_lockout_cfg *cfg, const uint8_t *name, size_t len,
                        uint64_t tag, uint64_t now_ms);
/* From now on, every counted failure is queued for the other KDCs too. */
int kdc_lockout_share(kdc_lockout *l);
/* Takes up to cap queued failures, oldest first; *dropped gets how many were lost to a
 * full outbox since the last take. */
size_t kdc_lockout_take(kdc_lockout *l, kdc_auth_failure *out, size_t cap, uint64_t *dropped);
/* Another KDC's failure of name at now_ms (monotonic, ours): counted as
 * kdc_lockout_failure counts, not queued. Same return. */
int kdc_lockout_failure_seen(kdc_lockout *l, const kdc_lockout_cfg *cfg, const uint8_t *name,
                             size_t len, uint64_t tag, uint64_t now_ms);
/* A success: name's failures in the window are forgotten (not a lock in force). */
void kdc_lockout_success(kdc_lockout *l, const uint8_t *name, size_t len);
/* kdc unlock: forgets name's failures and ends its lock. 1 when it was locked. */
int kdc_lockout_clear(kdc_lockout *l, const uint8_t *name, size_t len, uint64_t now_ms);

#endif
