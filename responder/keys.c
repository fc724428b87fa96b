#include "keys.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "keyfile.h"

/* A kd3_key holds up to 8 key versions (include/kd3/kd3.h). */
#define RESP_KEYS_MAX 8

int resp_keys_load(const char *path, const char *name, kd3_key **key, char *err, size_t err_len)
{
	kd3_keyfile kf;
	int ret = kd3_keyfile_load(path, &kf, err, err_len);

	*key = NULL;
	if (ret != KD3_OK)
		goto out;
	ret = KD3_E_KEYFILE;
	if (kf.nkeys == 0 || kf.nkeys > RESP_KEYS_MAX) {
		snprintf(err, err_len, "%s: holds %zu keys (1..%d expected)", path, kf.nkeys,
		         RESP_KEYS_MAX);
		goto out;
	}
	const char *self = (name && name[0]) ? name : kf.principal;
	ret = kd3_key_new(key, self, kf.keys[0].kvno, kf.keys[0].key);
	for (size_t i = 1; i < kf.nkeys && ret == KD3_OK; i++)
		ret = kd3_key_add(*key, kf.keys[i].kvno, kf.keys[i].key);
	if (ret != KD3_OK)
		snprintf(err, err_len, "%s: cannot use its keys for '%s': %s", path, self,
		         kd3_strerror(ret));
out:
	kd3_keyfile_wipe(&kf);
	if (ret != KD3_OK) {
		kd3_key_free(*key);
		*key = NULL;
	}
	return ret;
}
