/* kdc principal table: load once, derive subkeys once, look up by binary search. */
#include "table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "err.h"
#include "log.h"
#include "schedule.h"

struct table_load {
	kdc_table *t;
	size_t cap;
	kd3_crypto *crypto;
	char *err;
	size_t err_len;
};

static int name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int principal_cmp(const void *a, const void *b)
{
	const kd3_principal *pa = a, *pb = b;
	return name_cmp((const uint8_t *)pa->name, pa->name_len, (const uint8_t *)pb->name,
	                pb->name_len);
}

static kd3_principal *table_find(const kdc_table *t, const uint8_t *name, size_t len)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		kd3_principal *p = &t->p[mid];
		int c = name_cmp(name, len, (const uint8_t *)p->name, p->name_len);
		if (c == 0)
			return p;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const kd3_principal *kdc_table_lookup(void *ctx, const uint8_t *name, size_t len)
{
	return table_find(ctx, name, len);
}

static int load_principal(void *ctx, const kdc_db_principal *p)
{
	struct table_load *l = ctx;
	if (l->t->n >= l->cap) {
		snprintf(l->err, l->err_len, "the database changed while it was loaded");
		return KD3_E_DB;
	}
	kd3_principal *e = &l->t->p[l->t->n++];
	size_t n = strlen(p->name);
	memcpy(e->name, p->name, n + 1);
	e->name_len = (uint8_t)n;
	e->enabled = p->enabled ? 1 : 0;
	return KD3_OK;
}

/* Keys arrive newest first, so a principal with more live kvnos than fit keeps the
 * newest KD3_KVNOS_MAX. */
static int load_key(void *ctx, const char *name, uint32_t kvno, int64_t retire_at,
                    const uint8_t key[KD3_KEY_LEN])
{
	struct table_load *l = ctx;
	kd3_principal *p = table_find(l->t, (const uint8_t *)name, strlen(name));
	if (!p || !p->enabled)
		return KD3_OK;
	if (p->nkeys >= KD3_KVNOS_MAX) {
		kd3_log_info("principal %s: kvno %u not loaded (at most %d live key versions)",
		             name, (unsigned)kvno, KD3_KVNOS_MAX);
		return KD3_OK;
	}
	kd3_kvno_key *k = &p->keys[p->nkeys];
	if (kd3_derive_subkeys(l->crypto, key, &k->sub) != KD3_OK) {
		kd3_wipe(&k->sub, sizeof(k->sub));
		snprintf(l->err, l->err_len, "cannot derive the subkeys of %s:%u", name,
		         (unsigned)kvno);
		return KD3_E_CRYPTO;
	}
	k->kvno = kvno;
	p->nkeys++;
	if (retire_at && (!l->t->next_expiry || retire_at < l->t->next_expiry))
		l->t->next_expiry = retire_at;
	l->t->nkeys++;
	return KD3_OK;
}

static int table_fill(kdc_table *t, kdc_db *db, kd3_crypto *c, int64_t now, char *err,
                      size_t err_len)
{
	struct table_load l = {t, 0, c, err, err_len};
	int ret = kdc_db_count(db, 0, &l.cap, err, err_len);
	if (ret != KD3_OK)
		return ret;
	t->cap = l.cap ? l.cap : 1;
	t->p = calloc(t->cap, sizeof(*t->p));
	if (!t->p) {
		snprintf(err, err_len, "out of memory for %zu principals", l.cap);
		return KD3_E_NOMEM;
	}
	/* Best effort: keep the subkeys out of swap. */
	(void)mlock(t->p, t->cap * sizeof(*t->p));
	ret = kdc_db_each_principal(db, load_principal, &l, err, err_len);
	if (ret != KD3_OK)
		return ret;
	qsort(t->p, t->n, sizeof(*t->p), principal_cmp);
	return kdc_db_each_key(db, now, load_key, &l, err, err_len);
}

int kdc_table_load(kdc_table *t, kdc_db *db, kd3_crypto *c, int64_t now, char *err, size_t err_len)
{
	memset(t, 0, sizeof(*t));
	/* One read snapshot, so the principal count, the list and the keys agree. */
	int ret = kdc_db_begin_read(db, err, err_len);
	if (ret != KD3_OK)
		return ret;
	ret = table_fill(t, db, c, now, err, err_len);
	kdc_db_rollback(db);
	if (ret != KD3_OK)
		kdc_table_free(t);
	return ret;
}

void kdc_table_free(kdc_table *t)
{
	if (t->p) {
		kd3_wipe(t->p, t->cap * sizeof(*t->p));
		(void)munlock(t->p, t->cap * sizeof(*t->p));
		free(t->p);
	}
	memset(t, 0, sizeof(*t));
}
