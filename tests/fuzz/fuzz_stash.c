/* Master key stash files (kdc/stash.c): kdc_stash_load on a private (0600) temp file
 * holding the input. Invariants: KD3_OK or KD3_E_KEYFILE with an error naming the file
 * and a wiped stash; what loads holds 1..2 keys, each with the check its key gives, no
 * two alike, writes back (kdc_stash_write) and loads again to the same keys; and the
 * same file readable by group or others is refused. */
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fuzz_util.h"
#include "stash.h"

static fuzz_temp file, copy;
static kdc_stash st, again;
static const kdc_stash zero;

static void check_loaded(const kdc_stash *s)
{
	kdc_stash fresh;

	FUZZ_CHECK(s->n >= 1 && s->n <= KDC_STASH_KEYS_MAX);
	memset(&fresh, 0, sizeof(fresh));
	for (size_t i = 0; i < s->n; i++) {
		FUZZ_CHECK(kdc_stash_add(&fresh, s->key[i]) == KD3_OK);
		FUZZ_CHECK(memcmp(fresh.check[i], s->check[i], KD3_HASH_LEN) == 0);
		FUZZ_CHECK(kdc_stash_find(s, s->check[i]) == (int)i);
	}
	kdc_stash_wipe(&fresh);
}

static void check_roundtrip(void)
{
	char err[512];
	FUZZ_CHECK(kdc_stash_write(copy.path, &st, 0, err, sizeof(err)) == KD3_OK);
	FUZZ_CHECK(kdc_stash_load(copy.path, &again, err, sizeof(err)) == KD3_OK);
	FUZZ_CHECK(again.n == st.n);
	FUZZ_CHECK(memcmp(again.key, st.key, sizeof(st.key)) == 0);
	FUZZ_CHECK(memcmp(again.check, st.check, sizeof(st.check)) == 0);
	kdc_stash_wipe(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int files_ready;
	char err[512];

	if (!files_ready) {
		FUZZ_CHECK(fuzz_temp_open(&file, "stash") == 0);
		FUZZ_CHECK(fuzz_temp_open(&copy, "stash-copy") == 0);
		files_ready = 1;
	}
	fuzz_temp_write(&file, data, size);
	FUZZ_CHECK(fchmod(file.fd, 0600) == 0);
	err[0] = '\0';
	int ret = kdc_stash_load(file.path, &st, err, sizeof(err));
	FUZZ_CHECK(ret == KD3_OK || ret == KD3_E_KEYFILE);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (ret == KD3_OK) {
		check_loaded(&st);
		check_roundtrip();
	} else {
		FUZZ_CHECK(memcmp(&st, &zero, sizeof(st)) == 0);
		FUZZ_CHECK(strstr(err, file.path) != NULL);
	}
	kdc_stash_wipe(&st);

	FUZZ_CHECK(fchmod(file.fd, 0640) == 0);
	ret = kdc_stash_load(file.path, &st, err, sizeof(err));
	FUZZ_CHECK(ret != KD3_OK);
	FUZZ_CHECK(memcmp(&st, &zero, sizeof(st)) == 0);
	return 0;
}
