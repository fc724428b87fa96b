/* kdc/lockout.c and kdc/ratelimit.c: counting within the window, locking, expiry,
 * the same request not counted twice, success and unlock; token buckets (burst,
 * refill, sources keyed by IPv4 address and IPv6 /64); and both shared by threads
 * without a lost or invented count. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "lockout.h"
#include "ratelimit.h"

#define NAME(s) (const uint8_t *)(s), strlen(s)

static const kdc_lockout_cfg CFG = {.failures = 3, .window_ms = 60000, .lock_ms = 300000};

static void test_lockout_counts_within_the_window(void **state)
{
	kdc_lockout l;
	(void)state;
	assert_int_equal(kdc_lockout_init(&l, 64), KD3_OK);
	assert_int_equal(kdc_lockout_locked(&l, NAME("alice"), 1000), 0);
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 11, 1000), 0);
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 12, 2000), 0);
	/* The window moved on: the count starts again. */
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 13, 61000), 0);
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 14, 62000), 0);
	assert_int_equal(kdc_lockout_locked(&l, NAME("alice"), 62000), 0);
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 15, 63000), 1); /* locks */
	assert_int_equal(kdc_lockout_locked(&l, NAME("alice"), 63000), 1);
	assert_int_equal(kdc_lockout_locked(&l, NAME("alicex"), 63000), 0);
	assert_int_equal(kdc_lockout_locked(&l, NAME("bob"), 63000), 0);
	/* Failures while locked are not counted; the lock ends by itself. */
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 16, 100000), 0);
	assert_int_equal(kdc_lockout_locked(&l, NAME("alice"), 363000 - 1), 1);
	assert_int_equal(kdc_lockout_locked(&l, NAME("alice"), 363000), 0);
	kdc_lockout_free(&l);
}

static void test_lockout_same_request_once(void **state)
{
	kdc_lockout l;
	(void)state;
	assert_int_equal(kdc_lockout_init(&l, 64), KD3_OK);
	for (int i = 0; i < 10; i++) /* one M2, resent: one guess */
		assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 77, 1000 + i), 0);
	assert_int_equal(kdc_lockout_failed_last(&l, NAME("alice"), 77), 1);
	assert_int_equal(kdc_lockout_failed_last(&l, NAME("alice"), 78), 0);
	assert_int_equal(kdc_lockout_failed_last(&l, NAME("bob"), 77), 0);
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 78, 2000), 0);
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 0, 2001), 1); /* 0: no tag */
	kdc_lockout_free(&l);
}

/* Another KDC's failures arrive late: one older than the window's start must count in
 * it (an unsigned now - start would wrap and reset the count instead). */
static void test_lockout_late_failures_count(void **state)
{
	kdc_lockout l;
	(void)state;
	assert_int_equal(kdc_lockout_init(&l, 64), KD3_OK);
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 1, 50000), 0);
	assert_int_equal(kdc_lockout_failure_seen(&l, &CFG, NAME("alice"), 2, 40000), 0);
	assert_int_equal(kdc_lockout_failure_seen(&l, &CFG, NAME("alice"), 3, 45000), 1);
	/* Locked from the time of the failure that locked it, and refused from now on. */
	assert_int_equal(kdc_lockout_locked(&l, NAME("alice"), 50001), 1);
	assert_int_equal(kdc_lockout_locked(&l, NAME("alice"), 45000 + 300000 - 1), 1);
	assert_int_equal(kdc_lockout_locked(&l, NAME("alice"), 45000 + 300000), 0);
	/* A slot holding a window newer than a late failure is not taken as stale. */
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("bob"), 4, 90000), 0);
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("bob"), 5, 91000), 0);
	assert_int_equal(kdc_lockout_failure_seen(&l, &CFG, NAME("bob"), 6, 80000), 1);
	kdc_lockout_free(&l);
}

