/* Address parsing and formatting (IP literals only, never a name lookup), the
 * non-blocking helper and the monotonic clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "net.h"

static void parse_ok(const char *text, uint16_t def, int family, const char *formatted)
{
	kd3_addr a;
	char out[80];

	int ret = kd3_addr_parse(text, def, &a);
	if (ret != KD3_OK)
		fail_msg("\"%s\": %d, want KD3_OK", text, ret);
	assert_int_equal(a.ss.ss_family, family);
	assert_int_equal(a.len, family == AF_INET ? sizeof(struct sockaddr_in)
	                                          : sizeof(struct sockaddr_in6));
	kd3_addr_format(&a, out, sizeof(out));
	if (strcmp(out, formatted) != 0)
		fail_msg("\"%s\" formats as \"%s\", want \"%s\"", text, out, formatted);
}

static void parse_refused(const char *text)
{
	kd3_addr a;
	memset(&a, 0x5a, sizeof(a));
	int ret = kd3_addr_parse(text, 7088, &a);
	if (ret != KD3_E_CONFIG)
		fail_msg("\"%s\": %d, want KD3_E_CONFIG", text, ret);
	/* Nothing usable is left behind. */
	assert_int_equal(a.len, 0);
}

static void test_parse_ipv4(void **state)
{
	(void)state;
	kd3_addr a;

	parse_ok("127.0.0.1:7088", 1, AF_INET, "127.0.0.1:7088");
	assert_int_equal(kd3_addr_parse("127.0.0.1:7088", 1, &a), KD3_OK);
	const struct sockaddr_in *in = (const struct sockaddr_in *)&a.ss;
	assert_int_equal(ntohs(in->sin_port), 7088);
	assert_int_equal(ntohl(in->sin_addr.s_addr), 0x7f000001);

	parse_ok("127.0.0.1", 7088, AF_INET, "127.0.0.1:7088");
	parse_ok("0.0.0.0:1", 7088, AF_INET, "0.0.0.0:1");
	parse_ok("255.255.255.255:65535", 7088, AF_INET, "255.255.255.255:65535");
	parse_ok("10.1.2.3:080", 7088, AF_INET, "10.1.2.3:80"); /* decimal, not octal */
}

static void test_parse_ipv6(void **state)
{
	(void)state;
	kd3_addr a;

	parse_ok("[::1]:7089", 1, AF_INET6, "[::1]:7089");
	assert_int_equal(kd3_addr_parse("[::1]:7089", 1, &a), KD3_OK);
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a.ss;
	assert_int_equal(ntohs(in6->sin6_port), 7089);
	assert_true(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));

	parse_ok("::1", 7089, AF_INET6, "[::1]:7089");
	parse_ok("[::1]", 7089, AF_INET6, "[::1]:7089");
	parse_ok("[2001:db8::1]:65535", 7089, AF_INET6, "[2001:db8::1]:65535");
	parse_ok("2001:db8:0:0:0:0:0:1", 7, AF_INET6, "[2001:db8::1]:7");
	parse_ok("[::ffff:127.0.0.1]:1", 7, AF_INET6, "[::ffff:127.0.0.1]:1");
	parse_ok("[0000:0000:0000:0000:0000:0000:0000:0001]:7088", 7, AF_INET6, "[::1]:7088");
}

static void test_parse_refusals(void **state)
{
	(void)state;
	static const char *bad[] = {
	    "localhost:1", /* no name resolution, ever */
	    "localhost",
	    "example.com:80",
	    "1.2.3.4:0",
	    ":80",
	    "[::1",
	    "1.2.3.4:65536",
	    "1.2.3.4:99999999999999999999999",
	    "",
	    "1.2.3.4:",
	    "[::1]:",
	    "[::1]:0",
	    "[::1]:65536",
	    "[::1]x",
	    "[::1]:80x",
	    "[]:80",
	    "[1.2.3.4]:80",
	    "1.2.3.4:80:90",
	    "1.2.3.4:8o",
	    "1.2.3.4:0x50",
	    "1.2.3.256:80",
	    "1.2.3:80",
	    "::1]:80",
	    "[fe80::1%lo]:80",
	    " 1.2.3.4:80",
	    "1.2.3.4 :80",
	    "1.2.3.4:-1",
	    "1.2.3.4:11111111111111111111111111111111111111111111111111111111111",
	    "[::1]:7089:7089",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parse_refused(bad[i]);
}

/* A port is digits only: no sign, no space, no wrap-around through strtoul's
 * negation ("-18446744073709551536" is 80 modulo 2^64). */
static void test_port_digits_only(void **state)
{
	(void)state;
	parse_refused("1.2.3.4:+80");
	parse_refused("1.2.3.4: 80");
	parse_refused("[::1]:+80");
	parse_refused("1.2.3.4:-18446744073709551536");
}

static void test_format_truncates_safely(void **state)
{
	(void)state;
	kd3_addr a;
	char out[8];

	memset(out, 'x', sizeof(out));
	assert_int_equal(kd3_addr_parse("[2001:db8::1]:65535", 1, &a), KD3_OK);
	kd3_addr_format(&a, out, sizeof(out));
	assert_int_equal(out[sizeof(out) - 1], '\0');
	assert_string_equal(out, "[2001:d");
}

static void test_set_nonblock(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	assert_false(fcntl(fds[0], F_GETFL) & O_NONBLOCK);
	assert_int_equal(kd3_set_nonblock(fds[0]), KD3_OK);
	assert_true(fcntl(fds[0], F_GETFL) & O_NONBLOCK);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(kd3_set_nonblock(-1), KD3_E_IO);
}

static void test_clock(void **state)
{
	(void)state;
	uint64_t ms0 = kd3_now_ms(), us0 = kd3_now_us();
	usleep(20000);
	uint64_t ms1 = kd3_now_ms(), us1 = kd3_now_us();
	assert_true(ms1 >= ms0 + 15);
	assert_true(us1 >= us0 + 15000);
	assert_true(ms1 - ms0 < 5000);
	/* The two clocks agree. */
	uint64_t ms = kd3_now_ms(), us = kd3_now_us();
	assert_true(us / 1000 >= ms && us / 1000 - ms <= 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_ipv4),
	    cmocka_unit_test(test_parse_ipv6),
	    cmocka_unit_test(test_parse_refusals),
	    cmocka_unit_test(test_port_digits_only),
	    cmocka_unit_test(test_format_truncates_safely),
	    cmocka_unit_test(test_set_nonblock),
	    cmocka_unit_test(test_clock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
