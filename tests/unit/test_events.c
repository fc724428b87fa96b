/* The event sink (shared/events.c): the JSON backend's fields and escaping, base64 for
 * payloads that are not UTF-8 (or hold a NUL), the UTF-8 check at its edges, error
 * names, and the plain backend writing received payloads byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "events.h"

/* The JSON line for ev at t_us = 42, compared with want. */
static void expect_json(const kd3_event *ev, const char *want)
{
	char *line = kd3_event_json(ev, 42);
	assert_non_null(line);
	assert_string_equal(line, want);
	free(line);
}

static void test_handshake_and_established(void **state)
{
	(void)state;
	kd3_event hs = {.kind = KD3_EVT_HANDSHAKE, .step = "M1 sent"};
	expect_json(&hs, "{\"event\":\"handshake\",\"t_us\":42,\"step\":\"M1 sent\"}");

	kd3_event est = {.kind = KD3_EVT_ESTABLISHED,
	                 .peer = "bob",
	                 .suite = "chacha20-poly1305",
	                 .forward_secrecy = 1,
	                 .lifetime_s = 3600};
	expect_json(&est, "{\"event\":\"established\",\"t_us\":42,\"peer\":\"bob\","
	                  "\"suite\":\"chacha20-poly1305\",\"forward_secrecy\":true,"
	                  "\"lifetime_s\":3600}");
}

static void test_message_text_escaped(void **state)
{
	(void)state;
	static const uint8_t text[] = "a\"b\\c\n\x01\x1f\xc3\xa9"; /* ends in U+00E9 */
	kd3_event ev = {.kind = KD3_EVT_MESSAGE,
	                .direction = "received",
	                .data = text,
	                .size = sizeof(text) - 1};
	expect_json(&ev, "{\"event\":\"message\",\"t_us\":42,\"direction\":\"received\","
	                 "\"size\":10,\"data\":\"a\\\"b\\\\c\\n\\u0001\\u001f\xc3\xa9\"}");

	kd3_event empty = {.kind = KD3_EVT_MESSAGE,
	                   .direction = "received",
	                   .data = (const uint8_t *)"",
	                   .size = 0};
	expect_json(&empty, "{\"event\":\"message\",\"t_us\":42,\"direction\":\"received\","
	                    "\"size\":0,\"data\":\"\"}");

	kd3_event sent = {.kind = KD3_EVT_MESSAGE, .direction = "sent", .size = 7};
	expect_json(&sent, "{\"event\":\"message\",\"t_us\":42,\"direction\":\"sent\",\"size\":7}");
}

static void test_message_binary_base64(void **state)
{
	(void)state;
	static const uint8_t bin[] = {0x80, 0xff, 0xfe};
	kd3_event ev = {
	    .kind = KD3_EVT_MESSAGE, .direction = "received", .data = bin, .size = sizeof(bin)};
	expect_json(&ev, "{\"event\":\"message\",\"t_us\":42,\"direction\":\"received\","
	                 "\"size\":3,\"data_base64\":\"gP/+\"}");

	/* A NUL cannot go through a C string: base64, with its padding. */
	static const uint8_t nul[] = {'a', 0, 'b', 'c'};
	kd3_event ev2 = {
	    .kind = KD3_EVT_MESSAGE, .direction = "received", .data = nul, .size = sizeof(nul)};
	expect_json(&ev2, "{\"event\":\"message\",\"t_us\":42,\"direction\":\"received\","
	                  "\"size\":4,\"data_base64\":\"YQBiYw==\"}");
}

