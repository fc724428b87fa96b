/* kd3 name resolution and SRV lookup on c-ares (resolve.h). Every call makes its own
 * channel, runs it to completion or to its deadline, and destroys it: calls are rare
 * (start, failover, a TTL running out), and a channel of its own makes each call
 * thread-safe with no locking. */
#include "resolve.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>

#include "err.h"

#ifndef T_SRV
#define T_SRV 33 /* RFC 2782; arpa/nameser.h has it as ns_t_srv */
#endif
#ifndef C_IN
#define C_IN 1
#endif

#define DNS_PORT    53
#define DNS_TRIES   2
#define SERVERS_ENV "KD3_DNS_SERVER"
#define SERVERS_MAX 8
/* "[IPv6]:port," for each server */
#define SERVERS_CSV_MAX (SERVERS_MAX * (INET6_ADDRSTRLEN + 9))
#define SERVERS_ENV_MAX (SERVERS_CSV_MAX)

/* ---- the library and a channel ----------------------------------------------------------- */

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_status = ARES_ENOTINITIALIZED;

static void library_init(void)
{
	library_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* One server of KD3_DNS_SERVER ("IP", "IP:port", "[v6]:port") appended to csv in the
 * form c-ares reads; c-ares' own parser takes junk ports as 0, so ours checks first. */
static int append_server(const char *item, char *csv, size_t csv_len, char *err, size_t err_len)
{
	kd3_hostport hp;
	char why[200];
	size_t used = strlen(csv);
	if (kd3_hostport_parse(item, DNS_PORT, 0, &hp, why, sizeof(why)) != KD3_OK) {
		snprintf(err, err_len, "%s: %s (want IP:port[,IP:port...], e.g. 127.0.0.1:5353)",
		         SERVERS_ENV, why);
		return KD3_E_CONFIG;
	}
	if (!hp.literal) { /* a name: only name characters, so safe to show */
		snprintf(err, err_len,
		         "%s: '%s' is not an IP address (want IP:port[,IP:port...], e.g. "
		         "127.0.0.1:5353)",
		         SERVERS_ENV, item);
		return KD3_E_CONFIG;
	}
	int v6 = strchr(hp.host, ':') != NULL;
	snprintf(csv + used, csv_len - used, "%s%s%s%s:%u", used ? "," : "", v6 ? "[" : "", hp.host,
	         v6 ? "]" : "", hp.port);
	return KD3_OK;
}

/* KD3_DNS_SERVER as c-ares' csv; "" when it is unset or empty (then resolv.conf). */
static int servers_from_env(char *csv, size_t csv_len, char *err, size_t err_len)
{
	char copy[SERVERS_ENV_MAX + 1], *save = NULL;
	const char *env = getenv(SERVERS_ENV);
	size_t count = 0;

	csv[0] = '\0';
	if (!env || !*env)
		return KD3_OK;
	if (strlen(env) > SERVERS_ENV_MAX) {
		snprintf(err, err_len, "%s: longer than %d bytes", SERVERS_ENV, SERVERS_ENV_MAX);
		return KD3_E_CONFIG;
	}
	memcpy(copy, env, strlen(env) + 1);
	for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (++count > SERVERS_MAX) {
			snprintf(err, err_len, "%s: more than %d servers", SERVERS_ENV,
			         SERVERS_MAX);
			return KD3_E_CONFIG;
		}
		int ret = append_server(item, csv, csv_len, err, err_len);
		if (ret != KD3_OK)
			return ret;
	}
	/* strtok_r skips empty items: ",", "a,,b" and a trailing comma are refused here. */
	if (count == 0 || strstr(env, ",,") || env[0] == ',' || env[strlen(env) - 1] == ',') {
		snprintf(err, err_len, "%s: an empty server in the list", SERVERS_ENV);
		return KD3_E_CONFIG;
	}
	return KD3_OK;
}

/* A channel whose one try is bounded at a third of timeout_ms: DNS_TRIES tries, the
 * second waiting twice as long (c-ares' backoff), so with one server c-ares gives up
 * by itself within the bound; with more, the caller's deadline ends it. */
