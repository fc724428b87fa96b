/* kdc storage over SQLite: the one read the server's principal table needs
 * (kdc/table.c), made for speed with a million principals: one pass, rows in the order
 * the table keeps (by name bytes), and nothing per row but copying (the table opens the
 * keys on other threads meanwhile: kdc/keyopen.h).
 * Apart from sqlite.c so that the admin commands' many small statements and this bulk
 * read each stay short. */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "kdc_core.h"
#include "log.h"
#include "msg.h"
#include "seal.h"
#include "sqlite_store.h"
#include "table.h"

#define KDC_DB_LOAD_MMAP                                                                           \
	"4294967296" /* up to 4 GiB of the file; SQLite caps it at its build's limit */

static int load_fail(kdc_store *s, char *err, size_t len, const char *what)
{
	snprintf(err, len, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->h));
	return KD3_E_DB;
}

void kdc_sqlite_load_prepare(kdc_store *s)
{
	/* The pass walks the name index and fetches each row by rowid, in whatever order the
	 * principals were added: through a small page cache that is a pread per page
	 * visited, mapped it is a memory read (pages are only read here). Best effort. */
	(void)sqlite3_exec(s->h, "PRAGMA mmap_size = " KDC_DB_LOAD_MMAP, NULL, NULL, NULL);
}

int kdc_sqlite_load_counts(kdc_store *s, size_t *principals, size_t *name_bytes, size_t *keys,
                           char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret = KD3_E_DB;
	if (sqlite3_prepare_v2(s->h,
	                       "SELECT (SELECT count(*) FROM principals),"
	                       " (SELECT total(length(CAST(name AS BLOB))) FROM principals),"
	                       " (SELECT count(*) FROM keys)",
	                       -1, &st, NULL) != SQLITE_OK)
		return load_fail(s, err, err_len, "cannot count principals");
	if (sqlite3_step(st) != SQLITE_ROW) {
		load_fail(s, err, err_len, "cannot count principals");
		goto out;
	}
	*principals = (size_t)sqlite3_column_int64(st, 0);
	*name_bytes = (size_t)sqlite3_column_int64(st, 1);
	*keys = (size_t)sqlite3_column_int64(st, 2);
	ret = KD3_OK;
out:
	sqlite3_finalize(st);
	return ret;
}

/* A statement read in step with others by name: its current row and that row's name. */
struct cursor {
	sqlite3_stmt *st;
	int has; /* a current row */
	const unsigned char *name;
	size_t name_len;
};

static int cursor_step(kdc_store *s, struct cursor *c, char *err, size_t len)
{
	int rc = sqlite3_step(c->st);
	c->has = rc == SQLITE_ROW;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return load_fail(s, err, len, "cannot read the principals");
	if (!c->has)
		return KD3_OK;
	c->name = sqlite3_column_text(c->st, 0);
	int n = sqlite3_column_bytes(c->st, 0);
	if (!c->name || n < 1 || n > KD3_NAME_MAX || !kd3_name_valid(c->name, (size_t)n)) {
		snprintf(err, len, "%s: a principal name is not valid", s->path);
		return KD3_E_DB;
	}
	c->name_len = (size_t)n;
	return KD3_OK;
}

static int cursor_open(kdc_store *s, struct cursor *c, const char *sql, int64_t live_at, char *err,
                       size_t len)
{
	memset(c, 0, sizeof(*c));
	if (sqlite3_prepare_v2(s->h, sql, -1, &c->st, NULL) != SQLITE_OK)
		return load_fail(s, err, len, "cannot read the principals");
	if (sqlite3_bind_parameter_count(c->st) > 0)
		sqlite3_bind_int64(c->st, 1, live_at);
	return cursor_step(s, c, err, len);
}

/* The cursor's name against r's, in the table's order (kdc_name_cmp). */
static int cursor_cmp(const struct cursor *c, const kdc_db_load_row *r)
{
	return kdc_name_cmp(c->name, c->name_len, r->name, r->name_len);
}

