/* responder: the KDC list, resolved at start and refreshed off the loop (kdcs.h). */
#include "kdcs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* ---- resolving an entry ---------------------------------------------------------- */

/* One resolution: its deadline for the whole list, and the close's stop flag. */
typedef struct resolving {
	uint64_t deadline_ms;
	_Atomic int *stop;
} resolving;

/* The bound for the next lookup: RESP_KDCS_RESOLVE_MS, or what is left; 0 when the
 * time is up or the responder is closing. */
static int time_left(const resolving *r)
{
	uint64_t now = kd3_now_ms();
	if (atomic_load(r->stop) || now >= r->deadline_ms)
		return 0;
	uint64_t left = r->deadline_ms - now;
	return left < RESP_KDCS_RESOLVE_MS ? (int)left : RESP_KDCS_RESOLVE_MS;
}

static void entry_take(resp_kdc_entry *e, const kd3_addr *a, size_t n)
{
	for (size_t i = 0; i < n && e->n < RESP_KDC_MAX; i++) {
		int seen = 0;
		for (size_t j = 0; j < e->n && !seen; j++)
			seen = e->addr[j].len == a[i].len &&
			       memcmp(&e->addr[j].ss, &a[i].ss, a[i].len) == 0;
		if (!seen)
			e->addr[e->n++] = a[i];
	}
}

static uint32_t srv_random(void *ctx)
{
	uint32_t v = 0;
	(void)ctx;
	/* Only the order of equal-priority targets: any bits do, and a short read gives 0. */
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = 0;
	return v;
}

/* RFC 2782: a target is a domain name. An IP literal or localhost from DNS would let
 * whoever answers point our M2s at any address, this host's own services among them. */
static int srv_target_ok(const char *host)
{
	kd3_hostport hp;
	char err[8];
	size_t n = strlen(host);
	if (kd3_hostport_parse(host, 1, 0, &hp, err, sizeof(err)) != KD3_OK || hp.literal)
		return 0;
	return strcasecmp(host, "localhost") != 0 &&
	       !(n > 10 && strcasecmp(host + n - 10, ".localhost") == 0);
}

/* The addresses of one target, into e; KD3_OK when it gave any. */
static int srv_target_add(const resolving *r, const kd3_srv_target *t, const char *name,
                          resp_kdc_entry *e)
{
	kd3_hostport hp;
	kd3_addr a[KD3_RESOLVE_ADDR_MAX];
	size_t na = 0;
	char err[400];
	if (!srv_target_ok(t->host)) {
		kd3_log_error("KDC %s (SRV target of %s): not a domain name; skipped", t->host,
		              name);
		return KD3_E_CONFIG;
	}
	_Static_assert(sizeof(hp.host) == sizeof(t->host), "same host size");
	memcpy(hp.host, t->host, sizeof(hp.host));
	hp.port = t->port;
	hp.literal = 0;
	int ms = time_left(r);
	int ret = ms ? kd3_resolve(&hp, 0, ms, a, KD3_RESOLVE_ADDR_MAX, &na, err, sizeof(err))
	             : KD3_E_TIMEOUT;
	if (ret == KD3_OK)
		entry_take(e, a, na);
	else
		kd3_log_error("KDC %s (SRV target of %s): %s", t->host, name,
		              ms ? err : "not resolved: the list's time ran out");
	return ret;
}

/* The targets of one SRV name, in RFC 2782 order, into e. Returns how many addresses
 * were added; when none, why[] says why (the lookup's error naming the name, or that no
 * target resolved: each of those was logged, named). */
static size_t srv_add(const resolving *r, const char *name, resp_kdc_entry *e, char *why,
                      size_t why_len)
{
	kd3_srv_target t[KD3_SRV_MAX];
	size_t n = 0, before = e->n;
	uint32_t ttl_s = 0;
	int ms = time_left(r);
	if (!ms) {
		snprintf(why, why_len, "'%s': not looked up: the list's time ran out", name);
		return 0;
	}
	if (kd3_srv_lookup(name, ms, t, KD3_SRV_MAX, &n, &ttl_s, why, why_len) != KD3_OK)
		return 0;
	if (e->ttl_s == 0 || ttl_s < e->ttl_s)
		e->ttl_s = ttl_s;
	kd3_srv_order(t, n, srv_random, NULL);
	for (size_t i = 0; i < n && i < RESP_KDCS_SRV_TARGETS; i++)
		(void)srv_target_add(r, &t[i], name, e);
	if (e->n == before)
		snprintf(why, why_len, "'%s': no target resolved", name);
	return e->n - before;
}

