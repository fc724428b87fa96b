/* kdc/request.c: the request path around the sans-I/O handler, on a worker built by
 * hand over the harness's recorded exchange (alice -> bob): the JSON and text log
 * lines; a BAD_AUTH blamed on the principal whose authenticator failed (the handler's
 * wording, which the lockout relies on) and the lockout that follows, with the
 * failing request itself still answered the same way; the rate limit answering BUSY
 * with at most BUSY_LINES_PER_SECOND lines a second; a policy rule's denial and
 * per-pair lifetime. And the request path allocates nothing with all of it on (not
 * under AddressSanitizer, which owns malloc). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cJSON.h>
#include <cmocka.h>

#include "unit_capture.h"

#include "buf.h"
#include "err.h"
#include "harness.h"
#include "live.h"
#include "lockout.h"
#include "log.h"
#include "msg.h"
#include "ratelimit.h"
#include "worker.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#ifndef UNDER_ASAN
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);

static volatile unsigned long allocations;

void *malloc(size_t size)
{
	allocations++;
	return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	allocations++;
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	allocations++;
	return __libc_realloc(p, size);
}
#endif

struct rig {
	h_world *hw;
	kdc_worker w;
	kdc_serve_cfg cfg;
	kdc_snapshot snap; /* its table points at the harness's principals */
	kdc_lockout lockout;
	kdc_ratelimit rl;
	kd3_addr peer;
	uint8_t m2[KD3_FRAME_MAX];
	size_t m2_len;
	uint8_t out[KDC_REPLY_MAX];
	size_t out_len;
};

static struct rig R;

static void rig_rules(const char *const *rules, size_t n)
{
	kd3_conf_list deny = {0}, list = {0};
	char err[256];
	for (size_t i = 0; i < n; i++)
		snprintf(list.item[list.n++], KD3_CONF_STR_MAX, "%s", rules[i]);
	assert_int_equal(kdc_policy_init(&R.snap.cfg.policy, &deny, 3600, err, sizeof(err)),
	                 KD3_OK);
	assert_int_equal(kdc_policy_add_rules(&R.snap.cfg.policy, &list, "allow", err, sizeof(err)),
	                 KD3_OK);
	R.snap.generation++;
	kdc_worker_adopt(&R.w, &R.snap);
}

static int setup(void **state)
{
	h_inputs in;
	(void)state;
	memset(&R, 0, sizeof(R));
	R.hw = calloc(1, sizeof(*R.hw));
	h_inputs_default(&in, KD3_SUITE_CHACHAPOLY, 0);
	if (!R.hw || h_world_init(R.hw, &in) != KD3_OK || h_handshake(R.hw) != KD3_OK)
		return -1;
	memcpy(R.m2, R.hw->frames[1].bytes, R.hw->frames[1].len);
	R.m2_len = R.hw->frames[1].len;
	static _Atomic unsigned char derived[2] = {KDC_KEYS_READY, KDC_KEYS_READY};
	R.snap.table.p = R.hw->principals; /* alice, bob: sorted, their subkeys derived */
	R.snap.table.n = 2;
	R.snap.table.state = derived;
	R.snap.generation = 1;
	R.snap.cfg.suites = (1u << KD3_SUITE_CHACHAPOLY) | (1u << KD3_SUITE_AES256GCM);
	R.snap.cfg.lifetime = 3600;
	R.snap.cfg.log_requests = 1;
	if (kdc_lockout_init(&R.lockout, 64) != KD3_OK ||
	    kdc_ratelimit_init(&R.rl, 1024, kd3_now_ms()) != KD3_OK)
		return -1;
	R.cfg.lockout = &R.lockout;
	R.cfg.ratelimit = &R.rl;
	R.w.cfg = &R.cfg;
	R.w.kdc = &R.hw->kdc;
	R.w.kdc->lookup = kdc_table_lookup;
	R.w.kdc->policy = kdc_request_policy;
	R.w.kdc->policy_ctx = &R.w;
	rig_rules(NULL, 0);
	struct sockaddr_in *a = (struct sockaddr_in *)&R.peer.ss;
	a->sin_family = AF_INET;
	a->sin_port = htons(7);
	inet_pton(AF_INET, "192.0.2.1", &a->sin_addr);
	R.peer.len = sizeof(*a);
	kd3_log_set_format(0, 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kdc_lockout_free(&R.lockout);
	kdc_ratelimit_free(&R.rl);
	h_world_free(R.hw);
	free(R.hw);
	return 0;
}

static int request(const uint8_t *m2, size_t len)
{
	return kdc_request(&R.w, "udp", &R.peer, m2, len, R.out, sizeof(R.out), &R.out_len);
}

/* ---- stderr captured through a pipe (unit_capture.h) ------------------------------------ */

static int count_lines(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* ---- the tests --------------------------------------------------------------------------- */

static void test_json_log_line(void **state)
{
	(void)state;
	kd3_log_set_format(1, 0);
	capture_begin();
	int send = request(R.m2, R.m2_len);
	char *text = capture_end();
	kd3_log_set_format(0, 0);
	assert_int_equal(send, 1);
	assert_int_equal(R.out[1], KD3_T_M3);
	cJSON *o = cJSON_Parse(text);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "event")->valuestring, "request");
	assert_string_equal(cJSON_GetObjectItem(o, "program")->valuestring, "kd3");
	assert_string_equal(cJSON_GetObjectItem(o, "level")->valuestring, "info");
	assert_string_equal(cJSON_GetObjectItem(o, "transport")->valuestring, "udp");
	assert_string_equal(cJSON_GetObjectItem(o, "peer")->valuestring, "192.0.2.1:7");
	assert_string_equal(cJSON_GetObjectItem(o, "id_i")->valuestring, "alice");
	assert_string_equal(cJSON_GetObjectItem(o, "id_r")->valuestring, "bob");
	assert_int_equal(cJSON_GetObjectItem(o, "kvno_i")->valueint, 1);
	assert_string_equal(cJSON_GetObjectItem(o, "outcome")->valuestring, "OK");
	assert_int_equal(cJSON_GetObjectItem(o, "code")->valueint, 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "detail")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "replied")));
	assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "us")));
	assert_non_null(cJSON_GetObjectItem(o, "time"));
	cJSON_Delete(o);
}

