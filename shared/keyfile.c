/* kd3 key files: parsing with size bounds, permission checks, and atomic writes.
 * Every buffer that held key hex or key bytes is wiped before it is released. */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "hex.h"
#include "msg.h"
#include "privfile.h"

#define KEYFILE_LINE_MAX 512
#define KEYFILE_SIZE_MAX (64 * 1024)
static void err_set(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

void kd3_keyfile_wipe(kd3_keyfile *kf)
{
	kd3_wipe(kf, sizeof(*kf));
}

const kd3_keyfile_entry *kd3_keyfile_latest(const kd3_keyfile *kf)
{
	const kd3_keyfile_entry *best = NULL;
	for (size_t i = 0; i < kf->nkeys && i < KD3_KEYFILE_KEYS_MAX; i++)
		if (!best || kf->keys[i].kvno > best->kvno)
			best = &kf->keys[i];
	return best;
}

/* ---- reading --------------------------------------------------------------- */

int kd3_keyfile_parse_key(const char *v, uint32_t *kvno, uint8_t key[KD3_KEY_LEN], const char **why)
{
	uint64_t k = 0;
	const char *p = v;

	if (*p < '0' || *p > '9') {
		*why = "expected 'key = KVNO:HEX' with a decimal kvno";
		return KD3_E_KEYFILE;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		k = k * 10 + (uint64_t)(*p - '0');
		if (k > UINT32_MAX) {
			*why = "kvno is out of range 1..4294967295";
			return KD3_E_KEYFILE;
		}
	}
	if (k == 0) {
		*why = "kvno is out of range 1..4294967295";
		return KD3_E_KEYFILE;
	}
	if (*p != ':') {
		*why = "expected 'key = KVNO:HEX' (a ':' after the kvno)";
		return KD3_E_KEYFILE;
	}
	p++;
	if (strlen(p) != KD3_KEYFILE_HEX_LEN) {
		*why = "key must be exactly 64 hex digits";
		return KD3_E_KEYFILE;
	}
	if (kd3_hex_decode(p, KD3_KEY_LEN, key) != KD3_OK) {
		kd3_wipe(key, KD3_KEY_LEN);
		*why = "key has a character that is not a hex digit";
		return KD3_E_KEYFILE;
	}
	*kvno = (uint32_t)k;
	return KD3_OK;
}

static int add_key(kd3_keyfile *kf, const char *v, const char **why)
{
	kd3_keyfile_entry e;
	int ret = kd3_keyfile_parse_key(v, &e.kvno, e.key, why);
	if (ret != KD3_OK)
		goto out;
	ret = KD3_E_KEYFILE;
	for (size_t i = 0; i < kf->nkeys; i++) {
		if (kf->keys[i].kvno == e.kvno) {
			*why = "duplicate kvno";
			goto out;
		}
	}
	if (kf->nkeys >= KD3_KEYFILE_KEYS_MAX) {
		*why = "too many keys (max 8)";
		goto out;
	}
	kf->keys[kf->nkeys++] = e;
	ret = KD3_OK;
out:
	kd3_wipe(&e, sizeof(e));
	return ret;
}

static int set_principal(kd3_keyfile *kf, const char *v, const char **why)
{
	if (kf->principal[0]) {
		*why = "duplicate 'principal' line";
		return KD3_E_KEYFILE;
	}
	if (!kd3_name_valid_cstr(v)) {
		*why = "principal name must be 1..255 characters of A-Z a-z 0-9 . _ @ / -";
		return KD3_E_KEYFILE;
	}
	memcpy(kf->principal, v, strlen(v) + 1);
	return KD3_OK;
}

static int keyfile_line(void *ctx, char *name, char *value, const char **why)
{
	kd3_keyfile *kf = ctx;
	if (strcmp(name, "principal") == 0)
		return set_principal(kf, value, why);
	if (strcmp(name, "key") == 0)
		return add_key(kf, value, why);
	*why = "unknown key (expected 'principal' or 'key')";
	return KD3_E_KEYFILE;
}

static int parse_text(kd3_keyfile *kf, const char *path, const char *text, size_t n, char *err,
                      size_t len)
{
	int ret = kd3_privfile_each_line(path, text, n, KEYFILE_LINE_MAX,
	                                 "expected 'principal = NAME' or 'key = KVNO:HEX'",
	                                 keyfile_line, kf, err, len);
	if (ret != KD3_OK)
		return ret;
	ret = KD3_E_KEYFILE;
	if (!kf->principal[0])
		err_set(err, len, "%s: no 'principal = NAME' line", path);
	else if (kf->nkeys == 0)
		err_set(err, len, "%s: no 'key = KVNO:HEX' line", path);
	else
		ret = KD3_OK;
	return ret;
}

int kd3_keyfile_load(const char *path, kd3_keyfile *kf, char *err, size_t err_len)
{
	char *buf = NULL;
	size_t n = 0;

	memset(kf, 0, sizeof(*kf));
	int ret = kd3_privfile_read(path, "key", KD3_PRIV_OWNER | KD3_PRIV_ROOT_OK,
	                            KEYFILE_SIZE_MAX, &buf, &n, err, err_len);
	if (ret == KD3_OK)
		ret = parse_text(kf, path, buf, n, err, err_len);
	else if (ret != KD3_E_KEYFILE_PERMS && ret != KD3_E_NOMEM)
		ret = KD3_E_KEYFILE; /* missing, unreadable, not a file, too large */
	if (buf) {
		kd3_wipe(buf, n + 1);
		free(buf);
	}
	if (ret != KD3_OK)
		kd3_keyfile_wipe(kf);
	return ret;
}
