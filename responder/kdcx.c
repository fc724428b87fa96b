#include "kdcx.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "err.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "report.h"
#include "trace.h"

static int kdcx_open_kdc(resp_kdcx *x, int epfd, uint64_t now);

/* ---- KDC health, across sessions (the responder is one thread) -------------------- */

typedef struct kdc_health {
	kd3_addr addr;
	unsigned failures; /* in a row */
	uint64_t retry_ms; /* in backoff until then */
} kdc_health;

/* Twice a list's worth: the list may change (names, SRV) while old records still count. */
#define HEALTH_MAX (2 * RESP_KDC_MAX)
static kdc_health health[HEALTH_MAX];
static size_t nhealth;

static int addr_equal(const kd3_addr *a, const kd3_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* The slot a new record takes when the table is full: one that says nothing (no
 * failure), else the one whose backoff ends first. The table never stops learning, so
 * addresses that DNS rotates through cannot leave a new KDC without a record. */
static kdc_health *health_evict(void)
{
	kdc_health *pick = &health[0];
	for (size_t i = 0; i < nhealth; i++) {
		if (health[i].failures == 0)
			return &health[i];
		if (health[i].retry_ms < pick->retry_ms)
			pick = &health[i];
	}
	return pick;
}

/* The record of a, made on first use. */
static kdc_health *health_of(const kd3_addr *a)
{
	for (size_t i = 0; i < nhealth; i++)
		if (addr_equal(&health[i].addr, a))
			return &health[i];
	kdc_health *h = nhealth < HEALTH_MAX ? &health[nhealth++] : health_evict();
	memset(h, 0, sizeof(*h));
	h->addr = *a;
	return h;
}

static int in_backoff(const kd3_addr *a, uint64_t now)
{
	const kdc_health *h = health_of(a);
	return h && h->retry_ms > now;
}

static void health_failed(resp_kdcx *x, uint64_t now)
{
	kdc_health *h = health_of(&x->kdcs[x->idx]);
	char addr[64];
	if (!h)
		return;
	uint64_t wait = RESP_KDC_BACKOFF_MIN_MS;
	for (unsigned i = 0; i < h->failures && wait < RESP_KDC_BACKOFF_MAX_MS; i++)
		wait *= 2;
	if (wait > RESP_KDC_BACKOFF_MAX_MS)
		wait = RESP_KDC_BACKOFF_MAX_MS;
	h->failures++;
	h->retry_ms = now + wait;
	if (x->nkdcs > 1) {
		resp_kdcx_peer(x, addr, sizeof(addr));
		kd3_log_info("KDC %s: %u failure%s in a row; tried after the others for %llu ms",
		             addr, h->failures, h->failures == 1 ? "" : "s",
		             (unsigned long long)wait);
	}
}

static void health_answered(resp_kdcx *x)
{
	kdc_health *h = x->idx < x->nkdcs ? health_of(&x->kdcs[x->idx]) : NULL;
	char addr[64];
	if (!h || h->failures == 0)
		return;
	if (x->nkdcs > 1) {
		resp_kdcx_peer(x, addr, sizeof(addr));
		kd3_log_info("KDC %s answers again (after %u failure%s)", addr, h->failures,
		             h->failures == 1 ? "" : "s");
	}
	h->failures = 0;
	h->retry_ms = 0;
}

/* This exchange's order: KDCs not in backoff in list order, then the others. */
static void kdcx_plan(resp_kdcx *x, uint64_t now)
{
	size_t n = x->nkdcs < RESP_KDC_MAX ? x->nkdcs : RESP_KDC_MAX;
	x->norder = 0;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++)
			if (in_backoff(&x->kdcs[i], now) == pass)
				x->order[x->norder++] = (uint8_t)i;
	x->pos = 0;
	x->idx = x->norder ? x->order[0] : 0;
}

