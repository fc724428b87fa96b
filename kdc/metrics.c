/* kdc metrics (metrics.h): counting on the request path, the text on a scrape. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "net.h"
#include "ratelimit.h"

static const char *const transport_name[KDC_MT_TRANSPORTS] = {"udp", "tcp"};

static int outcome_index(int err)
{
	if (err == KD3_OK)
		return 0;
	return kd3_err_is_wire(err) ? err : KDC_MO_OTHER;
}

static const char *outcome_label(int i)
{
	if (i == 0)
		return "OK";
	return i == KDC_MO_OTHER ? "OTHER" : kd3_err_wire_name(i);
}

void kdc_metrics_request(kdc_metrics *m, const char *transport, int err, int replied, int cached,
                         uint64_t us)
{
	int t = kdc_metrics_transport(transport);
	kd3_count(&m->requests[t][outcome_index(err)], 1);
	if (!replied)
		kd3_count(&m->unanswered[t], 1);
	if (cached)
		kd3_count(&m->cache_hits, 1);
	kd3_hist_observe(&m->latency[t], us);
}

/* ---- the scrape ---------------------------------------------------------------------- */

static const kdc_metrics *worker_at(const kdc_metrics_view *v, size_t i)
{
	return (const kdc_metrics *)((const char *)v->first + i * v->stride);
}

/* One counter summed over the workers: the member at offset off of each. */
static uint64_t sum_at(const kdc_metrics_view *v, size_t off)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < v->nworkers; i++)
		sum += kd3_counter_get((const kd3_counter *)((const char *)worker_at(v, i) + off));
	return sum;
}

#define SUM(v, member) sum_at((v), offsetof(kdc_metrics, member))

static void render_requests(const kdc_metrics_view *v, kd3_expo *e)
{
	char labels[64];
	kd3_expo_family(e, "kd3_kdc_requests", "counter",
	                "Requests handled, by transport and outcome (OK, an ERROR code, or OTHER: "
	                "refused unanswered).");
	for (int t = 0; t < KDC_MT_TRANSPORTS; t++)
		for (int o = 0; o < KDC_MO_OUTCOMES; o++) {
			snprintf(labels, sizeof(labels), "transport=\"%s\",outcome=\"%s\"",
			         transport_name[t], outcome_label(o));
			kd3_expo_counter(e, "kd3_kdc_requests", labels, SUM(v, requests[t][o]));
		}
	kd3_expo_family(e, "kd3_kdc_requests_unanswered", "counter",
	                "Requests that got no reply (too short or malformed to answer).");
	for (int t = 0; t < KDC_MT_TRANSPORTS; t++) {
		snprintf(labels, sizeof(labels), "transport=\"%s\"", transport_name[t]);
		kd3_expo_counter(e, "kd3_kdc_requests_unanswered", labels, SUM(v, unanswered[t]));
	}
	kd3_expo_family(e, "kd3_kdc_request_duration_seconds", "histogram",
	                "Time to handle a request, from its arrival to its reply.");
	for (int t = 0; t < KDC_MT_TRANSPORTS; t++) {
		kd3_hist_read h;
		memset(&h, 0, sizeof(h));
		for (size_t i = 0; i < v->nworkers; i++)
			kd3_hist_add_to(&worker_at(v, i)->latency[t], &h);
		snprintf(labels, sizeof(labels), "transport=\"%s\"", transport_name[t]);
		kd3_expo_histogram(e, "kd3_kdc_request_duration_seconds", labels, &h);
	}
}

/* Buckets empty now, scanned at most once a second. */
static size_t rate_limited_sources(kdc_metrics_view *v)
{
	uint32_t rate = (uint32_t)kd3_counter_get(&v->reload->rate_limit);
	uint32_t burst = (uint32_t)kd3_counter_get(&v->reload->rate_burst);
	uint64_t now = kd3_now_ms();
	if (!rate)
		return 0;
	if (v->empty_at_ms == 0 || now - v->empty_at_ms >= 1000) {
		v->empty = kdc_ratelimit_empty(v->ratelimit, rate, burst, now);
		v->empty_at_ms = now;
	}
	return v->empty;
}

static void render_guards(kdc_metrics_view *v, kd3_expo *e)
{
	kd3_expo_counter_one(e, "kd3_kdc_cache_hits", "M3s answered from the lookaside cache.",
	                     SUM(v, cache_hits));
	kd3_expo_counter_one(e, "kd3_kdc_rate_limited_requests",
	                     "Requests answered BUSY for their source's rate limit.",
	                     SUM(v, rate_limited));
	size_t empty = rate_limited_sources(v);
	kd3_expo_gauge_one(e, "kd3_kdc_rate_limited_sources",
	                   "Sources (rate-limit buckets) whose next request would get BUSY now.",
	                   (double)empty);
	kd3_expo_counter_one(e, "kd3_kdc_lockout_refused_requests",
	                     "Requests refused because a principal was locked out.",
	                     SUM(v, lockout_refused));
	kd3_expo_counter_one(e, "kd3_kdc_lockouts",
	                     "Principals locked out after failed authentications.",
	                     SUM(v, lockouts));
}

static void render_tcp(const kdc_metrics_view *v, kd3_expo *e)
{
	kd3_expo_counter_one(e, "kd3_kdc_tcp_connections_accepted", "TCP connections accepted.",
	                     SUM(v, tcp_accepted));
	kd3_expo_counter_one(e, "kd3_kdc_tcp_connections_refused",
	                     "TCP connections refused: max-conns reached, or out of descriptors.",
	                     SUM(v, tcp_refused));
	kd3_expo_gauge_one(e, "kd3_kdc_tcp_connections_open", "TCP connections open now.",
	                   (double)SUM(v, tcp_open));
}

static void render_snapshot(const kdc_metrics_view *v, kd3_expo *e)
{
	const kdc_reload_gauges *g = v->reload;
	int64_t loaded = (int64_t)kd3_counter_get(&g->loaded_at), now = (int64_t)time(NULL);
	kd3_expo_gauge_one(e, "kd3_kdc_snapshot_generation",
	                   "Snapshots of the database published since start (1: the first).",
	                   (double)kd3_counter_get(&g->generation));
	kd3_expo_gauge_one(e, "kd3_kdc_snapshot_age_seconds",
	                   "Seconds since the snapshot in force was read from the database.",
	                   (double)(now > loaded ? now - loaded : 0));
	kd3_expo_gauge_one(e, "kd3_kdc_principals", "Principals in the snapshot in force.",
	                   (double)kd3_counter_get(&g->principals));
	kd3_expo_gauge_one(e, "kd3_kdc_keys", "Key versions in the snapshot in force.",
	                   (double)kd3_counter_get(&g->keys));
	kd3_expo_gauge_one(e, "kd3_kdc_database_ok",
	                   "1 when the last look at the database could read it.",
	                   (double)kd3_counter_get(&g->database_ok));
	kd3_expo_counter_one(e, "kd3_kdc_reload_failures",
	                     "Reloads that failed (the snapshot in force kept serving).",
	                     kd3_counter_get(&g->reload_failures));
	kd3_expo_gauge_one(e, "kd3_kdc_workers", "Worker threads serving requests.",
	                   (double)v->nworkers);
	kd3_expo_gauge_one(e, "kd3_kdc_start_time_seconds", "When kdc serve started (Unix time).",
	                   (double)v->started);
}

void kdc_metrics_render(void *view, kd3_expo *e)
{
	kdc_metrics_view *v = view;
	render_requests(v, e);
	render_guards(v, e);
	render_tcp(v, e);
	render_snapshot(v, e);
}
