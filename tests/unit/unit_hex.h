/* Unit-test helpers for vectors written as hex. Include after <cmocka.h>. */
#ifndef KD3_UNIT_HEX_H
#define KD3_UNIT_HEX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	fail_msg("bad hex digit '%c'", c);
	return 0;
}

/* Decodes lower-case hex into out (at most cap bytes); returns the length. */
static inline size_t hex_decode(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex);
	assert_int_equal(n % 2, 0);
	assert_true(n / 2 <= cap);
	for (size_t i = 0; i < n / 2; i++)
		out[i] = (uint8_t)(hex_nibble(hex[2 * i]) << 4 | hex_nibble(hex[2 * i + 1]));
	return n / 2;
}

typedef struct hexbuf {
	uint8_t b[256];
	size_t len;
} hexbuf;

static inline hexbuf unhex(const char *hex)
{
	hexbuf h;
	h.len = hex_decode(hex, h.b, sizeof(h.b));
	return h;
}

/* n consecutive byte values from first (the harness's fixed inputs). */
static inline void range(uint8_t *p, size_t n, uint8_t first)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(first + i);
}

static inline int all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

#endif
