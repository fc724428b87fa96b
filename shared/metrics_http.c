/* kd3 metrics endpoint (metrics_http.h) on libmicrohttpd. */
#include "metrics_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "resolve.h"

struct kd3_metrics_http {
	struct MHD_Daemon *daemon;
	kd3_metrics_render_fn fn;
	void *ctx;
	unsigned port;
};

/* ---- the address --------------------------------------------------------------------- */

static int is_loopback(const kd3_addr *a)
{
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
	return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

/* A port alone, or host:port (an IP literal or a name: its first address). The port is
 * checked before any name is looked up, so "nope" is refused without asking DNS. */
int kd3_metrics_addr_parse(const char *text, kd3_addr *a, char *err, size_t len)
{
	char with_host[96], why[320];
	const char *what = text;
	kd3_hostport hp;
	size_t n = 0;

	if (all_digits(text)) { /* a port alone: loopback */
		snprintf(with_host, sizeof(with_host), "127.0.0.1:%.16s", text);
		what = with_host;
	}
	int ret = kd3_hostport_parse(what, 0, 1, &hp, why, sizeof(why));
	if (ret == KD3_OK && hp.port == 0) {
		snprintf(why, sizeof(why), "'%.64s' has no port", text);
		ret = KD3_E_CONFIG;
	}
	if (ret == KD3_OK)
		ret = kd3_resolve(&hp, 1, KD3_RESOLVE_TIMEOUT_MS, a, 1, &n, why, sizeof(why));
	if (ret != KD3_OK) {
		snprintf(err, len, "metrics: %s (a port, or host:port, e.g. 127.0.0.1:9188)", why);
		return KD3_E_USAGE;
	}
	if (!is_loopback(a))
		kd3_log_info(
		    "warning: metrics on %s, not a loopback address: anyone who reaches it "
		    "reads them (no authentication)",
		    text);
	return KD3_OK;
}

/* ---- answers ------------------------------------------------------------------------- */

/* r with its Content-Type, queued; the connection holds it from here. */
static enum MHD_Result send_response(struct MHD_Connection *c, unsigned status,
                                     struct MHD_Response *r, const char *type)
{
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	return send_response(c, status, r, "text/plain; charset=utf-8");
}

/* Whether the scraper asked for OpenMetrics (Prometheus does, first, in its Accept). */
static int wants_openmetrics(struct MHD_Connection *c)
{
	const char *accept =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	return accept && strstr(accept, "application/openmetrics-text") != NULL;
}

static enum MHD_Result reply_metrics(kd3_metrics_http *h, struct MHD_Connection *c)
{
	kd3_expo e;
	kd3_expo_init(&e, wants_openmetrics(c));
	h->fn(h->ctx, &e);
	if (kd3_expo_finish(&e) != 0) {
		kd3_expo_free(&e);
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics: out of memory\n");
	}
	struct MHD_Response *r = MHD_create_response_from_buffer(e.len, e.p, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		kd3_expo_free(&e);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return send_response(c, MHD_HTTP_OK, r,
	                     e.openmetrics ? KD3_EXPO_TYPE_OM : KD3_EXPO_TYPE_TEXT);
}

/* A Content-Length other than 0, or a chunked body. */
static int has_body(struct MHD_Connection *c)
{
	const char *len =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	return (len && strcmp(len, "0") != 0) ||
	       MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/* libmicrohttpd calls this once when the headers are in, then once per piece of body
 * (none is taken) and once at its end. */
static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **state)
{
	static int headers_seen;
	(void)version;
	(void)upload;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	if (*state == NULL) { /* the headers: a body is refused before it is read */
		*state = &headers_seen;
		if (has_body(c))
			return reply_text(c, MHD_HTTP_CONTENT_TOO_LARGE,
			                  "no request body is taken\n");
		return MHD_YES;
	}
	if (*upload_len != 0) /* unannounced body bytes: not taken */
		return MHD_NO;
	if (strcmp(url, "/metrics") != 0)
		return reply_text(c, MHD_HTTP_NOT_FOUND,
		                  "not found: the metrics are at /metrics\n");
	return reply_metrics(cls, c);
}

/* ---- the server ---------------------------------------------------------------------- */

/* Our own listening socket, so that a refusal (address in use) says why. */
static int listen_on(const kd3_addr *addr, unsigned *port, char *err, size_t len)
{
	char shown[64];
	int one = 1;
	kd3_addr_format(addr, shown, sizeof(shown));
	int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
	    bind(fd, (const struct sockaddr *)&addr->ss, addr->len) == 0 && listen(fd, 16) == 0) {
		kd3_addr bound = {.len = sizeof(bound.ss)};
		if (getsockname(fd, (struct sockaddr *)&bound.ss, &bound.len) == 0)
			*port = ntohs(((struct sockaddr_in *)&bound.ss)->sin_port);
		return fd;
	}
	snprintf(err, len, "metrics: cannot listen on %s: %s", shown, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

int kd3_metrics_http_start(kd3_metrics_http **out, const kd3_addr *addr, kd3_metrics_render_fn fn,
                           void *ctx, char *err, size_t len)
{
	/* poll(), not epoll: libmicrohttpd 0.9.75's edge-triggered epoll misses an EOF that
	 * comes with the last bytes, and held such a half-closed client for the whole
	 * timeout. 16 connections at most: poll costs nothing here. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
	kd3_metrics_http *h = calloc(1, sizeof(*h));
	int fd;

	*out = NULL;
	if (!h) {
		snprintf(err, len, "metrics: out of memory");
		return KD3_E_NOMEM;
	}
	h->fn = fn;
	h->ctx = ctx;
	if ((fd = listen_on(addr, &h->port, err, len)) < 0) {
		free(h);
		return KD3_E_IO;
	}
	h->daemon =
	    MHD_start_daemon(flags, 0, NULL, NULL, answer, h, MHD_OPTION_LISTEN_SOCKET, fd,
	                     MHD_OPTION_CONNECTION_LIMIT, (unsigned)KD3_METRICS_CONNS,
	                     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)KD3_METRICS_CONNS_PER_IP,
	                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)KD3_METRICS_TIMEOUT_S,
	                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)KD3_METRICS_REQUEST_MAX,
	                     MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
	if (!h->daemon) {
		/* Not closed here: some of libmicrohttpd's failure paths close it already,
		 * and the descriptor may be another thread's by now. The caller exits. */
		snprintf(err, len, "metrics: the HTTP server (libmicrohttpd) did not start");
		free(h);
		return KD3_E_IO;
	}
	*out = h;
	return KD3_OK;
}

unsigned kd3_metrics_http_port(const kd3_metrics_http *h)
{
	return h->port;
}

void kd3_metrics_http_stop(kd3_metrics_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->daemon); /* closes the listening socket and every connection */
	free(h);
}
