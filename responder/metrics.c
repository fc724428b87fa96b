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

static void counter_family(kd3_expo *e, const char *name, const char *help, const kd3_counter *c)
{
	kd3_expo_family(e, name, "counter", help);
	kd3_expo_counter(e, name, "", kd3_counter_get(c));
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
	counter_family(e, "kd3_responder_sessions_accepted", "Connections accepted as sessions.",
	               &m->accepted);
	counter_family(e, "kd3_responder_sessions_refused",
	               "Connections refused with ERROR BUSY: max-sessions open.", &m->refused);
	kd3_expo_family(e, "kd3_responder_sessions_open", "gauge", "Sessions open now.");
	kd3_expo_gauge(e, "kd3_responder_sessions_open", "", (double)kd3_counter_get(&m->open));
	counter_family(e, "kd3_responder_sessions_established",
	               "Sessions whose initiator's FINISHED was verified.", &m->established);
	counter_family(e, "kd3_responder_sessions_closed", "Sessions that ended cleanly.",
	               &m->closed);
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

static void render_kdcs(const resp_metrics_view *v, kd3_expo *e)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} families[] = {
	    {"kd3_responder_kdc_answers", "Answers from each KDC, by kind (M3 or ERROR).", 0},
	    {"kd3_responder_kdc_failovers",
	     "Times a KDC gave no usable answer (no reply over UDP and TCP, refused, closed) "
	     "and the exchange moved on.",
	     offsetof(resp_metrics, kdc_failed)},
	};
	size_t n = v->nkdcs < RESP_KDC_MAX ? v->nkdcs : RESP_KDC_MAX;
	char addr[64], shown[160], labels[200];
	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		kd3_expo_family(e, families[f].name, "counter", families[f].help);
		for (size_t i = 0; i < n; i++) {
			kd3_addr_format(&v->kdcs[i], addr, sizeof(addr));
			kd3_expo_escape(addr, shown, sizeof(shown));
			if (f == 0) {
				snprintf(labels, sizeof(labels), "kdc=\"%s\",kind=\"M3\"", shown);
				kd3_expo_counter(e, families[f].name, labels,
				                 kd3_counter_get(&v->m->kdc_m3[i]));
				snprintf(labels, sizeof(labels), "kdc=\"%s\",kind=\"ERROR\"",
				         shown);
				kd3_expo_counter(e, families[f].name, labels,
				                 kd3_counter_get(&v->m->kdc_error[i]));
			} else {
				snprintf(labels, sizeof(labels), "kdc=\"%s\"", shown);
				kd3_expo_counter(e, families[f].name, labels,
				                 kd3_counter_get(&v->m->kdc_failed[i]));
			}
		}
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
	kd3_expo_family(e, "kd3_responder_start_time_seconds", "gauge",
	                "When the responder started (Unix time).");
	kd3_expo_gauge(e, "kd3_responder_start_time_seconds", "", (double)v->started);
}
