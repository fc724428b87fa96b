/* kdc lockshare: failed authentications shared by every KDC of a realm on a database
 * server, so that a lockout counts them all (MIT Kerberos keeps lockout state per KDC;
 * with replicas that share nothing, an attacker gets lockout-failures guesses per KDC).
 *
 * Run by the reload thread each tick, off the request path:
 *   - out: the failures this KDC counted (the lockout's outbox) are written to the
 *     primary in one transaction. While it cannot be reached they wait here, up to
 *     KDC_LOCKSHARE_PENDING of them (then the oldest go, counted and said once);
 *   - in: the other KDCs' failures (those of the last window + lock period, at start)
 *     are read from the server this KDC loads from and counted in its own lockout
 *     table at the time they happened, so a principal locked through one KDC is refused
 *     by every other within a tick, a replication delay and a tick. */
#ifndef KDC_LOCKSHARE_H
#define KDC_LOCKSHARE_H

#include <stddef.h>
#include <stdint.h>

#include "authfail.h"
#include "db.h"
#include "lockout.h"

#define KDC_LOCKSHARE_PENDING (4 * KDC_LOCKOUT_OUTBOX)

typedef struct kdc_lockshare {
	kdc_lockout *lockout;
	uint64_t kdc_id;           /* ours, random per start: our rows are skipped on read */
	int64_t seen;              /* the highest row id read */
	kdc_auth_failure *pending; /* [KDC_LOCKSHARE_PENDING] not written yet */
	size_t npending;
	uint64_t lost;       /* failures dropped for want of room since the last say */
	int failing;         /* the last write failed (said once) */
	int reading_failing; /* the last read failed (said once) */
} kdc_lockshare;

/* Shares the lockout's failures from now on (its outbox turned on). */
int kdc_lockshare_init(kdc_lockshare *s, kdc_lockout *lockout);
void kdc_lockshare_free(kdc_lockshare *s);
/* One tick: ours out, theirs in, through w (cfg: the lockout settings in force). */
void kdc_lockshare_tick(kdc_lockshare *s, kdc_db_watch *w, const kdc_lockout_cfg *cfg);

#endif
