/* responder: the KDC list, resolved at start and refreshed off the loop (kdcs.h). */
#include "kdcs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "addrs.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "opts.h"
#include "resolve.h"

/* ---- one entry ---------------------------------------------------------------- */

static const char *dns_domain(const char *item)
{
	size_t n = strlen(RESP_KDC_DNS_PREFIX);
	return strncmp(item, RESP_KDC_DNS_PREFIX, n) == 0 ? item + n : NULL;
}

int resp_kdc_entry_check(const char *item, char *err, size_t err_len)
{
	kd3_hostport hp;
	const char *domain = dns_domain(item);
	if (!domain)
		return kd3_hostport_parse(item, KD3_KDC_PORT_DEFAULT, 0, &hp, err, err_len);
	/* A domain is a name without a port: parsed as one, then checked it was. */
	if (kd3_hostport_parse(domain, 1, 0, &hp, err, err_len) != KD3_OK)
		return KD3_E_CONFIG;
	if (hp.literal || strchr(domain, ':')) {
		snprintf(err, err_len, "'%.80s': dns: takes a domain name, without a port", item);
		return KD3_E_CONFIG;
	}
	return KD3_OK;
}

static int is_named(const char *item)
{
	kd3_hostport hp;
	char err[8];
	if (dns_domain(item))
		return 1;
	return kd3_hostport_parse(item, KD3_KDC_PORT_DEFAULT, 0, &hp, err, sizeof(err)) == KD3_OK &&
	       !hp.literal;
}

/* ---- building a list ------------------------------------------------------------ */

static void list_add(resp_kdc_list *l, const kd3_addr *a, size_t n)
{
	for (size_t i = 0; i < n && l->n < RESP_KDC_MAX; i++) {
		int seen = 0;
		for (size_t j = 0; j < l->n && !seen; j++)
			seen = l->addr[j].len == a[i].len &&
			       memcmp(&l->addr[j].ss, &a[i].ss, a[i].len) == 0;
		if (!seen)
			l->addr[l->n++] = a[i];
	}
}

static uint32_t srv_random(void *ctx)
{
	uint32_t v = 0;
	(void)ctx;
	/* Only the order of equal-priority targets: any bits do, and a short read keeps 0. */
	(void)getrandom(&v, sizeof(v), GRND_NONBLOCK);
	return v;
}

/* The targets of one SRV name, in RFC 2782 order, into l. Returns how many addresses
 * were added; when none, why[] says why (the lookup's error naming the name, or that no
 * target resolved: each of those was logged, named). */
static size_t srv_add(resp_kdc_list *l, const char *name, uint32_t *ttl, char *why, size_t why_len)
{
	kd3_srv_target t[KD3_SRV_MAX];
	size_t n = 0, before = l->n;
	uint32_t ttl_s = 0;
	char err[400];
	if (kd3_srv_lookup(name, RESP_KDCS_RESOLVE_MS, t, KD3_SRV_MAX, &n, &ttl_s, why, why_len) !=
	    KD3_OK) {
		kd3_log_debug("KDC SRV %s", why);
		return 0;
	}
	if (*ttl == 0 || ttl_s < *ttl)
		*ttl = ttl_s;
	kd3_srv_order(t, n, srv_random, NULL);
	for (size_t i = 0; i < n && i < RESP_KDCS_SRV_TARGETS; i++) {
		kd3_hostport hp;
		kd3_addr a[KD3_RESOLVE_ADDR_MAX];
		size_t na = 0;
		_Static_assert(sizeof(hp.host) == sizeof(t[i].host), "same host size");
		memcpy(hp.host, t[i].host, sizeof(hp.host));
		hp.port = t[i].port;
		hp.literal = 0;
		if (kd3_resolve(&hp, 0, RESP_KDCS_RESOLVE_MS, a, KD3_RESOLVE_ADDR_MAX, &na, err,
		                sizeof(err)) == KD3_OK)
			list_add(l, a, na);
		else
			kd3_log_error("KDC %s (SRV target of %s): %s", t[i].host, name, err);
	}
	if (l->n == before)
		snprintf(why, why_len, "'%s': no target resolved", name);
	return l->n - before;
}

