/* kd3adv: the tape, every frame of a run in the order it was seen.
 *
 * The live tape is what `replay TYPE#N` and `splice FIELD TYPE#N` take frames from;
 * --record writes it to a file as it grows, --load reads an earlier run's file back for
 * `earlier:TYPE#N`. File format, one frame a line:
 *     DIR/TRANSPORT KIND#N [KIND#N ...] HEX
 * e.g. "I->R/tcp M1#1 ANY#1 0101005002...": direction, transport, the frame's index
 * within each kind it belongs to (adv.h), and its bytes as sent by their sender, before
 * any rule changed them. */
#ifndef KD3ADV_TAPE_H
#define KD3ADV_TAPE_H

#include <stdio.h>

#include "adv.h"

#define ADV_TAPE_FRAMES 4096
#define ADV_TAPE_BYTES  (16u << 20)

typedef struct adv_tape_entry {
	adv_seen seen;
	uint8_t *bytes;
	size_t len;
} adv_tape_entry;

typedef struct adv_tape {
	adv_tape_entry *e;
	size_t n;
	size_t bytes;
} adv_tape;

void adv_tape_init(adv_tape *t);
void adv_tape_free(adv_tape *t);
/* Keeps a copy of the frame: 0, or -1 when the tape is full (nothing kept). */
int adv_tape_add(adv_tape *t, const adv_seen *seen, const uint8_t *p, size_t len);
/* The index-th (1-based) frame of kind sent in dir, or NULL. */
const adv_tape_entry *adv_tape_find(const adv_tape *t, int dir, int kind, unsigned index);
/* Appends one line for a frame; 0 or -1 (write error). */
int adv_tape_write(FILE *f, const adv_seen *seen, const uint8_t *p, size_t len);
/* Reads a file adv_tape_write wrote. 0, or -1 with one line of why in err. */
int adv_tape_load(adv_tape *t, const char *path, char *err, size_t err_len);

#endif
