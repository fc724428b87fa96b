/* kd3 hex text: keys in key files and the stash, values in transcripts and dumps. */
#ifndef KD3_HEX_H
#define KD3_HEX_H

#include <stddef.h>
#include <stdint.h>

/* p[n] as 2n lower-case hex digits and a NUL into out (2n + 1 bytes). */
void kd3_hex_encode(const uint8_t *p, size_t n, char *out);

/* The first 2n characters of s as hex digits (either case) into out[n]. Reads no
 * further than the first character that is not a hex digit (a NUL included), so s may
 * be shorter. KD3_E_MALFORMED when one is not; out may then hold a part of the value:
 * the caller wipes it when it is secret. Says nothing of what follows the 2n digits. */
int kd3_hex_decode(const char *s, size_t n, uint8_t *out);

#endif
