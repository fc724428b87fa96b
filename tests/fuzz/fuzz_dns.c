/* DNS replies (kd3_dns_min_ttl), host:port text (kd3_hostport_parse) and RFC 2782's
 * order (kd3_srv_order), all from shared/resolve.h. Input: a DNS reply; the same bytes,
 * up to the first NUL, are also the text to parse; and, read as 6-byte items (priority,
 * weight, a random value; at most KD3_SRV_MAX), SRV targets to order.
 *
 * Invariants: the TTL reader says OK, MALFORMED or NOT_FOUND, never reads past the
 * reply (an exact-size copy), gives a TTL of at most 2^31 - 1, and refuses a reply it
 * took once a byte is added at its end (MALFORMED: every section is read exactly); the
 * parser says OK with a host kd3_resolve can take (a valid literal, or a name of name
 * characters of at most 253 bytes) that parses back to itself when printed as
 * host:port, or KD3_E_CONFIG with one printable line starting with the text quoted and
 * hp zeroed; the order is a permutation with priorities ascending. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz_util.h"
#include "resolve.h"

#define T_SRV     33
#define TEXT_MAX  600
#define ITEM_SIZE 6

static void check_min_ttl(const uint8_t *data, size_t size)
{
	uint32_t ttl = 0xdeadbeef;
	uint8_t *copy = fuzz_dup(data, size);
	int ret = kd3_dns_min_ttl(copy, size, T_SRV, &ttl);
	FUZZ_CHECK(ret == KD3_OK || ret == KD3_E_MALFORMED || ret == KD3_E_NOT_FOUND);
	if (ret == KD3_OK)
		FUZZ_CHECK(ttl <= 0x7fffffffu);
	else
		FUZZ_CHECK(ttl == 0xdeadbeef);
	free(copy);

	/* One byte more: never a reply that adds up (every section is read exactly). */
	if (ret != KD3_E_MALFORMED) {
		uint8_t *longer = malloc(size + 1);
		FUZZ_CHECK(longer != NULL);
		memcpy(longer, data, size);
		longer[size] = 0;
		FUZZ_CHECK(kd3_dns_min_ttl(longer, size + 1, T_SRV, &ttl) == KD3_E_MALFORMED);
		free(longer);
	}
}

static int printable_line(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

static int name_chars_only(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

static void check_parsed(const kd3_hostport *hp, uint16_t default_port, int allow_port0)
{
	uint8_t bin[16];
	char again_text[KD3_HOST_MAX + 16], err[256];
	kd3_hostport again;
	size_t len = strlen(hp->host);

	FUZZ_CHECK(len >= 1 && len <= KD3_HOST_MAX);
	FUZZ_CHECK(allow_port0 || hp->port != 0);
	if (hp->literal)
		FUZZ_CHECK(inet_pton(AF_INET, hp->host, bin) == 1 ||
		           inet_pton(AF_INET6, hp->host, bin) == 1);
	else
		FUZZ_CHECK(name_chars_only(hp->host));
	/* printed back as a user would write it, it parses to the same */
	int v6 = strchr(hp->host, ':') != NULL;
	snprintf(again_text, sizeof(again_text), "%s%s%s:%u", v6 ? "[" : "", hp->host,
	         v6 ? "]" : "", hp->port);
	FUZZ_CHECK(kd3_hostport_parse(again_text, (uint16_t)(default_port ^ 1), allow_port0, &again,
	                              err, sizeof(err)) == KD3_OK);
	FUZZ_CHECK(strcmp(again.host, hp->host) == 0 && again.port == hp->port &&
	           again.literal == hp->literal);
}

static void check_hostport(const uint8_t *data, size_t size)
{
	char text[TEXT_MAX + 1], err[256];
	size_t n = 0;
	kd3_hostport hp;
	for (; n < size && n < TEXT_MAX && data[n]; n++)
		text[n] = (char)data[n];
	text[n] = '\0';

	int allow_port0 = size > 0 && (data[size - 1] & 1);
	memset(err, 'x', sizeof(err));
	int ret = kd3_hostport_parse(text, 7088, allow_port0, &hp, err, sizeof(err));
	if (ret == KD3_OK) {
		FUZZ_CHECK(err[0] == '\0');
		check_parsed(&hp, 7088, allow_port0);
		return;
	}
	FUZZ_CHECK(ret == KD3_E_CONFIG);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	FUZZ_CHECK(err[0] == '\'' && printable_line(err));
	FUZZ_CHECK(hp.host[0] == '\0' && hp.port == 0 && hp.literal == 0);
	/* a short error buffer is cut, never overrun */
	char tiny[8];
	FUZZ_CHECK(kd3_hostport_parse(text, 7088, allow_port0, &hp, tiny, sizeof(tiny)) ==
	           KD3_E_CONFIG);
	FUZZ_CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL);
}

typedef struct rnd_from_input {
	const uint8_t *p;
	size_t n;
	size_t at;
} rnd_from_input;

/* The input's bytes, four at a time, round and round (0 for an empty input). */
static uint32_t next_rnd(void *ctx)
{
	rnd_from_input *r = ctx;
	uint32_t v = 0;
	for (int i = 0; i < 4; i++, r->at++)
		v = v << 8 | (r->n ? r->p[r->at % r->n] : 0u);
	return v;
}

static void check_order(const uint8_t *data, size_t size)
{
	kd3_srv_target t[KD3_SRV_MAX];
	unsigned seen[KD3_SRV_MAX] = {0};
	size_t n = size / ITEM_SIZE < KD3_SRV_MAX ? size / ITEM_SIZE : KD3_SRV_MAX;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *item = data + i * ITEM_SIZE;
		memset(&t[i], 0, sizeof(t[i]));
		snprintf(t[i].host, sizeof(t[i].host), "%zu", i);
		t[i].priority = (uint16_t)(item[0] << 8 | item[1]);
		t[i].weight = (uint16_t)(item[2] << 8 | item[3]);
	}
	rnd_from_input r = {data, size, 0};
	kd3_srv_order(t, n, next_rnd, &r);
	for (size_t i = 0; i < n; i++) {
		unsigned long was = strtoul(t[i].host, NULL, 10);
		FUZZ_CHECK(was < n && !seen[was]);
		seen[was] = 1;
		const uint8_t *item = data + was * ITEM_SIZE;
		FUZZ_CHECK(t[i].priority == (uint16_t)(item[0] << 8 | item[1]));
		FUZZ_CHECK(t[i].weight == (uint16_t)(item[2] << 8 | item[3]));
		FUZZ_CHECK(i == 0 || t[i - 1].priority <= t[i].priority);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_min_ttl(data, size);
	check_hostport(data, size);
	check_order(data, size);
	return 0;
}