static int open_channel(int timeout_ms, ares_channel *ch, char *err, size_t err_len)
{
	char csv[SERVERS_CSV_MAX + 1];
	struct ares_options opts;
	char lookups[] = "fb"; /* the hosts file, then DNS, whatever nsswitch.conf says */

	pthread_once(&library_once, library_init);
	if (library_status != ARES_SUCCESS) {
		snprintf(err, err_len, "resolver: %s", ares_strerror(library_status));
		return KD3_E_IO;
	}
	int ret = servers_from_env(csv, sizeof(csv), err, err_len);
	if (ret != KD3_OK)
		return ret;
	memset(&opts, 0, sizeof(opts));
	opts.timeout = timeout_ms / 3 > 0 ? timeout_ms / 3 : 1;
	opts.tries = DNS_TRIES;
	opts.lookups = lookups;
	int status =
	    ares_init_options(ch, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS);
	if (status != ARES_SUCCESS) {
		snprintf(err, err_len, "resolver: %s", ares_strerror(status));
		return KD3_E_IO;
	}
	if (csv[0] && (status = ares_set_servers_ports_csv(*ch, csv)) != ARES_SUCCESS) {
		snprintf(err, err_len, "%s: '%s': %s", SERVERS_ENV, csv, ares_strerror(status));
		ares_destroy(*ch);
		return KD3_E_CONFIG;
	}
	return KD3_OK;
}

/* ---- running a channel to its deadline --------------------------------------------------- */