static void test_lockout_success_and_unlock(void **state)
{
	kdc_lockout l;
	(void)state;
	assert_int_equal(kdc_lockout_init(&l, 64), KD3_OK);
	kdc_lockout_success(&l, NAME("alice")); /* nothing to forget */
	kdc_lockout_failure(&l, &CFG, NAME("alice"), 1, 1000);
	kdc_lockout_failure(&l, &CFG, NAME("alice"), 2, 1001);
	kdc_lockout_success(&l, NAME("alice"));
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 3, 1002), 0);
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 4, 1003), 0);
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME("alice"), 5, 1004), 1);
	kdc_lockout_success(&l, NAME("alice")); /* a success does not end a lock */
	assert_int_equal(kdc_lockout_locked(&l, NAME("alice"), 1005), 1);
	assert_int_equal(kdc_lockout_clear(&l, NAME("alice"), 1006), 1);
	assert_int_equal(kdc_lockout_locked(&l, NAME("alice"), 1006), 0);
	assert_int_equal(kdc_lockout_clear(&l, NAME("alice"), 1007), 0);
	assert_int_equal(kdc_lockout_clear(&l, NAME("nobody"), 1007), 0);
	kdc_lockout_cfg off = CFG;
	off.failures = 0;
	assert_int_equal(kdc_lockout_failure(&l, &off, NAME("bob"), 9, 1008), 0);
	kdc_lockout_free(&l);
}

/* A table too small for everyone failing at once: new names are not counted (and
 * say so), and a stale slot is taken over once its window is over. */
static void test_lockout_full_table(void **state)
{
	kdc_lockout l;
	char name[16];
	int dropped = 0;
	(void)state;
	assert_int_equal(kdc_lockout_init(&l, KDC_LOCKOUT_PROBE), KD3_OK);
	for (int i = 0; i < 2 * KDC_LOCKOUT_PROBE; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		dropped += kdc_lockout_failure(&l, &CFG, NAME(name), 1, 1000) < 0;
	}
	assert_int_equal(dropped, KDC_LOCKOUT_PROBE);
	snprintf(name, sizeof(name), "late");
	assert_int_equal(kdc_lockout_failure(&l, &CFG, NAME(name), 1, 1000 + 60000), 0);
	kdc_lockout_free(&l);
	assert_int_equal(kdc_lockout_init(&l, 100), KD3_E_USAGE); /* not a power of two */
}

struct hammer {
	kdc_lockout *l;
	int locks;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	kdc_lockout_cfg cfg = {.failures = 1000, .window_ms = 1000000, .lock_ms = 1000000};
	for (int i = 0; i < 2500; i++)
		h->locks += kdc_lockout_failure(h->l, &cfg, NAME("alice"), 0, 5000) == 1;
	return NULL;
}

/* Four threads, 10,000 failures of one name: exactly ten locks' worth would be counted
 * if the lock did not stop the count; with it, exactly one lock. */
static void test_lockout_threads(void **state)
{
	kdc_lockout l;
	pthread_t t[4];
	struct hammer h[4];
	int locks = 0;
	(void)state;
	assert_int_equal(kdc_lockout_init(&l, 64), KD3_OK);
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){&l, 0};
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		locks += h[i].locks;
	}
	assert_int_equal(locks, 1);
	assert_int_equal(kdc_lockout_locked(&l, NAME("alice"), 5000), 1);
	kdc_lockout_free(&l);
}

/* ---- rate limit --------------------------------------------------------------------- */

static kd3_addr v4(const char *ip, uint16_t port)
{
	kd3_addr a;
	struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;
	memset(&a, 0, sizeof(a));
	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
	a.len = sizeof(*s);
	return a;
}

static kd3_addr v6(const char *ip)
{
	kd3_addr a;
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a.ss;
	memset(&a, 0, sizeof(a));
	s->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
	a.len = sizeof(*s);
	return a;
}

static int takes(kdc_ratelimit *r, const kd3_addr *a, uint32_t rate, uint32_t burst, uint64_t now,
                 int n)
{
	int ok = 0;
	for (int i = 0; i < n; i++)
		ok += kdc_ratelimit_take(r, a, rate, burst, now);
	return ok;
}