void resp_kdcx_init(resp_kdcx *x, uint64_t sid, const kd3_addr *kdcs, size_t nkdcs,
                    uint32_t base_ms, void *owner)
{
	memset(x, 0, sizeof(*x));
	x->sid = sid;
	x->kdcs = kdcs;
	x->nkdcs = nkdcs;
	x->base_ms = base_ms;
	resp_watch_init(&x->w, RESP_W_KDC, owner);
}

void resp_kdcx_peer(const resp_kdcx *x, char *out, size_t len)
{
	if (x->idx < x->nkdcs)
		kd3_addr_format(&x->kdcs[x->idx], out, len);
	else
		snprintf(out, len, "?");
}

void resp_kdcx_stop(resp_kdcx *x, int epfd)
{
	resp_watch_close(epfd, &x->w);
	x->state = RESP_KX_IDLE;
	x->deadline = 0;
	x->confirming = 0;
	x->unconfirmed = 0;
	memset(x->udp_error, 0, sizeof(x->udp_error));
	x->udp_error_len = 0;
}

/* TCP could not confirm the UDP ERROR: it is the reply after all. */
static int kdcx_unconfirmed(resp_kdcx *x, int epfd, const char *why)
{
	resp_watch_close(epfd, &x->w);
	x->state = RESP_KX_IDLE;
	x->deadline = 0;
	x->confirming = 0;
	x->unconfirmed = 1;
	snprintf(x->confirm_failed, sizeof(x->confirm_failed), "%s", why);
	memcpy(x->reply, x->udp_error, x->udp_error_len);
	x->reply_len = x->udp_error_len;
	return RESP_KDCX_REPLY;
}

/* This KDC failed: say why, then the next one. */
static int kdcx_next_kdc(resp_kdcx *x, int epfd, uint64_t now, const char *why)
{
	char addr[64];
	if (x->confirming)
		return kdcx_unconfirmed(x, epfd, why);
	resp_kdcx_peer(x, addr, sizeof(addr));
	size_t slot =
	    x->metrics ? resp_metrics_kdc(x->metrics, &x->kdcs[x->idx]) : RESP_METRICS_KDCS;
	if (slot < RESP_METRICS_KDCS)
		kd3_count(&x->metrics->kdc_failed[slot], 1);
	kd3_log_info("session %llu: KDC %s: %s%s", (unsigned long long)x->sid, addr, why,
	             x->pos + 1 < x->norder ? "; trying the next KDC" : "");
	health_failed(x, now);
	resp_watch_close(epfd, &x->w);
	x->pos++;
	return kdcx_open_kdc(x, epfd, now);
}

/* ---- UDP: the same M2 bytes, up to RESP_KDC_UDP_TRIES times ----------------- */

/* The M2 as it leaves, to the trace and the transcript. */
static void kdcx_report_m2(resp_kdcx *x)
{
	char addr[64];
	kd3_trace_frame("R->KDC", x->m2, x->m2_len, x->fs, -1);
	resp_kdcx_peer(x, addr, sizeof(addr));
	resp_report_frame_to_kdc(x, addr);
}

static int udp_send(resp_kdcx *x)
{
	kdcx_report_m2(x);
	ssize_t n = send(x->w.fd, x->m2, x->m2_len, MSG_NOSIGNAL);
	return n == (ssize_t)x->m2_len ? KD3_OK : KD3_E_IO;
}

static int udp_open(resp_kdcx *x, int epfd, uint64_t now)
{
	const kd3_addr *a = &x->kdcs[x->idx];
	int fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return KD3_E_IO;
	x->w.fd = fd;
	/* Connected: the kernel drops datagrams from anyone but this KDC. */
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0 ||
	    resp_watch_set(epfd, &x->w, EPOLLIN) != KD3_OK || udp_send(x) != KD3_OK) {
		resp_watch_close(epfd, &x->w);
		return KD3_E_IO;
	}
	x->state = RESP_KX_UDP;
	x->udp_tries = 1;
	x->wait_ms = x->base_ms;
	x->deadline = now + x->wait_ms;
	return KD3_OK;
}