/* dns:DOMAIN: _kd3._udp first, then _kd3._tcp targets not already in (the KDC serves
 * both on one address, so either set finds it). */
static int domain_add(const resolving *r, const char *item, const char *domain, resp_kdc_entry *e)
{
	char name[KD3_HOST_MAX + 16];
	char why_udp[400] = "", why_tcp[400] = "";
	size_t added = 0;
	snprintf(name, sizeof(name), "_kd3._udp.%s", domain);
	added += srv_add(r, name, e, why_udp, sizeof(why_udp));
	snprintf(name, sizeof(name), "_kd3._tcp.%s", domain);
	added += srv_add(r, name, e, why_tcp, sizeof(why_tcp));
	if (added == 0) { /* each why names its SRV name: NXDOMAIN, ".", no answer... */
		kd3_log_error("KDC %s: no usable SRV record (%s; %s)", item, why_udp, why_tcp);
		return KD3_E_NOT_FOUND;
	}
	return KD3_OK;
}

/* One entry into e (emptied first); KD3_OK when it gave an address, e->ok set so. */
static int entry_resolve(const resolving *r, const char *item, resp_kdc_entry *e)
{
	const char *domain = dns_domain(item);
	kd3_addr a[KD3_RESOLVE_ADDR_MAX];
	size_t n = 0;
	char err[400];
	int ret;
	memset(e, 0, sizeof(*e));
	int ms = time_left(r);
	if (domain) {
		ret = domain_add(r, item, domain, e);
	} else if (!ms) {
		kd3_log_error("KDC %s: not resolved: the list's time (%d ms) ran out", item,
		              RESP_KDCS_BUILD_MS);
		ret = KD3_E_TIMEOUT;
	} else {
		ret = kd3_addrs_resolve("KDC", item, KD3_KDC_PORT_DEFAULT, 0, ms, a,
		                        KD3_RESOLVE_ADDR_MAX, &n, err, sizeof(err));
		if (ret == KD3_OK)
			entry_take(e, a, n);
		else
			kd3_log_error("%s", err);
	}
	e->ok = ret == KD3_OK && e->n > 0;
	return e->ok ? KD3_OK : (ret == KD3_OK ? KD3_E_NOT_FOUND : ret);
}

/* Every entry into e[], within RESP_KDCS_BUILD_MS; how many gave nothing. */
static size_t entries_resolve(const kd3_conf_list *items, resp_kdc_entry *e, _Atomic int *stop)
{
	resolving r = {kd3_now_ms() + RESP_KDCS_BUILD_MS, stop};
	size_t failed = 0;
	for (size_t i = 0; i < items->n; i++)
		failed += entry_resolve(&r, items->item[i], &e[i]) != KD3_OK;
	return failed;
}

/* ---- the list from the entries -------------------------------------------------------- */

static void list_take(resp_kdc_list *l, const kd3_addr *a)
{
	for (size_t j = 0; j < l->n; j++)
		if (l->addr[j].len == a->len && memcmp(&l->addr[j].ss, &a->ss, a->len) == 0)
			return;
	if (l->n < RESP_KDC_MAX)
		l->addr[l->n++] = *a;
}

/* In entry order: first each entry's share of the places, then the rest of each in
 * turn while places are left. NULL: out of memory, or no entry gave anything. */
