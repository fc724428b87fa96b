/* kdc rate limit: packed token buckets, one compare-and-swap per request. */
#include "ratelimit.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "keyhash.h"

#define TOKEN_UNIT   256u /* a token, in the units the bucket counts */
#define TOKENS_BITS  24
#define TOKENS_MASK  ((1ull << TOKENS_BITS) - 1)
#define TIME_MASK    ((1ull << 40) - 1)
#define ELAPSED_CAP  10000000ull /* ms: longer than any bucket takes to fill */
#define CAS_ATTEMPTS 64          /* lost races on one slot before giving up (refuse) */

int kdc_ratelimit_init(kdc_ratelimit *r, size_t nslots, uint64_t now_ms)
{
	memset(r, 0, sizeof(*r));
	if (nslots == 0 || (nslots & (nslots - 1)) != 0)
		return KD3_E_USAGE;
	r->slot = calloc(nslots, sizeof(*r->slot));
	if (!r->slot)
		return KD3_E_NOMEM;
	for (size_t i = 0; i < nslots; i++)
		atomic_init(&r->slot[i], 0);
	r->mask = nslots - 1;
	r->seed = kdc_hash_seed();
	r->epoch_ms = now_ms;
	return KD3_OK;
}

void kdc_ratelimit_free(kdc_ratelimit *r)
{
	free(r->slot);
	memset(r, 0, sizeof(*r));
}

/* The bytes that name a source: family, then the IPv4 address or the IPv6 /64. */
static size_t source_key(const kd3_addr *peer, uint8_t key[9])
{
	key[0] = (uint8_t)peer->ss.ss_family;
	if (peer->ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&peer->ss;
		memcpy(key + 1, &a->sin_addr, 4);
		return 5;
	}
	if (peer->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&peer->ss;
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			key[0] = AF_INET;
			memcpy(key + 1, a->sin6_addr.s6_addr + 12, 4);
			return 5;
		}
		memcpy(key + 1, a->sin6_addr.s6_addr, 8);
		return 9;
	}
	return 1;
}

/* The bucket at time t (ms since epoch, + 1 so that a packed word is never 0) after
 * refilling; *refill_t the time to store with it. A fresh slot (0) is full. */
static uint64_t bucket_tokens(uint64_t word, uint64_t t, uint32_t rate, uint64_t cap,
                              uint64_t *refill_t)
{
	if (word == 0) {
		*refill_t = t;
		return cap;
	}
	uint64_t last = word >> TOKENS_BITS, tokens = word & TOKENS_MASK;
	uint64_t elapsed = t > last ? t - last : 0;
	if (elapsed > ELAPSED_CAP)
		elapsed = ELAPSED_CAP;
	uint64_t add = elapsed * rate * TOKEN_UNIT / 1000u;
	/* Without a whole unit to add, keep the old time so that the fraction is not lost. */
	*refill_t = add ? t : last;
	return tokens + add > cap ? cap : tokens + add;
}

int kdc_ratelimit_take(kdc_ratelimit *r, const kd3_addr *peer, uint32_t rate, uint32_t burst,
                       uint64_t now_ms)
{
	uint8_t key[9];
	size_t n = source_key(peer, key);
	atomic_uint_fast64_t *slot = &r->slot[kdc_hash64(r->seed, key, n) & r->mask];
	uint64_t t = ((now_ms - r->epoch_ms) & TIME_MASK) + 1;
	uint64_t cap =
	    (uint64_t)(burst > KDC_RATE_BURST_MAX ? KDC_RATE_BURST_MAX : burst) * TOKEN_UNIT;

	for (int attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
		uint_fast64_t old = atomic_load(slot);
		uint64_t refill_t = t;
		uint64_t tokens = bucket_tokens(old, t, rate, cap, &refill_t);
		if (tokens < TOKEN_UNIT)
			return 0; /* nothing stored: the refill is counted again next time */
		uint64_t next = refill_t << TOKENS_BITS | (tokens - TOKEN_UNIT);
		if (atomic_compare_exchange_weak(slot, &old, next))
			return 1;
	}
	return 0;
}

size_t kdc_ratelimit_empty(const kdc_ratelimit *r, uint32_t rate, uint32_t burst, uint64_t now_ms)
{
	uint64_t t = ((now_ms - r->epoch_ms) & TIME_MASK) + 1, refill_t;
	uint64_t cap =
	    (uint64_t)(burst > KDC_RATE_BURST_MAX ? KDC_RATE_BURST_MAX : burst) * TOKEN_UNIT;
	size_t empty = 0;

	for (size_t i = 0; i <= r->mask; i++) {
		uint64_t word = atomic_load_explicit(&r->slot[i], memory_order_relaxed);
		empty += word != 0 && bucket_tokens(word, t, rate, cap, &refill_t) < TOKEN_UNIT;
	}
	return empty;
}