/* ---- TCP: one attempt, bounded by RESP_KDC_TCP_TIMEOUT_MS ----------------------- */

static int tcp_open(resp_kdcx *x, int epfd, uint64_t now)
{
	const kd3_addr *a = &x->kdcs[x->idx];
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return KD3_E_IO;
	x->w.fd = fd;
	if ((connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0 && errno != EINPROGRESS) ||
	    resp_watch_set(epfd, &x->w, EPOLLOUT) != KD3_OK) {
		resp_watch_close(epfd, &x->w);
		return KD3_E_IO;
	}
	x->state = RESP_KX_TCP_CONNECT;
	x->tcp_sent = 0;
	x->tcp_got = 0;
	x->deadline = now + RESP_KDC_TCP_TIMEOUT_MS;
	return KD3_OK;
}

/* After UDP gave up: TCP to the same KDC, else the next KDC. */
static int kdcx_udp_failed(resp_kdcx *x, int epfd, uint64_t now, const char *why)
{
	char addr[64];
	resp_kdcx_peer(x, addr, sizeof(addr));
	kd3_log_info("session %llu: KDC %s: %s; trying TCP", (unsigned long long)x->sid, addr, why);
	resp_watch_close(epfd, &x->w);
	if (tcp_open(x, epfd, now) == KD3_OK)
		return RESP_KDCX_PENDING;
	return kdcx_next_kdc(x, epfd, now, "cannot open a TCP socket");
}

static int kdcx_open_kdc(resp_kdcx *x, int epfd, uint64_t now)
{
	for (; x->pos < x->norder; x->pos++) {
		x->idx = x->order[x->pos];
		if (udp_open(x, epfd, now) == KD3_OK || tcp_open(x, epfd, now) == KD3_OK)
			return RESP_KDCX_PENDING;
	}
	x->state = RESP_KX_IDLE;
	x->deadline = 0;
	return RESP_KDCX_FAILED;
}

int resp_kdcx_start(resp_kdcx *x, int epfd, uint64_t now)
{
	kdcx_plan(x, now);
	x->started_ms = now;
	x->confirming = x->unconfirmed = 0;
	return kdcx_open_kdc(x, epfd, now);
}

int resp_kdcx_over_udp(const resp_kdcx *x)
{
	return x->state == RESP_KX_UDP;
}

int resp_kdcx_confirm(resp_kdcx *x, int epfd, uint64_t now)
{
	memcpy(x->udp_error, x->reply, x->reply_len);
	x->udp_error_len = x->reply_len;
	x->confirming = 1;
	x->unconfirmed = 0;
	resp_watch_close(epfd, &x->w);
	if (tcp_open(x, epfd, now) != KD3_OK)
		return kdcx_unconfirmed(x, epfd, "cannot open a TCP socket");
	return RESP_KDCX_PENDING;
}

/* One datagram: exactly one whole frame, or it is ignored. */
static int udp_read(resp_kdcx *x, int epfd, uint64_t now)
{
	ssize_t n = recv(x->w.fd, x->reply, sizeof(x->reply), MSG_TRUNC);

	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return RESP_KDCX_PENDING;
		if (errno == ECONNREFUSED)
			return kdcx_udp_failed(x, epfd, now, "UDP port unreachable");
		return kdcx_udp_failed(x, epfd, now, strerror(errno));
	}
	if ((size_t)n > sizeof(x->reply) || kd3_frame_size(x->reply, (size_t)n) != n) {
		kd3_log_debug("session %llu: ignored a %zd-byte datagram from the KDC",
		              (unsigned long long)x->sid, n);
		return RESP_KDCX_PENDING;
	}
	x->reply_len = (size_t)n;
	health_answered(x);
	return RESP_KDCX_REPLY;
}

