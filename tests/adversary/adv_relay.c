/* kd3adv: listening sockets, flows and the poll loop (adv_relay.h). */
#include "adv_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

#define CONNECT_TIMEOUT_MS 2000
#define POLL_SLICE_MS      200
#define MAX_POLL           (3 + 2 * ADV_MAX_TCP_LINKS + ADV_MAX_UDP_FLOWS)

int adv_parse_loopback(const char *text, int listening, struct sockaddr_in *out)
{
	char host[32];
	const char *colon = strchr(text, ':');
	char *end;

	memset(out, 0, sizeof(*out));
	if (!colon || (size_t)(colon - text) >= sizeof(host))
		return -1;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || port > 65535 ||
	    (port == 0 && !listening))
		return -1;
	if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
		return -1;
	if ((ntohl(out->sin_addr.s_addr) >> 24) != 127)
		return -1; /* loopback only: this program attacks nothing else */
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	return 0;
}

static void format_addr(const struct sockaddr_in *a, char *out, size_t out_len)
{
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
	snprintf(out, out_len, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
}

void adv_relay_init(adv_relay *r)
{
	memset(r, 0, sizeof(*r));
	r->tcp_fd = r->kdc_udp_fd = r->kdc_tcp_fd = -1;
}

/* A socket bound to at (port 0: any); its port into *port. -1 on failure. */
static int bound(int type, const struct sockaddr_in *at, uint16_t *port)
{
	struct sockaddr_in got;
	socklen_t len = sizeof(got);
	int one = 1, fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)at, sizeof(*at)) != 0 ||
	    (type == SOCK_STREAM && listen(fd, 64) != 0) ||
	    getsockname(fd, (struct sockaddr *)&got, &len) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	*port = ntohs(got.sin_port);
	return fd;
}

static void say_relay(const char *how, const struct sockaddr_in *at, uint16_t port,
                      const struct sockaddr_in *up, const char *dir)
{
	char a[64], b[64];
	struct sockaddr_in where = *at;
	where.sin_port = htons(port);
	format_addr(&where, a, sizeof(a));
	format_addr(up, b, sizeof(b));
	kd3_log_info("relaying %s %s -> %s (%s)", how, a, b, dir);
}

int adv_relay_tcp(adv_relay *r, const struct sockaddr_in *listen_at, const struct sockaddr_in *up)
{
	uint16_t port;
	r->tcp_fd = bound(SOCK_STREAM, listen_at, &port);
	if (r->tcp_fd < 0) {
		kd3_log_error("--tcp: cannot listen: %s", strerror(errno));
		return -1;
	}
	r->tcp_up = *up;
	say_relay("tcp", listen_at, port, up, "I->R");
	return 0;
}

int adv_relay_kdc(adv_relay *r, const struct sockaddr_in *listen_at, const struct sockaddr_in *up)
{
	/* UDP and TCP on one port, like the KDC: with port 0 the UDP port is taken first
	 * and TCP may find it busy; then both are tried again. */
	for (int tries = 0; tries < 20; tries++) {
		struct sockaddr_in at = *listen_at;
		uint16_t port = 0, tport;
		r->kdc_udp_fd = bound(SOCK_DGRAM, &at, &port);
		if (r->kdc_udp_fd < 0)
			break;
		at.sin_port = htons(port);
		r->kdc_tcp_fd = bound(SOCK_STREAM, &at, &tport);
		if (r->kdc_tcp_fd >= 0) {
			r->kdc_up = *up;
			say_relay("udp+tcp", listen_at, port, up, "R->KDC");
			return 0;
		}
		close(r->kdc_udp_fd);
		r->kdc_udp_fd = -1;
		if (listen_at->sin_port != 0)
			break;
	}
	kd3_log_error("--kdc: cannot listen: %s", strerror(errno));
	return -1;
}

