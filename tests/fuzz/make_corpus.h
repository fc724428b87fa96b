/* The seed corpus generator (make_corpus.c): writes tests/fuzz/corpus/<target>/<name>
 * files from real runs of the exchange (corpus_runs.c) and from hand-made edge cases
 * (corpus_edges.c). Every file is deterministic, so `--check` can tell when the
 * committed corpus no longer matches what the code produces. */
#ifndef KD3_FUZZ_MAKE_CORPUS_H
#define KD3_FUZZ_MAKE_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "fuzz_world.h"

/* Writes (or, in check mode, compares) one corpus file. */
void corpus_emit(const char *target, const char *name, const void *bytes, size_t len);

/* An input being built: appended to with the helpers below, then emitted. */
typedef struct corpus_buf {
	uint8_t bytes[64 * 1024];
	size_t len;
} corpus_buf;

void cb_reset(corpus_buf *b);
void cb_u8(corpus_buf *b, uint8_t v);
void cb_u16(corpus_buf *b, uint16_t v);
void cb_bytes(corpus_buf *b, const void *p, size_t n);
void cb_str(corpus_buf *b, const char *s);
/* An item of a frame sequence (fuzz_util.h): u16 flag | length, then the bytes;
 * cb_item_fixup uses the length range whose frame header length is fixed up. */
void cb_item(corpus_buf *b, int flag, const void *p, size_t n);
void cb_item_fixup(corpus_buf *b, int flag, const void *p, size_t n);
void cb_emit(const corpus_buf *b, const char *target, const char *name);

/* A failure of the generator itself: print and exit 1. */
void corpus_die(const char *what) __attribute__((noreturn));

/* corpus_runs.c: frames, bodies, streams and KDC requests from real runs. */
void corpus_from_runs(void);
const char *corpus_tag(uint8_t suite, uint8_t fs); /* "chacha-fs0", ... */
const fw_frame *corpus_step_frame(const fw_world *f, int step);
const char *corpus_longest_name(char letter); /* 255 bytes; two letters at a time */
size_t corpus_build_m1(uint8_t *out, size_t cap, uint8_t suite, uint8_t fs, const char *id_i,
                       const char *id_r, uint32_t kvno_i);
/* corpus_peers.c: the peer and channel targets. */
void corpus_peers(const fw_world *f, uint8_t suite, uint8_t fs, int variants);
void corpus_channel(void);
/* corpus_edges.c: hand-made edge cases, configs and key files. */
void corpus_edges(void);
/* corpus_pgcopy.c: PostgreSQL binary COPY streams. */
void corpus_pgcopy(void);

#endif
