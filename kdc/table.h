/* kdc principal table: every principal, loaded off the request path (at start, and by
 * the reload thread for each new snapshot: kdc/live.h), shared by every worker thread
 * without locks.
 *
 * Loading is one pass over the database (kdc/db_load.h): names, state and each live
 * key opened from its sealed row. A key's subkeys (auth, wrap: docs/PROTOCOL.md,
 * "Long-term keys") are derived the first time a request names its principal, not at
 * load, so a million principals load in the time it takes to read and open them, and
 * the derivation (about 16 SHA-256 blocks a key) is paid once, by the first request,
 * on the worker that serves it. Until then the opened key waits in its own locked
 * array and is wiped as soon as its subkeys exist. One state byte per principal says
 * which: the first worker to claim a principal derives and publishes (release); any
 * other that asks meanwhile waits the few microseconds that takes. Disabled principals
 * are listed without keys, so a request naming one is refused as disabled rather than
 * unknown. The array is sorted by name and searched by bisection. */
#ifndef KDC_TABLE_H
#define KDC_TABLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "crypto.h"
#include "db.h"
#include "kdc_core.h"

typedef struct kdc_table {
	kd3_principal *p; /* sorted by name bytes, then length */
	size_t n;
	char *names; /* every p[i].name, NUL-terminated, one after another */
	size_t names_used, names_cap;
	kd3_kvno_key *keys;           /* every loaded key version; p[i].keys points in here */
	uint8_t (*raw)[KD3_KEY_LEN];  /* keys[j]'s long-term key until derived, then zeros */
	_Atomic unsigned char *state; /* per principal: KDC_KEYS_* */
	size_t keys_cap;              /* entries allocated in keys and raw (locked, best effort) */
	size_t keys_bytes, raw_bytes; /* their mappings: whole pages of their own */
	size_t nkeys;                 /* key versions loaded, over all principals */
	int64_t next_expiry;          /* the earliest retire time of a loaded kvno; 0: none */
} kdc_table;

enum {
	KDC_KEYS_RAW = 0,      /* opened keys waiting in raw */
	KDC_KEYS_DERIVING = 1, /* one worker is deriving them */
	KDC_KEYS_READY = 2,    /* subkeys in keys[], raw wiped */
	KDC_KEYS_FAILED = 3,   /* derivation failed: the principal is not served */
};

/* The table's order of names: bytes, then length (SQLite's BINARY collation, so a query
 * ORDER BY name gives it). <0, 0, >0 like memcmp. */
static inline int kdc_name_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Loads the kvnos live at now (Unix seconds): a kvno past its grace period is left out.
 * Once now reaches t->next_expiry the table holds a kvno that is no longer live, and
 * should be loaded again. */
int kdc_table_load(kdc_table *t, kdc_db *db, int64_t now, char *err, size_t err_len);
/* Wipes every key and subkey and frees the arrays. */
void kdc_table_free(kdc_table *t);

/* kd3_lookup_fn over a kdc_table (ctx): the principal with its subkeys ready, deriving
 * them on first use; NULL when unknown (or its derivation failed: logged once). */
const kd3_principal *kdc_table_lookup(void *ctx, const uint8_t *name, size_t len);

#endif