static void test_bad_auth_blame_and_lockout(void **state)
{
	uint8_t bad_i[KD3_FRAME_MAX], bad_i2[KD3_FRAME_MAX], bad_r[KD3_FRAME_MAX];
	kd3_frame f;
	kd3_m2 m2;
	(void)state;
	R.snap.cfg.lockout = (kdc_lockout_cfg){.failures = 2, .window_ms = 60000, .lock_ms = 60000};
	R.snap.generation++;
	kdc_worker_adopt(&R.w, &R.snap);
	assert_int_equal(kd3_frame_decode(R.m2, R.m2_len, &f), KD3_OK);
	assert_int_equal(kd3_m2_decode(f.body.p, f.body.len, &m2), KD3_OK);
	size_t at_i = (size_t)(m2.m1.auth_i - R.m2), at_r = (size_t)(m2.auth_r - R.m2);
	memcpy(bad_i, R.m2, R.m2_len);
	memcpy(bad_i2, R.m2, R.m2_len);
	memcpy(bad_r, R.m2, R.m2_len);
	bad_i[at_i] ^= 1;
	bad_i2[at_i + 1] ^= 1;
	bad_r[at_r] ^= 1;

	capture_begin();
	assert_int_equal(request(bad_r, R.m2_len), 1);
	assert_int_equal(request(bad_i, R.m2_len), 1);
	assert_int_equal(request(bad_i, R.m2_len), 1); /* the same M2 again: counted once */
	int locked_early =
	    kdc_lockout_locked(&R.lockout, (const uint8_t *)"alice", 5, kd3_now_ms());
	assert_int_equal(request(bad_i2, R.m2_len), 1);
	int alice = kdc_lockout_locked(&R.lockout, (const uint8_t *)"alice", 5, kd3_now_ms());
	int bob = kdc_lockout_locked(&R.lockout, (const uint8_t *)"bob", 3, kd3_now_ms());
	assert_int_equal(request(R.m2, R.m2_len), 1); /* the right keys: refused all the same */
	uint8_t refused[KDC_REPLY_MAX];
	size_t refused_len = R.out_len;
	memcpy(refused, R.out, R.out_len);
	assert_int_equal(request(bad_i2, R.m2_len), 1); /* the one that locked it: as before */
	char *text = capture_end();

	assert_int_equal(locked_early, 0);
	assert_int_equal(alice, 1);
	assert_int_equal(bob, 0); /* one failure of bob's own, below the count */
	if (!strstr(text,
	            "alice -> bob kvno 1/2 BAD_AUTH (responder authenticator did not verify)"))
		fail_msg("%s", text);
	assert_int_equal(count_lines(text, "BAD_AUTH (initiator authenticator did not verify)"), 4);
	assert_non_null(strstr(text, "principal alice locked out for 60 s after 2 failed "
	                             "authentications within 60 s"));
	kd3_frame ef;
	kd3_error_msg e;
	assert_int_equal(kd3_frame_decode(refused, refused_len, &ef), KD3_OK);
	assert_int_equal(ef.type, KD3_T_ERROR);
	assert_int_equal(kd3_error_decode(ef.body.p, ef.body.len, &e), KD3_OK);
	assert_int_equal(e.code, KD3_E_POLICY_DENIED);
	assert_memory_equal(e.text.p, "temporarily locked out", e.text.len);
	assert_true(refused_len <= R.m2_len);
	assert_int_equal(R.out[1], KD3_T_ERROR);
	assert_int_equal(kd3_get_u16(R.out + 4), KD3_E_BAD_AUTH);
	R.snap.cfg.lockout.failures = 0;
}

