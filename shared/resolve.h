/* kd3 names: the address a user writes ("host:port", "[v6]:port", "name:port", a bare
 * host with the default port) parsed apart, and resolved to every address it gives,
 * within a bounded time (c-ares; getaddrinfo has no timeout). IP literals never reach
 * the resolver. KDC discovery by DNS SRV records (RFC 2782) lives here too.
 *
 * Test hooks, both documented in the man pages' ENVIRONMENT sections:
 *   KD3_DNS_SERVER  "IP:port[,IP:port...]": ask these servers instead of resolv.conf's;
 *   CARES_HOSTS     a hosts file read instead of /etc/hosts (c-ares' own variable).
 * KD3_DNS_SERVER takes 1-8 servers, each "IPv4", "IPv4:port", "[IPv6]:port" or a bare
 * "IPv6" (port 53 when none); unset or empty: resolv.conf. Anything else makes every
 * name lookup fail with KD3_E_CONFIG ("KD3_DNS_SERVER: ..."); IP literals never read it.
 * Names are looked up in the hosts file first, then DNS, whatever nsswitch.conf says;
 * "localhost" (any case, a trailing dot or not) is always 127.0.0.1 then ::1 (where
 * the system has it), with no hosts file, no DNS and no KD3_DNS_SERVER read (RFC 6761). */
#ifndef KD3_RESOLVE_H
#define KD3_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"

#define KD3_HOST_MAX           253  /* a DNS name's longest text form */
#define KD3_RESOLVE_ADDR_MAX   16   /* addresses kept from one name */
#define KD3_RESOLVE_TIMEOUT_MS 5000 /* default bound on one resolution */
#define KD3_SRV_MAX            16   /* SRV targets kept from one lookup */
#define KD3_SRV_TTL_MIN_S      5    /* a TTL below this is taken as this */
#define KD3_SRV_TTL_MAX_S      86400

typedef struct kd3_hostport {
	char host[KD3_HOST_MAX + 1]; /* an IP literal without brackets, or a name */
	uint16_t port;
	int literal; /* host is an IP literal: kd3_resolve never asks DNS */
} kd3_hostport;

/* Parses text into hp. Forms: "1.2.3.4:88", "[::1]:88", "name:88", "name", "1.2.3.4",
 * "[::1]", "::1" (a bare IPv6 literal), each without a port taking default_port.
 * A port is 1-65535, or 0 when allow_port0 (a free port, for listening). A name is
 * letters, digits, '-', '_' and '.', labels of 1-63 bytes, at most 253 in all, one
 * trailing dot allowed. On failure err holds one line naming the text and what is
 * wrong ("'a:b': port 'b' is not a number 1-65535"); KD3_E_CONFIG.
 * Strict beyond that: the 253 count includes a trailing dot; no label starts or ends
 * with '-'; a name's last label is never all digits ("127.1", "999.1.1.1" and
 * "1.2.3.4." are refused: mistyped addresses, RFC 1123 2.1); no IPv6 zone ("%eth0");
 * a port's leading zeros are fine (decimal). Bytes other than printable ASCII show as
 * '?' in err, and text longer than 80 bytes is cut there ("..."). On failure hp is
 * zeroed. */
int kd3_hostport_parse(const char *text, uint16_t default_port, int allow_port0, kd3_hostport *hp,
                       char *err, size_t err_len);

/* Every address of hp, both families, in the resolver's order, at most max of them
 * (*n set; duplicates removed). passive: for binding (an IP literal or a name works
 * the same; it only sets AI_PASSIVE). timeout_ms bounds the whole call.
 * KD3_OK with *n >= 1; KD3_E_NOT_FOUND: the name does not resolve or has no address;
 * KD3_E_TIMEOUT: no answer within timeout_ms; KD3_E_IO: the resolver failed. err names
 * the name in every case ("'kdc.example': no answer from DNS within 5000 ms").
 * timeout_ms <= 0 means KD3_RESOLVE_TIMEOUT_MS. KD3_E_CONFIG: KD3_DNS_SERVER is bad;
 * KD3_E_ARG: max is 0 or hp->host empty. The order: the hosts file's for a name found
 * there; from DNS, each family in the server's order, the A and AAAA answers in the
 * order they arrived (no RFC 6724 sort: it would reorder the hosts file too).
 * kd3_addr ports are hp->port. A literal: exactly one address, with no channel opened
 * and KD3_DNS_SERVER not read. */
int kd3_resolve(const kd3_hostport *hp, int passive, int timeout_ms, kd3_addr *out, size_t max,
                size_t *n, char *err, size_t err_len);

/* Only the addresses of one family (AF_INET or AF_INET6) from a resolved list, kept in
 * order; returns how many are left. */
size_t kd3_addrs_keep_family(kd3_addr *addrs, size_t n, int family);

typedef struct kd3_srv_target {
	char host[KD3_HOST_MAX + 1]; /* without the trailing dot */
	uint16_t port;
	uint16_t priority;
	uint16_t weight;
} kd3_srv_target;

/* The SRV records of name ("_kd3._udp.example.org"), at most max (*n set), with the
 * smallest TTL among them in *ttl_s (clamped to KD3_SRV_TTL_MIN_S..KD3_SRV_TTL_MAX_S).
 * A record whose target is "." (RFC 2782: no service) is dropped. Order as received;
 * kd3_srv_order puts them in use order. Errors as kd3_resolve; KD3_E_NOT_FOUND also
 * when no usable record is left. Also dropped: port 0, and a target that is not a
 * host name kd3_hostport_parse takes whole. name must be a host name (no port, not an
 * IP literal), else KD3_E_CONFIG; it is asked as it is (no search domains). A reply
 * c-ares takes but whose TTLs kd3_dns_min_ttl refuses: KD3_E_IO ("malformed DNS
 * reply"). */
int kd3_srv_lookup(const char *name, int timeout_ms, kd3_srv_target *out, size_t max, size_t *n,
                   uint32_t *ttl_s, char *err, size_t err_len);

/* RFC 2782's order: ascending priority; within one priority a weighted random order
 * (weight 0 records first in the running sum, as the RFC says). rnd(ctx) gives a
 * uniform 32-bit value; tests pass a fixed sequence. rnd is called once per pick, so
 * n - 1 times for a priority of n records (never for a single one); r = rnd % (sum + 1).
 * Stable: equal priorities whose weights are all 0 keep the order received. */
void kd3_srv_order(kd3_srv_target *t, size_t n, uint32_t (*rnd)(void *ctx), void *ctx);

/* The smallest TTL of the answer section of a DNS reply (abuf, alen), over the RRs of
 * the given type (33 for SRV); KD3_E_MALFORMED on any bound or count that does not add
 * up (read through kd3_reader, fuzzed), KD3_E_NOT_FOUND when no such RR. Exposed for the
 * fuzz target and unit tests. Every section is read (counts exact, no trailing byte);
 * compression pointers must point before the name they end (so no loop) and past the
 * header; a TTL with the top bit set counts as 0 (RFC 2181 8). Not clamped. */
int kd3_dns_min_ttl(const uint8_t *abuf, size_t alen, uint16_t type, uint32_t *ttl_s);

#endif