static int poll_timeout_ms(ares_channel ch, uint64_t deadline_ms)
{
	uint64_t now = kd3_now_ms();
	uint64_t left = deadline_ms > now ? deadline_ms - now : 0;
	struct timeval max_tv = {.tv_sec = (time_t)(left / 1000),
	                         .tv_usec = (suseconds_t)(left % 1000) * 1000};
	struct timeval tv_buf;
	struct timeval *tv = ares_timeout(ch, &max_tv, &tv_buf);
	/* Rounded up: waking a little before c-ares' own timeout would only spin. */
	uint64_t ms = (uint64_t)tv->tv_sec * 1000u + ((uint64_t)tv->tv_usec + 999u) / 1000u;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Runs ch until *done, or until deadline_ms (then its queries are cancelled and their
 * callbacks run: KD3_E_TIMEOUT; KD3_E_IO with *sys_err when poll fails). poll, not
 * select: the descriptor may be above FD_SETSIZE in a process serving many connections. */
static int run_channel(ares_channel ch, const int *done, uint64_t deadline_ms, int *sys_err)
{
	*sys_err = 0;
	while (!*done) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfds[ARES_GETSOCK_MAXNUM];
		nfds_t nfds = 0;

		if (kd3_now_ms() >= deadline_ms) {
			ares_cancel(ch);
			return KD3_E_TIMEOUT;
		}
		/* Tested unsigned: c-ares' ARES_GETSOCK_WRITABLE shifts a signed 1 by 31 for
		 * the last socket (undefined; UBSan stops there). */
		unsigned bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
		for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			unsigned readable = bits & (1u << i);
			unsigned writable = bits & (1u << (i + ARES_GETSOCK_MAXNUM));
			short events = (short)((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
			if (events)
				pfds[nfds++] = (struct pollfd){.fd = socks[i], .events = events};
		}
		int ready = poll(pfds, nfds, poll_timeout_ms(ch, deadline_ms));
		if (ready < 0 && errno != EINTR) {
			*sys_err = errno;
			ares_cancel(ch);
			return KD3_E_IO;
		}
		if (ready <= 0) { /* c-ares' timers: retries and its own timeouts */
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
			continue;
		}
		for (nfds_t i = 0; i < nfds; i++) {
			short got = pfds[i].revents;
			if (!got)
				continue;
			ares_socket_t rfd =
			    got & (POLLIN | POLLERR | POLLHUP) ? pfds[i].fd : ARES_SOCKET_BAD;
			ares_socket_t wfd =
			    got & (POLLOUT | POLLERR) ? pfds[i].fd : ARES_SOCKET_BAD;
			ares_process_fd(ch, rfd, wfd);
		}
	}
	return KD3_OK;
}

/* c-ares' status as a kd3 code, err naming name. what: "address" or "SRV record". */
static int from_ares(int status, const char *name, const char *what, int timeout_ms, char *err,
                     size_t err_len)
{
	switch (status) {
	case ARES_SUCCESS:
		return KD3_OK;
	case ARES_ENOTFOUND:
	case ARES_ENONAME:
		snprintf(err, err_len, "'%s': no such name (%s)", name, ares_strerror(status));
		return KD3_E_NOT_FOUND;
	case ARES_ENODATA:
		snprintf(err, err_len, "'%s': no %s for this name (%s)", name, what,
		         ares_strerror(status));
		return KD3_E_NOT_FOUND;
	case ARES_ETIMEOUT:
		snprintf(err, err_len, "'%s': no answer from DNS within %d ms", name, timeout_ms);
		return KD3_E_TIMEOUT;
	default:
		snprintf(err, err_len, "'%s': resolver failed: %s", name, ares_strerror(status));
		return KD3_E_IO;
	}
}

/* What the deadline loop's result means, the lookup's own status aside. */
static int from_run(int run, int sys_err, const char *name, int timeout_ms, char *err,
                    size_t err_len)
{
	if (run == KD3_E_TIMEOUT)
		snprintf(err, err_len, "'%s': no answer from DNS within %d ms", name, timeout_ms);
	else
		snprintf(err, err_len, "'%s': resolver failed: poll: %s", name, strerror(sys_err));
	return run;
}

/* ---- addresses -------------------------------------------------------------------------- */

typedef struct addr_lookup {
	int done;
	int status;
	uint16_t port;
	kd3_addr *out;
	size_t max;
	size_t n;
} addr_lookup;

static int same_address(const kd3_addr *a, const struct sockaddr *sa)
{
	if (a->ss.ss_family != sa->sa_family)
		return 0;
	if (sa->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)&a->ss)->sin_addr,
		              &((const struct sockaddr_in *)sa)->sin_addr,
		              sizeof(struct in_addr)) == 0;
	return memcmp(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
	              &((const struct sockaddr_in6 *)sa)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

static void keep_address(addr_lookup *l, const struct ares_addrinfo_node *node)
{
	const struct sockaddr *sa = node->ai_addr;
	size_t want =
	    sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) || node->ai_addrlen < want)
		return;
	for (size_t i = 0; i < l->n; i++)
		if (same_address(&l->out[i], sa))
			return;
	kd3_addr *a = &l->out[l->n++];
	memset(a, 0, sizeof(*a));
	memcpy(&a->ss, sa, want);
	a->len = (socklen_t)want;
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = htons(l->port);
	else
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(l->port);
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	addr_lookup *l = arg;
	(void)timeouts;
	l->done = 1;
	l->status = status;
	if (status == ARES_SUCCESS && res)
		for (const struct ares_addrinfo_node *node = res->nodes; node && l->n < l->max;
		     node = node->ai_next)
			keep_address(l, node);
	if (res)
		ares_freeaddrinfo(res);
	if (status == ARES_SUCCESS && l->n == 0)
		l->status = ARES_ENODATA;
}

/* An IP literal straight into out[0]. */
static int fill_literal(const kd3_hostport *hp, kd3_addr *out, char *err, size_t err_len)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, hp->host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(hp->port);
		out->len = sizeof(*in);
		return KD3_OK;
	}
	if (inet_pton(AF_INET6, hp->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(hp->port);
		out->len = sizeof(*in6);
		return KD3_OK;
	}
	if (err && err_len)
		snprintf(err, err_len, "'%s': not an IP address", hp->host);
	return KD3_E_CONFIG;
}

/* RFC 6761 6.3: "localhost" is the loopback, whatever the hosts file or DNS say. Here,
 * not in c-ares: 1.18's own answer, for a hosts file without localhost, leaks the name
 * (a few bytes a call, which the ASan builds report). */
static int is_localhost(const char *host)
{
	return strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0;
}

