/* resolve_probe: what kd3_resolve and kd3_srv_lookup return, one line each, for the
 * e2e tests (tests/e2e/test_resolve_dns.py) against a real DNS server.
 *
 *   resolve_probe resolve TEXT [DEFAULT_PORT [TIMEOUT_MS]]
 *       one line per address: "127.0.0.1:7088", "[::1]:7088"
 *   resolve_probe srv NAME [TIMEOUT_MS [SEED]]
 *       "ttl N", then one line per target: "HOST PORT PRIORITY WEIGHT", as received;
 *       with SEED, in kd3_srv_order's order (rnd: xorshift32 from SEED)
 *
 * On failure: "error CODE" on stdout (NOT_FOUND, TIMEOUT, CONFIG, IO, ...), err's
 * line on stderr, exit 1. Usage: exit 2. KD3_DNS_SERVER and CARES_HOSTS apply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "net.h"
#include "resolve.h"

static const char *code_name(int ret)
{
	switch (ret) {
	case KD3_E_NOT_FOUND:
		return "NOT_FOUND";
	case KD3_E_TIMEOUT:
		return "TIMEOUT";
	case KD3_E_CONFIG:
		return "CONFIG";
	case KD3_E_IO:
		return "IO";
	case KD3_E_ARG:
		return "ARG";
	default:
		return "OTHER";
	}
}

static int failed(int ret, const char *err)
{
	printf("error %s\n", code_name(ret));
	fprintf(stderr, "resolve_probe: %s\n", err);
	return 1;
}

/* A decimal number 0..max, or -1. */
static long number(const char *s, long max)
{
	char *end = NULL;
	long v = strtol(s, &end, 10);
	return (*s && *end == '\0' && v >= 0 && v <= max) ? v : -1;
}

static int probe_resolve(const char *text, long port, long timeout_ms)
{
	kd3_hostport hp;
	kd3_addr addrs[KD3_RESOLVE_ADDR_MAX];
	size_t n = 0;
	char err[512];
	int ret = kd3_hostport_parse(text, (uint16_t)port, 0, &hp, err, sizeof(err));
	if (ret == KD3_OK)
		ret = kd3_resolve(&hp, 0, (int)timeout_ms, addrs, KD3_RESOLVE_ADDR_MAX, &n, err,
		                  sizeof(err));
	if (ret != KD3_OK)
		return failed(ret, err);
	for (size_t i = 0; i < n; i++) {
		char line[80];
		kd3_addr_format(&addrs[i], line, sizeof(line));
		printf("%s\n", line);
	}
	return 0;
}

static uint32_t xorshift32(void *ctx)
{
	uint32_t *s = ctx;
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static int probe_srv(const char *name, long timeout_ms, long seed)
{
	kd3_srv_target t[KD3_SRV_MAX];
	size_t n = 0;
	uint32_t ttl = 0, state = (uint32_t)seed | 1u; /* xorshift's state is never 0 */
	char err[512];
	int ret = kd3_srv_lookup(name, (int)timeout_ms, t, KD3_SRV_MAX, &n, &ttl, err, sizeof(err));
	if (ret != KD3_OK)
		return failed(ret, err);
	if (seed >= 0)
		kd3_srv_order(t, n, xorshift32, &state);
	printf("ttl %u\n", ttl);
	for (size_t i = 0; i < n; i++)
		printf("%s %u %u %u\n", t[i].host, t[i].port, t[i].priority, t[i].weight);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && argc <= 5 && strcmp(argv[1], "resolve") == 0) {
		long port = argc > 3 ? number(argv[3], 65535) : 7088;
		long timeout_ms = argc > 4 ? number(argv[4], 600000) : KD3_RESOLVE_TIMEOUT_MS;
		if (port >= 0 && timeout_ms >= 0)
			return probe_resolve(argv[2], port, timeout_ms);
	}
	if (argc >= 3 && argc <= 5 && strcmp(argv[1], "srv") == 0) {
		long timeout_ms = argc > 3 ? number(argv[3], 600000) : KD3_RESOLVE_TIMEOUT_MS;
		long seed = argc > 4 ? number(argv[4], 0xffffffffL) : -1;
		if (timeout_ms >= 0 && (argc <= 4 || seed >= 0))
			return probe_srv(argv[2], timeout_ms, seed);
	}
	fprintf(stderr,
	        "usage: %s resolve TEXT [DEFAULT_PORT [TIMEOUT_MS]]\n"
	        "       %s srv NAME [TIMEOUT_MS [SEED]]\n",
	        argv[0], argv[0]);
	return 2;
}
