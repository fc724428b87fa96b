/* The honest exchange, one numbered step at a time, so a fuzz target can stop it
 * anywhere and take over one party, and the corpus generator can record what each
 * party would have received next. Built on tests/support/harness.h (same keys,
 * nonces and RNG script), so every run is identical and recorded frames stay valid.
 *
 *   step  who                          leaves the parties
 *    1    I writes M1                  I WAIT_M4, R WAIT_M1
 *    2    R <- M1, writes M2           R WAIT_M3
 *    3    KDC <- M2, writes M3
 *    4    R <- M3 (from the KDC), M4   R WAIT_FINISHED
 *    5    I <- M4, writes FINISHED     I ESTABLISHED
 *    6    R <- FINISHED                R ESTABLISHED
 *    7    R sends DATA, I <- it
 *    8    I sends DATA, R <- it
 *    9    R KEY_UPDATE, I <- it
 *   10    I KEY_UPDATE, R <- it
 *   11    I CLOSE, R <- it             I tx closed, R rx closed
 *   12    R CLOSE, I <- it             both CLOSED */
#ifndef KD3_FUZZ_WORLD_H
#define KD3_FUZZ_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"

#define FW_STEPS     12
#define FW_FRAME_CAP 1024 /* every frame of the honest run is smaller */

typedef enum fw_party { FW_I = 0, FW_R = 1, FW_KDC = 2 } fw_party;

/* A frame as its receiver got it (before any in-place decryption). */
typedef struct fw_frame {
	int step;
	fw_party to;
	kd3_source src;
	size_t len;
	uint8_t bytes[FW_FRAME_CAP];
} fw_frame;

typedef struct fw_world {
	h_world w;
	uint8_t pending[FW_FRAME_CAP]; /* the last frame written, not yet delivered */
	size_t pending_len;
	fw_frame log[FW_STEPS + 2];
	size_t nlog;
} fw_world;

int fw_init(fw_world *f, uint8_t suite, uint8_t fs);
void fw_free(fw_world *f);
/* Runs steps 1..stop; KD3_OK or the first failure. */
int fw_run_to(fw_world *f, int stop);

#endif
