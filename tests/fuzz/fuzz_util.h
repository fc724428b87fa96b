/* Shared by every kd3 fuzz target: the libFuzzer entry point, a checked failure that
 * libFuzzer (or the replay driver) reports as a crash, a bounds-checked cursor over
 * the fuzz input, exact-size copies (so ASan sees any over-read), and temp files. */
#ifndef KD3_FUZZ_UTIL_H
#define KD3_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant the code under test broke: print where, then abort (a "crash"). */
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(__FILE__, __LINE__, #cond);                                      \
	} while (0)

/* 1 when KD3_FUZZ_VERBOSE is set: targets then narrate each step to stderr (for
 * reading what a crash input does). */
int fuzz_verbose(void);

/* A cursor over the fuzz input. Reads past the end return 0 and take nothing. */
typedef struct fuzz_in {
	const uint8_t *p;
	size_t len;
	size_t off;
} fuzz_in;

void fuzz_in_init(fuzz_in *in, const uint8_t *p, size_t len);
size_t fuzz_left(const fuzz_in *in);
int fuzz_u8(fuzz_in *in, uint8_t *v);
int fuzz_u16(fuzz_in *in, uint16_t *v); /* big-endian */
/* Up to n bytes (fewer at the end of the input); *got says how many. */
const uint8_t *fuzz_take(fuzz_in *in, size_t n, size_t *got);

/* A malloc'd copy of exactly n bytes (one byte allocated when n is 0). */
uint8_t *fuzz_dup(const uint8_t *p, size_t n);

/* 1 when [p, p + n) lies inside [base, base + len). */
int fuzz_inside(const void *base, size_t len, const void *p, size_t n);

/* A private (0600) temp file, created once per process in /dev/shm (or $TMPDIR, or
 * /tmp) and removed at exit. fuzz_temp_write replaces its contents. */
typedef struct fuzz_temp {
	char path[256];
	int fd;
} fuzz_temp;

int fuzz_temp_open(fuzz_temp *t, const char *tag);
void fuzz_temp_write(fuzz_temp *t, const uint8_t *p, size_t n);

/* Fixed traffic secrets for the channel target and its corpus. */
#define FUZZ_TS_A 0x11
#define FUZZ_TS_B 0x22

/* Sequences of frames for the peer and channel targets: each item starts with a u16;
 * bit 15 is a flag (peer targets: the frame is from the KDC; channel target: seal it
 * first), bits 0..14 the length of the bytes that follow. Peer targets read two
 * ranges of lengths specially: from FUZZ_FIXUP_BASE up, the item holds
 * (length - FUZZ_FIXUP_BASE) bytes whose frame header gets its length field set to
 * match (so a mutation that grows a field need not fix two lengths); from
 * FUZZ_OP_BASE up, the item is a local operation (low four bits), with no bytes. */
#define FUZZ_FLAG       0x8000u
#define FUZZ_LEN_MASK   0x7fffu
#define FUZZ_FIXUP_BASE 0x5000u
#define FUZZ_OP_BASE    0x7ff0u

#endif
