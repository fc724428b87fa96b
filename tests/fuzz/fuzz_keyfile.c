/* Key files: kd3_keyfile_load on a private (0600) temp file holding the input.
 * Invariants: KD3_OK or KD3_E_KEYFILE with an error naming the file, and a wiped
 * kd3_keyfile on failure; what loads is a valid principal with 1..8 distinct,
 * non-zero kvnos, writes back (kd3_keyfile_write) and loads again to the same keys;
 * and the same file readable by group or others is refused. */
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fuzz_util.h"
#include "keyfile.h"
#include "msg.h"

static fuzz_temp file, copy;
static kd3_keyfile kf, again;
static const kd3_keyfile zero;

static void check_loaded(const kd3_keyfile *k)
{
	FUZZ_CHECK(kd3_name_valid_cstr(k->principal));
	FUZZ_CHECK(k->nkeys >= 1 && k->nkeys <= KD3_KEYFILE_KEYS_MAX);
	for (size_t i = 0; i < k->nkeys; i++) {
		FUZZ_CHECK(k->keys[i].kvno != 0);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(k->keys[j].kvno != k->keys[i].kvno);
	}
	const kd3_keyfile_entry *latest = kd3_keyfile_latest(k);
	FUZZ_CHECK(latest != NULL);
	for (size_t i = 0; i < k->nkeys; i++)
		FUZZ_CHECK(k->keys[i].kvno <= latest->kvno);
}

static void check_roundtrip(void)
{
	char err[512];
	FUZZ_CHECK(kd3_keyfile_write(copy.path, &kf, 1, err, sizeof(err)) == KD3_OK);
	FUZZ_CHECK(kd3_keyfile_load(copy.path, &again, err, sizeof(err)) == KD3_OK);
	FUZZ_CHECK(memcmp(&kf, &again, sizeof(kf)) == 0);
	kd3_keyfile_wipe(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int files_ready;
	char err[512];

	if (!files_ready) {
		FUZZ_CHECK(fuzz_temp_open(&file, "keyfile") == 0);
		FUZZ_CHECK(fuzz_temp_open(&copy, "keyfile-copy") == 0);
		files_ready = 1;
	}
	fuzz_temp_write(&file, data, size);
	FUZZ_CHECK(fchmod(file.fd, 0600) == 0);
	err[0] = '\0';
	int ret = kd3_keyfile_load(file.path, &kf, err, sizeof(err));
	FUZZ_CHECK(ret == KD3_OK || ret == KD3_E_KEYFILE);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (ret == KD3_OK) {
		check_loaded(&kf);
		check_roundtrip();
	} else {
		FUZZ_CHECK(memcmp(&kf, &zero, sizeof(kf)) == 0);
		FUZZ_CHECK(strncmp(err, file.path, strlen(file.path)) == 0);
	}
	kd3_keyfile_wipe(&kf);

	FUZZ_CHECK(fchmod(file.fd, 0640) == 0);
	ret = kd3_keyfile_load(file.path, &kf, err, sizeof(err));
	FUZZ_CHECK(ret == KD3_E_KEYFILE_PERMS);
	FUZZ_CHECK(memcmp(&kf, &zero, sizeof(kf)) == 0);
	return 0;
}
