/* kdc rate limit: a token bucket per source address, rate-limit tokens a second up to
 * rate-limit-burst; a request that finds its bucket empty is answered BUSY.
 *
 * A fixed table of KDC_RATE_SLOTS 64-bit words shared by every worker: each word packs
 * the bucket's last refill time (40 bits of milliseconds) and its tokens (24 bits, in
 * 1/256 of a token), updated with one compare-and-swap, so no lock and no allocation
 * per request. Sources are hashed (random seed) to a slot: an IPv4 address, an IPv6
 * /64 (one site's hosts count as one, so a host cannot dodge the limit by changing its
 * interface identifier), an IPv4-mapped IPv6 address as its IPv4 one. Two sources that
 * share a slot share a bucket: the limit gets stricter for them, never looser. */
#ifndef KDC_RATELIMIT_H
#define KDC_RATELIMIT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

#define KDC_RATE_SLOTS     65536 /* a power of two; 512 KiB */
#define KDC_RATE_BURST_MAX 65535 /* 24 bits of 1/256 tokens */

typedef struct kdc_ratelimit {
	atomic_uint_fast64_t *slot;
	size_t mask;
	uint64_t seed;
	uint64_t epoch_ms; /* time 0 of the packed times */
} kdc_ratelimit;

int kdc_ratelimit_init(kdc_ratelimit *r, size_t nslots, uint64_t now_ms);
void kdc_ratelimit_free(kdc_ratelimit *r);

/* Takes a token from peer's bucket: 1 when the request may go on, 0 when it is over
 * the limit. rate: tokens a second (> 0); burst: 1..KDC_RATE_BURST_MAX. */
int kdc_ratelimit_take(kdc_ratelimit *r, const kd3_addr *peer, uint32_t rate, uint32_t burst,
                       uint64_t now_ms);

/* How many buckets are empty now (their next request is refused): the sources being
 * limited, for the metrics. Reads the whole table (512 KiB): off the request path. */
size_t kdc_ratelimit_empty(const kdc_ratelimit *r, uint32_t rate, uint32_t burst, uint64_t now_ms);

#endif
