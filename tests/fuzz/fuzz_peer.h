/* The peer state machine fuzzer, shared by fuzz_initiator and fuzz_responder.
 *
 * Input: one byte, then items (fuzz_util.h). The byte picks the suite (bit 0: AES-256-GCM,
 * else ChaCha20-Poly1305), forward secrecy (bit 1) and, from bits 2..7, where the honest
 * exchange stops (fuzz_stops_*) before the fuzzer takes over. Each item is a frame for
 * kd3_peer_input (flag: from the KDC; lengths from FUZZ_FIXUP_BASE: with its header's
 * length field fixed up) or a local operation (enum fuzz_peer_op). */
#ifndef KD3_FUZZ_PEER_H
#define KD3_FUZZ_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "fuzz_world.h"

enum fuzz_peer_op {
	FUZZ_OP_SEND = 0,  /* kd3_peer_send of a short payload */
	FUZZ_OP_REKEY,     /* kd3_peer_rekey */
	FUZZ_OP_CLOSE,     /* kd3_peer_close, reason 0 */
	FUZZ_OP_EOF,       /* kd3_peer_eof */
	FUZZ_OP_LATER,     /* the clock jumps past any session lifetime */
	FUZZ_OP_KDC_FAILED /* kd3_peer_kdc_failed (KD3_E_TIMEOUT) */
};

/* Where the honest run stops for each role, in fuzz_world.h's steps. */
extern const int fuzz_stops_i[];
extern const size_t fuzz_nstops_i;
extern const int fuzz_stops_r[];
extern const size_t fuzz_nstops_r;

int fuzz_peer_run(fw_party role, const uint8_t *data, size_t size);

#endif
