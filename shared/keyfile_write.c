/* kd3 key files, writing (keyfile.h): checked, rendered, and staged or written through
 * privfile_stage.c. Only the kdc writes key files; libkd3 reads them and links
 * keyfile.c alone. */
#include "keyfile.h"

#include <stdio.h>

#include "crypto.h"
#include "err.h"
#include "hex.h"
#include "msg.h"
#include "privfile.h"

static int keyfile_check(const kd3_keyfile *kf, const char *path, char *err, size_t len)
{
	if (!kd3_name_valid_cstr(kf->principal)) {
		snprintf(err, len, "%s: invalid principal name", path);
		return KD3_E_KEYFILE;
	}
	if (kf->nkeys == 0 || kf->nkeys > KD3_KEYFILE_KEYS_MAX) {
		snprintf(err, len, "%s: a key file holds 1..%d keys, not %zu", path,
		         KD3_KEYFILE_KEYS_MAX, kf->nkeys);
		return KD3_E_KEYFILE;
	}
	for (size_t i = 0; i < kf->nkeys; i++) {
		if (kf->keys[i].kvno == 0) {
			snprintf(err, len, "%s: kvno 0 is not valid", path);
			return KD3_E_KEYFILE;
		}
		for (size_t j = 0; j < i; j++) {
			if (kf->keys[j].kvno == kf->keys[i].kvno) {
				snprintf(err, len, "%s: duplicate kvno %u", path,
				         (unsigned)kf->keys[i].kvno);
				return KD3_E_KEYFILE;
			}
		}
	}
	return KD3_OK;
}

/* The file's text; out is wiped by the caller. */
static int keyfile_render(const kd3_keyfile *kf, char *out, size_t cap, size_t *n)
{
	int w = snprintf(out, cap, "# kd3 key file: keep secret (mode 0600)\nprincipal = %s\n",
	                 kf->principal);
	if (w < 0 || (size_t)w >= cap)
		return KD3_E_NO_SPACE;
	size_t at = (size_t)w;
	for (size_t i = 0; i < kf->nkeys; i++) {
		w = snprintf(out + at, cap - at, "key = %u:", (unsigned)kf->keys[i].kvno);
		if (w < 0 || (size_t)w >= cap - at ||
		    cap - at - (size_t)w < KD3_KEYFILE_HEX_LEN + 2)
			return KD3_E_NO_SPACE;
		at += (size_t)w;
		kd3_hex_encode(kf->keys[i].key, KD3_KEY_LEN, out + at); /* room checked above */
		at += KD3_KEYFILE_HEX_LEN;
		out[at++] = '\n';
	}
	*n = at;
	return KD3_OK;
}

int kd3_keyfile_stage_write(kd3_keyfile_stage *st, const char *path, const kd3_keyfile *kf,
                            char *err, size_t err_len)
{
	char text[2048];
	size_t n = 0;
	int ret = keyfile_check(kf, path, err, err_len);

	st->tmp[0] = '\0';
	st->fd = -1;
	if (ret == KD3_OK && (ret = keyfile_render(kf, text, sizeof(text), &n)) != KD3_OK)
		snprintf(err, err_len, "%s: %s", path, kd3_strerror(ret));
	if (ret == KD3_OK)
		ret = kd3_privfile_stage(st, path, text, n, err, err_len);
	kd3_wipe(text, sizeof(text));
	return ret;
}

int kd3_keyfile_stage_publish(kd3_keyfile_stage *st, int overwrite, char *err, size_t err_len)
{
	return kd3_privfile_publish(st, overwrite, err, err_len);
}

void kd3_keyfile_stage_discard(kd3_keyfile_stage *st)
{
	kd3_privfile_discard(st);
}

int kd3_keyfile_write(const char *path, const kd3_keyfile *kf, int overwrite, char *err,
                      size_t err_len)
{
	kd3_keyfile_stage st;
	int ret = kd3_privfile_refuse_existing(path, overwrite, err, err_len);

	if (ret == KD3_OK)
		ret = kd3_keyfile_stage_write(&st, path, kf, err, err_len);
	if (ret == KD3_OK)
		ret = kd3_keyfile_stage_publish(&st, overwrite, err, err_len);
	return ret;
}
