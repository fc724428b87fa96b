/* libkd3 keys: a principal's key versions, as subkeys (the long-term key itself is
 * wiped as soon as they are derived). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "keyfile.h"
#include "lib.h"
#include "msg.h"

void kd3_lib_text(char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	if (!out || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(out, cap, fmt, ap);
	va_end(ap);
}

const char *kd3_version(void)
{
	return KD3_VERSION_STRING;
}

static int key_put(kd3_key *key, uint32_t kvno, const uint8_t secret[KD3_SECRET_LEN])
{
	if (kvno == 0)
		return KD3_E_ARG;
	for (size_t i = 0; i < key->nkeys; i++)
		if (key->keys[i].kvno == kvno)
			return KD3_E_EXISTS;
	if (key->nkeys == KD3_KEYS_MAX)
		return KD3_E_NO_SPACE;
	kd3_kvno_key *k = &key->keys[key->nkeys];
	int ret = kd3_derive_subkeys(NULL, secret, &k->sub);
	if (ret != KD3_OK) {
		kd3_wipe(k, sizeof(*k));
		return ret;
	}
	k->kvno = kvno;
	key->nkeys++;
	return KD3_OK;
}

int kd3_key_new(kd3_key **key, const char *principal, uint32_t kvno,
                const uint8_t secret[KD3_SECRET_LEN])
{
	if (!key)
		return KD3_E_ARG;
	*key = NULL;
	if (!principal || !secret || !kd3_name_valid_cstr(principal))
		return KD3_E_ARG;
	kd3_key *k = calloc(1, sizeof(*k));
	if (!k)
		return KD3_E_NOMEM;
	memcpy(k->principal, principal, strlen(principal) + 1);
	int ret = key_put(k, kvno, secret);
	if (ret != KD3_OK) {
		kd3_key_free(k);
		return ret;
	}
	*key = k;
	return KD3_OK;
}

int kd3_key_add(kd3_key *key, uint32_t kvno, const uint8_t secret[KD3_SECRET_LEN])
{
	if (!key || !secret)
		return KD3_E_ARG;
	return key_put(key, kvno, secret);
}

int kd3_key_load(kd3_key **key, const char *path, char *err, size_t err_len)
{
	kd3_keyfile kf;
	char why[512] = "";

	if (err && err_len)
		err[0] = '\0';
	if (!key)
		return KD3_E_ARG;
	*key = NULL;
	if (!path)
		return KD3_E_ARG;
	int ret = kd3_keyfile_load(path, &kf, why, sizeof(why));
	if (ret != KD3_OK) {
		kd3_lib_text(err, err_len, "%s", why);
		return ret;
	}
	kd3_key *k = calloc(1, sizeof(*k));
	ret = k ? KD3_OK : KD3_E_NOMEM;
	if (ret == KD3_OK && (kf.nkeys == 0 || kf.nkeys > KD3_KEYS_MAX)) {
		kd3_lib_text(err, err_len, "%s: holds %zu keys (1..%d expected)", path, kf.nkeys,
		             KD3_KEYS_MAX);
		ret = KD3_E_KEYFILE;
	}
	if (ret == KD3_OK)
		memcpy(k->principal, kf.principal, sizeof(k->principal));
	for (size_t i = 0; ret == KD3_OK && i < kf.nkeys; i++)
		if ((ret = key_put(k, kf.keys[i].kvno, kf.keys[i].key)) != KD3_OK)
			kd3_lib_text(err, err_len, "%s: key version %u: %s", path, kf.keys[i].kvno,
			             kd3_strerror(ret));
	kd3_keyfile_wipe(&kf);
	if (ret != KD3_OK) {
		kd3_key_free(k);
		return ret;
	}
	*key = k;
	return KD3_OK;
}

const char *kd3_key_principal(const kd3_key *key)
{
	return key ? key->principal : NULL;
}

void kd3_key_free(kd3_key *key)
{
	if (!key)
		return;
	kd3_wipe(key, sizeof(*key));
	free(key);
}