/* dns:DOMAIN: _kd3._udp first, then _kd3._tcp targets not already in (the KDC serves
 * both on one address, so either set finds it). */
static int domain_add(resp_kdc_list *l, const char *item, const char *domain)
{
	char name[KD3_HOST_MAX + 16];
	char why_udp[400] = "", why_tcp[400] = "";
	size_t added = 0;
	snprintf(name, sizeof(name), "_kd3._udp.%s", domain);
	added += srv_add(l, name, &l->ttl_s, why_udp, sizeof(why_udp));
	snprintf(name, sizeof(name), "_kd3._tcp.%s", domain);
	added += srv_add(l, name, &l->ttl_s, why_tcp, sizeof(why_tcp));
	if (added == 0) { /* each why names its SRV name: NXDOMAIN, ".", no answer... */
		kd3_log_error("KDC %s: no usable SRV record (%s; %s)", item, why_udp, why_tcp);
		return KD3_E_NOT_FOUND;
	}
	return KD3_OK;
}

static int entry_add(resp_kdc_list *l, const char *item)
{
	const char *domain = dns_domain(item);
	kd3_addr a[KD3_RESOLVE_ADDR_MAX];
	size_t n = 0;
	char err[400];
	if (domain)
		return domain_add(l, item, domain);
	int ret = kd3_addrs_resolve("KDC", item, KD3_KDC_PORT_DEFAULT, 0, RESP_KDCS_RESOLVE_MS, a,
	                            KD3_RESOLVE_ADDR_MAX, &n, err, sizeof(err));
	if (ret != KD3_OK) {
		kd3_log_error("%s", err);
		return ret;
	}
	list_add(l, a, n);
	return KD3_OK;
}

/* Every entry in order; *failed counts those that gave nothing. NULL: out of memory. */
static resp_kdc_list *list_build(const kd3_conf_list *items, size_t *failed)
{
	resp_kdc_list *l = calloc(1, sizeof(*l));
	*failed = 0;
	for (size_t i = 0; l && i < items->n; i++)
		if (entry_add(l, items->item[i]) != KD3_OK)
			(*failed)++;
	return l;
}

/* ---- publishing ------------------------------------------------------------------ */

void resp_kdc_list_drop(resp_kdc_list *l)
{
	if (l && --l->refs == 0)
		free(l);
}

resp_kdc_list *resp_kdcs_take(resp_kdcs *k)
{
	k->cur->refs++;
	return k->cur;
}

/* "a, b" of l, logged when it differs from what was logged last (named entries only:
 * a list of IP literals says nothing new). */
static void list_log(resp_kdcs *k, const resp_kdc_list *l)
{
	char now[sizeof(k->shown)];
	if (!k->dynamic)
		return;
	kd3_addrs_format(l->addr, l->n, now, sizeof(now));
	if (strcmp(now, k->shown) == 0)
		return;
	snprintf(k->shown, sizeof(k->shown), "%s", now);
	char from[256] = "";
	for (size_t i = 0, used = 0; i < k->items->n && used + 1 < sizeof(from); i++) {
		int w = snprintf(from + used, sizeof(from) - used, "%s%s", i ? ", " : "",
		                 k->items->item[i]);
		used = w < 0 ? sizeof(from) : used + (size_t)w;
	}
	if (l->ttl_s)
		kd3_log_info("KDCs: %s (resolved from %s; SRV records refreshed in %u s)", now,
		             from, (unsigned)l->ttl_s);
	else
		kd3_log_info("KDCs: %s (resolved from %s)", now, from);
}

static void publish(resp_kdcs *k, resp_kdc_list *l, uint64_t now)
{
	l->refs = 1;
	list_log(k, l);
	for (size_t i = 0; i < l->n; i++) /* a series for each, 0 until it is used */
		(void)resp_metrics_kdc(k->metrics, &l->addr[i]);
	resp_kdc_list_drop(k->cur);
	k->cur = l;
	k->refresh_at_ms = l->ttl_s ? now + (uint64_t)l->ttl_s * 1000u : 0;
}