static resp_kdc_list *list_from(const resp_kdc_entry *e, size_t n)
{
	resp_kdc_list *l = calloc(1, sizeof(*l));
	size_t share = n ? RESP_KDC_MAX / n : 0;
	if (!l)
		return NULL;
	if (share == 0)
		share = 1;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; e[i].ok && j < e[i].n && j < share; j++)
			list_take(l, &e[i].addr[j]);
		if (e[i].ok && e[i].ttl_s && (l->ttl_s == 0 || e[i].ttl_s < l->ttl_s))
			l->ttl_s = e[i].ttl_s;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = share; e[i].ok && j < e[i].n; j++)
			list_take(l, &e[i].addr[j]);
	if (l->n == 0) {
		free(l);
		return NULL;
	}
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
	memset(k, 0, sizeof(*k));
	k->items = items;
	k->epfd = epfd;
	k->metrics = metrics;
	k->pipe_wr = -1;
	atomic_init(&k->stop, 0);
	resp_watch_init(&k->w, RESP_W_RESOLVED, NULL);
	for (size_t i = 0; i < items->n; i++)
		k->dynamic |= is_named(items->item[i]);
	k->last = calloc(items->n ? items->n : 1, sizeof(*k->last));
	k->fresh = calloc(items->n ? items->n : 1, sizeof(*k->fresh));
	if (!k->last || !k->fresh) {
		kd3_log_error("out of memory for the KDC list");
		return KD3_E_NOMEM;
	}
	/* At start every entry must give an address: each failure was logged, named. */
	if (entries_resolve(items, k->last, &k->stop) != 0)
		return KD3_E_NOT_FOUND;
	resp_kdc_list *l = list_from(k->last, items->n);
	if (!l) {
		kd3_log_error("out of memory for the KDC list");
		return KD3_E_NOMEM;
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

/* Reads the entries (constant) and writes only k->fresh, which the loop reads after
 * pthread_join; the byte on the pipe only wakes the loop. */
static void *refresh_main(void *arg)
{
	resp_kdcs *k = arg;
	(void)entries_resolve(k->items, k->fresh, &k->stop);
	uint8_t one = 1;
	while (write(k->pipe_wr, &one, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void refresh_start(resp_kdcs *k, uint64_t now, const char *why)
{
	if (!k->dynamic || k->busy)
		return;
	int err = pthread_create(&k->thread, NULL, refresh_main, k);
	if (err != 0) {
		kd3_log_error("cannot start the KDC refresh: %s", strerror(err));
		if (k->cur->ttl_s) /* SRV: try again soon, not never */
			k->refresh_at_ms = now + KD3_SRV_TTL_MIN_S * 1000u;
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
	refresh_start(k, now, "no KDC answered an exchange");
}

/* What the refresh found: each entry that resolved replaces what it gave before; one
 * that did not keeps its previous addresses (logged, named, by the thread). */
void resp_kdcs_on_event(resp_kdcs *k)
{
	uint8_t drain[16];
	size_t kept = 0;
	while (read(k->w.fd, drain, sizeof(drain)) > 0)
		;
	if (!k->busy)
		return;
	pthread_join(k->thread, NULL);
	k->busy = 0;
	for (size_t i = 0; i < k->items->n; i++) {
		if (k->fresh[i].ok)
			k->last[i] = k->fresh[i];
		else
			kept++;
	}
	uint64_t now = kd3_now_ms();
	if (kept)
		kd3_log_error(
		    "KDC list: %zu of %zu entr%s not resolved now; %s previous addresses kept",
		    kept, k->items->n, k->items->n == 1 ? "y" : "ies", kept == 1 ? "its" : "their");
	resp_kdc_list *l = list_from(k->last, k->items->n);
	if (l)
		publish(k, l, now);
	if (kept && k->cur->ttl_s && k->refresh_at_ms > now + KD3_SRV_TTL_MIN_S * 1000u)
		k->refresh_at_ms = now + KD3_SRV_TTL_MIN_S * 1000u; /* SRV: try again soon */
}

uint64_t resp_kdcs_deadline(const resp_kdcs *k)
{
	return k->busy ? 0 : k->refresh_at_ms;
}

void resp_kdcs_timer(resp_kdcs *k, uint64_t now)
{
	if (k->refresh_at_ms && now >= k->refresh_at_ms && !k->busy) {
		k->refresh_at_ms = 0;
		refresh_start(k, now, "the SRV records' TTL ran out");
	}
}

void resp_kdcs_close(resp_kdcs *k)
{
	atomic_store(&k->stop, 1);
	if (k->busy) /* it gives up at its next lookup: RESP_KDCS_RESOLVE_MS at most */
		pthread_join(k->thread, NULL);
	k->busy = 0;
	resp_watch_close(k->epfd, &k->w);
	if (k->pipe_wr >= 0)
		close(k->pipe_wr);
	k->pipe_wr = -1;
	resp_kdc_list_drop(k->cur);
	k->cur = NULL;
	free(k->last);
	free(k->fresh);
	k->last = k->fresh = NULL;
}
