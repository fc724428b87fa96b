/* responder metrics: what responder --metrics ADDR shows (docs/OPERATIONS.md,
 * "Metrics"). The event loop is their one writer (shared/openmetrics.h): counting is
 * a plain add at the place each event is handled; the metrics thread reads. */
#ifndef RESP_METRICS_H
#define RESP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "kdcx.h"
#include "net.h"
#include "openmetrics.h"

/* Session failures by their kd3_err (every code is below this). */
#define RESP_CAUSES 128
/* KDC addresses counted (the list may change: every address it ever held gets a slot,
 * up to this many less one; later ones are counted together as kdc="other"). */
#define RESP_METRICS_KDCS 32

typedef struct resp_metrics {
	kd3_counter accepted, refused; /* refused: max-sessions, ERROR BUSY */
	kd3_counter open;              /* gauge: sessions held, as max-sessions counts them */
	kd3_counter established, closed;
	kd3_counter failed[RESP_CAUSES];
	kd3_histogram handshake; /* accept to FINISHED verified */
	kd3_counter kdc_m3[RESP_METRICS_KDCS], kdc_error[RESP_METRICS_KDCS],
	    kdc_failed[RESP_METRICS_KDCS];
	/* The address of each slot: written by the loop before nkdc_addr is raised past it
	 * (release), so the metrics thread reads only slots that are whole (acquire). */
	kd3_addr kdc_addr[RESP_METRICS_KDCS];
	_Atomic size_t nkdc_addr;
	_Atomic int kdc_other; /* the last slot is in use, for addresses past the table */
	kd3_counter records_in, records_out, bytes_in, bytes_out; /* messages, payload bytes */
	kd3_counter key_updates_in, key_updates_out;
} resp_metrics;

/* A session ended: closed (err KD3_OK) or failed with err; established or not. (It
 * leaves the open gauge once freed, after its last frames drained.) */
void resp_metrics_end(resp_metrics *m, int err);

/* The slot of KDC address a, made on first use (the loop only); the last one, "other",
 * when the table is full. Always below RESP_METRICS_KDCS. */
size_t resp_metrics_kdc(resp_metrics *m, const kd3_addr *a);

/* What the renderer reads. */
typedef struct resp_metrics_view {
	resp_metrics *m;
	int64_t started;
} resp_metrics_view;

void resp_metrics_render(void *view, kd3_expo *e);

#endif
