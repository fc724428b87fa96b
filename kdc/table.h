/* kdc principal table: every principal, loaded off the request path (at start, and by
 * the reload thread for each new snapshot: kdc/live.h), read-only after.
 *
 * Subkeys (auth, wrap) are derived once here (docs/PROTOCOL.md, "Long-term keys") and
 * the raw keys (opened from their sealed rows) are wiped as soon as they are used, so the
 * request path never touches a long-term key or the disk. Disabled principals are listed without
 * keys, so a request naming one is refused as disabled rather than unknown. A sorted array searched
 * by name: shared by every worker thread without locks. */
#ifndef KDC_TABLE_H
#define KDC_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "db.h"
#include "kdc_core.h"

typedef struct kdc_table {
	kd3_principal *p; /* sorted by name bytes, then length */
	size_t n;
	size_t cap;          /* entries allocated (and locked in memory, best effort) */
	size_t nkeys;        /* key versions loaded, over all principals */
	int64_t next_expiry; /* the earliest retire time of a loaded kvno; 0: none */
} kdc_table;

/* Loads the kvnos live at now (Unix seconds): a kvno past its grace period is left out.
 * Once now reaches t->next_expiry the table holds a kvno that is no longer live, and
 * should be loaded again. */
int kdc_table_load(kdc_table *t, kdc_db *db, kd3_crypto *c, int64_t now, char *err, size_t err_len);
/* Wipes every subkey and frees the array. */
void kdc_table_free(kdc_table *t);

/* kd3_lookup_fn over a kdc_table (ctx). */
const kd3_principal *kdc_table_lookup(void *ctx, const uint8_t *name, size_t len);

#endif
