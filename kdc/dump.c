/* kdc dump and kdc load: backup and restore with every key still sealed.
 *
 * A dump is one JSON object (mode 0600):
 *
 *   {"format": "kd3-dump", "version": 1, "schema": 3, "dumped": UNIX,
 *    "master_key_id": "1a2b3c4d5e6f7081", "master_check": HEX64,
 *    "realm_secret": HEX (sealed),
 *    "principals": [{"name": "alice", "enabled": true, "created": UNIX}, ...],
 *    "keys": [{"name": "alice", "kvno": 1, "created": UNIX, "retire_at": UNIX or null,
 *              "sealed": HEX}, ...],
 *    "mac": HEX64}
 *
 * The keys are the database's sealed blobs, so a dump is useless without the stash.
 * mac is an HMAC under a key derived from the master key over every field in order
 * (a SHA-256 chain over the rows), so a dump altered anywhere (a principal enabled
 * again, a retire time moved, a row dropped) is refused. load writes a new database in
 * one transaction: it exists whole or not at all. The principals' last-used times (what
 * running servers observed, not what an administrator set) are not dumped: a loaded
 * database starts at "never". */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "admin.h"
#include "crypto.h"
#include "db.h"
#include "err.h"
#include "hex.h"
#include "log.h"
#include "msg.h"
#include "privfile.h"
#include "stash.h"

#define DUMP_FORMAT  "kd3-dump"
#define DUMP_VERSION 1
/* About 300 bytes a principal with one key: a million principals take 290 MiB, so this
 * bounds a dump at about three million (the whole file is parsed in memory). */
#define DUMP_SIZE_MAX (1024u * 1024 * 1024)
#define DUMP_TIME_MAX 9007199254740992.0 /* 2^53: exact in a JSON number */

/* ---- the MAC's digest: d = SHA-256(d || record), one record per field group ---------- */

typedef struct dump_digest {
	uint8_t d[KD3_HASH_LEN];
} dump_digest;

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_i64(uint8_t *p, int64_t v)
{
	uint64_t u = (uint64_t)v;
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(u >> (56 - 8 * i));
}

static int digest_add(dump_digest *g, const uint8_t *rec, size_t n)
{
	kd3_iov parts[2] = {{g->d, KD3_HASH_LEN}, {rec, n}};
	return kd3_sha256(parts, 2, g->d);
}

static int digest_header(dump_digest *g, const uint8_t check[KD3_HASH_LEN],
                         const uint8_t realm[KDC_SEALED_LEN])
{
	uint8_t rec[16 + KD3_HASH_LEN + KDC_SEALED_LEN];
	memset(g, 0, sizeof(*g));
	memcpy(rec, "kd3 dump 1\0\0\0\0\0\0", 16);
	memcpy(rec + 16, check, KD3_HASH_LEN);
	memcpy(rec + 16 + KD3_HASH_LEN, realm, KDC_SEALED_LEN);
	return digest_add(g, rec, sizeof(rec));
}

/* 'P' || len || name || enabled || created */
static int digest_principal(dump_digest *g, const char *name, int enabled, int64_t created)
{
	uint8_t rec[2 + KD3_NAME_MAX + 1 + 8];
	size_t n = strlen(name), at = 0;
	rec[at++] = 'P';
	rec[at++] = (uint8_t)n;
	memcpy(rec + at, name, n);
	at += n;
	rec[at++] = enabled ? 1 : 0;
	put_i64(rec + at, created);
	return digest_add(g, rec, at + 8);
}

/* 'K' || len || name || kvno || created || retire_at || sealed */
static int digest_key(dump_digest *g, const kdc_db_sealed_key *k)
{
	uint8_t rec[2 + KD3_NAME_MAX + 4 + 8 + 8 + KDC_SEALED_LEN];
	size_t n = strlen(k->name), at = 0;
	rec[at++] = 'K';
	rec[at++] = (uint8_t)n;
	memcpy(rec + at, k->name, n);
	at += n;
	put_u32(rec + at, k->kvno);
	put_i64(rec + at + 4, k->created);
	put_i64(rec + at + 12, k->retire_at);
	memcpy(rec + at + 20, k->sealed, KDC_SEALED_LEN);
	return digest_add(g, rec, at + 20 + KDC_SEALED_LEN);
}

