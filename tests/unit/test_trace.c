/* --trace output: every field of M1-M4 by name, records without plaintext, and
 * malformed frames shown as such (never trusted, never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "harness.h"
#include "msg.h"
#include "trace.h"

static char captured[1 << 16];

/* Runs kd3_trace_frame with stderr sent to a temporary file; returns what it wrote. */
static const char *trace_of(const char *dir, const uint8_t *frame, size_t len, int fs, int inner)
{
	char path[] = "/tmp/kd3-trace-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	int saved = dup(2);
	assert_true(dup2(fd, 2) >= 0);
	kd3_trace_frame(dir, frame, len, fs, inner);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ssize_t n = pread(fd, captured, sizeof(captured) - 1, 0);
	close(fd);
	unlink(path);
	captured[n > 0 ? n : 0] = '\0';
	return captured;
}

static h_world *run(uint8_t fs)
{
	h_world *w = calloc(1, sizeof(*w));
	h_inputs in;
	kd3_peer_out out;
	h_inputs_default(&in, KD3_SUITE_CHACHAPOLY, fs);
	assert_int_equal(h_world_init(w, &in), KD3_OK);
	assert_int_equal(h_handshake(w), KD3_OK);
	assert_int_equal(h_send(w, 1, "secret plaintext", &out), KD3_OK);
	return w;
}

static void expect_fields(const char *text, const char *const *fields)
{
	for (; *fields; fields++)
		if (!strstr(text, *fields))
			fail_msg("trace lacks '%s':\n%s", *fields, text);
}

static void test_messages_field_by_field(void **state)
{
	(void)state;
	kd3_trace_enable(1);
	for (uint8_t fs = 0; fs < 2; fs++) {
		h_world *w = run(fs);
		const char *m1[] = {
		    "M1",  "suite",    "flags",  "id_i",   "\"alice\"",           "id_r", "\"bob\"",
		    "n_i", "a0a1a2a3", "kvno_i", "auth_i", fs ? "e_i" : "auth_i", NULL};
		expect_fields(trace_of("I->R", w->frames[0].bytes, w->frames[0].len, fs, -1), m1);
		const char *m2[] = {
		    "M2", "id_i", "n_r", "b0b1b2b3", "kvno_r", "auth_r", fs ? "e_r" : "auth_r",
		    NULL};
		expect_fields(trace_of("R->KDC", w->frames[1].bytes, w->frames[1].len, fs, -1), m2);
		const char *m3[] = {"M3", "n_r", "lifetime", "3600", "blob_r", "blob_i", NULL};
		expect_fields(trace_of("KDC->R", w->frames[2].bytes, w->frames[2].len, fs, -1), m3);
		const char *m4[] = {"M4",
		                    "n_r",
		                    "kvno_r",
		                    "lifetime",
		                    "blob_i",
		                    "confirm_r",
		                    fs ? "e_r" : "confirm_r",
		                    NULL};
		expect_fields(trace_of("R->I", w->frames[3].bytes, w->frames[3].len, fs, -1), m4);
		const char *fin[] = {"RECORD", "seq", "FINISHED", NULL};
		expect_fields(trace_of("I->R", w->frames[4].bytes, w->frames[4].len, fs, 1), fin);
		{
			const h_frame *data = &w->frames[5];
			const char *t = trace_of("I->R", data->bytes, data->len, fs, 2);
			const char *rec[] = {"RECORD", "seq", "DATA", NULL};
			expect_fields(t, rec);
			assert_null(
			    strstr(t, "secret plaintext")); /* traces never show plaintext */
		}
		h_world_free(w);
		free(w);
	}
}

static void test_error_and_malformed(void **state)
{
	(void)state;
	uint8_t buf[64];
	kd3_writer wr;
	kd3_wr_init(&wr, buf, sizeof(buf));
	assert_int_equal(kd3_error_encode(&wr, KD3_E_BAD_AUTH, "no"), KD3_OK);
	const char *t = trace_of("KDC->R", buf, wr.len, 0, -1);
	assert_non_null(strstr(t, "ERROR"));
	assert_non_null(strstr(t, "BAD_AUTH"));
	static const uint8_t junk[] = {0x01, 0x01, 0x00, 0x05, 0xff, 0x00};
	t = trace_of("I->R", junk, sizeof(junk), 0, -1);
	assert_non_null(strstr(t, "malformed"));
	t = trace_of("I->R", junk, 2, 0, -1);
	assert_non_null(strstr(t, "malformed"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_messages_field_by_field),
	    cmocka_unit_test(test_error_and_malformed),
	};
	return cmocka_run_group_tests_name("trace", tests, NULL, NULL);
}
