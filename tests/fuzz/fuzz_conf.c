/* Configuration files (inih through kd3_conf_load) and command-line values
 * (kd3_conf_set) against a table with one option of every type. Input: the file's
 * bytes; the same bytes, up to the first NUL, are also given to every option as a
 * command-line value. Invariants: KD3_OK or KD3_E_CONFIG, an error message that names
 * its place, and every destination always holding a value its type allows. */
#include <string.h>

#include "conf.h"
#include "err.h"
#include "fuzz_util.h"
#include "wire.h"

#define SUITE_BITS ((1u << KD3_SUITE_AES256GCM) | (1u << KD3_SUITE_CHACHAPOLY))
#define VALUE_MAX  4096

static struct {
	char str[KD3_CONF_STR_MAX];
	uint64_t num;
	int flag;
	uint8_t suite;
	uint8_t suites;
	kd3_conf_list list;
} v;

static const kd3_option opts[] = {
    {"name", KD3_OPT_STR, v.str, 0, 0, "a string"},
    {"port", KD3_OPT_UINT, &v.num, 1, 65535, "a number"},
    {"verbose", KD3_OPT_BOOL, &v.flag, 0, 0, "a flag"},
    {"suite", KD3_OPT_SUITE, &v.suite, 0, 0, "one suite"},
    {"suites", KD3_OPT_SUITES, &v.suites, 0, 0, "a set of suites"},
    {"kdc", KD3_OPT_LIST, &v.list, 0, 0, "a list"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void values_reset(void)
{
	memset(&v, 0, sizeof(v));
	v.num = 7088;
	v.suite = KD3_SUITE_CHACHAPOLY;
	v.suites = SUITE_BITS;
}

static void check_values(void)
{
	FUZZ_CHECK(memchr(v.str, '\0', sizeof(v.str)) != NULL);
	FUZZ_CHECK(v.num >= 1 && v.num <= 65535);
	FUZZ_CHECK(v.flag == 0 || v.flag == 1);
	FUZZ_CHECK(v.suite == KD3_SUITE_AES256GCM || v.suite == KD3_SUITE_CHACHAPOLY);
	FUZZ_CHECK(v.suites != 0 && (v.suites & ~SUITE_BITS) == 0);
	FUZZ_CHECK(v.list.n <= KD3_CONF_LIST_MAX);
	for (size_t i = 0; i < v.list.n; i++) {
		const char *item = v.list.item[i];
		size_t n = strnlen(item, KD3_CONF_STR_MAX);
		FUZZ_CHECK(n > 0 && n < KD3_CONF_STR_MAX && !strchr(item, ','));
		FUZZ_CHECK(item[0] != ' ' && item[0] != '\t');
		FUZZ_CHECK(item[n - 1] != ' ' && item[n - 1] != '\t');
	}
}

static void check_result(int ret, const char *err, size_t err_len, const char *prefix)
{
	FUZZ_CHECK(ret == KD3_OK || ret == KD3_E_CONFIG);
	FUZZ_CHECK(memchr(err, '\0', err_len) != NULL);
	if (ret != KD3_OK)
		FUZZ_CHECK(strncmp(err, prefix, strlen(prefix)) == 0 &&
		           strlen(err) > strlen(prefix));
	check_values();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static fuzz_temp file;
	static int file_ready;
	static char value[VALUE_MAX + 1];
	char err[512];

	if (!file_ready) {
		FUZZ_CHECK(fuzz_temp_open(&file, "conf") == 0);
		file_ready = 1;
	}
	fuzz_temp_write(&file, data, size);
	values_reset();
	err[0] = '\0';
	int ret = kd3_conf_load(file.path, "fuzz", opts, NOPTS, err, sizeof(err));
	check_result(ret, err, sizeof(err), file.path);

	size_t n = size < VALUE_MAX ? size : VALUE_MAX;
	memcpy(value, data, n);
	value[n] = '\0';
	for (size_t i = 0; i < NOPTS; i++) {
		err[0] = '\0';
		ret = kd3_conf_set(opts, NOPTS, opts[i].name, value, err, sizeof(err));
		check_result(ret, err, sizeof(err), "--");
	}
	return 0;
}
