/* kdc database: the one read the server's principal table needs (kdc/table.c), made
 * for speed with a million principals: one statement, one pass, rows in the order the
 * table keeps (by name bytes), and nothing per row but copying (the table opens the
 * keys on other threads meanwhile: kdc/keyopen.h).
 * Apart from db.c so that the admin commands' many small statements and this bulk
 * read each stay short. */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "db_load.h"
#include "err.h"
#include "msg.h"
#include "seal.h"

#define KDC_DB_LOAD_MMAP                                                                           \
	"4294967296" /* up to 4 GiB of the file; SQLite caps it at its build's limit */

static int load_fail(kdc_db *db, char *err, size_t len, const char *what)
{
	snprintf(err, len, "%s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
	return KD3_E_DB;
}

void kdc_db_load_prepare(kdc_db *db)
{
	/* The pass walks the name index and fetches each row by rowid, in whatever order the
	 * principals were added: through a small page cache that is a pread per page
	 * visited, mapped it is a memory read (pages are only read here). Best effort. */
	(void)sqlite3_exec(db->h, "PRAGMA mmap_size = " KDC_DB_LOAD_MMAP, NULL, NULL, NULL);
}

int kdc_db_load_counts(kdc_db *db, size_t *principals, size_t *keys, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int ret = KD3_E_DB;
	if (sqlite3_prepare_v2(
	        db->h, "SELECT (SELECT count(*) FROM principals), (SELECT count(*) FROM keys)", -1,
	        &st, NULL) != SQLITE_OK)
		return load_fail(db, err, err_len, "cannot count principals");
	if (sqlite3_step(st) != SQLITE_ROW) {
		load_fail(db, err, err_len, "cannot count principals");
		goto out;
	}
	*principals = (size_t)sqlite3_column_int64(st, 0);
	*keys = (size_t)sqlite3_column_int64(st, 1);
	ret = KD3_OK;
out:
	sqlite3_finalize(st);
	return ret;
}

/* One row into r. */
static int load_row(kdc_db *db, sqlite3_stmt *st, kdc_db_load_row *r, char *err, size_t len)
{
	const unsigned char *name = sqlite3_column_text(st, 0);
	int n = sqlite3_column_bytes(st, 0);
	if (!name || n < 1 || n > KD3_NAME_MAX || !kd3_name_valid(name, (size_t)n)) {
		snprintf(err, len, "%s: a principal name is not valid", db->path);
		return KD3_E_DB;
	}
	memcpy(r->name, name, (size_t)n);
	r->name[n] = '\0';
	r->name_len = (size_t)n;
	r->enabled = sqlite3_column_int(st, 1) != 0;
	r->kvno = 0;
	if (sqlite3_column_type(st, 2) == SQLITE_NULL)
		return KD3_OK;
	const void *sealed = sqlite3_column_blob(st, 3);
	int64_t kvno = sqlite3_column_int64(st, 2);
	if (!sealed || sqlite3_column_bytes(st, 3) != KDC_SEALED_LEN || kvno < 1 ||
	    kvno > UINT32_MAX) {
		snprintf(err, len, "%s: a key row of %s is not valid", db->path, r->name);
		return KD3_E_DB;
	}
	r->kvno = (uint32_t)kvno;
	r->retire_at = sqlite3_column_type(st, 4) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 4);
	r->sealed = sealed;
	return KD3_OK;
}

int kdc_db_load_each(kdc_db *db, int64_t live_at, kdc_db_load_fn fn, void *ctx, char *err,
                     size_t err_len)
{
	sqlite3_stmt *st = NULL;
	kdc_db_load_row r;
	int rc, ret = KD3_E_DB;

	/* Disabled principals come without keys: the table lists them so that a request
	 * naming one is refused as disabled, not unknown. */
	if (sqlite3_prepare_v2(db->h,
	                       "SELECT p.name, p.enabled, k.kvno, k.sealed, k.retire_at"
	                       " FROM principals p LEFT JOIN keys k ON k.name = p.name"
	                       " AND p.enabled = 1"
	                       " AND (?1 = 0 OR k.retire_at IS NULL OR k.retire_at > ?1)"
	                       " ORDER BY p.name, k.kvno DESC",
	                       -1, &st, NULL) != SQLITE_OK)
		return load_fail(db, err, err_len, "cannot read the principals");
	sqlite3_bind_int64(st, 1, live_at);
	memset(&r, 0, sizeof(r));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((ret = load_row(db, st, &r, err, err_len)) != KD3_OK ||
		    (ret = fn(ctx, &r)) != KD3_OK)
			goto out;
	}
	ret =
	    rc == SQLITE_DONE ? KD3_OK : load_fail(db, err, err_len, "cannot read the principals");
out:
	sqlite3_finalize(st);
	return ret;
}
