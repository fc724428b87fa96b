/* resolve.h: the host:port parser on every good and bad form; RFC 2782's order with a
 * fixed random sequence; the TTL reader on hand-built DNS replies (good, cut at every
 * byte, pointer loops, counts larger than the records); kd3_resolve of literals (no
 * resolver), localhost, a hosts file (CARES_HOSTS) in file order, and a DNS server that
 * never answers (KD3_E_TIMEOUT within the bound).
 *
 * No test asks the machine's DNS: the group setup points KD3_DNS_SERVER at a UDP socket
 * of this process that is never read, and CARES_HOSTS at a hosts file written here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "net.h"
#include "resolve.h"
#include "unit_tmpdir.h"

#define T_SRV_TYPE 33
#define T_A_TYPE   1

/* ---- fixtures: a silent DNS server and a hosts file -------------------------------------- */

static int silent_fd = -1;     /* bound, never read: queries vanish, no ICMP comes back */
static char silent_server[64]; /* "127.0.0.1:PORT" */
static char tmpdir[64];
static char hosts_path[128];

static int bind_udp(uint16_t *port)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(in);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&in, sizeof(in)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&in, &len) != 0)
		return -1;
	*port = ntohs(in.sin_port);
	return fd;
}

static void write_hosts(const char *text)
{
	FILE *f = fopen(hosts_path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int group_setup(void **state)
{
	(void)state;
	uint16_t port = 0;
	silent_fd = bind_udp(&port);
	if (silent_fd < 0)
		return -1;
	snprintf(silent_server, sizeof(silent_server), "127.0.0.1:%u", port);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kd3-test-resolve-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(hosts_path, sizeof(hosts_path), "%s/hosts", tmpdir);
	setenv("KD3_DNS_SERVER", silent_server, 1);
	setenv("CARES_HOSTS", hosts_path, 1);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	close(silent_fd);
	tmpdir_remove(tmpdir);
	return 0;
}

/* Every test starts with the silent server and an empty hosts file. */
static int setup(void **state)
{
	(void)state;
	setenv("KD3_DNS_SERVER", silent_server, 1);
	FILE *f = fopen(hosts_path, "w");
	return f && fclose(f) == 0 ? 0 : -1;
}

/* ---- the parser --------------------------------------------------------------------------- */

static void parse_ok(const char *text, uint16_t def, int allow0, const char *host, uint16_t port,
                     int literal)
{
	kd3_hostport hp;
	char err[256] = "unset";
	int ret = kd3_hostport_parse(text, def, allow0, &hp, err, sizeof(err));
	if (ret != KD3_OK)
		fail_msg("'%s': %d (%s), want KD3_OK", text, ret, err);
	if (strcmp(hp.host, host) != 0 || hp.port != port || hp.literal != literal)
		fail_msg("'%s': host '%s' port %u literal %d, want '%s' %u %d", text, hp.host,
		         hp.port, hp.literal, host, port, literal);
	assert_string_equal(err, "");
}

/* Refused with KD3_E_CONFIG, hp left empty, err one line that starts with the text
 * quoted (shown) and holds why. */
static void parse_bad(const char *text, int allow0, const char *shown, const char *why)
{
	kd3_hostport hp;
	char err[256] = "", start[128];
	memset(&hp, 0x5a, sizeof(hp));
	int ret = kd3_hostport_parse(text, 7088, allow0, &hp, err, sizeof(err));
	if (ret != KD3_E_CONFIG)
		fail_msg("'%s': %d, want KD3_E_CONFIG", shown, ret);
	assert_int_equal(hp.host[0], '\0');
	assert_int_equal(hp.port, 0);
	snprintf(start, sizeof(start), "'%s': ", shown);
	if (strncmp(err, start, strlen(start)) != 0 || !strstr(err, why) || strchr(err, '\n'))
		fail_msg("'%s': err \"%s\", want \"%s...%s\" on one line", shown, err, start, why);
}

static void test_parse_good(void **state)
{
	(void)state;
	char label63[64], name253[254], text[300];

	parse_ok("1.2.3.4:88", 7088, 0, "1.2.3.4", 88, 1);
	parse_ok("[::1]:88", 7088, 0, "::1", 88, 1);
	parse_ok("name:88", 7088, 0, "name", 88, 0);
	parse_ok("name", 7088, 0, "name", 7088, 0);
	parse_ok("1.2.3.4", 7088, 0, "1.2.3.4", 7088, 1);
	parse_ok("[::1]", 7088, 0, "::1", 7088, 1);
	parse_ok("::1", 7088, 0, "::1", 7088, 1);
	parse_ok("fe80::1:2", 7088, 0, "fe80::1:2", 7088, 1);
	parse_ok("::ffff:1.2.3.4", 7088, 0, "::ffff:1.2.3.4", 7088, 1);
	parse_ok("[::ffff:1.2.3.4]:5", 7088, 0, "::ffff:1.2.3.4", 5, 1);
	parse_ok("kdc1.realm.test.", 7088, 0, "kdc1.realm.test.", 7088, 0);
	parse_ok("kdc1.realm.test.:7", 7088, 0, "kdc1.realm.test.", 7, 0);
	parse_ok("_kd3._udp.realm.test", 7088, 0, "_kd3._udp.realm.test", 7088, 0);
	parse_ok("a-b.c_d.Example.ORG:65535", 1, 0, "a-b.c_d.Example.ORG", 65535, 0);
	parse_ok("host:00088", 1, 0, "host", 88, 0); /* decimal, leading zeros allowed */
	parse_ok("a1.2b", 1, 0, "a1.2b", 1, 0);      /* digits fine but in the last label */
	parse_ok("0.0.0.0:0", 1, 1, "0.0.0.0", 0, 1);
	parse_ok("[::]:0", 1, 1, "::", 0, 1);
	parse_ok("name:0", 1, 1, "name", 0, 0);
	parse_ok("name", 0, 1, "name", 0, 0);

	memset(label63, 'a', 63);
	label63[63] = '\0';
	snprintf(text, sizeof(text), "%s.test", label63);
	parse_ok(text, 7088, 0, text, 7088, 0);
	/* 253 bytes: 63 + 1 + 63 + 1 + 63 + 1 + 61 */
	snprintf(name253, sizeof(name253), "%s.%s.%s.%.61s", label63, label63, label63, label63);
	assert_int_equal(strlen(name253), 253);
	parse_ok(name253, 7088, 0, name253, 7088, 0);
}

static void test_parse_bad_host(void **state)
{
	(void)state;
	char label64[65], text[300], name254[256];

	parse_bad("", 0, "", "empty host");
	parse_bad(":88", 0, ":88", "empty host");
	parse_bad("[]:88", 0, "[]:88", "empty host");
	parse_bad(" name", 0, " name", "' ' is not allowed in a host name");
	parse_bad("na me", 0, "na me", "' ' is not allowed");
	parse_bad("name\n", 0, "name?", "'?' is not allowed");
	parse_bad("na\tme:88", 0, "na?me:88", "'?' is not allowed");
	parse_bad("n\xc3\xa4me", 0, "n??me", "'?' is not allowed");
	parse_bad("a/b", 0, "a/b", "'/' is not allowed");
	parse_bad("a@b:1", 0, "a@b:1", "'@' is not allowed");
	parse_bad("a,b", 0, "a,b", "',' is not allowed");
	parse_bad("a..b", 0, "a..b", "empty label");
	parse_bad(".a", 0, ".a", "empty label");
	parse_bad(".", 0, ".", "empty label");
	parse_bad("..", 0, "..", "empty label");
	parse_bad("a.b..", 0, "a.b..", "empty label");
	parse_bad("-a.b", 0, "-a.b", "starts or ends with '-'");
	parse_bad("a.b-", 0, "a.b-", "starts or ends with '-'");
	parse_bad("a-.b:1", 0, "a-.b:1", "starts or ends with '-'");
	parse_bad("999.1.1.1", 0, "999.1.1.1", "neither an IPv4 address nor a host name");
	parse_bad("1.2.3", 0, "1.2.3", "neither an IPv4 address");
	parse_bad("127.1:88", 0, "127.1:88", "neither an IPv4 address");
	parse_bad("10.0.0.256:88", 0, "10.0.0.256:88", "neither an IPv4 address");
	parse_bad("1.2.3.4.", 0, "1.2.3.4.", "neither an IPv4 address");
	parse_bad("12345", 0, "12345", "neither an IPv4 address");

	memset(label64, 'b', 64);
	label64[64] = '\0';
	snprintf(text, sizeof(text), "a.%s.test", label64);
	parse_bad(text, 0, text, "a label longer than 63 bytes");
	snprintf(text, sizeof(text), "%s:88", label64);
	parse_bad(text, 0, text, "a label longer than 63 bytes");

	/* 254 bytes with no trailing dot, then 253 and a trailing dot (254 in all) */
	memset(name254, 'c', sizeof(name254));
	for (size_t i = 50; i < 254; i += 50)
		name254[i] = '.';
	name254[254] = '\0';
	char shown[90];
	snprintf(shown, sizeof(shown), "%.80s...", name254);
	parse_bad(name254, 0, shown, "host name longer than 253 bytes");
	name254[253] = '.';
	parse_bad(name254, 0, shown, "host name longer than 253 bytes");

	/* far too long for anything: refused before it is looked at, shown cut */
	memset(text, 'd', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	snprintf(shown, sizeof(shown), "%.80s...", text);
	parse_bad(text, 0, shown, "too long for a host and port");
}

static void test_parse_bad_port(void **state)
{
	(void)state;
	kd3_hostport hp;
	char err[256];

	/* the header's own example, word for word */
	assert_int_equal(kd3_hostport_parse("a:b", 1, 0, &hp, err, sizeof(err)), KD3_E_CONFIG);
	assert_string_equal(err, "'a:b': port 'b' is not a number 1-65535");

	parse_bad("name:", 0, "name:", "port '' is not a number 1-65535");
	parse_bad("name:0", 0, "name:0", "port '0' is not a number 1-65535");
	parse_bad("1.2.3.4:0", 0, "1.2.3.4:0", "port '0'");
	parse_bad("[::1]:0", 0, "[::1]:0", "port '0'");
	parse_bad("name:65536", 0, "name:65536", "port '65536'");
	parse_bad("name:65536", 1, "name:65536", "port '65536' is not a number 0-65535");
	parse_bad("name:99999999999999999999", 0, "name:99999999999999999999", "port");
	parse_bad("name:+88", 0, "name:+88", "port '+88'");
	parse_bad("name:-1", 0, "name:-1", "port '-1'");
	parse_bad("name: 88", 0, "name: 88", "port ' 88'");
	parse_bad("name:88 ", 0, "name:88 ", "port '88 '");
	parse_bad("name:8a", 0, "name:8a", "port '8a'");
	parse_bad("name:0x50", 0, "name:0x50", "port '0x50'");
	parse_bad("name:88\n", 0, "name:88?", "port '88?'");
	parse_bad("[::1]:", 0, "[::1]:", "port ''");
	parse_bad("[::1]:88x", 0, "[::1]:88x", "port '88x'");
}

static void test_parse_bad_brackets(void **state)
{
	(void)state;
	parse_bad("[::1", 0, "[::1", "missing ']'");
	parse_bad("[::1:88", 0, "[::1:88", "missing ']'");
	parse_bad("[1.2.3.4]", 0, "[1.2.3.4]", "'1.2.3.4' in brackets is not an IPv6 address");
	parse_bad("[1.2.3.4]:88", 0, "[1.2.3.4]:88", "brackets are only for IPv6");
	parse_bad("[name]:88", 0, "[name]:88", "'name' in brackets is not an IPv6 address");
	parse_bad("[::1]x", 0, "[::1]x", "unexpected 'x' after ']'");
	parse_bad("[::1]88", 0, "[::1]88", "unexpected '88' after ']'");
	parse_bad("[::1]]", 0, "[::1]]", "unexpected ']' after ']'");
	parse_bad("[[::1]]", 0, "[[::1]]", "in brackets is not an IPv6 address");
	parse_bad("[::1%eth0]:88", 0, "[::1%eth0]:88", "in brackets is not an IPv6 address");
	parse_bad("1:2:3", 0, "1:2:3", "not an IPv6 address (with a port, write [IPv6]:port)");
	parse_bad("1.2.3.4:88:99", 0, "1.2.3.4:88:99", "not an IPv6 address");
	parse_bad("::1:88:", 0, "::1:88:", "not an IPv6 address");
}

/* ---- RFC 2782's order --------------------------------------------------------------------- */

typedef struct fixed_rnd {
	const uint32_t *values;
	size_t n;
	size_t used;
} fixed_rnd;

static uint32_t next_rnd(void *ctx)
{
	fixed_rnd *r = ctx;
	if (r->used >= r->n)
		fail_msg("rnd called %zu times, only %zu values given", r->used + 1, r->n);
	return r->values[r->used++];
}

static kd3_srv_target target(const char *host, uint16_t priority, uint16_t weight)
{
	kd3_srv_target t;
	memset(&t, 0, sizeof(t));
	snprintf(t.host, sizeof(t.host), "%s", host);
	t.port = 7088;
	t.priority = priority;
	t.weight = weight;
	return t;
}

/* Orders t with the given random values and checks the hosts come out as want (a string
 * of one-letter hosts) with every value used. */
static void check_order(kd3_srv_target *t, size_t n, const uint32_t *values, size_t nvalues,
                        const char *want)
{
	fixed_rnd r = {values, nvalues, 0};
	char got[32] = "";
	kd3_srv_order(t, n, next_rnd, &r);
	for (size_t i = 0; i < n && i + 1 < sizeof(got); i++)
		got[i] = t[i].host[0]; /* each host is one letter */
	if (strcmp(got, want) != 0)
		fail_msg("order %s, want %s", got, want);
	assert_int_equal(r.used, nvalues);
}

static void test_srv_order_priority(void **state)
{
	(void)state;
	/* weights all 0: the running sum is 0, r is 0, the first left is taken: received
	 * order within a priority, whatever rnd says */
	kd3_srv_target t[] = {target("c", 20, 0), target("a", 10, 0), target("b", 10, 0),
	                      target("d", 30, 0), target("e", 20, 0)};
	const uint32_t values[] = {0xffffffffu, 12345}; /* one draw per priority of two */
	check_order(t, 5, values, 2, "abced");
	assert_int_equal(t[0].priority, 10);
	assert_int_equal(t[4].priority, 30);
}

static void test_srv_order_weight(void **state)
{
	(void)state;
	/* weights 10, 20, 70: sum 100, running sums 10, 30, 100 */
	const struct {
		uint32_t first, second;
		const char *want;
	} cases[] = {
	    {50, 5, "CAB"},   /* 50 -> C (100 >= 50); then A, B sum 30: 5 -> A */
	    {0, 0, "ABC"},    /* 0 -> A; then B, C: 0 -> B */
	    {10, 11, "ABC"},  /* 10 -> A (10 >= 10); then B 20, C 90: 11 -> B */
	    {11, 21, "BCA"},  /* 11 -> B (30 >= 11); then A 10, C 80: 21 -> C */
	    {100, 0, "CAB"},  /* 100 -> C, the last value of [0, 100] */
	    {101, 0, "ABC"},  /* 101 % 101 = 0 -> A */
	    {201, 30, "CBA"}, /* 201 % 101 = 100 -> C; then 30 % 31 = 30 -> B */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kd3_srv_target t[] = {target("A", 1, 10), target("B", 1, 20), target("C", 1, 70)};
		const uint32_t values[] = {cases[i].first, cases[i].second};
		check_order(t, 3, values, 2, cases[i].want);
	}
}

static void test_srv_order_weight_zero(void **state)
{
	(void)state;
	/* Z (weight 0) goes to the front of the running sum: r = 0 takes it first */
	kd3_srv_target t1[] = {target("A", 1, 5), target("Z", 1, 0), target("B", 1, 5)};
	const uint32_t v1[] = {0, 0};
	check_order(t1, 3, v1, 2, "ZAB");
	/* r = 1: A (running 0, 5); then Z, B: 3 -> B (running 0, 5); Z last */
	kd3_srv_target t2[] = {target("A", 1, 5), target("Z", 1, 0), target("B", 1, 5)};
	const uint32_t v2[] = {1, 3};
	check_order(t2, 3, v2, 2, "ABZ");
}

static void test_srv_order_mixed_and_single(void **state)
{
	(void)state;
	/* priority 1: A 1, B 3 (sum 4: 2 -> B); priority 2: X 1, Y 1 (sum 2: 0 -> X) */
	kd3_srv_target t[] = {target("X", 2, 1), target("A", 1, 1), target("Y", 2, 1),
	                      target("B", 1, 3)};
	const uint32_t values[] = {2, 0};
	check_order(t, 4, values, 2, "BAXY");

	/* one record, or one per priority: nothing to draw */
	kd3_srv_target one[] = {target("S", 7, 100)};
	check_order(one, 1, NULL, 0, "S");
	kd3_srv_target each[] = {target("B", 2, 9), target("A", 1, 9)};
	check_order(each, 2, NULL, 0, "AB");
	check_order(NULL, 0, NULL, 0, "");
}

/* ---- the TTL reader ----------------------------------------------------------------------- */

static void put_name(kd3_writer *w, const char *dotted)
{
	const char *p = dotted;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		kd3_wr_str(w, p, n);
		p += n + (dot ? 1 : 0);
	}
	kd3_wr_u8(w, 0);
}

static void put_pointer(kd3_writer *w, uint16_t off)
{
	kd3_wr_u16(w, (uint16_t)(0xc000 | off));
}

static void put_header(kd3_writer *w, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar)
{
	kd3_wr_u16(w, 0x1234);
	kd3_wr_u16(w, 0x8180); /* a reply, recursion desired and available, no error */
	kd3_wr_u16(w, qd);
	kd3_wr_u16(w, an);
	kd3_wr_u16(w, ns);
	kd3_wr_u16(w, ar);
}

/* An SRV RR whose owner is a pointer to the question's name (offset 12). */
static void put_srv_rr(kd3_writer *w, uint32_t ttl, uint16_t prio, const char *target_name)
{
	uint8_t rdata[300];
	kd3_writer rd;
	kd3_wr_init(&rd, rdata, sizeof(rdata));
	kd3_wr_u16(&rd, prio);
	kd3_wr_u16(&rd, 5);
	kd3_wr_u16(&rd, 7088);
	put_name(&rd, target_name);
	assert_int_equal(rd.err, KD3_OK);
	put_pointer(w, 12);
	kd3_wr_u16(w, T_SRV_TYPE);
	kd3_wr_u16(w, 1);
	kd3_wr_u32(w, ttl);
	kd3_wr_blob16(w, rdata, rd.len);
}

/* The reply dnsmasq gives for two SRV records, with an A record in the additional
 * section whose TTL (3) is smaller and must not count. */
static size_t good_reply(uint8_t *buf, size_t cap)
{
	kd3_writer w;
	kd3_wr_init(&w, buf, cap);
	put_header(&w, 1, 2, 0, 1);
	put_name(&w, "_kd3._udp.realm.test");
	kd3_wr_u16(&w, T_SRV_TYPE);
	kd3_wr_u16(&w, 1);
	put_srv_rr(&w, 300, 10, "kdc1.realm.test");
	put_srv_rr(&w, 120, 20, "kdc2.realm.test");
	put_name(&w, "kdc1.realm.test");
	kd3_wr_u16(&w, T_A_TYPE);
	kd3_wr_u16(&w, 1);
	kd3_wr_u32(&w, 3);
	kd3_wr_blob16(&w, (const uint8_t[4]){127, 0, 0, 1}, 4);
	assert_int_equal(w.err, KD3_OK);
	return w.len;
}

static int min_ttl(const uint8_t *p, size_t n, uint16_t type, uint32_t *ttl)
{
	/* an exact-size copy, so that a read past the end is a crash under ASan */
	uint8_t *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, p, n);
	int ret = kd3_dns_min_ttl(copy, n, type, ttl);
	free(copy);
	return ret;
}

static void test_ttl_good(void **state)
{
	(void)state;
	uint8_t buf[512];
	uint32_t ttl = 0;
	size_t n = good_reply(buf, sizeof(buf));

	assert_int_equal(min_ttl(buf, n, T_SRV_TYPE, &ttl), KD3_OK);
	assert_int_equal(ttl, 120);
	/* A records: only in the additional section, which is not the answer */
	ttl = 77;
	assert_int_equal(min_ttl(buf, n, T_A_TYPE, &ttl), KD3_E_NOT_FOUND);
	assert_int_equal(ttl, 77);
}

static void test_ttl_truncated_everywhere(void **state)
{
	(void)state;
	uint8_t buf[512];
	uint32_t ttl = 0;
	size_t n = good_reply(buf, sizeof(buf));

	for (size_t cut = 0; cut < n; cut++)
		if (min_ttl(buf, cut, T_SRV_TYPE, &ttl) != KD3_E_MALFORMED)
			fail_msg("reply cut at %zu of %zu bytes: not KD3_E_MALFORMED", cut, n);
	buf[n] = 0;
	assert_int_equal(min_ttl(buf, n + 1, T_SRV_TYPE, &ttl), KD3_E_MALFORMED); /* trailing */
	assert_int_equal(kd3_dns_min_ttl(NULL, 0, T_SRV_TYPE, &ttl), KD3_E_MALFORMED);
}

static void test_ttl_counts(void **state)
{
	(void)state;
	uint8_t buf[512];
	uint32_t ttl = 0;
	size_t n = good_reply(buf, sizeof(buf));

	buf[7] = 3; /* ancount 3: with the additional record, one RR more than there is */
	assert_int_equal(min_ttl(buf, n, T_SRV_TYPE, &ttl), KD3_E_MALFORMED);
	n = good_reply(buf, sizeof(buf));
	buf[5] = 2; /* qdcount 2 */
	assert_int_equal(min_ttl(buf, n, T_SRV_TYPE, &ttl), KD3_E_MALFORMED);
	n = good_reply(buf, sizeof(buf));
	buf[11] = 2; /* arcount 2 */
	assert_int_equal(min_ttl(buf, n, T_SRV_TYPE, &ttl), KD3_E_MALFORMED);
	n = good_reply(buf, sizeof(buf));
	buf[7] = 1; /* ancount 1: the second SRV is taken for the additional record, then
	             * the A record is left over */
	assert_int_equal(min_ttl(buf, n, T_SRV_TYPE, &ttl), KD3_E_MALFORMED);
	n = good_reply(buf, sizeof(buf));
	buf[9] = 1; /* nscount 1: one RR more than there is */
	assert_int_equal(min_ttl(buf, n, T_SRV_TYPE, &ttl), KD3_E_MALFORMED);
}

/* A reply with one SRV answer whose owner name is given raw. */
static size_t reply_with_owner(uint8_t *buf, size_t cap, const uint8_t *owner, size_t owner_len,
                               uint32_t ttl)
{
	kd3_writer w;
	kd3_wr_init(&w, buf, cap);
	put_header(&w, 1, 1, 0, 0);
	put_name(&w, "a.test"); /* offset 12 */
	kd3_wr_u16(&w, T_SRV_TYPE);
	kd3_wr_u16(&w, 1);
	kd3_wr_bytes(&w, owner, owner_len);
	kd3_wr_u16(&w, T_SRV_TYPE);
	kd3_wr_u16(&w, 1);
	kd3_wr_u32(&w, ttl);
	kd3_wr_blob16(&w, (const uint8_t[7]){0, 1, 0, 1, 0, 2, 0}, 7);
	assert_int_equal(w.err, KD3_OK);
	return w.len;
}

static void test_ttl_names(void **state)
{
	(void)state;
	uint8_t buf[1024];
	uint32_t ttl = 0;
	size_t n;
	/* the owner starts at 12 + 8 + 4 = 24 */
	const uint8_t to_question[] = {0xc0, 12};
	const uint8_t label_then_pointer[] = {1, 'x', 0xc0, 12};
	const uint8_t to_itself[] = {0xc0, 24};
	const uint8_t forward[] = {0xc0, 30};
	const uint8_t back_into_itself[] = {1, 'x', 0xc0, 24}; /* x, then x again, ... */
	const uint8_t into_header[] = {0xc0, 2};
	const uint8_t reserved_type[] = {0x40, 'x', 0};
	const uint8_t extended_type[] = {0x80, 'x', 0};

	n = reply_with_owner(buf, sizeof(buf), to_question, sizeof(to_question), 60);
	assert_int_equal(min_ttl(buf, n, T_SRV_TYPE, &ttl), KD3_OK);
	assert_int_equal(ttl, 60);
	n = reply_with_owner(buf, sizeof(buf), label_then_pointer, sizeof(label_then_pointer), 61);
	assert_int_equal(min_ttl(buf, n, T_SRV_TYPE, &ttl), KD3_OK);
	assert_int_equal(ttl, 61);
	/* RFC 2181 8: a TTL with the top bit set is 0 */
	n = reply_with_owner(buf, sizeof(buf), to_question, sizeof(to_question), 0x80000001u);
	assert_int_equal(min_ttl(buf, n, T_SRV_TYPE, &ttl), KD3_OK);
	assert_int_equal(ttl, 0);

	const struct {
		const uint8_t *p;
		size_t n;
	} bad[] = {{to_itself, sizeof(to_itself)},
	           {forward, sizeof(forward)},
	           {back_into_itself, sizeof(back_into_itself)},
	           {into_header, sizeof(into_header)},
	           {reserved_type, sizeof(reserved_type)},
	           {extended_type, sizeof(extended_type)}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = reply_with_owner(buf, sizeof(buf), bad[i].p, bad[i].n, 60);
		if (min_ttl(buf, n, T_SRV_TYPE, &ttl) != KD3_E_MALFORMED)
			fail_msg("bad owner name %zu: not KD3_E_MALFORMED", i);
	}

	/* a name of 256 bytes on the wire (four labels of 63 and the root: 257) */
	uint8_t long_name[300];
	size_t at = 0;
	for (int l = 0; l < 4; l++) {
		long_name[at++] = 63;
		memset(long_name + at, 'l', 63);
		at += 63;
	}
	long_name[at++] = 0;
	n = reply_with_owner(buf, sizeof(buf), long_name, at, 60);
	assert_int_equal(min_ttl(buf, n, T_SRV_TYPE, &ttl), KD3_E_MALFORMED);
	/* 255 exactly is a name */
	long_name[3 * 64] = 61;
	memset(long_name + 3 * 64 + 1, 'l', 61);
	long_name[3 * 64 + 62] = 0;
	n = reply_with_owner(buf, sizeof(buf), long_name, 3 * 64 + 63, 60);
	assert_int_equal(min_ttl(buf, n, T_SRV_TYPE, &ttl), KD3_OK);
}

/* ---- resolving -------------------------------------------------------------------------- */

static void format_all(const kd3_addr *a, size_t n, char *out, size_t out_len)
{
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char one[64];
		kd3_addr_format(&a[i], one, sizeof(one));
		size_t used = strlen(out);
		snprintf(out + used, out_len - used, "%s%s", i ? " " : "", one);
	}
}

