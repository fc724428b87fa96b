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

typedef struct resp_metrics {
	kd3_counter accepted, refused; /* refused: max-sessions, ERROR BUSY */
	kd3_counter open;              /* gauge: sessions held, as max-sessions counts them */
	kd3_counter established, closed;
	kd3_counter failed[RESP_CAUSES];
	kd3_histogram handshake; /* accept to FINISHED verified */
	kd3_counter kdc_m3[RESP_KDC_MAX], kdc_error[RESP_KDC_MAX], kdc_failed[RESP_KDC_MAX];
	kd3_counter records_in, records_out, bytes_in, bytes_out; /* messages, payload bytes */
	kd3_counter key_updates_in, key_updates_out;
} resp_metrics;

/* A session ended: closed (err KD3_OK) or failed with err; established or not. (It
 * leaves the open gauge once freed, after its last frames drained.) */
void resp_metrics_end(resp_metrics *m, int err);

/* What the renderer reads: the counters and the KDC list they are kept for. */
typedef struct resp_metrics_view {
	const resp_metrics *m;
	const kd3_addr *kdcs;
	size_t nkdcs;
	int64_t started;
} resp_metrics_view;

void resp_metrics_render(void *view, kd3_expo *e);

#endif
