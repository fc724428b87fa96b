/* kdc metrics: what kdc serve --metrics ADDR shows (docs/OPERATIONS.md, "Metrics").
 *
 * Each worker counts into its own kdc_metrics (one cache line apart from every other
 * worker's: shared/openmetrics.h), on the request path: a handful of plain adds, no lock,
 * no allocation. The metrics thread sums the workers' when scraped and adds what others
 * keep: the reload thread's snapshot figures (kdc_reload_gauges) and the rate-limit
 * table's empty buckets. */
#ifndef KDC_METRICS_H
#define KDC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "openmetrics.h"

enum { KDC_MT_UDP, KDC_MT_TCP, KDC_MT_TRANSPORTS };

/* Outcomes: OK (0), the nine ERROR codes (1..9), and OTHER: what the handler refused
 * with a local code (never on the wire: such a request gets no answer). */
#define KDC_MO_OTHER    10
#define KDC_MO_OUTCOMES 11

typedef struct kdc_metrics {
	_Alignas(KD3_CACHE_LINE) kd3_counter requests[KDC_MT_TRANSPORTS][KDC_MO_OUTCOMES];
	kd3_counter unanswered[KDC_MT_TRANSPORTS]; /* no reply sent (too short to answer...) */
	kd3_counter cache_hits;                    /* M3s from the lookaside cache */
	kd3_counter rate_limited;                  /* answered BUSY: the source's limit */
	kd3_counter lockout_refused;               /* refused: a principal locked out */
	kd3_counter lockouts;                      /* principals locked out */
	kd3_counter tcp_accepted, tcp_refused;     /* refused: max-conns or no descriptor */
	kd3_counter tcp_open;                      /* gauge */
	kd3_histogram latency[KDC_MT_TRANSPORTS];  /* request handling, as logged */
} kdc_metrics;

/* "udp" or "tcp" (kdc_request's transport names). */
static inline int kdc_metrics_transport(const char *transport)
{
	return transport[0] == 't' ? KDC_MT_TCP : KDC_MT_UDP;
}

/* One request: its outcome (kd3_err), whether a reply went out, from the cache. */
void kdc_metrics_request(kdc_metrics *m, const char *transport, int err, int replied, int cached,
                         uint64_t us);

/* What the reload thread keeps current for the metrics (it alone writes it). */
typedef struct kdc_reload_gauges {
	kd3_counter generation, loaded_at, principals, keys, database_ok, reload_failures;
	kd3_counter rate_limit, rate_burst; /* in force: for the empty-bucket count */
} kdc_reload_gauges;

/* What the renderer reads. */
typedef struct kdc_metrics_view {
	const kdc_metrics *first; /* worker 0's */
	size_t nworkers, stride;  /* bytes from one worker's kdc_metrics to the next */
	const kdc_reload_gauges *reload;
	const struct kdc_ratelimit *ratelimit;
	int64_t started; /* Unix seconds */
	/* The metrics thread's alone: the rate-limit table's scan, kept a second, so that
	 * scrapes in a tight loop do not keep pulling its 512 KiB from the workers. */
	uint64_t empty_at_ms;
	size_t empty;
} kdc_metrics_view;

/* kd3_metrics_render_fn for a kdc_metrics_view. */
void kdc_metrics_render(void *view, kd3_expo *e);

#endif
