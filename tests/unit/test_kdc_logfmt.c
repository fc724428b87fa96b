/* shared/log.c as kdc serve uses it: UTC times computed without the C library's time
 * zone code, JSON strings escaped (and cut safely), each format's line (text, text
 * with time, JSON), the syslog datagram with a fallback to stderr once the socket is
 * gone, and journald detected from $JOURNAL_STREAM. */
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cJSON.h>
#include <cmocka.h>

#include "log.h"

#include "unit_capture.h"

static void assert_matches(const char *text, const char *pattern)
{
	regex_t rx;
	assert_int_equal(regcomp(&rx, pattern, REG_EXTENDED | REG_NOSUB), 0);
	int ok = regexec(&rx, text, 0, NULL, 0) == 0;
	regfree(&rx);
	if (!ok)
		fail_msg("'%s' does not match %s", text, pattern);
}

static void test_utc(void **state)
{
	static const struct {
		uint64_t us;
		const char *text;
	} cases[] = {
	    {0, "1970-01-01T00:00:00.000Z"},
	    {951782400123456ull, "2000-02-29T00:00:00.123Z"},
	    {1709251199999999ull, "2024-02-29T23:59:59.999Z"},
	    {4102444800000000ull, "2100-01-01T00:00:00.000Z"},
	    {253402300799000000ull, "9999-12-31T23:59:59.000Z"},
	};
	char out[32];
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kd3_log_utc(cases[i].us, out);
		assert_string_equal(out, cases[i].text);
	}
}

static void test_json_string(void **state)
{
	char out[64];
	size_t at = 0;
	(void)state;
	kd3_log_json_str(out, sizeof(out), &at, "a\"b\\c\n\x01\x7f");
	assert_string_equal(out, "\"a\\\"b\\\\c\\u000a\\u0001\\u007f\"");
	assert_int_equal(at, strlen(out));
	/* Too long for the room: cut, still a JSON string, never past the end. */
	char small[12];
	memset(small, 'x', sizeof(small));
	at = 0;
	kd3_log_json_str(small, sizeof(small), &at, "0123456789abcdef");
	assert_string_equal(small, "\"012345678\"");
	at = 0;
	kd3_log_json_str(small, sizeof(small), &at, "\"\"\"\"\"\"\"\"");
	assert_string_equal(small, "\"\\\"\\\"\\\"\\\"\"");
	cJSON *o = cJSON_Parse(small);
	assert_non_null(o);
	cJSON_Delete(o);
}

static void test_formats(void **state)
{
	(void)state;
	kd3_log_set_program("kdc");
	capture_begin();
	kd3_log_set_format(0, 0);
	kd3_log_info("plain %d", 1);
	kd3_log_error("broken");
	kd3_log_set_format(0, 1);
	kd3_log_info("stamped");
	kd3_log_set_format(1, 0);
	kd3_log_error("quote \" and\ttab");
	kd3_log_event("udp x", "\"event\":\"request\",\"us\":5");
	kd3_log_set_format(0, 0);
	kd3_log_event("udp x", "\"event\":\"request\",\"us\":5");
	char *text = capture_end();
	char *line[8] = {0};
	int n = 0;
	for (char *p = strtok(text, "\n"); p && n < 8; p = strtok(NULL, "\n"))
		line[n++] = p;
	assert_int_equal(n, 6);
	assert_string_equal(line[0], "kdc: plain 1");
	assert_string_equal(line[1], "kdc: error: broken");
	assert_matches(line[2],
	               "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	               "kdc: stamped$");
	cJSON *o = cJSON_Parse(line[3]);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "level")->valuestring, "error");
	assert_string_equal(cJSON_GetObjectItem(o, "msg")->valuestring, "quote \" and\ttab");
	assert_string_equal(cJSON_GetObjectItem(o, "program")->valuestring, "kdc");
	cJSON_Delete(o);
	o = cJSON_Parse(line[4]);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "event")->valuestring, "request");
	assert_int_equal(cJSON_GetObjectItem(o, "us")->valueint, 5);
	cJSON_Delete(o);
	assert_string_equal(line[5], "kdc: udp x");
}

static void test_syslog(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/kd3-test-syslog-XXXXXX", got[256], want[256], err[256];
	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/log", dir);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(kd3_log_open_syslog("/nonexistent/log", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/log"));
	assert_int_equal(kd3_log_open_syslog(sa.sun_path, err, sizeof(err)), 0);
	kd3_log_set_program("kdc");
	kd3_log_set_sink(KD3_LOG_TO_SYSLOG);
	kd3_log_set_format(0, 1); /* syslog stamps lines itself: no time in them */
	kd3_log_error("disk %s", "full");
	ssize_t n = recv(fd, got, sizeof(got) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	got[n] = '\0';
	snprintf(want, sizeof(want), "<27>kdc[%ld]: error: disk full", (long)getpid());
	assert_string_equal(got, want);
	kd3_log_set_format(1, 0);
	kd3_log_info("hello");
	n = recv(fd, got, sizeof(got) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	got[n] = '\0';
	snprintf(want, sizeof(want), "<30>kdc[%ld]: {", (long)getpid());
	assert_int_equal(strncmp(got, want, strlen(want)), 0);
	cJSON *o = cJSON_Parse(strchr(got, '{'));
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "msg")->valuestring, "hello");
	cJSON_Delete(o);
	/* The syslog socket gone: the line goes to stderr rather than nowhere. */
	close(fd);
	unlink(sa.sun_path);
	rmdir(dir);
	kd3_log_set_format(0, 0);
	capture_begin();
	kd3_log_info("still here");
	char *text = capture_end();
	assert_string_equal(text, "kdc: still here\n");
	kd3_log_set_sink(KD3_LOG_TO_STDERR);
}

static void test_journal_detection(void **state)
{
	struct stat st;
	char value[64];
	(void)state;
	assert_int_equal(fstat(2, &st), 0);
	unsetenv("JOURNAL_STREAM");
	assert_int_equal(kd3_log_stderr_is_journal(), 0);
	snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", value, 1);
	assert_int_equal(kd3_log_stderr_is_journal(), 1);
	snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", value, 1);
	assert_int_equal(kd3_log_stderr_is_journal(), 0);
	setenv("JOURNAL_STREAM", "garbage", 1);
	assert_int_equal(kd3_log_stderr_is_journal(), 0);
	unsetenv("JOURNAL_STREAM");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utc),
	    cmocka_unit_test(test_json_string),
	    cmocka_unit_test(test_formats),
	    cmocka_unit_test(test_syslog),
	    cmocka_unit_test(test_journal_detection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