/* Whether ::1 exists here: IPv6 may be off (then binding it fails). */
static int has_ipv6_loopback(void)
{
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int ok = fd >= 0 && bind(fd, (struct sockaddr *)&in6, sizeof(in6)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* 127.0.0.1, then ::1 where it exists: Debian's /etc/hosts order. */
static size_t fill_localhost(uint16_t port, kd3_addr *out, size_t max)
{
	kd3_hostport lit = {.port = port, .literal = 1};
	size_t n = 0;
	memcpy(lit.host, "127.0.0.1", sizeof("127.0.0.1"));
	if (fill_literal(&lit, &out[n], NULL, 0) == KD3_OK)
		n++;
	memcpy(lit.host, "::1", sizeof("::1"));
	if (n < max && has_ipv6_loopback() && fill_literal(&lit, &out[n], NULL, 0) == KD3_OK)
		n++;
	return n;
}

/* c-ares 1.18 reads the hosts file inside ares_getaddrinfo, outside any deadline: a FIFO
 * there would block the call forever and /dev/zero grow it without end. So the file
 * (CARES_HOSTS, or /etc/hosts) must be a regular file of a sane size, or /dev/null (no
 * hosts); a missing one is fine (c-ares goes on to DNS). */
#define HOSTS_FILE_MAX (4u << 20)
static int hosts_file_check(char *err, size_t err_len)
{
	const char *path = getenv("CARES_HOSTS");
	struct stat st;
	if (!path || !*path)
		path = "/etc/hosts";
	if (stat(path, &st) != 0)
		return KD3_OK;
	int devnull = S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
	if (!devnull && (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > HOSTS_FILE_MAX)) {
		snprintf(err, err_len, "%s: the hosts file is not a regular file of at most %u MiB",
		         path, HOSTS_FILE_MAX >> 20);
		return KD3_E_CONFIG;
	}
	return KD3_OK;
}

int kd3_resolve(const kd3_hostport *hp, int passive, int timeout_ms, kd3_addr *out, size_t max,
                size_t *n, char *err, size_t err_len)
{
	ares_channel ch;
	addr_lookup l = {.port = hp->port, .out = out, .max = max};

	*n = 0;
	if (err_len)
		err[0] = '\0';
	if (max == 0 || !hp->host[0]) {
		snprintf(err, err_len, "'%s': no host, or no room for an address", hp->host);
		return KD3_E_ARG;
	}
	if (timeout_ms <= 0)
		timeout_ms = KD3_RESOLVE_TIMEOUT_MS;
	if (hp->literal) {
		int ret = fill_literal(hp, out, err, err_len);
		*n = ret == KD3_OK;
		return ret;
	}
	if (is_localhost(hp->host)) {
		*n = fill_localhost(hp->port, out, max);
		return KD3_OK;
	}
	uint64_t deadline = kd3_now_ms() + (uint64_t)timeout_ms;
	int ret = hosts_file_check(err, err_len);
	if (ret == KD3_OK)
		ret = open_channel(timeout_ms, &ch, err, err_len);
	if (ret != KD3_OK)
		return ret;
	/* NOSORT: the resolver's order (the hosts file's order; DNS's within a family),
	 * not c-ares' RFC 6724 sort, which reorders even the hosts file. ENVHOSTS: honour
	 * CARES_HOSTS. One socket type, so one entry per address. */
	struct ares_addrinfo_hints hints = {
	    .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM,
	    .ai_flags = ARES_AI_ENVHOSTS | ARES_AI_NOSORT | (passive ? ARES_AI_PASSIVE : 0),
	};
	ares_getaddrinfo(ch, hp->host, NULL, &hints, on_addrinfo, &l);
	int sys_err = 0;
	int run = run_channel(ch, &l.done, deadline, &sys_err);
	ares_destroy(ch);
	if (run != KD3_OK)
		return from_run(run, sys_err, hp->host, timeout_ms, err, err_len);
	ret = from_ares(l.status, hp->host, "address", timeout_ms, err, err_len);
	*n = ret == KD3_OK ? l.n : 0;
	return ret;
}

/* ---- SRV records ------------------------------------------------------------------------ */

typedef struct srv_lookup {
	int done;
	int status;
	int malformed; /* c-ares took the reply but our reading of its TTLs did not */
	kd3_srv_target *out;
	size_t max;
	size_t n;
	uint32_t ttl_s;
} srv_lookup;

/* A target kd3_resolve can take: a host name (or IP literal) that parses whole; not "."
 * (RFC 2782: the service is not offered there), not port 0. */
static int usable_target(char *host, uint16_t port)
{
	kd3_hostport hp;
	size_t len = strlen(host);
	if (len > 0 && host[len - 1] == '.')
		host[--len] = '\0';
	if (len == 0 || port == 0)
		return 0;
	return kd3_hostport_parse(host, port, 0, &hp, NULL, 0) == KD3_OK &&
	       strcmp(hp.host, host) == 0;
}

static void keep_targets(srv_lookup *l, struct ares_srv_reply *srv)
{
	for (; srv && l->n < l->max; srv = srv->next) {
		if (!usable_target(srv->host, srv->port))
			continue;
		kd3_srv_target *t = &l->out[l->n++];
		memset(t, 0, sizeof(*t));
		memcpy(t->host, srv->host, strlen(srv->host) + 1);
		t->port = srv->port;
		t->priority = srv->priority;
		t->weight = srv->weight;
	}
}

static void on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	srv_lookup *l = arg;
	struct ares_srv_reply *srv = NULL;
	(void)timeouts;
	l->done = 1;
	l->status = status;
	if (status != ARES_SUCCESS)
		return;
	l->status = ares_parse_srv_reply(abuf, alen, &srv);
	if (l->status != ARES_SUCCESS)
		return;
	if (kd3_dns_min_ttl(abuf, (size_t)alen, T_SRV, &l->ttl_s) != KD3_OK)
		l->malformed = 1;
	else
		keep_targets(l, srv);
	ares_free_data(srv);
}

static uint32_t clamp_ttl(uint32_t ttl_s)
{
	if (ttl_s < KD3_SRV_TTL_MIN_S)
		return KD3_SRV_TTL_MIN_S;
	return ttl_s > KD3_SRV_TTL_MAX_S ? KD3_SRV_TTL_MAX_S : ttl_s;
}

int kd3_srv_lookup(const char *name, int timeout_ms, kd3_srv_target *out, size_t max, size_t *n,
                   uint32_t *ttl_s, char *err, size_t err_len)
{
	ares_channel ch;
	srv_lookup l = {.out = out, .max = max};
	kd3_hostport hp;

	*n = 0;
	if (err_len)
		err[0] = '\0';
	if (max == 0) {
		snprintf(err, err_len, "'%s': no room for a target", name);
		return KD3_E_ARG;
	}
	if (kd3_hostport_parse(name, 1, 0, &hp, err, err_len) != KD3_OK)
		return KD3_E_CONFIG; /* err says what is wrong, the name shown safely */
	if (hp.literal || strcmp(hp.host, name) != 0) { /* parsed: printable */
		snprintf(err, err_len, "'%s': not a DNS name for SRV records", name);
		return KD3_E_CONFIG;
	}
	if (timeout_ms <= 0)
		timeout_ms = KD3_RESOLVE_TIMEOUT_MS;
	uint64_t deadline = kd3_now_ms() + (uint64_t)timeout_ms;
	int ret = open_channel(timeout_ms, &ch, err, err_len);
	if (ret != KD3_OK)
		return ret;
	/* ares_query, not ares_search: an SRV name is complete, no search domain added. */
	ares_query(ch, name, C_IN, T_SRV, on_srv, &l);
	int sys_err = 0;
	int run = run_channel(ch, &l.done, deadline, &sys_err);
	ares_destroy(ch);
	if (run != KD3_OK)
		return from_run(run, sys_err, name, timeout_ms, err, err_len);
	ret = from_ares(l.status, name, "SRV record", timeout_ms, err, err_len);
	if (ret != KD3_OK)
		return ret;
	if (l.malformed) {
		snprintf(err, err_len, "'%s': malformed DNS reply (its lengths do not add up)",
		         name);
		return KD3_E_IO;
	}
	if (l.n == 0) {
		snprintf(err, err_len, "'%s': no usable SRV target (\".\": service not offered)",
		         name);
		return KD3_E_NOT_FOUND;
	}
	*n = l.n;
	*ttl_s = clamp_ttl(l.ttl_s);
	return KD3_OK;
}
