/* responder metrics (metrics.h): the text on a scrape. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "events.h"

void resp_metrics_end(resp_metrics *m, int err)
{
	int known =
	    err > 0 && err < RESP_CAUSES && strcmp(kd3_events_err_name(err), "UNKNOWN") != 0;
	if (err == KD3_OK)
		kd3_count(&m->closed, 1);
	else
		kd3_count(&m->failed[known ? err : 0], 1); /* 0: shown as UNKNOWN */
}

/* Two samples of one family, labelled direction="in" and "out". */
static void each_way(kd3_expo *e, const char *name, const char *help, const kd3_counter *in,
                     const kd3_counter *out)
{
	kd3_expo_family(e, name, "counter", help);
	kd3_expo_counter(e, name, "direction=\"in\"", kd3_counter_get(in));
	kd3_expo_counter(e, name, "direction=\"out\"", kd3_counter_get(out));
}

static void render_sessions(const resp_metrics *m, kd3_expo *e)
{
	char labels[64];
	kd3_expo_counter_one(e, "kd3_responder_sessions_accepted",
	                     "Connections accepted as sessions.", kd3_counter_get(&m->accepted));
	kd3_expo_counter_one(e, "kd3_responder_sessions_refused",
	                     "Connections refused with ERROR BUSY: max-sessions open.",
	                     kd3_counter_get(&m->refused));
	kd3_expo_gauge_one(e, "kd3_responder_sessions_open", "Sessions open now.",
	                   (double)kd3_counter_get(&m->open));
	kd3_expo_counter_one(e, "kd3_responder_sessions_established",
	                     "Sessions whose initiator's FINISHED was verified.",
	                     kd3_counter_get(&m->established));
	kd3_expo_counter_one(e, "kd3_responder_sessions_closed", "Sessions that ended cleanly.",
	                     kd3_counter_get(&m->closed));
	kd3_expo_family(e, "kd3_responder_sessions_failed", "counter",
	                "Sessions that ended with an error, by its name (kd3 error codes).");
	for (int err = 1; err < RESP_CAUSES; err++) {
		const char *name = kd3_events_err_name(err);
		if (strcmp(name, "UNKNOWN") == 0)
			continue;
		snprintf(labels, sizeof(labels), "cause=\"%s\"", name);
		kd3_expo_counter(e, "kd3_responder_sessions_failed", labels,
		                 kd3_counter_get(&m->failed[err]));
	}
	kd3_expo_counter(e, "kd3_responder_sessions_failed", "cause=\"UNKNOWN\"",
	                 kd3_counter_get(&m->failed[0]));
	kd3_hist_read h;
	memset(&h, 0, sizeof(h));
	kd3_hist_add_to(&m->handshake, &h);
	kd3_expo_family(e, "kd3_responder_handshake_duration_seconds", "histogram",
	                "From accepting the connection to verifying the initiator's FINISHED.");
	kd3_expo_histogram(e, "kd3_responder_handshake_duration_seconds", "", &h);
}

size_t resp_metrics_kdc(resp_metrics *m, const kd3_addr *a)
{
	size_t n = atomic_load_explicit(&m->nkdc_addr, memory_order_relaxed); /* our own */
	for (size_t i = 0; i < n; i++)
		if (m->kdc_addr[i].len == a->len && memcmp(&m->kdc_addr[i].ss, &a->ss, a->len) == 0)
			return i;
	if (n == RESP_METRICS_KDCS - 1) {
		atomic_store_explicit(&m->kdc_other, 1, memory_order_relaxed);
		return RESP_METRICS_KDCS - 1;
	}
	m->kdc_addr[n] = *a;
	atomic_store_explicit(&m->nkdc_addr, n + 1, memory_order_release);
	return n;
}

static void render_kdcs(const resp_metrics_view *v, kd3_expo *e)
{
	size_t n = atomic_load_explicit(&v->m->nkdc_addr, memory_order_acquire);
	char addr[64], shown[RESP_METRICS_KDCS][160], labels[200];

	for (size_t i = 0; i < n; i++) {
		kd3_addr_format(&v->m->kdc_addr[i], addr, sizeof(addr));
		kd3_expo_escape(addr, shown[i], sizeof(shown[i]));
	}
	if (atomic_load_explicit(&v->m->kdc_other, memory_order_relaxed))
		snprintf(shown[n++], sizeof(shown[0]), "other"); /* n was at most the last slot */
	kd3_expo_family(e, "kd3_responder_kdc_answers", "counter",
	                "Answers from each KDC, by kind (M3 or ERROR).");
	for (size_t i = 0; i < n; i++) {
		snprintf(labels, sizeof(labels), "kdc=\"%.159s\",kind=\"M3\"", shown[i]);
		kd3_expo_counter(e, "kd3_responder_kdc_answers", labels,
		                 kd3_counter_get(&v->m->kdc_m3[i]));
		snprintf(labels, sizeof(labels), "kdc=\"%.159s\",kind=\"ERROR\"", shown[i]);
		kd3_expo_counter(e, "kd3_responder_kdc_answers", labels,
		                 kd3_counter_get(&v->m->kdc_error[i]));
	}
	kd3_expo_family(e, "kd3_responder_kdc_failovers", "counter",
	                "Times a KDC gave no usable answer (no reply over UDP and TCP, refused, "
	                "closed) and the exchange moved on.");
	for (size_t i = 0; i < n; i++) {
		snprintf(labels, sizeof(labels), "kdc=\"%.159s\"", shown[i]);
		kd3_expo_counter(e, "kd3_responder_kdc_failovers", labels,
		                 kd3_counter_get(&v->m->kdc_failed[i]));
	}
}

void resp_metrics_render(void *view, kd3_expo *e)
{
	const resp_metrics_view *v = view;
	const resp_metrics *m = v->m;
	render_sessions(m, e);
	render_kdcs(v, e);
	each_way(e, "kd3_responder_records", "Messages (DATA records), received and sent.",
	         &m->records_in, &m->records_out);
	each_way(e, "kd3_responder_bytes", "Payload bytes of those messages.", &m->bytes_in,
	         &m->bytes_out);
	each_way(e, "kd3_responder_key_updates",
	         "KEY_UPDATEs: the initiator's received, ours sent.", &m->key_updates_in,
	         &m->key_updates_out);
	kd3_expo_gauge_one(e, "kd3_responder_start_time_seconds",
	                   "When the responder started (Unix time).", (double)v->started);
}