static int resolve_text(const char *text, int timeout_ms, char *got, size_t got_len, char *err,
                        size_t err_len)
{
	kd3_hostport hp;
	kd3_addr addrs[KD3_RESOLVE_ADDR_MAX];
	size_t n = 99;
	assert_int_equal(kd3_hostport_parse(text, 7088, 0, &hp, err, err_len), KD3_OK);
	int ret = kd3_resolve(&hp, 0, timeout_ms, addrs, KD3_RESOLVE_ADDR_MAX, &n, err, err_len);
	if (ret != KD3_OK)
		assert_int_equal(n, 0);
	format_all(addrs, ret == KD3_OK ? n : 0, got, got_len);
	return ret;
}

static void test_resolve_literals(void **state)
{
	(void)state;
	char got[256], err[256];
	/* a server list that cannot work: a literal never opens a channel */
	setenv("KD3_DNS_SERVER", "not a server", 1);
	assert_int_equal(resolve_text("127.0.0.1", 0, got, sizeof(got), err, sizeof(err)), KD3_OK);
	assert_string_equal(got, "127.0.0.1:7088");
	assert_int_equal(resolve_text("[::1]:99", 0, got, sizeof(got), err, sizeof(err)), KD3_OK);
	assert_string_equal(got, "[::1]:99");
	assert_int_equal(resolve_text("::ffff:10.0.0.1", 0, got, sizeof(got), err, sizeof(err)),
	                 KD3_OK);
	assert_string_equal(got, "[::ffff:10.0.0.1]:7088");
	/* and a name does open one: the bad list is refused */
	assert_int_equal(resolve_text("kd3-test-host", 0, got, sizeof(got), err, sizeof(err)),
	                 KD3_E_CONFIG);
	assert_non_null(strstr(err, "KD3_DNS_SERVER"));
}