/* ---- hex ------------------------------------------------------------------------------ */

/* Exactly 2n hex digits. */
static int hex_decode(const char *s, uint8_t *out, size_t n)
{
	if (!s || strlen(s) != 2 * n)
		return KD3_E_MALFORMED;
	return kd3_hex_decode(s, n, out);
}

/* ---- dump ------------------------------------------------------------------------------ */

struct dump_ctx {
	kdc_db *db;
	cJSON *principals, *keys;
	dump_digest digest;
	size_t nprincipals, nkeys;
	char *err;
	size_t err_len;
};

static int add_hex(cJSON *obj, const char *name, const uint8_t *p, size_t n)
{
	char text[2 * KDC_SEALED_LEN + 1];
	kd3_hex_encode(p, n, text);
	return cJSON_AddStringToObject(obj, name, text) ? KD3_OK : KD3_E_NOMEM;
}

static int dump_principal(void *ctx, const kdc_db_principal *p)
{
	struct dump_ctx *d = ctx;
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(d->principals, o) ||
	    !cJSON_AddStringToObject(o, "name", p->name) ||
	    !cJSON_AddBoolToObject(o, "enabled", p->enabled) ||
	    !cJSON_AddNumberToObject(o, "created", (double)p->created)) {
		snprintf(d->err, d->err_len, "out of memory");
		return KD3_E_NOMEM;
	}
	d->nprincipals++;
	return digest_principal(&d->digest, p->name, p->enabled, p->created);
}

/* Every key must open: a dump is checked when it is made, not when it is needed. */
static int dump_key(void *ctx, const kdc_db_sealed_key *k)
{
	struct dump_ctx *d = ctx;
	uint8_t key[KD3_KEY_LEN];
	int ret = kdc_master_open(&d->db->master, k->name, k->kvno, k->sealed, key);
	kd3_wipe(key, sizeof(key));
	if (ret != KD3_OK) {
		return kdc_master_open_failed(&d->db->master, d->db->path, k->name, k->kvno, d->err,
		                              d->err_len);
	}
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(d->keys, o) ||
	    !cJSON_AddStringToObject(o, "name", k->name) ||
	    !cJSON_AddNumberToObject(o, "kvno", (double)k->kvno) ||
	    !cJSON_AddNumberToObject(o, "created", (double)k->created) ||
	    !(k->retire_at ? cJSON_AddNumberToObject(o, "retire_at", (double)k->retire_at)
	                   : cJSON_AddNullToObject(o, "retire_at")) ||
	    add_hex(o, "sealed", k->sealed, KDC_SEALED_LEN) != KD3_OK) {
		snprintf(d->err, d->err_len, "out of memory");
		return KD3_E_NOMEM;
	}
	d->nkeys++;
	return digest_key(&d->digest, k);
}

static int dump_header(struct dump_ctx *d, cJSON *root, uint8_t realm[KDC_SEALED_LEN])
{
	uint8_t secret[KD3_KEY_LEN];
	int ret = kdc_db_realm_secret_get(d->db, secret, d->err, d->err_len); /* it opens */
	kd3_wipe(secret, sizeof(secret));
	if (ret == KD3_OK)
		ret = kdc_db_realm_sealed_get(d->db, realm, d->err, d->err_len);
	if (ret != KD3_OK)
		return ret;
	if (!cJSON_AddStringToObject(root, "format", DUMP_FORMAT) ||
	    !cJSON_AddNumberToObject(root, "version", DUMP_VERSION) ||
	    !cJSON_AddNumberToObject(root, "schema", KDC_DB_SCHEMA_VERSION) ||
	    !cJSON_AddNumberToObject(root, "dumped", (double)time(NULL)) ||
	    !cJSON_AddStringToObject(root, "master_key_id", d->db->master.id) ||
	    add_hex(root, "master_check", d->db->master.check, KD3_HASH_LEN) != KD3_OK ||
	    add_hex(root, "realm_secret", realm, KDC_SEALED_LEN) != KD3_OK ||
	    !(d->principals = cJSON_AddArrayToObject(root, "principals")) ||
	    !(d->keys = cJSON_AddArrayToObject(root, "keys"))) {
		snprintf(d->err, d->err_len, "out of memory");
		return KD3_E_NOMEM;
	}
	return digest_header(&d->digest, d->db->master.check, realm);
}