static void test_utf8_edges(void **state)
{
	(void)state;
	static const struct {
		const char *bytes;
		int ok;
	} cases[] = {
	    {"plain ascii", 1},
	    {"\xc3\xa9", 1},         /* U+00E9 */
	    {"\xe2\x82\xac", 1},     /* U+20AC */
	    {"\xf0\x9f\x98\x80", 1}, /* U+1F600 */
	    {"\xf4\x8f\xbf\xbf", 1}, /* U+10FFFF */
	    {"\xc0\xaf", 0},         /* overlong '/' */
	    {"\xe0\x80\xaf", 0},     /* overlong, 3 bytes */
	    {"\xed\xa0\x80", 0},     /* surrogate U+D800 */
	    {"\xf4\x90\x80\x80", 0}, /* above U+10FFFF */
	    {"\xc3", 0},             /* truncated */
	    {"\xe2\x82", 0},         /* truncated */
	    {"\x80", 0},             /* lone continuation */
	    {"\xc3\x28", 0},         /* bad continuation */
	    {"\xff", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *b = cases[i].bytes;
		assert_int_equal(kd3_events_utf8_ok((const uint8_t *)b, strlen(b)), cases[i].ok);
	}
	assert_int_equal(kd3_events_utf8_ok((const uint8_t *)"a\0b", 3), 0);
	assert_int_equal(kd3_events_utf8_ok(NULL, 0), 1);
}

static void test_key_update_close_error(void **state)
{
	(void)state;
	kd3_event ku = {.kind = KD3_EVT_KEY_UPDATE, .direction = "sent", .generation = 3};
	expect_json(&ku, "{\"event\":\"key_update\",\"t_us\":42,\"direction\":\"sent\","
	                 "\"generation\":3}");

	kd3_event cl = {.kind = KD3_EVT_CLOSE, .by = "peer", .reason = 0, .text = "bye\t"};
	expect_json(&cl, "{\"event\":\"close\",\"t_us\":42,\"by\":\"peer\",\"reason\":0,"
	                 "\"text\":\"bye\\t\"}");

	kd3_event er = {.kind = KD3_EVT_ERROR,
	                .code = kd3_events_err_name(KD3_E_BAD_AUTH),
	                .text = "responder reported BAD_AUTH: x",
	                .exit_code = 3};
	expect_json(&er, "{\"event\":\"error\",\"t_us\":42,\"code\":\"BAD_AUTH\","
	                 "\"message\":\"responder reported BAD_AUTH: x\",\"exit\":3}");
}

static void test_err_names(void **state)
{
	(void)state;
	assert_string_equal(kd3_events_err_name(KD3_E_MALFORMED), "MALFORMED");
	assert_string_equal(kd3_events_err_name(KD3_E_TIMEOUT), "TIMEOUT");
	assert_string_equal(kd3_events_err_name(KD3_E_UNEXPECTED), "UNEXPECTED");
	assert_string_equal(kd3_events_err_name(KD3_E_RECORD_AUTH), "RECORD_AUTH");
	assert_string_equal(kd3_events_err_name(KD3_E_WEAK_KEY), "WEAK_KEY");
	assert_string_equal(kd3_events_err_name(KD3_E_NO_SPACE), "NO_SPACE");
	assert_string_equal(kd3_events_err_name(KD3_E_KEYFILE_PERMS), "KEYFILE_PERMS");
	assert_string_equal(kd3_events_err_name(KD3_E_NO_KDC), "NO_KDC");
	assert_string_equal(kd3_events_err_name(KD3_E_NO_KDC + 1), "UNKNOWN");
	assert_string_equal(kd3_events_err_name(10), "UNKNOWN");
	assert_string_equal(kd3_events_err_name(-1), "UNKNOWN");
}

/* Everything the sink wrote to a temporary file, NUL-terminated, into buf. */
static size_t emitted(kd3_events_mode mode, const kd3_event *evs, size_t n, char *buf, size_t cap)
{
	kd3_events e;
	FILE *f = tmpfile();
	assert_non_null(f);
	kd3_events_init(&e, f, mode);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(kd3_events_emit(&e, &evs[i]), KD3_OK);
	rewind(f);
	size_t len = fread(buf, 1, cap - 1, f);
	buf[len] = '\0';
	fclose(f);
	return len;
}

static void test_backends(void **state)
{
	(void)state;
	static const uint8_t bin[] = {0x80, 0x00, '\n'};
	const kd3_event evs[] = {
	    {.kind = KD3_EVT_HANDSHAKE, .step = "M1 sent"},
	    {.kind = KD3_EVT_MESSAGE, .direction = "sent", .size = 5},
	    {.kind = KD3_EVT_MESSAGE,
	     .direction = "received",
	     .data = (const uint8_t *)"hi",
	     .size = 2},
	    {.kind = KD3_EVT_MESSAGE, .direction = "received", .data = bin, .size = sizeof(bin)},
	    {.kind = KD3_EVT_CLOSE, .by = "us", .text = "bye"},
	};
	char buf[1024];

	/* Plain: the received payloads only, each with '\n', byte for byte. */
	size_t len = emitted(KD3_EVENTS_PLAIN, evs, 5, buf, sizeof(buf));
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "hi\n\x80\x00\n\n", 7);

	/* JSON: one line per event, each an object with a t_us. */
	len = emitted(KD3_EVENTS_JSON, evs, 5, buf, sizeof(buf));
	size_t lines = 0;
	for (char *p = buf; *p; p = strchr(p, '\n') + 1) {
		assert_non_null(strchr(p, '\n'));
		assert_true(p[0] == '{' && strstr(p, "\"t_us\":") != NULL);
		lines++;
	}
	assert_int_equal(lines, 5);
	assert_non_null(strstr(buf, "\"data_base64\":\"gAAK\""));
	assert_int_equal(buf[len - 1], '\n');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_and_established),
	    cmocka_unit_test(test_message_text_escaped),
	    cmocka_unit_test(test_message_binary_base64),
	    cmocka_unit_test(test_utf8_edges),
	    cmocka_unit_test(test_key_update_close_error),
	    cmocka_unit_test(test_err_names),
	    cmocka_unit_test(test_backends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
