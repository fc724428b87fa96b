/* The KDC's request path allocates nothing (ChaCha20-Poly1305, the default suite).
 *
 * This program interposes malloc, calloc, realloc and free for the whole process
 * (Mbed TLS's shared library included: ELF symbol interposition) and counts the calls
 * made while kd3_kdc_handle answers requests. AES-256-GCM is measured too: Mbed TLS
 * 2.28 allocates inside mbedtls_gcm_setkey, as docs/PROTOCOL.md says, and the test
 * checks that this count is what it claims, so the counter is seen to work.
 * Not built under AddressSanitizer, which owns malloc itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "harness.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

static volatile unsigned long allocations;

void *malloc(size_t size)
{
	allocations++;
	return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	allocations++;
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	allocations++;
	return __libc_realloc(p, size);
}

void free(void *p)
{
	__libc_free(p);
}

/* Allocations made by n requests of the recorded M2 for the suite, after one warm-up
 * request (first use may set up lazily). The cache is off so every request does the
 * whole work: checks, SK, two seals. */
static unsigned long allocations_per_run(uint8_t suite, uint8_t fs, int n)
{
	h_world *w = __libc_calloc(1, sizeof(*w));
	h_inputs in;
	static uint8_t out[KD3_FRAME_MAX];
	size_t out_len;
	kd3_kdc_result res;

	h_inputs_default(&in, suite, fs);
	assert_int_equal(h_world_init(w, &in), KD3_OK);
	assert_int_equal(h_handshake(w), KD3_OK);
	const h_frame *m2 = &w->frames[1];
	w->kdc.cfg.cache_window_ms = 0;
	assert_int_equal(
	    kd3_kdc_handle(&w->kdc, m2->bytes, m2->len, 0, out, sizeof(out), &out_len, &res),
	    KD3_OK);
	unsigned long before = allocations;
	for (int i = 0; i < n; i++) {
		/* now_ms moves on, so the cache (window 0) never answers. */
		assert_int_equal(kd3_kdc_handle(&w->kdc, m2->bytes, m2->len, 10u * (i + 1), out,
		                                sizeof(out), &out_len, &res),
		                 KD3_OK);
		assert_int_equal(res.from_cache, 0);
	}
	unsigned long used = allocations - before;
	h_world_free(w);
	__libc_free(w);
	return used;
}

static void test_chacha_request_allocates_nothing(void **state)
{
	(void)state;
	assert_int_equal(allocations_per_run(KD3_SUITE_CHACHAPOLY, 0, 1000), 0);
	assert_int_equal(allocations_per_run(KD3_SUITE_CHACHAPOLY, 1, 1000), 0);
}

/* The known exception, measured so the counter is seen to count. */
static void test_gcm_request_allocates_in_mbedtls(void **state)
{
	(void)state;
	unsigned long n = allocations_per_run(KD3_SUITE_AES256GCM, 0, 100);
	assert_true(n >= 100); /* mbedtls_gcm_setkey: at least one per blob key */
}

/* Refusals (the flood case) allocate nothing either. */
static void test_refusals_allocate_nothing(void **state)
{
	(void)state;
	h_world *w = __libc_calloc(1, sizeof(*w));
	h_inputs in;
	static uint8_t out[KD3_FRAME_MAX];
	size_t out_len;
	kd3_kdc_result res;
	h_inputs_default(&in, KD3_SUITE_CHACHAPOLY, 0);
	assert_int_equal(h_world_init(w, &in), KD3_OK);
	assert_int_equal(h_handshake(w), KD3_OK);
	h_frame bad = w->frames[1];
	bad.bytes[bad.len - 1] ^= 1; /* auth_r fails */
	unsigned long before = allocations;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(kd3_kdc_handle(&w->kdc, bad.bytes, bad.len, 0, out, sizeof(out),
		                                &out_len, &res),
		                 KD3_E_BAD_AUTH);
	assert_int_equal(allocations - before, 0);
	h_world_free(w);
	__libc_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chacha_request_allocates_nothing),
	    cmocka_unit_test(test_gcm_request_allocates_in_mbedtls),
	    cmocka_unit_test(test_refusals_allocate_nothing),
	};
	return cmocka_run_group_tests_name("kdc_alloc", tests, NULL, NULL);
}