/* Inside one read snapshot: the whole dump as JSON, with its MAC. */
static int dump_build(struct dump_ctx *d, cJSON *root)
{
	uint8_t realm[KDC_SEALED_LEN], mac[KD3_MAC_LEN];
	int ret = dump_header(d, root, realm);
	if (ret == KD3_OK)
		ret = kdc_db_each_principal(d->db, dump_principal, d, d->err, d->err_len);
	if (ret == KD3_OK)
		ret = kdc_db_each_sealed_key(d->db, dump_key, d, d->err, d->err_len);
	if (ret == KD3_OK && kdc_master_dump_mac(&d->db->master, d->digest.d, mac) != KD3_OK) {
		snprintf(d->err, d->err_len, "cannot compute the dump's MAC");
		ret = KD3_E_CRYPTO;
	}
	if (ret == KD3_OK && add_hex(root, "mac", mac, KD3_MAC_LEN) != KD3_OK) {
		snprintf(d->err, d->err_len, "out of memory");
		ret = KD3_E_NOMEM;
	}
	return ret;
}

int kdc_cmd_dump(kdc_opts *o)
{
	const char *path = o->args[0];
	char err[KDC_ADMIN_ERR_MAX] = "";
	kdc_db db;
	struct dump_ctx d = {&db, NULL, NULL, {{0}}, 0, 0, err, sizeof(err)};
	char *text = NULL;
	cJSON *root = NULL;
	int ret = kdc_admin_open(o, 0, &db);
	if (ret != KD3_OK)
		return ret;
	if (!(root = cJSON_CreateObject())) {
		snprintf(err, sizeof(err), "out of memory");
		ret = KD3_E_NOMEM;
	}
	if (ret == KD3_OK && (ret = kdc_db_begin_read(&db, err, sizeof(err))) == KD3_OK) {
		ret = dump_build(&d, root);
		kdc_db_rollback(&db);
	}
	if (ret == KD3_OK && !(text = cJSON_Print(root))) {
		snprintf(err, sizeof(err), "out of memory");
		ret = KD3_E_NOMEM;
	}
	if (ret == KD3_OK) {
		size_t n = strlen(text);
		text[n] = '\n'; /* cJSON_Print leaves no final newline; the NUL becomes one */
		ret = kd3_privfile_write(path, text, n + 1, o->force, err, sizeof(err));
	}
	if (ret == KD3_OK)
		printf("dumped %zu principal%s and %zu key%s (sealed under master key %s) to %s\n",
		       d.nprincipals, d.nprincipals == 1 ? "" : "s", d.nkeys,
		       d.nkeys == 1 ? "" : "s", db.master.id, path);
	else
		kd3_log_error("%s", err);
	cJSON_free(text);
	cJSON_Delete(root);
	kdc_db_close(&db);
	return ret;
}

/* ---- load -------------------------------------------------------------------------------- */

struct load_ctx {
	const char *path; /* the dump */
	kdc_db db;
	dump_digest digest;
	size_t nprincipals, nkeys;
	char *err;
	size_t err_len;
};

static int load_bad(struct load_ctx *l, const char *what, size_t index)
{
	snprintf(l->err, l->err_len, "%s: %s %zu is not valid", l->path, what, index);
	return KD3_E_MALFORMED;
}

/* An integral JSON number in [min, max]. */
static int json_int(const cJSON *o, const char *name, double min, double max, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!cJSON_IsNumber(v))
		return KD3_E_MALFORMED;
	double x = v->valuedouble;
	/* In range first, so the conversion is defined; then whole. */
	if (!(x >= min && x <= max) || (double)(int64_t)x != x)
		return KD3_E_MALFORMED;
	*out = (int64_t)x;
	return KD3_OK;
}

