/* kdc master key stash: parse, render, and the small set operations rekey-master needs. */
#include "stash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "hex.h"
#include "privfile.h"

#define STASH_SIZE_MAX 4096
#define STASH_LINE_MAX 256
#define STASH_HEX_LEN  (2 * KD3_KEY_LEN)

static const char stash_header[] =
    "# kd3 master key stash: keep secret (mode 0600); back it up apart from the database\n";

int kdc_stash_path(const char *db, const char *opt, char out[PATH_MAX])
{
	if ((!opt || !opt[0]) && strstr(db, "://"))
		return KD3_E_NOT_FOUND; /* a URI: no path to put the stash beside */
	int n = opt && opt[0] ? snprintf(out, PATH_MAX, "%s", opt)
	                      : snprintf(out, PATH_MAX, "%s%s", db, KDC_STASH_SUFFIX);
	return n > 0 && n < PATH_MAX ? KD3_OK : KD3_E_USAGE;
}

void kdc_stash_wipe(kdc_stash *s)
{
	kd3_wipe(s, sizeof(*s));
}

int kdc_stash_find(const kdc_stash *s, const uint8_t check[KD3_HASH_LEN])
{
	for (size_t i = 0; i < s->n; i++)
		if (kd3_ct_equal(s->check[i], check, KD3_HASH_LEN))
			return (int)i;
	return -1;
}

int kdc_stash_add(kdc_stash *s, const uint8_t key[KD3_KEY_LEN])
{
	if (s->n >= KDC_STASH_KEYS_MAX)
		return KD3_E_NO_SPACE;
	int ret = kdc_master_check(key, s->check[s->n]);
	if (ret != KD3_OK)
		return ret;
	memcpy(s->key[s->n], key, KD3_KEY_LEN);
	s->n++;
	return KD3_OK;
}

void kdc_stash_keep_only(kdc_stash *s, size_t i)
{
	kdc_stash kept = {0};
	if (i < s->n) {
		memcpy(kept.key[0], s->key[i], KD3_KEY_LEN);
		memcpy(kept.check[0], s->check[i], KD3_HASH_LEN);
		kept.n = 1;
	}
	*s = kept;
	kdc_stash_wipe(&kept);
}

void kdc_stash_ids(const kdc_stash *s, char *out, size_t cap)
{
	char id[KDC_MASTER_ID_TEXT];
	size_t at = 0;
	out[0] = '\0';
	for (size_t i = 0; i < s->n && at < cap; i++) {
		kdc_master_id_text(s->check[i], id);
		int w = snprintf(out + at, cap - at, "%s%s", i ? ", " : "", id);
		if (w < 0)
			return;
		at += (size_t)w;
	}
	if (s->n == 0)
		snprintf(out, cap, "no key");
}

/* ---- parsing --------------------------------------------------------------------- */

/* "ID:HEX64", where ID must be the key's own id (catches a damaged key). */
static int parse_master(kdc_stash *s, const char *v, const char **why)
{
	uint8_t key[KD3_KEY_LEN];
	char id[KDC_MASTER_ID_TEXT];
	int ret = KD3_E_KEYFILE;

	if (strlen(v) != KDC_MASTER_ID_TEXT - 1 + 1 + STASH_HEX_LEN ||
	    v[KDC_MASTER_ID_TEXT - 1] != ':' ||
	    kd3_hex_decode(v + KDC_MASTER_ID_TEXT, KD3_KEY_LEN, key) != KD3_OK) {
		*why = "expected 'master = ID:KEY' (16 and 64 hex digits)";
		goto out;
	}
	if (s->n >= KDC_STASH_KEYS_MAX) {
		*why = "more than 2 master keys";
		goto out;
	}
	if (kdc_stash_add(s, key) != KD3_OK) {
		*why = "cannot compute the key's id";
		goto out;
	}
	kdc_master_id_text(s->check[s->n - 1], id);
	if (strncmp(id, v, KDC_MASTER_ID_TEXT - 1) != 0) {
		s->n--;
		*why = "the key does not match its id (damaged)";
		goto out;
	}
	if (s->n == 2 && kd3_ct_equal(s->check[0], s->check[1], KD3_HASH_LEN)) {
		*why = "the same master key twice";
		goto out;
	}
	ret = KD3_OK;
out:
	kd3_wipe(key, sizeof(key));
	return ret;
}

