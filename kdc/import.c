/* kdc import FILE: many principals with keys the caller already holds, in one
 * transaction. The file is key files one after another (shared/keyfile.h): each
 * "principal = NAME" line starts a principal, each "key = KVNO:HEX" line after it adds
 * one of its key versions, so `cat *.key > batch` is a valid import and a realm's key
 * files move to another KDC as they are.
 *
 * It is refused whole (database unchanged) on the first bad line, a principal with no
 * key, one named twice, one the database already holds, or a duplicate kvno; the error
 * names file:line. A principal given several kvnos serves its newest; the older ones
 * stay live for the grace period, as after `kdc rotate`. The file holds keys: it must be owned by
 * us and closed to group and others, like a key file, and every buffer that held it is wiped. */
#include "admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "err.h"
#include "keyfile.h"
#include "log.h"
#include "msg.h"

#define IMPORT_SIZE_MAX ((size_t)1 << 30) /* about 9M principals with one key each */
#define IMPORT_LINE_MAX 512

struct import {
	kdc_db *db;
	int64_t now;
	int64_t retire_at;           /* of a principal's older kvnos: now + the grace period */
	char name[KD3_NAME_MAX + 1]; /* the principal being read; "" before the first */
	uint32_t kvnos[KD3_KEYFILE_KEYS_MAX];
	size_t nkeys;
	size_t principals, keys; /* imported */
	char why[KDC_ADMIN_ERR_MAX];
};