static const char *json_str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int load_principal(struct load_ctx *l, const cJSON *o, size_t i)
{
	const char *name = json_str(o, "name");
	const cJSON *enabled = cJSON_GetObjectItemCaseSensitive(o, "enabled");
	int64_t created = 0;
	if (!name || !kd3_name_valid_cstr(name) || !cJSON_IsBool(enabled) ||
	    json_int(o, "created", 0, DUMP_TIME_MAX, &created) != KD3_OK)
		return load_bad(l, "principal", i);
	int on = cJSON_IsTrue(enabled) ? 1 : 0;
	int ret = kdc_db_principal_insert(&l->db, name, on, created, l->err, l->err_len);
	if (ret == KD3_OK)
		ret = digest_principal(&l->digest, name, on, created);
	l->nprincipals++;
	return ret;
}

static int load_key(struct load_ctx *l, const cJSON *o, size_t i)
{
	kdc_db_sealed_key k;
	const char *name = json_str(o, "name");
	const cJSON *retire = cJSON_GetObjectItemCaseSensitive(o, "retire_at");
	int64_t kvno = 0;
	memset(&k, 0, sizeof(k));
	if (!name || !kd3_name_valid_cstr(name) ||
	    json_int(o, "kvno", 1, 4294967295.0, &kvno) != KD3_OK ||
	    json_int(o, "created", 0, DUMP_TIME_MAX, &k.created) != KD3_OK ||
	    (!cJSON_IsNull(retire) &&
	     json_int(o, "retire_at", 1, DUMP_TIME_MAX, &k.retire_at) != KD3_OK) ||
	    hex_decode(json_str(o, "sealed"), k.sealed, KDC_SEALED_LEN) != KD3_OK)
		return load_bad(l, "key", i);
	memcpy(k.name, name, strlen(name) + 1);
	k.kvno = (uint32_t)kvno;
	int ret = kdc_db_sealed_key_insert(&l->db, &k, l->err, l->err_len); /* it must open */
	if (ret == KD3_OK)
		ret = digest_key(&l->digest, &k);
	l->nkeys++;
	return ret;
}

static int load_rows(struct load_ctx *l, const cJSON *root)
{
	const cJSON *principals = cJSON_GetObjectItemCaseSensitive(root, "principals");
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
	const cJSON *item;
	size_t i = 0;
	int ret = KD3_OK;
	if (!cJSON_IsArray(principals) || !cJSON_IsArray(keys)) {
		snprintf(l->err, l->err_len, "%s: no 'principals' or 'keys' array", l->path);
		return KD3_E_MALFORMED;
	}
	cJSON_ArrayForEach(item, principals)
	{
		if ((ret = load_principal(l, item, i++)) != KD3_OK)
			return ret;
	}
	i = 0;
	cJSON_ArrayForEach(item, keys)
	{
		if ((ret = load_key(l, item, i++)) != KD3_OK)
			return ret;
	}
	return ret;
}

/* The MAC over everything loaded, checked before the commit. */
static int load_check_mac(struct load_ctx *l, const cJSON *root)
{
	uint8_t want[KD3_MAC_LEN], mac[KD3_MAC_LEN];
	if (hex_decode(json_str(root, "mac"), want, sizeof(want)) != KD3_OK) {
		snprintf(l->err, l->err_len, "%s: no valid 'mac'", l->path);
		return KD3_E_MALFORMED;
	}
	if (kdc_master_dump_mac(&l->db.master, l->digest.d, mac) != KD3_OK ||
	    !kd3_ct_equal(mac, want, sizeof(mac))) {
		snprintf(l->err, l->err_len,
		         "%s: the dump's MAC does not verify (the dump was altered or damaged)",
		         l->path);
		return KD3_E_BLOB_AUTH;
	}
	return KD3_OK;
}

