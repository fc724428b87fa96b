/* kd3 protocol trace: prints every frame as it passes, field by field, so a student
 * can follow messages 1-4 and the records after them (--trace, or KD3_TRACE=1).
 *
 * Output goes to stderr, one fprintf per line, a block per frame:
 *   -> I->R  M1  (134 bytes)
 *       suite     0x02 (chacha20-poly1305)
 *       id_i      "alice"
 *       ...
 * Frames are decoded with the msg.h decoders and never trusted: a frame that does not
 * decode is printed as "malformed" with (the start of) its bytes in hex. Names from
 * the wire go through kd3_log_safe_name. Nothing secret is ever printed: only wire
 * bytes, and of a record only its sealed ciphertext (first 32 bytes).
 *
 * Records are opened in place (kd3_channel_open, kd3_peer_input), so a caller that
 * traces a received record after opening it must trace a copy taken before (the
 * bytes would otherwise be plaintext); initiator/sio.c and the responder do this.
 * Thread-safe: a block is printed under the stderr lock, so blocks from several
 * threads do not interleave. */
#ifndef KD3_TRACE_H
#define KD3_TRACE_H

#include <stddef.h>
#include <stdint.h>

/* Turns tracing on or off. The environment variable KD3_TRACE (any value but empty
 * or "0") turns it on regardless, so KD3_TRACE=1 works like --trace everywhere. */
void kd3_trace_enable(int on);
int kd3_trace_enabled(void);

/* Prints one protocol frame: direction like "I->R" or "R->KDC", type, size, every field
 * by name with hex, to stderr. fs says whether an M4 carries e_r (forward-secret mode).
 * inner >= 0 names a record's inner type when known (KD3_R_*), -1 otherwise. */
void kd3_trace_frame(const char *dir, const uint8_t *frame, size_t len, int fs, int inner);

/* A one-line event ("session established: suite ..."), printed as "-- text". */
void kd3_trace_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