static int import_fail(struct import *im, const char **why, int ret, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int import_fail(struct import *im, const char **why, int ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(im->why, sizeof(im->why), fmt, ap);
	va_end(ap);
	*why = im->why;
	return ret;
}

/* The principal before the current line is complete once it has a key. Its newest
 * kvno is current; older ones (a key file exported mid-rotation) stay live for the grace
 * period from now, as after `kdc rotate`, never for ever. */
static int close_principal(struct import *im, const char **why)
{
	char err[KDC_ADMIN_ERR_MAX];
	uint32_t newest = 0;
	if (!im->name[0])
		return KD3_OK;
	if (im->nkeys == 0)
		return import_fail(im, why, KD3_E_KEYFILE,
		                   "principal %.255s has no 'key = KVNO:HEX' line", im->name);
	for (size_t i = 0; i < im->nkeys; i++)
		if (im->kvnos[i] > newest)
			newest = im->kvnos[i];
	int ret = im->nkeys > 1 ? kdc_db_keys_retire_below(im->db, im->name, newest, im->retire_at,
	                                                   err, sizeof(err))
	                        : KD3_OK;
	if (ret != KD3_OK)
		return import_fail(im, why, ret, "%s", err);
	return KD3_OK;
}

static int start_principal(struct import *im, const char *name, const char **why)
{
	char err[KDC_ADMIN_ERR_MAX];
	int ret = close_principal(im, why);
	if (ret != KD3_OK)
		return ret;
	if (!kd3_name_valid_cstr(name)) {
		*why = "principal name must be 1..255 characters of A-Z a-z 0-9 . _ @ / -";
		return KD3_E_KEYFILE;
	}
	ret = kdc_db_principal_insert(im->db, name, 1, im->now, err, sizeof(err));
	if (ret == KD3_E_EXISTS)
		return import_fail(im, why, ret,
		                   "principal %.255s is already in the database (or named twice)",
		                   name);
	if (ret != KD3_OK)
		return import_fail(im, why, ret, "%s", err);
	snprintf(im->name, sizeof(im->name), "%s", name);
	im->nkeys = 0;
	im->principals++;
	return KD3_OK;
}

static int add_key(struct import *im, const char *value, const char **why)
{
	char err[KDC_ADMIN_ERR_MAX];
	uint8_t key[KD3_KEY_LEN];
	uint32_t kvno;
	int ret;

	if (!im->name[0]) {
		*why = "a key before any 'principal = NAME' line";
		return KD3_E_KEYFILE;
	}
	if ((ret = kd3_keyfile_parse_key(value, &kvno, key, why)) != KD3_OK)
		return ret;
	ret = KD3_E_KEYFILE;
	for (size_t i = 0; i < im->nkeys; i++)
		if (im->kvnos[i] == kvno) {
			*why = "duplicate kvno";
			goto out;
		}
	if (im->nkeys >= KD3_KEYFILE_KEYS_MAX) {
		*why = "too many keys for one principal (max 8)";
		goto out;
	}
	ret = kdc_db_key_insert(im->db, im->name, kvno, key, im->now, err, sizeof(err));
	if (ret != KD3_OK) {
		import_fail(im, why, ret, "%s", err);
		goto out;
	}
	im->kvnos[im->nkeys++] = kvno;
	im->keys++;
out:
	kd3_wipe(key, sizeof(key));
	return ret;
}

static int import_line(void *ctx, char *name, char *value, const char **why)
{
	struct import *im = ctx;
	if (strcmp(name, "principal") == 0)
		return start_principal(im, value, why);
	if (strcmp(name, "key") == 0)
		return add_key(im, value, why);
	*why = "unknown key (expected 'principal' or 'key')";
	return KD3_E_KEYFILE;
}

/* Inside the transaction: every line, then the last principal's check. */
static int import_in_tx(struct import *im, const char *path, const char *text, size_t n, char *err,
                        size_t len)
{
	const char *why = NULL;
	int ret = kd3_privfile_each_line(path, text, n, IMPORT_LINE_MAX,
	                                 "expected 'principal = NAME' or 'key = KVNO:HEX'",
	                                 import_line, im, err, len);
	if (ret == KD3_OK && (ret = close_principal(im, &why)) != KD3_OK)
		snprintf(err, len, "%.300s: %.400s", path, why);
	if (ret == KD3_OK && im->principals == 0) {
		snprintf(err, len, "%s: no 'principal = NAME' line", path);
		ret = KD3_E_KEYFILE;
	}
	return ret;
}

static int import_text(kdc_db *db, const char *path, const char *text, size_t n, struct import *im)
{
	char err[KDC_ADMIN_ERR_MAX];
	int ret = kdc_db_begin(db, err, sizeof(err));
	if (ret != KD3_OK) {
		kd3_log_error("%s", err);
		return ret;
	}
	ret = import_in_tx(im, path, text, n, err, sizeof(err));
	if (ret != KD3_OK) {
		kdc_db_rollback(db);
		kd3_log_error("%s; nothing imported", err);
		return ret;
	}
	kd3_crash_point("import-before-commit");
	if ((ret = kdc_db_commit(db, err, sizeof(err))) != KD3_OK)
		kd3_log_error("%s; nothing imported", err);
	return ret;
}

int kdc_cmd_import(kdc_opts *o)
{
	const char *path = o->args[0];
	char err[KDC_ADMIN_ERR_MAX];
	char *text = NULL;
	size_t n = 0;
	kdc_db db = {0};
	struct import im;

	memset(&im, 0, sizeof(im));
	int ret = kd3_privfile_read(path, "import", KD3_PRIV_OWNER | KD3_PRIV_ROOT_OK,
	                            IMPORT_SIZE_MAX, &text, &n, err, sizeof(err));
	if (ret != KD3_OK) {
		kd3_log_error("%s", err);
		goto out;
	}
	if ((ret = kdc_admin_open(o, 1, &db)) != KD3_OK)
		goto out;
	im.db = &db;
	im.now = (int64_t)time(NULL);
	im.retire_at = im.now + (int64_t)o->grace_period;
	if ((ret = import_text(&db, path, text, n, &im)) == KD3_OK)
		printf("imported %zu principals, %zu keys from %s\n", im.principals, im.keys, path);
out:
	if (text) {
		kd3_wipe(text, n + 1);
		free(text);
	}
	kdc_db_close(&db);
	return ret;
}