/* A connected socket to up (non-blocking), or -1. */
static int connect_up(int type, const struct sockaddr_in *up)
{
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int err = 0;
	socklen_t len = sizeof(err);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)up, sizeof(*up)) == 0)
		return fd;
	if (errno == EINPROGRESS) {
		struct pollfd p = {fd, POLLOUT, 0};
		if (poll(&p, 1, CONNECT_TIMEOUT_MS) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
			return fd;
	}
	close(fd);
	return -1;
}

static void accept_tcp(adv_relay *r, int lfd, int dir0, const struct sockaddr_in *up)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	int slot = -1;
	for (int i = 0; i < ADV_MAX_TCP_LINKS && slot < 0; i++)
		if (!r->tcp[i].used)
			slot = i;
	int upfd = slot >= 0 ? connect_up(SOCK_STREAM, up) : -1;
	if (upfd < 0) {
		kd3_log_info("%s: %s; connection closed", adv_dir_name(dir0),
		             slot < 0 ? "too many connections" : "cannot reach the upstream");
		close(fd);
		return;
	}
	if (adv_link_open_tcp(&r->tcp[slot], dir0, fd, upfd) != 0)
		kd3_log_error("out of memory: connection closed");
}

/* The flow of a responder's UDP source address, made when new (the idlest one goes
 * when the table is full). NULL when no socket to the KDC can be made. */
static adv_link *udp_flow(adv_relay *r, const struct sockaddr_storage *from, socklen_t len)
{
	adv_link *free_slot = NULL, *idlest = NULL;
	for (int i = 0; i < ADV_MAX_UDP_FLOWS; i++) {
		adv_link *l = &r->udp[i];
		if (l->used && l->s[0].addr_len == len && memcmp(&l->s[0].addr, from, len) == 0)
			return l;
		if (!l->used && !free_slot)
			free_slot = l;
		if (l->used && (!idlest || l->last_ms < idlest->last_ms))
			idlest = l;
	}
	adv_link *l = free_slot ? free_slot : idlest;
	if (!free_slot)
		adv_link_close(l);
	int fd = connect_up(SOCK_DGRAM, &r->kdc_up);
	if (fd < 0)
		return NULL;
	adv_link_open_udp(l, ADV_R2KDC, r->kdc_udp_fd, from, len, fd);
	return l;
}

static void read_udp_listener(adv_relay *r, adv_ctx *ctx, uint64_t now)
{
	static uint8_t buf[ADV_DGRAM_MAX];
	struct sockaddr_storage from;
	socklen_t len = sizeof(from);
	ssize_t n = recvfrom(r->kdc_udp_fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);
	if (n < 0)
		return;
	adv_link *l = udp_flow(r, &from, len);
	if (l)
		adv_link_datagram(ctx, l, 0, buf, (size_t)n, now);
}

static void read_udp_flow(adv_ctx *ctx, adv_link *l, uint64_t now)
{
	static uint8_t buf[ADV_DGRAM_MAX];
	ssize_t n = recv(l->s[1].fd, buf, sizeof(buf), 0);
	if (n >= 0)
		adv_link_datagram(ctx, l, 1, buf, (size_t)n, now);
}

/* What each pollfd stands for. */
typedef struct poll_ref {
	adv_link *link; /* NULL: a listener */
	int side;
	int listener; /* 0 tcp, 1 kdc udp, 2 kdc tcp */
} poll_ref;

static int add_poll(struct pollfd *p, poll_ref *ref, int n, int fd, short ev, poll_ref what)
{
	if (fd < 0 || n >= MAX_POLL)
		return n;
	p[n] = (struct pollfd){fd, ev, 0};
	ref[n] = what;
	return n + 1;
}