static int tcp_connected(resp_kdcx *x, int epfd, uint64_t now)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (getsockopt(x->w.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
		soerr = errno;
	if (soerr != 0)
		return kdcx_next_kdc(x, epfd, now, strerror(soerr));
	x->state = RESP_KX_TCP_IO;
	return RESP_KDCX_PENDING;
}

static int tcp_write(resp_kdcx *x, int epfd, uint64_t now)
{
	if (x->tcp_sent == 0)
		kdcx_report_m2(x);
	ssize_t n = send(x->w.fd, x->m2 + x->tcp_sent, x->m2_len - x->tcp_sent, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return RESP_KDCX_PENDING;
	if (n <= 0)
		return kdcx_next_kdc(x, epfd, now, n < 0 ? strerror(errno) : "connection closed");
	x->tcp_sent += (size_t)n;
	if (x->tcp_sent == x->m2_len && resp_watch_set(epfd, &x->w, EPOLLIN) != KD3_OK)
		return kdcx_next_kdc(x, epfd, now, "epoll failed");
	return RESP_KDCX_PENDING;
}

/* Gathers one whole frame (at most RESP_KDC_REPLY_MAX bytes) from the stream. */
static int tcp_read(resp_kdcx *x, int epfd, uint64_t now)
{
	ssize_t n = recv(x->w.fd, x->reply + x->tcp_got, sizeof(x->reply) - x->tcp_got, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return RESP_KDCX_PENDING;
	if (n <= 0)
		return kdcx_next_kdc(x, epfd, now,
		                     n < 0 ? strerror(errno)
		                           : "TCP connection closed without a reply");
	x->tcp_got += (size_t)n;
	long need = kd3_frame_size(x->reply, x->tcp_got);
	if (need < 0 || (size_t)need > sizeof(x->reply))
		return kdcx_next_kdc(x, epfd, now, "TCP reply is not a kd3 reply");
	if (need == 0 || (size_t)need > x->tcp_got)
		return RESP_KDCX_PENDING;
	x->reply_len = (size_t)need;
	health_answered(x);
	return RESP_KDCX_REPLY;
}

int resp_kdcx_on_io(resp_kdcx *x, int epfd, uint32_t events, uint64_t now)
{
	switch (x->state) {
	case RESP_KX_UDP:
		return udp_read(x, epfd, now);
	case RESP_KX_TCP_CONNECT: {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return RESP_KDCX_PENDING;
		int r = tcp_connected(x, epfd, now);
		if (r != RESP_KDCX_PENDING || x->state != RESP_KX_TCP_IO)
			return r; /* failed over to another KDC, or to none */
		return tcp_write(x, epfd, now);
	}
	case RESP_KX_TCP_IO:
		if (x->tcp_sent < x->m2_len)
			return tcp_write(x, epfd, now);
		return tcp_read(x, epfd, now);
	default:
		return RESP_KDCX_PENDING;
	}
}

int resp_kdcx_on_timer(resp_kdcx *x, int epfd, uint64_t now)
{
	if (x->state == RESP_KX_IDLE || now < x->deadline)
		return RESP_KDCX_PENDING;
	if (x->state != RESP_KX_UDP)
		return kdcx_next_kdc(x, epfd, now, "no answer over TCP");
	if (x->udp_tries >= RESP_KDC_UDP_TRIES)
		return kdcx_udp_failed(x, epfd, now, "no answer over UDP");
	/* Retransmit the same bytes: the KDC's lookaside cache answers the same M3. */
	kd3_log_debug("session %llu: retransmitting M2 (try %u)", (unsigned long long)x->sid,
	              x->udp_tries + 1);
	if (udp_send(x) != KD3_OK && errno == ECONNREFUSED)
		return kdcx_udp_failed(x, epfd, now, "UDP port unreachable");
	x->udp_tries++;
	x->wait_ms *= 2;
	x->deadline = now + x->wait_ms;
	return RESP_KDCX_PENDING;
}

int resp_kdcx_reject(resp_kdcx *x, int epfd, uint64_t now)
{
	if (x->state == RESP_KX_UDP)
		return RESP_KDCX_PENDING;
	return kdcx_next_kdc(x, epfd, now, "TCP reply not for this exchange");
}
