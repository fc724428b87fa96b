/* kdc database: the bulk read behind the server's principal table (kdc/table.c). Call
 * inside one read transaction (kdc_db_begin_read) so the counts and the rows agree. */
#ifndef KDC_DB_LOAD_H
#define KDC_DB_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "wire.h"

/* Before the read transaction: settings for one big sequential read. */
void kdc_db_load_prepare(kdc_db *db);

/* Upper bounds for the table: every principal, the bytes of all their names (without
 * NULs), every key row. */
int kdc_db_load_counts(kdc_db *db, size_t *principals, size_t *name_bytes, size_t *keys, char *err,
                       size_t err_len);

/* Rows: kdc_db_load_row (kdc/store/store.h). */

/* Calls fn for every principal (by name bytes, then length: SQLite's BINARY order) and,
 * for an enabled one, each of its keys live at live_at (0: every key), kvno
 * descending; rows of one principal come together. */
int kdc_db_load_each(kdc_db *db, int64_t live_at, kdc_db_load_fn fn, void *ctx, char *err,
                     size_t err_len);

#endif
