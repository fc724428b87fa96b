/* kd3 openmetrics (openmetrics.h): histograms and the exposition text. */
#include "openmetrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint64_t kd3_hist_bounds_us[KD3_HIST_BOUNDS] = {
    10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 100000, 1000000,
};

/* The same bounds as the exposition writes them, in seconds. */
static const char *const bound_text[KD3_HIST_BOUNDS] = {
    "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005",
    "0.001", "0.0025",  "0.005", "0.01",   "0.1",     "1.0",
};

void kd3_hist_observe(kd3_histogram *h, uint64_t us)
{
	size_t i = 0;
	while (i < KD3_HIST_BOUNDS && us > kd3_hist_bounds_us[i])
		i++;
	kd3_count(&h->bucket[i], 1);
	kd3_count(&h->sum_us, us);
}

void kd3_hist_add_to(const kd3_histogram *h, kd3_hist_read *sum)
{
	for (size_t i = 0; i <= KD3_HIST_BOUNDS; i++)
		sum->bucket[i] += kd3_counter_get(&h->bucket[i]);
	sum->sum_us += kd3_counter_get(&h->sum_us);
}

/* ---- the exposition ----------------------------------------------------------------- */

void kd3_expo_init(kd3_expo *e, int openmetrics)
{
	memset(e, 0, sizeof(*e));
	e->openmetrics = openmetrics;
}

void kd3_expo_free(kd3_expo *e)
{
	free(e->p);
	memset(e, 0, sizeof(*e));
}

static int expo_room(kd3_expo *e, size_t more)
{
	if (e->failed)
		return 0;
	if (e->len + more + 1 <= e->cap)
		return 1;
	size_t cap = e->cap ? e->cap : 16384;
	while (cap < e->len + more + 1)
		cap *= 2;
	char *p = cap <= KD3_EXPO_MAX ? realloc(e->p, cap) : NULL;
	if (!p) {
		e->failed = 1;
		return 0;
	}
	e->p = p;
	e->cap = cap;
	return 1;
}

static void expo_printf(kd3_expo *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void expo_printf(kd3_expo *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !expo_room(e, (size_t)n)) {
		e->failed = 1;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(e->p + e->len, e->cap - e->len, fmt, ap);
	va_end(ap);
	e->len += (size_t)n;
}

/* Prometheus 0.0.4 names a counter family by its samples (NAME_total); OpenMetrics by
 * the name without the suffix. */
void kd3_expo_family(kd3_expo *e, const char *name, const char *type, const char *help)
{
	const char *total = !e->openmetrics && strcmp(type, "counter") == 0 ? "_total" : "";
	expo_printf(e, "# HELP %s%s %s\n# TYPE %s%s %s\n", name, total, help, name, total, type);
}

static void expo_sample(kd3_expo *e, const char *name, const char *suffix, const char *labels,
                        const char *value)
{
	if (labels && labels[0])
		expo_printf(e, "%s%s{%s} %s\n", name, suffix, labels, value);
	else
		expo_printf(e, "%s%s %s\n", name, suffix, value);
}

void kd3_expo_counter(kd3_expo *e, const char *name, const char *labels, uint64_t v)
{
	char text[24];
	snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
	expo_sample(e, name, "_total", labels, text);
}

void kd3_expo_gauge(kd3_expo *e, const char *name, const char *labels, double v)
{
	char text[40];
	snprintf(text, sizeof(text), "%.15g", v);
	expo_sample(e, name, "", labels, text);
}

void kd3_expo_counter_one(kd3_expo *e, const char *name, const char *help, uint64_t v)
{
	kd3_expo_family(e, name, "counter", help);
	kd3_expo_counter(e, name, "", v);
}

void kd3_expo_gauge_one(kd3_expo *e, const char *name, const char *help, double v)
{
	kd3_expo_family(e, name, "gauge", help);
	kd3_expo_gauge(e, name, "", v);
}

void kd3_expo_histogram(kd3_expo *e, const char *name, const char *labels, const kd3_hist_read *h)
{
	char le[160], text[40];
	const char *comma = labels && labels[0] ? "," : "";
	uint64_t sum = 0;

	for (size_t i = 0; i <= KD3_HIST_BOUNDS; i++) {
		sum += h->bucket[i];
		snprintf(le, sizeof(le), "%s%sle=\"%s\"", labels ? labels : "", comma,
		         i < KD3_HIST_BOUNDS ? bound_text[i] : "+Inf");
		snprintf(text, sizeof(text), "%llu", (unsigned long long)sum);
		expo_sample(e, name, "_bucket", le, text);
	}
	snprintf(text, sizeof(text), "%llu", (unsigned long long)sum);
	expo_sample(e, name, "_count", labels, text);
	snprintf(text, sizeof(text), "%.6f", (double)h->sum_us / 1e6);
	expo_sample(e, name, "_sum", labels, text);
}

int kd3_expo_finish(kd3_expo *e)
{
	if (e->openmetrics)
		expo_printf(e, "# EOF\n");
	if (!e->failed && !e->p) /* an empty text is still a text */
		(void)expo_room(e, 0);
	if (e->failed)
		return -1;
	e->p[e->len] = '\0';
	return 0;
}

void kd3_expo_escape(const char *in, char *out, size_t cap)
{
	size_t at = 0;
	if (cap == 0)
		return;
	for (; *in; in++) {
		const char *esc = *in == '\\'   ? "\\\\"
		                  : *in == '"'  ? "\\\""
		                  : *in == '\n' ? "\\n"
		                                : NULL;
		size_t need = esc ? 2 : 1;
		if (at + need >= cap)
			break;
		if (esc) {
			out[at++] = esc[0];
			out[at++] = esc[1];
		} else {
			out[at++] = *in;
		}
	}
	out[at] = '\0';
}
