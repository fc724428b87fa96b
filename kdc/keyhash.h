/* kdc keyed hash for the lockout and rate-limit tables: FNV-1a over the bytes, started
 * from a random per-process seed and finished with a 64-bit mixer, so which names or
 * addresses share a slot cannot be planned from outside. Not a MAC: the tables only
 * need an even spread. */
#ifndef KDC_KEYHASH_H
#define KDC_KEYHASH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>

static inline uint64_t kdc_hash64(uint64_t seed, const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33; /* splitmix64's finalizer */
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static inline uint64_t kdc_hash_seed(void)
{
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
		struct timespec ts; /* no entropy yet: a spread is all we need */
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
	}
	return seed;
}

#endif