static void test_rate_limit_busy(void **state)
{
	(void)state;
	R.snap.cfg.rate_limit = 1;
	R.snap.cfg.rate_burst = 2;
	R.snap.generation++;
	kdc_worker_adopt(&R.w, &R.snap);
	while (kd3_now_ms() % 1000 > 500) /* all of it within one second: bounded, < 0.5 s */
		usleep(10000);
	capture_begin();
	assert_int_equal(request(R.m2, R.m2_len), 1);
	assert_int_equal(R.out[1], KD3_T_M3);
	assert_int_equal(request(R.m2, R.m2_len), 1);
	for (int i = 0; i < 15; i++) {
		assert_int_equal(request(R.m2, R.m2_len), 1);
		assert_int_equal(R.out[1], KD3_T_ERROR);
		assert_int_equal(kd3_get_u16(R.out + 4), KD3_E_BUSY);
		assert_true(R.out_len <= R.m2_len);
	}
	assert_int_equal(request((const uint8_t *)"\x01\x02\x00\x00", 4), 0); /* never answered */
	char *text = capture_end();
	assert_int_equal(count_lines(text, "BUSY (too many requests from this address"), 10);
	R.snap.cfg.rate_limit = 0;
}

static void test_policy_rule_in_log_and_lifetime(void **state)
{
	static const char *const deny[] = {"deny alice->bob"};
	static const char *const shorter[] = {"allow alice->bob lifetime=77"};
	(void)state;
	rig_rules(deny, 1);
	capture_begin();
	assert_int_equal(request(R.m2, R.m2_len), 1);
	char *text = capture_end();
	assert_int_equal(kd3_get_u16(R.out + 4), KD3_E_POLICY_DENIED);
	assert_non_null(strstr(text, "POLICY_DENIED (a rule denies the pair: rule[1])"));
	rig_rules(shorter, 1);
	capture_begin();
	assert_int_equal(request(R.m2, R.m2_len), 1);
	capture_end();
	kd3_m3 m3;
	kd3_frame f;
	assert_int_equal(kd3_frame_decode(R.out, R.out_len, &f), KD3_OK);
	assert_int_equal(kd3_m3_decode(f.body.p, f.body.len, &m3), KD3_OK);
	assert_int_equal(m3.lifetime, 77);
	rig_rules(NULL, 0);
}

static void test_request_path_allocates_nothing(void **state)
{
	(void)state;
#ifdef UNDER_ASAN
	skip();
#else
	static const char *const rules[] = {"deny eve->*", "allow alice->bob lifetime=600"};
	uint8_t bad[KD3_FRAME_MAX];
	rig_rules(rules, 2);
	R.snap.cfg.rate_limit = 1000000;
	R.snap.cfg.rate_burst = 65535;
	R.snap.cfg.lockout = (kdc_lockout_cfg){.failures = 1000, .window_ms = 1, .lock_ms = 1};
	R.snap.generation++;
	kdc_worker_adopt(&R.w, &R.snap);
	memcpy(bad, R.m2, R.m2_len);
	bad[R.m2_len - 1] ^= 1;
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC), saved = dup(2);
	dup2(devnull, 2);
	request(R.m2, R.m2_len); /* warm-up: first use may set up lazily */
	request(bad, R.m2_len);
	unsigned long before = allocations;
	for (int json = 0; json < 2; json++) {
		kd3_log_set_format(json, 1);
		for (int i = 0; i < 50; i++) {
			request(R.m2, R.m2_len);
			request(bad, R.m2_len);
		}
	}
	unsigned long used = allocations - before;
	void *control = malloc(16); /* the counter counts */
	unsigned long after_control = allocations;
	free(control);
	dup2(saved, 2);
	close(saved);
	close(devnull);
	kd3_log_set_format(0, 0);
	assert_int_equal(used, 0);
	assert_int_equal(after_control - before, 1);
	R.snap.cfg.rate_limit = 0;
	R.snap.cfg.lockout.failures = 0;
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_json_log_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_auth_blame_and_lockout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rate_limit_busy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_policy_rule_in_log_and_lifetime, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_path_allocates_nothing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