struct stash_parse {
	kdc_stash *s;
	int version;
};

static int stash_line(void *ctx, char *name, char *value, const char **why)
{
	struct stash_parse *p = ctx;
	if (strcmp(name, "version") == 0) {
		if (p->version || strcmp(value, "1") != 0) {
			*why = "expected one 'version = 1' line";
			return KD3_E_KEYFILE;
		}
		p->version = 1;
		return KD3_OK;
	}
	if (strcmp(name, "master") == 0)
		return parse_master(p->s, value, why);
	*why = "unknown key (expected 'version' or 'master')";
	return KD3_E_KEYFILE;
}

static int parse_text(kdc_stash *s, const char *path, const char *text, size_t n, char *err,
                      size_t len)
{
	struct stash_parse p = {.s = s};
	int ret = kd3_privfile_each_line(path, text, n, STASH_LINE_MAX,
	                                 "expected 'version = 1' or 'master = ID:KEY'", stash_line,
	                                 &p, err, len);
	if (ret != KD3_OK)
		return ret;
	if (p.version && s->n > 0)
		return KD3_OK;
	snprintf(err, len, "%s: not a kd3 stash file (no 'version = 1' or no master key)", path);
	return KD3_E_KEYFILE;
}

int kdc_stash_load(const char *path, kdc_stash *s, char *err, size_t err_len)
{
	char *text = NULL;
	size_t n = 0;
	memset(s, 0, sizeof(*s));
	int ret = kd3_privfile_read(path, "stash", KD3_PRIV_OWNER, STASH_SIZE_MAX, &text, &n, err,
	                            err_len);
	if (ret == KD3_OK)
		ret = parse_text(s, path, text, n, err, err_len);
	if (text) {
		kd3_wipe(text, n + 1);
		free(text);
	}
	if (ret != KD3_OK)
		kdc_stash_wipe(s);
	return ret;
}

/* ---- writing ---------------------------------------------------------------------- */

static int render(const kdc_stash *s, char *out, size_t cap, size_t *n)
{
	char id[KDC_MASTER_ID_TEXT];
	int w = snprintf(out, cap, "%sversion = 1\n", stash_header);
	if (w < 0 || (size_t)w >= cap)
		return KD3_E_NO_SPACE;
	size_t at = (size_t)w;
	for (size_t i = 0; i < s->n; i++) {
		kdc_master_id_text(s->check[i], id);
		w = snprintf(out + at, cap - at, "master = %s:", id);
		if (w < 0 || cap - at <= (size_t)w + STASH_HEX_LEN + 1)
			return KD3_E_NO_SPACE;
		at += (size_t)w;
		kd3_hex_encode(s->key[i], KD3_KEY_LEN, out + at); /* room checked above */
		at += STASH_HEX_LEN;
		out[at++] = '\n';
	}
	*n = at;
	return KD3_OK;
}

int kdc_stash_write(const char *path, const kdc_stash *s, int create_new, char *err, size_t err_len)
{
	char text[1024];
	size_t n = 0;
	if (s->n == 0 || s->n > KDC_STASH_KEYS_MAX || render(s, text, sizeof(text), &n) != KD3_OK) {
		snprintf(err, err_len, "%s: cannot render the stash", path);
		return KD3_E_NO_SPACE;
	}
	int ret = kd3_privfile_write(path, text, n, !create_new, err, err_len);
	kd3_wipe(text, sizeof(text));
	return ret;
}
