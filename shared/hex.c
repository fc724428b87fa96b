#include "hex.h"

#include "err.h"

void kd3_hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int kd3_hex_decode(const char *s, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi = nibble(s[2 * i]);
		if (hi < 0)
			return KD3_E_MALFORMED;
		int lo = nibble(s[2 * i + 1]); /* s[2i] was a digit, so not the NUL */
		if (lo < 0)
			return KD3_E_MALFORMED;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return KD3_OK;
}