/* The header: a kd3 dump of this version, and the stash key it was sealed under. */
static int load_header(struct load_ctx *l, const cJSON *root, const char *stash_path, kdc_stash *s,
                       uint8_t check[KD3_HASH_LEN], uint8_t realm[KDC_SEALED_LEN])
{
	char ids[64], id[KDC_MASTER_ID_TEXT];
	int64_t version = 0;
	const char *format = json_str(root, "format");
	if (!format || strcmp(format, DUMP_FORMAT) != 0 ||
	    json_int(root, "version", 0, 1e9, &version) != KD3_OK) {
		snprintf(l->err, l->err_len, "%s: not a kd3 dump", l->path);
		return KD3_E_MALFORMED;
	}
	if (version != DUMP_VERSION) {
		snprintf(l->err, l->err_len, "%s: kd3 dump version %lld; this kdc reads version %d",
		         l->path, (long long)version, DUMP_VERSION);
		return KD3_E_UNSUPPORTED;
	}
	if (hex_decode(json_str(root, "master_check"), check, KD3_HASH_LEN) != KD3_OK ||
	    hex_decode(json_str(root, "realm_secret"), realm, KDC_SEALED_LEN) != KD3_OK) {
		snprintf(l->err, l->err_len, "%s: no valid 'master_check' or 'realm_secret'",
		         l->path);
		return KD3_E_MALFORMED;
	}
	int ret = kdc_stash_load(stash_path, s, l->err, l->err_len);
	if (ret == KD3_E_NOT_FOUND)
		snprintf(l->err, l->err_len,
		         "%.400s: no such stash file; give the stash of the dumped database "
		         "(--stash FILE)",
		         stash_path);
	if (ret == KD3_OK && kdc_stash_find(s, check) < 0) {
		kdc_master_id_text(check, id);
		kdc_stash_ids(s, ids, sizeof(ids));
		snprintf(l->err, l->err_len,
		         "%s: sealed under master key %s, which the stash %s does not hold (it "
		         "holds %s); give the stash of the dumped database (--stash)",
		         l->path, id, stash_path, ids);
		ret = KD3_E_KEYFILE;
	}
	return ret;
}

static int load_parsed(struct load_ctx *l, const cJSON *root, const kdc_opts *o,
                       const char *stash_path)
{
	uint8_t check[KD3_HASH_LEN], realm[KDC_SEALED_LEN];
	kdc_stash s;
	memset(&s, 0, sizeof(s));
	int ret = load_header(l, root, stash_path, &s, check, realm);
	if (ret == KD3_OK)
		ret = kdc_db_restore_begin(o->db, stash_path, s.key[kdc_stash_find(&s, check)],
		                           realm, &l->db, l->err, l->err_len);
	kdc_stash_wipe(&s);
	if (ret != KD3_OK)
		return ret;
	ret = digest_header(&l->digest, check, realm);
	if (ret == KD3_OK)
		ret = load_rows(l, root);
	if (ret == KD3_OK)
		ret = load_check_mac(l, root);
	return kdc_db_restore_end(&l->db, ret, l->err, l->err_len);
}

int kdc_cmd_load(kdc_opts *o)
{
	char err[KDC_ADMIN_ERR_MAX] = "", stash[PATH_MAX];
	struct load_ctx l;
	char *text = NULL;
	size_t n = 0;
	cJSON *root = NULL;
	int ret = kdc_admin_stash_path(o, stash);

	memset(&l, 0, sizeof(l));
	l.path = o->args[0];
	l.err = err;
	l.err_len = sizeof(err);
	if (ret != KD3_OK)
		return ret;
	ret = kd3_privfile_read(l.path, "dump", KD3_PRIV_ANY, DUMP_SIZE_MAX, &text, &n, err,
	                        sizeof(err));
	if (ret == KD3_OK && !(root = cJSON_ParseWithLength(text, n))) {
		snprintf(err, sizeof(err), "%s: not JSON (a kd3 dump is one JSON object)", l.path);
		ret = KD3_E_MALFORMED;
	}
	if (ret == KD3_OK)
		ret = load_parsed(&l, root, o, stash);
	if (ret == KD3_OK)
		printf("loaded %zu principal%s and %zu key%s into %s (master key %s, stash %s)\n",
		       l.nprincipals, l.nprincipals == 1 ? "" : "s", l.nkeys,
		       l.nkeys == 1 ? "" : "s", o->db, l.db.master.id, stash);
	else
		kd3_log_error("%s", err);
	cJSON_Delete(root);
	free(text);
	kdc_db_close(&l.db);
	return ret;
}
