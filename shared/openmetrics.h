/* kd3 openmetrics: counters that one thread writes and any thread reads, and the text
 * they are shown in to Prometheus (text format 0.0.4) or an OpenMetrics 1.0 scraper.
 *
 * A counter has one writer (a KDC worker, the responder's loop) and is read by the
 * metrics thread: the writer adds with a relaxed load and store (a plain add on every
 * CPU kd3 runs on: no lock prefix, no fence), the reader loads relaxed, and a 64-bit
 * value is never torn. Each writer's counters live in its own structure, aligned to a
 * cache line, so no two writers share one; the reader sums them. Nothing here blocks
 * or allocates on the writer's side. */
#ifndef KD3_OPENMETRICS_H
#define KD3_OPENMETRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define KD3_CACHE_LINE 64

typedef struct kd3_counter {
	_Atomic uint64_t v;
} kd3_counter;

/* The writer's add: its one writer makes load + store exact. */
static inline void kd3_count(kd3_counter *c, uint64_t n)
{
	uint64_t v = atomic_load_explicit(&c->v, memory_order_relaxed);
	atomic_store_explicit(&c->v, v + n, memory_order_relaxed);
}

/* A gauge its one writer sets. */
static inline void kd3_gauge_set(kd3_counter *c, uint64_t v)
{
	atomic_store_explicit(&c->v, v, memory_order_relaxed);
}

static inline uint64_t kd3_counter_get(const kd3_counter *c)
{
	return atomic_load_explicit((_Atomic uint64_t *)&c->v, memory_order_relaxed);
}

/* Latency: 12 bounds from 10 us to 1 s, then +Inf. Kept per bucket (not cumulative),
 * so that an observation is one add; the exposition adds them up. */
#define KD3_HIST_BOUNDS 12
extern const uint64_t kd3_hist_bounds_us[KD3_HIST_BOUNDS];

typedef struct kd3_histogram {
	kd3_counter bucket[KD3_HIST_BOUNDS + 1]; /* the last: above every bound */
	kd3_counter sum_us;
} kd3_histogram;

void kd3_hist_observe(kd3_histogram *h, uint64_t us);

/* A histogram read: summed over writers by the reader. */
typedef struct kd3_hist_read {
	uint64_t bucket[KD3_HIST_BOUNDS + 1];
	uint64_t sum_us;
} kd3_hist_read;

void kd3_hist_add_to(const kd3_histogram *h, kd3_hist_read *sum);

/* ---- the exposition ----------------------------------------------------------------- */

/* A text being built, in a buffer that grows (the scrape is off every hot path) up to
 * KD3_EXPO_MAX; past that, or out of memory, failed is set and the text is dropped. */
#define KD3_EXPO_MAX (4u << 20)

typedef struct kd3_expo {
	char *p;
	size_t len, cap;
	int openmetrics; /* else Prometheus text 0.0.4 */
	int failed;
} kd3_expo;

void kd3_expo_init(kd3_expo *e, int openmetrics);
void kd3_expo_free(kd3_expo *e);

/* A family's # TYPE and # HELP lines. name is the family's (a counter's without
 * _total: the exposition adds it where each format wants it); type is "counter",
 * "gauge" or "histogram". */
void kd3_expo_family(kd3_expo *e, const char *name, const char *type, const char *help);
/* One sample of the family name: labels is "" or 'a="x",b="y"' (values escaped with
 * kd3_expo_escape). A counter's sample gets its _total. */
void kd3_expo_counter(kd3_expo *e, const char *name, const char *labels, uint64_t v);
void kd3_expo_gauge(kd3_expo *e, const char *name, const char *labels, double v);
/* A family of one unlabelled sample: its # TYPE and # HELP, then the value. */
void kd3_expo_counter_one(kd3_expo *e, const char *name, const char *help, uint64_t v);
void kd3_expo_gauge_one(kd3_expo *e, const char *name, const char *help, double v);
/* name_bucket{labels,le=...} for each bound and +Inf (cumulative), name_count and
 * name_sum (seconds). */
void kd3_expo_histogram(kd3_expo *e, const char *name, const char *labels, const kd3_hist_read *h);
/* The end: "# EOF" for OpenMetrics. 0, or -1 when the text failed. */
int kd3_expo_finish(kd3_expo *e);

/* in as a label value: backslash, double quote and newline escaped, cut (never in the
 * middle of an escape) to fit out. */
void kd3_expo_escape(const char *in, char *out, size_t cap);

/* The Content-Type of each format. */
#define KD3_EXPO_TYPE_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define KD3_EXPO_TYPE_OM   "application/openmetrics-text; version=1.0.0; charset=utf-8"

#endif