static void test_rate_burst_and_refill(void **state)
{
	kdc_ratelimit r;
	kd3_addr a = v4("192.0.2.1", 1000), a_other_port = v4("192.0.2.1", 2000);
	(void)state;
	assert_int_equal(kdc_ratelimit_init(&r, 1024, 10000), KD3_OK);
	assert_int_equal(takes(&r, &a, 10, 5, 10000, 8), 5); /* the burst, then nothing */
	assert_int_equal(takes(&r, &a_other_port, 10, 5, 10000, 1), 0); /* same address */
	assert_int_equal(takes(&r, &a, 10, 5, 10099, 1), 0);            /* 0.99 of a token back */
	assert_int_equal(takes(&r, &a, 10, 5, 10100, 2), 1);            /* 100 ms: one token */
	assert_int_equal(takes(&r, &a, 10, 5, 10350, 5), 2);    /* 250 ms later: 2.5 tokens */
	assert_int_equal(takes(&r, &a, 10, 5, 10400, 1), 1);    /* the half kept, plus a half */
	assert_int_equal(takes(&r, &a, 10, 5, 99999999, 9), 5); /* full after long, never more */
	/* 1,000 a second for 10 seconds: 10,000 requests pass, give or take the burst. */
	int passed = 0;
	for (uint64_t t = 200000000; t < 200010000; t++)
		passed += takes(&r, &a, 1000, 5, t, 2);
	assert_in_range(passed, 9990, 10005);
	kdc_ratelimit_free(&r);
}

static void test_rate_sources(void **state)
{
	kdc_ratelimit r;
	kd3_addr b = v4("192.0.2.2", 1), c = v4("198.51.100.7", 1);
	kd3_addr h1 = v6("2001:db8:1:2::1"), h2 = v6("2001:db8:1:2:ffff::9"),
	         other = v6("2001:db8:1:3::1"), mapped = v6("::ffff:192.0.2.2");
	(void)state;
	assert_int_equal(kdc_ratelimit_init(&r, KDC_RATE_SLOTS, 0), KD3_OK);
	assert_int_equal(takes(&r, &b, 1, 2, 5, 3), 2);
	assert_int_equal(takes(&r, &mapped, 1, 2, 5, 1), 0); /* the same IPv4 source */
	assert_int_equal(takes(&r, &c, 1, 2, 5, 3), 2);
	assert_int_equal(takes(&r, &h1, 1, 2, 5, 2), 2);
	assert_int_equal(takes(&r, &h2, 1, 2, 5, 1), 0); /* the same /64 */
	assert_int_equal(takes(&r, &other, 1, 2, 5, 3), 2);
	kdc_ratelimit_free(&r);
	assert_int_equal(kdc_ratelimit_init(&r, 1000, 0), KD3_E_USAGE);
}

struct taker {
	kdc_ratelimit *r;
	int passed;
};

static void *taker_main(void *arg)
{
	struct taker *t = arg;
	kd3_addr a = v4("203.0.113.9", 53);
	for (int i = 0; i < 20000; i++)
		t->passed += kdc_ratelimit_take(t->r, &a, 1, 1000, 777);
	return NULL;
}

/* Four threads on one bucket at one instant: exactly the burst passes. */
static void test_rate_threads(void **state)
{
	kdc_ratelimit r;
	pthread_t th[4];
	struct taker t[4];
	int passed = 0;
	(void)state;
	assert_int_equal(kdc_ratelimit_init(&r, 1024, 0), KD3_OK);
	for (int i = 0; i < 4; i++) {
		t[i] = (struct taker){&r, 0};
		assert_int_equal(pthread_create(&th[i], NULL, taker_main, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		passed += t[i].passed;
	}
	assert_int_equal(passed, 1000);
	kdc_ratelimit_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lockout_counts_within_the_window),
	    cmocka_unit_test(test_lockout_same_request_once),
	    cmocka_unit_test(test_lockout_late_failures_count),
	    cmocka_unit_test(test_lockout_success_and_unlock),
	    cmocka_unit_test(test_lockout_full_table),
	    cmocka_unit_test(test_lockout_threads),
	    cmocka_unit_test(test_rate_burst_and_refill),
	    cmocka_unit_test(test_rate_sources),
	    cmocka_unit_test(test_rate_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
