/* kd3_strerror, kd3_err_wire_name, kd3_err_is_wire: every code has its text, the nine
 * wire codes have their names, nothing else counts as a wire code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"

/* Every code err.h declares, spelled out so a new code without a text shows here. */
static const int all_codes[] = {
    KD3_OK,
    KD3_E_MALFORMED,
    KD3_E_UNSUPPORTED,
    KD3_E_UNKNOWN_PRINCIPAL,
    KD3_E_BAD_AUTH,
    KD3_E_KVNO_UNKNOWN,
    KD3_E_POLICY_DENIED,
    KD3_E_BUSY,
    KD3_E_INTERNAL,
    KD3_E_TIMEOUT,
    KD3_E_UNEXPECTED,
    KD3_E_SAME_PRINCIPAL,
    KD3_E_BLOB_AUTH,
    KD3_E_CONFIRM,
    KD3_E_NONCE,
    KD3_E_RECORD_SEQ,
    KD3_E_RECORD_AUTH,
    KD3_E_RECORD_TYPE,
    KD3_E_TRUNCATED,
    KD3_E_PEER_ERROR,
    KD3_E_EXPIRED,
    KD3_E_CLOSED,
    KD3_E_TOO_BIG,
    KD3_E_WEAK_KEY,
    KD3_E_NO_SPACE,
    KD3_E_CRYPTO,
    KD3_E_RNG,
    KD3_E_NOMEM,
    KD3_E_IO,
    KD3_E_CONFIG,
    KD3_E_KEYFILE,
    KD3_E_KEYFILE_PERMS,
    KD3_E_DB,
    KD3_E_USAGE,
    KD3_E_EXISTS,
    KD3_E_NOT_FOUND,
    KD3_E_NO_KDC,
    KD3_E_ARG,
    KD3_E_STATE,
    KD3_E_AGAIN,
};
#define NCODES (sizeof(all_codes) / sizeof(all_codes[0]))

static void test_every_code_has_text(void **state)
{
	(void)state;
	const char *unknown = kd3_strerror(-12345);
	assert_non_null(unknown);
	for (size_t i = 0; i < NCODES; i++) {
		const char *t = kd3_strerror(all_codes[i]);
		assert_non_null(t);
		assert_true(strlen(t) > 0);
		if (strcmp(t, unknown) == 0)
			fail_msg("code %d has no text of its own", all_codes[i]);
		/* Texts are distinct, so a log line names one cause. */
		for (size_t j = 0; j < i; j++)
			if (strcmp(t, kd3_strerror(all_codes[j])) == 0)
				fail_msg("codes %d and %d share the text \"%s\"", all_codes[j],
				         all_codes[i], t);
	}
}

static void test_enum_is_dense_where_declared(void **state)
{
	(void)state;
	/* The three blocks are consecutive: a code added in the middle of a block without
	 * a text would be caught above, one added at the end is caught here. */
	assert_int_equal(KD3_E_TIMEOUT, 9);
	assert_int_equal(KD3_E_WEAK_KEY, KD3_E_UNEXPECTED + 13);
	assert_int_equal(KD3_E_NO_KDC, KD3_E_NO_SPACE + 12);
	assert_int_equal(KD3_E_AGAIN, KD3_E_NO_SPACE + 15);
	assert_int_equal(NCODES, 10 + 14 + 16);
	/* The values are libkd3's ABI (include/kd3/error.h): pinned. */
	assert_int_equal(KD3_E_UNEXPECTED, 64);
	assert_int_equal(KD3_E_NO_SPACE, 96);
	assert_int_equal(KD3_E_ARG, 109);
}

static void test_unknown_codes(void **state)
{
	(void)state;
	static const int unknown[] = {-1, 10, 63, KD3_E_WEAK_KEY + 1, 95, KD3_E_AGAIN + 1, 1000};
	const char *u = kd3_strerror(-12345);
	assert_string_equal(u, "unknown error");
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		assert_string_equal(kd3_strerror(unknown[i]), u);
		assert_string_equal(kd3_err_wire_name(unknown[i]), "?");
		assert_false(kd3_err_is_wire(unknown[i]));
	}
}

static void test_wire_names(void **state)
{
	(void)state;
	static const char *names[] = {"MALFORMED", "UNSUPPORTED",  "UNKNOWN_PRINCIPAL",
	                              "BAD_AUTH",  "KVNO_UNKNOWN", "POLICY_DENIED",
	                              "BUSY",      "INTERNAL",     "TIMEOUT"};
	for (int code = 1; code <= 9; code++) {
		assert_string_equal(kd3_err_wire_name(code), names[code - 1]);
		assert_true(kd3_err_is_wire(code));
	}
	/* Local codes have no wire name. */
	assert_string_equal(kd3_err_wire_name(KD3_OK), "?");
	for (size_t i = 10; i < NCODES; i++)
		assert_string_equal(kd3_err_wire_name(all_codes[i]), "?");
}

static void test_is_wire_bounds(void **state)
{
	(void)state;
	assert_false(kd3_err_is_wire(KD3_OK));
	assert_true(kd3_err_is_wire(KD3_E_MALFORMED));
	assert_true(kd3_err_is_wire(KD3_E_TIMEOUT));
	assert_false(kd3_err_is_wire(KD3_E_TIMEOUT + 1));
	assert_false(kd3_err_is_wire(-1));
	assert_false(kd3_err_is_wire(KD3_E_UNEXPECTED));
	assert_false(kd3_err_is_wire(KD3_E_NO_SPACE));
	assert_false(kd3_err_is_wire(65535));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_code_has_text),
	    cmocka_unit_test(test_enum_is_dense_where_declared),
	    cmocka_unit_test(test_unknown_codes),
	    cmocka_unit_test(test_wire_names),
	    cmocka_unit_test(test_is_wire_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