int resp_kdcs_open(resp_kdcs *k, const kd3_conf_list *items, int epfd, struct resp_metrics *metrics)
{
	int fds[2];
	size_t failed = 0;
	memset(k, 0, sizeof(*k));
	k->items = items;
	k->epfd = epfd;
	k->metrics = metrics;
	k->pipe_wr = -1;
	resp_watch_init(&k->w, RESP_W_RESOLVED, NULL);
	for (size_t i = 0; i < items->n; i++)
		k->dynamic |= is_named(items->item[i]);
	resp_kdc_list *l = list_build(items, &failed);
	if (!l) {
		kd3_log_error("out of memory for the KDC list");
		return KD3_E_NOMEM;
	}
	if (failed || l->n == 0) { /* each failure was logged, naming its entry */
		free(l);
		return KD3_E_NOT_FOUND;
	}
	publish(k, l, kd3_now_ms());
	if (!k->dynamic)
		return KD3_OK;
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
		kd3_log_error("cannot make the KDC refresh pipe: %s", strerror(errno));
		return KD3_E_IO;
	}
	k->w.fd = fds[0];
	k->pipe_wr = fds[1];
	return resp_watch_set(epfd, &k->w, EPOLLIN);
}

/* ---- refreshing, in a thread of its own ----------------------------------------- */

static void *refresh_main(void *arg)
{
	resp_kdcs *k = arg;
	size_t failed = 0;
	resp_kdc_list *l = list_build(k->items, &failed);
	if (l && l->n == 0) {
		free(l);
		l = NULL;
	}
	k->result = l;
	uint8_t one = 1;
	/* The loop reads k->result after this byte (the pipe orders the two). */
	while (write(k->pipe_wr, &one, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void refresh_start(resp_kdcs *k, const char *why)
{
	if (!k->dynamic || k->busy)
		return;
	k->result = NULL;
	if (pthread_create(&k->thread, NULL, refresh_main, k) != 0) {
		kd3_log_error("cannot start the KDC refresh: %s", strerror(errno));
		return;
	}
	k->busy = 1;
	kd3_log_debug("KDC list: resolving again (%s)", why);
}

void resp_kdcs_all_failed(resp_kdcs *k, uint64_t now)
{
	if (now < k->retry_after_ms)
		return;
	k->retry_after_ms = now + RESP_KDCS_RETRY_MS;
	refresh_start(k, "no KDC answered an exchange");
}

void resp_kdcs_on_event(resp_kdcs *k)
{
	uint8_t drain[16];
	while (read(k->w.fd, drain, sizeof(drain)) > 0)
		;
	if (!k->busy)
		return;
	pthread_join(k->thread, NULL);
	k->busy = 0;
	uint64_t now = kd3_now_ms();
	if (k->result) {
		publish(k, k->result, now);
	} else {
		kd3_log_error("KDC list: nothing resolved; keeping the previous list");
		if (k->cur->ttl_s) /* SRV: try again after the shortest TTL we allow */
			k->refresh_at_ms = now + KD3_SRV_TTL_MIN_S * 1000u;
	}
	k->result = NULL;
}

uint64_t resp_kdcs_deadline(const resp_kdcs *k)
{
	return k->busy ? 0 : k->refresh_at_ms;
}

void resp_kdcs_timer(resp_kdcs *k, uint64_t now)
{
	if (k->refresh_at_ms && now >= k->refresh_at_ms && !k->busy) {
		k->refresh_at_ms = 0;
		refresh_start(k, "the SRV records' TTL ran out");
	}
}

void resp_kdcs_close(resp_kdcs *k)
{
	if (k->busy) /* bounded: each lookup has its deadline */
		pthread_join(k->thread, NULL);
	k->busy = 0;
	free(k->result);
	k->result = NULL;
	resp_watch_close(k->epfd, &k->w);
	if (k->pipe_wr >= 0)
		close(k->pipe_wr);
	k->pipe_wr = -1;
	resp_kdc_list_drop(k->cur);
	k->cur = NULL;
}
