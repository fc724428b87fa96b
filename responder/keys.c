#include "keys.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "keyfile.h"

int resp_keys_load(const char *path, const char *name, kd3_crypto *c, kd3_peer_config *cfg,
                   char *err, size_t err_len)
{
	kd3_keyfile kf;
	int ret = kd3_keyfile_load(path, &kf, err, err_len);

	if (ret != KD3_OK)
		goto out;
	ret = KD3_E_KEYFILE;
	if (kf.nkeys == 0 || kf.nkeys > KD3_KEYS_MAX) {
		snprintf(err, err_len, "%s: holds %zu keys (1..%d expected)", path, kf.nkeys,
		         KD3_KEYS_MAX);
		goto out;
	}
	const char *self = (name && name[0]) ? name : kf.principal;
	snprintf(cfg->self, sizeof(cfg->self), "%s", self);
	for (size_t i = 0; i < kf.nkeys; i++) {
		cfg->keys[i].kvno = kf.keys[i].kvno;
		ret = kd3_derive_subkeys(c, kf.keys[i].key, &cfg->keys[i].sub);
		if (ret != KD3_OK) {
			snprintf(err, err_len, "%s: cannot derive subkeys: %s", path,
			         kd3_strerror(ret));
			goto out;
		}
	}
	cfg->nkeys = kf.nkeys;
	ret = KD3_OK;
out:
	kd3_keyfile_wipe(&kf);
	if (ret != KD3_OK)
		kd3_wipe(cfg->keys, sizeof(cfg->keys));
	return ret;
}
