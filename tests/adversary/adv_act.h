/* kd3adv: what happens to each frame. The relays hand every frame they read to
 * adv_see, which counts it, puts it on the tape (and in the --record file), finds the
 * first rule that matches, logs the action taken (one line) and answers with a plan:
 * what to send on, what to send back, whether to hold it or cut the connection. */
#ifndef KD3ADV_ACT_H
#define KD3ADV_ACT_H

#include <signal.h>
#include <stdio.h>

#include "adv.h"
#include "adv_rule.h"
#include "adv_tape.h"

typedef struct adv_ctx {
	adv_rule rules[ADV_MAX_RULES];
	int nrules;
	adv_tape live;    /* this run */
	adv_tape earlier; /* --load */
	FILE *record;     /* --record, or NULL */
	int disarmed;     /* --disarm or SIGUSR1: rules are logged, nothing changed */
	int verbose;      /* a line for every frame */
	unsigned counters[ADV_NDIRS][ADV_NKINDS];
	unsigned long frames, actions, failures;
	int tape_full_said;
	uint8_t edit[ADV_EDIT_MAX]; /* the frame a plan made */
} adv_ctx;

/* One piece to send: toward the frame's receiver (back = 0) or its sender (back = 1). */
typedef struct adv_emit {
	int back;
	const uint8_t *p;
	size_t len;
	unsigned delay_ms;
} adv_emit;

typedef struct adv_plan {
	adv_emit emit[3];
	int n;
	int hold; /* reorder: keep the frame until the next one in its direction has gone */
	int join; /* with hold: it goes first, in the same write as the next one */
	int cut;  /* cut the connection once the pieces are out (TCP) */
} adv_plan;

/* The plan for one frame. Its pointers are valid until the next call. conn_records:
 * the records this connection carried in this direction, this one included. */
void adv_see(adv_ctx *ctx, int dir, int transport, const uint8_t *frame, size_t len,
             unsigned conn_records, adv_plan *plan);

#endif