static void test_resolve_localhost(void **state)
{
	(void)state;
	kd3_hostport hp;
	kd3_addr addrs[KD3_RESOLVE_ADDR_MAX];
	size_t n = 0;
	char err[256];
	/* RFC 6761: the loopback, whatever the hosts file says and without a resolver (the
	 * bad server list would make any lookup KD3_E_CONFIG) */
	write_hosts("10.1.1.1 localhost\n");
	setenv("KD3_DNS_SERVER", "not a server", 1);
	assert_int_equal(kd3_hostport_parse("localhost:5", 1, 0, &hp, err, sizeof(err)), KD3_OK);
	assert_int_equal(
	    kd3_resolve(&hp, 0, 2000, addrs, KD3_RESOLVE_ADDR_MAX, &n, err, sizeof(err)), KD3_OK);
	assert_true(n >= 1 && n <= 2);
	assert_int_equal(addrs[0].ss.ss_family, AF_INET); /* 127.0.0.1 first */
	for (size_t i = 0; i < n; i++) {
		if (addrs[i].ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&addrs[i].ss;
			assert_int_equal(ntohl(in->sin_addr.s_addr) >> 24, 127);
			assert_int_equal(ntohs(in->sin_port), 5);
		} else {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addrs[i].ss;
			assert_int_equal(addrs[i].ss.ss_family, AF_INET6);
			assert_true(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
			assert_int_equal(ntohs(in6->sin6_port), 5);
		}
	}
	/* passive is the same answer; any case, a trailing dot; max holds */
	size_t n2 = 0;
	assert_int_equal(
	    kd3_resolve(&hp, 1, 2000, addrs, KD3_RESOLVE_ADDR_MAX, &n2, err, sizeof(err)), KD3_OK);
	assert_int_equal(n2, n);
	assert_int_equal(kd3_hostport_parse("LocalHost.", 1, 0, &hp, err, sizeof(err)), KD3_OK);
	assert_int_equal(kd3_resolve(&hp, 0, 2000, addrs, 1, &n2, err, sizeof(err)), KD3_OK);
	assert_int_equal(n2, 1);
	assert_int_equal(ntohl(((struct sockaddr_in *)&addrs[0].ss)->sin_addr.s_addr), 0x7f000001);
}

static void test_resolve_hosts_file(void **state)
{
	(void)state;
	char got[512], err[256];
	kd3_hostport hp;
	kd3_addr addrs[KD3_RESOLVE_ADDR_MAX];
	size_t n = 0;

	write_hosts("# kd3 test\n"
	            "127.0.0.2   kd3-test-host\n"
	            "10.9.9.9    other-host\n"
	            "::1         kd3-test-host   # the loopback, IPv6\n"
	            "127.0.0.2   kd3-test-alias kd3-test-host\n" /* a duplicate: kept once */
	            "127.0.0.3   kd3-test-alias kd3-test-host\n");
	assert_int_equal(
	    resolve_text("kd3-test-host:7100", 2000, got, sizeof(got), err, sizeof(err)), KD3_OK);
	assert_string_equal(got, "127.0.0.2:7100 [::1]:7100 127.0.0.3:7100");
	assert_int_equal(resolve_text("KD3-TEST-ALIAS", 2000, got, sizeof(got), err, sizeof(err)),
	                 KD3_OK);
	assert_string_equal(got, "127.0.0.2:7088 127.0.0.3:7088");

	/* file order, not RFC 6724's (which would put ::1 first): the other way round too */
	write_hosts("::1 kd3-test-host\n127.0.0.2 kd3-test-host\n");
	assert_int_equal(resolve_text("kd3-test-host", 2000, got, sizeof(got), err, sizeof(err)),
	                 KD3_OK);
	assert_string_equal(got, "[::1]:7088 127.0.0.2:7088");

	/* at most max, *n says how many */
	assert_int_equal(kd3_hostport_parse("kd3-test-host", 1, 0, &hp, err, sizeof(err)), KD3_OK);
	assert_int_equal(kd3_resolve(&hp, 0, 2000, addrs, 1, &n, err, sizeof(err)), KD3_OK);
	assert_int_equal(n, 1);
	assert_int_equal(addrs[0].ss.ss_family, AF_INET6);
	assert_int_equal(kd3_resolve(&hp, 0, 2000, addrs, 0, &n, err, sizeof(err)), KD3_E_ARG);

	/* only one family */
	assert_int_equal(
	    kd3_resolve(&hp, 0, 2000, addrs, KD3_RESOLVE_ADDR_MAX, &n, err, sizeof(err)), KD3_OK);
	assert_int_equal(n, 2);
	assert_int_equal(kd3_addrs_keep_family(addrs, n, AF_INET), 1);
	assert_int_equal(addrs[0].ss.ss_family, AF_INET);
	assert_int_equal(
	    kd3_resolve(&hp, 0, 2000, addrs, KD3_RESOLVE_ADDR_MAX, &n, err, sizeof(err)), KD3_OK);
	assert_int_equal(kd3_addrs_keep_family(addrs, n, AF_INET6), 1);
	assert_int_equal(addrs[0].ss.ss_family, AF_INET6);
	assert_int_equal(kd3_addrs_keep_family(addrs, 1, AF_INET), 0);
}

static void check_timeout(const char *servers, const char *name, int timeout_ms)
{
	char got[256], err[256], want[128];
	setenv("KD3_DNS_SERVER", servers, 1);
	uint64_t start = kd3_now_ms();
	int ret = resolve_text(name, timeout_ms, got, sizeof(got), err, sizeof(err));
	uint64_t elapsed = kd3_now_ms() - start;
	if (ret != KD3_E_TIMEOUT)
		fail_msg("'%s' via %s: %d (%s), want KD3_E_TIMEOUT", name, servers, ret, err);
	/* The deadline is hard; the 2 s over it only absorb a loaded machine's scheduling
	 * (CI runs the suite two at a time, a sanitizer build beside it). */
	if (elapsed >= (uint64_t)timeout_ms + 2000 || elapsed < (uint64_t)timeout_ms / 2)
		fail_msg("'%s': timed out after %llu ms, bound %d ms", name,
		         (unsigned long long)elapsed, timeout_ms);
	snprintf(want, sizeof(want), "'%s': no answer from DNS within %d ms", name, timeout_ms);
	assert_string_equal(err, want);
}

static void test_resolve_timeout(void **state)
{
	(void)state;
	uint16_t port2 = 0;
	char two[128];

	write_hosts("127.0.0.2 kd3-test-host\n");
	check_timeout(silent_server, "kd3-not-in-file.test", 1500);
	check_timeout(silent_server, "kd3-not-in-file", 600);
	/* two silent servers: c-ares tries each in turn; the deadline still holds */
	int fd2 = bind_udp(&port2);
	assert_true(fd2 >= 0);
	snprintf(two, sizeof(two), "%s,127.0.0.1:%u", silent_server, port2);
	check_timeout(two, "kd3-not-in-file.test", 1000);
	close(fd2);
}

static void test_srv_timeout(void **state)
{
	(void)state;
	kd3_srv_target t[KD3_SRV_MAX];
	size_t n = 99;
	uint32_t ttl = 0;
	char err[256];
	uint64_t start = kd3_now_ms();
	assert_int_equal(
	    kd3_srv_lookup("_kd3._udp.realm.test", 800, t, KD3_SRV_MAX, &n, &ttl, err, sizeof(err)),
	    KD3_E_TIMEOUT);
	assert_true(kd3_now_ms() - start < 800 + 2000);
	assert_int_equal(n, 0);
	assert_string_equal(err, "'_kd3._udp.realm.test': no answer from DNS within 800 ms");
}

static void test_srv_bad_name(void **state)
{
	(void)state;
	kd3_srv_target t[KD3_SRV_MAX];
	size_t n = 99;
	uint32_t ttl = 0;
	char err[256];
	assert_int_equal(
	    kd3_srv_lookup("_kd3._udp.realm test", 800, t, KD3_SRV_MAX, &n, &ttl, err, sizeof(err)),
	    KD3_E_CONFIG);
	assert_non_null(strstr(err, "' ' is not allowed"));
	assert_int_equal(kd3_srv_lookup("1.2.3.4", 800, t, KD3_SRV_MAX, &n, &ttl, err, sizeof(err)),
	                 KD3_E_CONFIG);
	assert_string_equal(err, "'1.2.3.4': not a DNS name for SRV records");
	assert_int_equal(kd3_srv_lookup("name:53", 800, t, KD3_SRV_MAX, &n, &ttl, err, sizeof(err)),
	                 KD3_E_CONFIG);
	assert_int_equal(n, 0);
}

/* A port nothing listens on: the kernel answers with ICMP, c-ares sees the refusal. */
static void test_resolve_refused(void **state)
{
	(void)state;
	uint16_t port = 0;
	char got[256], err[256], server[64];
	int fd = bind_udp(&port);
	assert_true(fd >= 0);
	close(fd);
	snprintf(server, sizeof(server), "127.0.0.1:%u", port);
	setenv("KD3_DNS_SERVER", server, 1);
	uint64_t start = kd3_now_ms();
	assert_int_equal(
	    resolve_text("kd3-not-in-file.test", 3000, got, sizeof(got), err, sizeof(err)),
	    KD3_E_IO);
	assert_true(kd3_now_ms() - start < 3000);
	assert_non_null(strstr(err, "'kd3-not-in-file.test': resolver failed: "));
}

static void test_dns_server_env(void **state)
{
	(void)state;
	char got[256], err[256];
	const struct {
		const char *value;
		const char *why;
	} bad[] = {
	    {"nonsense", "KD3_DNS_SERVER: 'nonsense' is not an IP address"},
	    {"127.0.0.1:0", "KD3_DNS_SERVER: '127.0.0.1:0': port '0' is not a number 1-65535"},
	    {"127.0.0.1:99999", "port '99999'"},
	    {"127.0.0.1:53x", "port '53x'"},
	    {"127.0.0.1,,127.0.0.2", "KD3_DNS_SERVER: an empty server in the list"},
	    {"127.0.0.1,", "an empty server"},
	    {",", "an empty server"},
	    {"name.test:53", "'name.test:53' is not an IP address"},
	    {"[127.0.0.1]:53", "in brackets is not an IPv6 address"},
	    {"127.0.0.1 ", "' ' is not allowed"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("KD3_DNS_SERVER", bad[i].value, 1);
		int ret = resolve_text("kd3-test-host", 500, got, sizeof(got), err, sizeof(err));
		if (ret != KD3_E_CONFIG || !strstr(err, bad[i].why) || strchr(err, '\n'))
			fail_msg("KD3_DNS_SERVER='%s': %d \"%s\", want KD3_E_CONFIG \"%s\"",
			         bad[i].value, ret, err, bad[i].why);
	}
	/* good forms: a bare IP (port 53), [v6]:port, several; the hosts file answers */
	write_hosts("127.0.0.2 kd3-test-host\n");
	const char *good[] = {"127.0.0.1", "[::1]:5353", "::1", "127.0.0.1:1,[::1]:2"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		setenv("KD3_DNS_SERVER", good[i], 1);
		if (resolve_text("kd3-test-host", 500, got, sizeof(got), err, sizeof(err)) !=
		    KD3_OK)
			fail_msg("KD3_DNS_SERVER='%s': %s", good[i], err);
		assert_string_equal(got, "127.0.0.2:7088");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good),
	    cmocka_unit_test(test_parse_bad_host),
	    cmocka_unit_test(test_parse_bad_port),
	    cmocka_unit_test(test_parse_bad_brackets),
	    cmocka_unit_test(test_srv_order_priority),
	    cmocka_unit_test(test_srv_order_weight),
	    cmocka_unit_test(test_srv_order_weight_zero),
	    cmocka_unit_test(test_srv_order_mixed_and_single),
	    cmocka_unit_test(test_ttl_good),
	    cmocka_unit_test(test_ttl_truncated_everywhere),
	    cmocka_unit_test(test_ttl_counts),
	    cmocka_unit_test(test_ttl_names),
	    cmocka_unit_test_setup(test_resolve_literals, setup),
	    cmocka_unit_test_setup(test_resolve_localhost, setup),
	    cmocka_unit_test_setup(test_resolve_hosts_file, setup),
	    cmocka_unit_test_setup(test_resolve_timeout, setup),
	    cmocka_unit_test_setup(test_srv_timeout, setup),
	    cmocka_unit_test_setup(test_srv_bad_name, setup),
	    cmocka_unit_test_setup(test_resolve_refused, setup),
	    cmocka_unit_test_setup(test_dns_server_env, setup),
	};
	return cmocka_run_group_tests_name("resolve", tests, group_setup, group_teardown);
}
