/* Test support: a deterministic RNG and an in-memory run of the whole exchange
 * (initiator, responder and KDC state machines wired together, no sockets). The
 * vector generator, the state machine tests and the fuzzers all use it. */
#ifndef KD3_TEST_HARNESS_H
#define KD3_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "kdc_core.h"
#include "peer.h"

/* Returns bytes from a fixed script, in order; fails when it runs out. */
typedef struct h_rng {
	const uint8_t *bytes;
	size_t len;
	size_t off;
} h_rng;
int h_rng_fn(void *ctx, uint8_t *out, size_t len);

#define H_FRAMES_MAX 64

typedef struct h_frame {
	char dir[8]; /* "I->R", "R->KDC", "KDC->R", "R->I" */
	uint8_t bytes[KD3_FRAME_MAX];
	size_t len;
} h_frame;

/* Fixed inputs of one exchange (docs/PROTOCOL.md, "Test vectors"). */
typedef struct h_inputs {
	uint8_t suite;
	uint8_t fs;
	uint8_t k_i[KD3_KEY_LEN], k_r[KD3_KEY_LEN];
	uint32_t kvno_i, kvno_r;
	uint8_t n_i[KD3_NONCE_LEN], n_r[KD3_NONCE_LEN];
	uint8_t realm_secret[KD3_KEY_LEN]; /* the KDC's: SK = HKDF-Expand(it, "kd3/1 SK" || TH) */
	uint8_t e_i[KD3_DH_LEN], e_r[KD3_DH_LEN]; /* X25519 private keys */
	uint32_t lifetime;
	uint64_t rekey_records;
} h_inputs;

typedef struct h_world {
	h_inputs in;
	kd3_crypto crypto;
	uint8_t rng_i_bytes[64], rng_r_bytes[64];
	h_rng rng_i, rng_r;
	kd3_principal principals[2];    /* alice, bob */
	kd3_kvno_key principal_keys[2]; /* their one key version each */
	char principal_names[2][KD3_NAME_MAX + 1];
	kd3_kdc kdc;
	kd3_peer ini, resp;
	h_frame frames[H_FRAMES_MAX];
	size_t nframes;
} h_world;

/* The standard inputs of the vectors: fixed keys, nonces, SK and X25519 keys. */
void h_inputs_default(h_inputs *in, uint8_t suite, uint8_t fs);
/* Sets up the three parties; KD3_OK or an error. */
int h_world_init(h_world *w, const h_inputs *in);
void h_world_free(h_world *w);
/* Runs M1..M4 and FINISHED through the parties, recording every frame. */
int h_handshake(h_world *w);
/* Sends payload from the initiator (from_i = 1) or the responder, through the peer's
 * state machine; *delivered gets the other side's view of it. */
int h_send(h_world *w, int from_i, const char *payload, kd3_peer_out *delivered);
/* Records a frame (for vectors and tests). */
h_frame *h_record(h_world *w, const char *dir, const uint8_t *bytes, size_t len);

#endif
