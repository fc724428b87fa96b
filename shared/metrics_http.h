/* kd3 metrics endpoint: GET /metrics over plain HTTP, served by libmicrohttpd on its
 * own thread, far from any request path.
 *
 * Bounded: at most KD3_METRICS_CONNS connections (KD3_METRICS_CONNS_PER_IP from one
 * address), KD3_METRICS_REQUEST_MAX bytes of request (line and headers), no request
 * body, KD3_METRICS_TIMEOUT_S of idleness before a connection is closed. GET and HEAD
 * of /metrics only: 404 for any other path, 405 for any other method, 413 for a body.
 * The text is OpenMetrics 1.0 when the Accept header asks for
 * application/openmetrics-text, else Prometheus text 0.0.4. */
#ifndef KD3_METRICS_HTTP_H
#define KD3_METRICS_HTTP_H

#include <stddef.h>

#include "openmetrics.h"
#include "net.h"

#define KD3_METRICS_CONNS        16
#define KD3_METRICS_CONNS_PER_IP 4
#define KD3_METRICS_REQUEST_MAX  8192
#define KD3_METRICS_TIMEOUT_S    5

/* Writes every family into e (the server finishes it). */
typedef void (*kd3_metrics_render_fn)(void *ctx, kd3_expo *e);

typedef struct kd3_metrics_http kd3_metrics_http;

/* "PORT" (127.0.0.1:PORT), "IP:PORT", "[IPv6]:PORT" or "NAME:PORT" (the name's first
 * address, e.g. localhost:9188); KD3_E_USAGE with err for a bad one. An address that is not a
 * loopback one is taken with a warning line: the endpoint has no authentication. */
int kd3_metrics_addr_parse(const char *text, kd3_addr *a, char *err, size_t len);

/* Listening on addr; fn(ctx, ...) renders each scrape on the server's thread. */
int kd3_metrics_http_start(kd3_metrics_http **out, const kd3_addr *addr, kd3_metrics_render_fn fn,
                           void *ctx, char *err, size_t len);
/* The port it listens on (with port 0 asked: the one the kernel chose). */
unsigned kd3_metrics_http_port(const kd3_metrics_http *h);
/* Stops the thread, closes every connection; NULL is fine. */
void kd3_metrics_http_stop(kd3_metrics_http *h);

#endif