/* Sends what is due everywhere, ends idle flows; the poll set for the rest. */
static int prepare(adv_relay *r, uint64_t now, struct pollfd *p, poll_ref *ref, uint64_t *due)
{
	int n = 0;
	n = add_poll(p, ref, n, r->tcp_fd, POLLIN, (poll_ref){NULL, 0, 0});
	n = add_poll(p, ref, n, r->kdc_udp_fd, POLLIN, (poll_ref){NULL, 0, 1});
	n = add_poll(p, ref, n, r->kdc_tcp_fd, POLLIN, (poll_ref){NULL, 0, 2});
	for (int i = 0; i < ADV_MAX_TCP_LINKS; i++) {
		adv_link *l = &r->tcp[i];
		if (l->used)
			adv_link_flush(l, now);
		for (int k = 0; k < 2 && l->used; k++) {
			short ev = adv_link_events(l, k, now, due);
			if (ev)
				n = add_poll(p, ref, n, l->s[k].fd, ev, (poll_ref){l, k, 0});
		}
	}
	for (int i = 0; i < ADV_MAX_UDP_FLOWS; i++) {
		adv_link *l = &r->udp[i];
		if (l->used)
			adv_link_flush(l, now);
		if (l->used && !l->s[0].head && !l->s[1].head && now - l->last_ms > ADV_UDP_IDLE_MS)
			adv_link_close(l);
		if (!l->used)
			continue;
		adv_link_events(l, 0, now, due);
		adv_link_events(l, 1, now, due);
		n = add_poll(p, ref, n, l->s[1].fd, POLLIN, (poll_ref){l, 1, 0});
	}
	return n;
}

static void dispatch(adv_relay *r, adv_ctx *ctx, const struct pollfd *p, const poll_ref *ref, int n,
                     uint64_t now)
{
	for (int i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (!ref[i].link && ref[i].listener == 0)
			accept_tcp(r, r->tcp_fd, ADV_I2R, &r->tcp_up);
		else if (!ref[i].link && ref[i].listener == 1)
			read_udp_listener(r, ctx, now);
		else if (!ref[i].link)
			accept_tcp(r, r->kdc_tcp_fd, ADV_R2KDC, &r->kdc_up);
		else if (ref[i].link->used && ref[i].link->transport == ADV_UDP)
			read_udp_flow(ctx, ref[i].link, now);
		else if (ref[i].link->used && (p[i].revents & (POLLIN | POLLHUP | POLLERR)))
			adv_link_read(ctx, ref[i].link, ref[i].side, now);
	}
}

void adv_relay_run(adv_relay *r, adv_ctx *ctx, uint64_t deadline_ms, volatile sig_atomic_t *stop,
                   volatile sig_atomic_t *disarm)
{
	static struct pollfd p[MAX_POLL];
	static poll_ref ref[MAX_POLL];

	while (!*stop) {
		uint64_t now = kd3_now_ms();
		if (now >= deadline_ms) {
			kd3_log_info("time is up");
			return;
		}
		if (*disarm && !ctx->disarmed) {
			ctx->disarmed = 1;
			kd3_log_info("disarmed (SIGUSR1): every frame goes on unchanged from now");
		}
		uint64_t due =
		    deadline_ms < now + POLL_SLICE_MS ? deadline_ms : now + POLL_SLICE_MS;
		int n = prepare(r, now, p, ref, &due);
		int timeout = due > now ? (int)(due - now) : 0;
		if (poll(p, (nfds_t)n, timeout) > 0)
			dispatch(r, ctx, p, ref, n, kd3_now_ms());
	}
	kd3_log_info("stopping (signal)");
}

void adv_relay_close(adv_relay *r)
{
	for (int i = 0; i < ADV_MAX_TCP_LINKS; i++)
		if (r->tcp[i].used)
			adv_link_close(&r->tcp[i]);
	for (int i = 0; i < ADV_MAX_UDP_FLOWS; i++)
		if (r->udp[i].used)
			adv_link_close(&r->udp[i]);
	int fds[] = {r->tcp_fd, r->kdc_udp_fd, r->kdc_tcp_fd};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	adv_relay_init(r);
}