/* A key row of the keys cursor into g, checked. */
static int group_add(kdc_store *s, kdc_store_group *g, sqlite3_stmt *st, const char *name,
                     char *err, size_t len)
{
	const void *sealed = sqlite3_column_blob(st, 2);
	int64_t kvno = sqlite3_column_int64(st, 1);
	if (!sealed || sqlite3_column_bytes(st, 2) != KDC_SEALED_LEN || kvno < 1 ||
	    kvno > UINT32_MAX) {
		snprintf(err, len, "%s: a key row of %s is not valid", s->path, name);
		return KD3_E_DB;
	}
	kdc_store_group_add(g, (uint32_t)kvno, sq_column_time(st, 3), sealed);
	return KD3_OK;
}

/* Three statements walked together by name, none fetching a row it does not need:
 * every name (the name index alone), every live key (the keys' index, then the row for
 * the blob), and the disabled names (one scan of the table, sorted: they are few). One
 * join did all of it with
 * four B-tree searches a principal; in a realm added in no particular order each one
 * lands on another page, which made the join most of a million-principal start. */
static int load_merge(kdc_store *s, struct cursor *names, struct cursor *keys,
                      struct cursor *disabled, kdc_db_load_fn fn, void *ctx, char *err, size_t len)
{
	kdc_db_load_row r;
	kdc_store_group g;
	int ret = KD3_OK;
	memset(&r, 0, sizeof(r));
	while (ret == KD3_OK && names->has) {
		memcpy(r.name, names->name, names->name_len);
		r.name[names->name_len] = '\0';
		r.name_len = names->name_len;
		while (ret == KD3_OK && disabled->has && cursor_cmp(disabled, &r) < 0)
			ret = cursor_step(s, disabled, err, len);
		r.enabled = !(disabled->has && cursor_cmp(disabled, &r) == 0);
		while (ret == KD3_OK && keys->has && cursor_cmp(keys, &r) < 0)
			ret =
			    cursor_step(s, keys, err, len); /* no principal: cannot be (cascade) */
		kdc_store_group_reset(&g);
		while (ret == KD3_OK && keys->has && cursor_cmp(keys, &r) == 0) {
			if (r.enabled) /* a disabled principal is listed without keys */
				ret = group_add(s, &g, keys->st, r.name, err, len);
			if (ret == KD3_OK)
				ret = cursor_step(s, keys, err, len);
		}
		if (ret == KD3_OK)
			ret = kdc_store_group_emit(&g, &r, fn, ctx);
		if (ret == KD3_OK)
			ret = cursor_step(s, names, err, len);
	}
	return ret;
}

int kdc_sqlite_load_each(kdc_store *s, int64_t live_at, kdc_db_load_fn fn, void *ctx, char *err,
                         size_t err_len)
{
	struct cursor names = {0}, keys = {0}, disabled = {0};
	int ret =
	    cursor_open(s, &names, "SELECT name FROM principals ORDER BY name", 0, err, err_len);
	if (ret == KD3_OK)
		ret = cursor_open(s, &keys,
		                  "SELECT name, kvno, sealed, retire_at FROM keys"
		                  " WHERE ?1 = 0 OR retire_at IS NULL OR retire_at > ?1"
		                  " ORDER BY name, kvno",
		                  live_at, err, err_len);
	if (ret == KD3_OK)
		ret = cursor_open(
		    s, &disabled,
		    "SELECT name FROM principals NOT INDEXED WHERE enabled = 0 ORDER BY name", 0,
		    err, err_len);
	if (ret == KD3_OK)
		ret = load_merge(s, &names, &keys, &disabled, fn, ctx, err, err_len);
	sqlite3_finalize(names.st);
	sqlite3_finalize(keys.st);
	sqlite3_finalize(disabled.st);
	return ret;
}
