/* kdc principal table: load in one pass, derive subkeys on first use, look up by
 * bisection. */
#include "table.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "db_load.h"
#include "keyopen.h"
#include "err.h"
#include "log.h"
#include "schedule.h"

#define KDC_TABLE_PARALLEL_KEYS 4096 /* fewer keys open faster than threads start */

struct table_load {
	kdc_table *t;
	kdc_keyopen *opener;
	size_t cap; /* principals allocated */
	int sorted; /* rows came in the table's order */
	char *err;
	size_t err_len;
};

static int principal_cmp(const void *a, const void *b)
{
	const kd3_principal *pa = a, *pb = b;
	return kdc_name_cmp(pa->name, pa->name_len, pb->name, pb->name_len);
}

static kd3_principal *table_find(const kdc_table *t, const uint8_t *name, size_t len)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		kd3_principal *p = &t->p[mid];
		int c = kdc_name_cmp(name, len, p->name, p->name_len);
		if (c == 0)
			return p;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* ---- first use: derive ----------------------------------------------------------- */

/* The subkeys of every key of p from its raw key, which is wiped. */
static int derive_keys(kdc_table *t, kd3_principal *p)
{
	size_t first = (size_t)(p->keys - t->keys);
	int ret = KD3_OK;
	for (size_t j = 0; j < p->nkeys; j++) {
		/* The HMAC-based derivation takes no DRBG or context state. */
		if (ret == KD3_OK)
			ret = kd3_derive_subkeys(NULL, t->raw[first + j], &p->keys[j].sub);
		kd3_wipe(t->raw[first + j], KD3_KEY_LEN);
	}
	return ret;
}

static const kd3_principal *first_use(kdc_table *t, kd3_principal *p)
{
	_Atomic unsigned char *state = &t->state[p - t->p];
	unsigned char seen = KDC_KEYS_RAW;
	if (atomic_compare_exchange_strong_explicit(state, &seen, KDC_KEYS_DERIVING,
	                                            memory_order_acquire, memory_order_acquire)) {
		int ret = derive_keys(t, p);
		if (ret != KD3_OK) {
			for (size_t j = 0; j < p->nkeys; j++)
				kd3_wipe(&p->keys[j].sub, sizeof(p->keys[j].sub));
			kd3_log_error("principal %s: cannot derive its subkeys (%s); not served",
			              p->name, kd3_strerror(ret));
		}
		seen = ret == KD3_OK ? KDC_KEYS_READY : KDC_KEYS_FAILED;
		atomic_store_explicit(state, seen, memory_order_release);
	}
	/* Another worker claimed it: a handful of HMACs, then it publishes. */
	while (seen == KDC_KEYS_DERIVING) {
		sched_yield();
		seen = atomic_load_explicit(state, memory_order_acquire);
	}
	return seen == KDC_KEYS_READY ? p : NULL;
}

const kd3_principal *kdc_table_lookup(void *ctx, const uint8_t *name, size_t len)
{
	kdc_table *t = ctx;
	kd3_principal *p = table_find(t, name, len);
	if (!p || p->nkeys == 0 ||
	    atomic_load_explicit(&t->state[p - t->p], memory_order_acquire) == KDC_KEYS_READY)
		return p;
	return first_use(t, p);
}

/* ---- load ------------------------------------------------------------------------ */

static kd3_principal *row_principal(struct table_load *l, const kdc_db_load_row *r)
{
	kdc_table *t = l->t;
	kd3_principal *last = t->n ? &t->p[t->n - 1] : NULL;
	if (last && last->name_len == r->name_len && memcmp(last->name, r->name, r->name_len) == 0)
		return last;
	if (t->n >= l->cap || r->name_len + 1 > t->names_cap - t->names_used)
		return NULL;
	kd3_principal *e = &t->p[t->n++];
	char *name = t->names + t->names_used;
	memcpy(name, r->name, r->name_len + 1);
	t->names_used += r->name_len + 1;
	e->name = name;
	e->name_len = (uint8_t)r->name_len;
	e->enabled = r->enabled ? 1 : 0;
	e->keys = t->keys + t->nkeys;
	if (last && principal_cmp(last, e) >= 0)
		l->sorted = 0;
	return e;
}

/* Keys arrive newest first, so a principal with more live kvnos than fit keeps the
 * newest KD3_KVNOS_MAX. */
static int load_row(void *ctx, const kdc_db_load_row *r)
{
	struct table_load *l = ctx;
	kdc_table *t = l->t;
	kd3_principal *p = row_principal(l, r);
	if (!p || (r->kvno && t->nkeys >= t->keys_cap)) {
		snprintf(l->err, l->err_len, "the database changed while it was loaded");
		return KD3_E_DB;
	}
	if (!r->kvno || !p->enabled)
		return KD3_OK;
	if (p->nkeys >= KD3_KVNOS_MAX) /* db_load sends the newest that fit, says so of the rest */
		return KD3_OK;
	int ret = kdc_keyopen_add(l->opener, p->name, r->kvno, r->sealed, t->raw[t->nkeys]);
	if (ret != KD3_OK)
		return ret;
	t->keys[t->nkeys].kvno = r->kvno;
	t->nkeys++;
	p->nkeys++;
	if (r->retire_at && (!t->next_expiry || r->retire_at < t->next_expiry))
		t->next_expiry = r->retire_at;
	return KD3_OK;
}

/* Zeroed pages of their own for keys, locked (best effort: out of swap). Whole pages:
 * munlock of a heap block would unlock whatever shares its pages, such as the next
 * snapshot's keys. */
static void *locked_alloc(size_t count, size_t size, size_t *bytes)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	if (count == 0 || count > (SIZE_MAX - page) / size)
		return NULL;
	*bytes = (count * size + page - 1) / page * page;
	void *p = mmap(NULL, *bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)mlock(p, *bytes);
	return p;
}

static void locked_free(void *p, size_t bytes)
{
	if (!p)
		return;
	kd3_wipe(p, bytes);
	(void)munlock(p, bytes);
	munmap(p, bytes);
}

static int table_alloc(kdc_table *t, size_t principals, size_t name_bytes, size_t keys, char *err,
                       size_t err_len)
{
	t->keys_cap = keys ? keys : 1;
	t->names_cap = name_bytes + principals + 1; /* a NUL each; never 0 */
	t->names = t->names_cap > name_bytes ? malloc(t->names_cap) : NULL;
	t->p = calloc(principals ? principals : 1, sizeof(*t->p));
	t->state = calloc(principals ? principals : 1, sizeof(*t->state));
	t->keys = locked_alloc(t->keys_cap, sizeof(*t->keys), &t->keys_bytes);
	t->raw = locked_alloc(t->keys_cap, sizeof(*t->raw), &t->raw_bytes);
	if (!t->names || !t->p || !t->state || !t->keys || !t->raw) {
		snprintf(err, err_len, "out of memory for %zu principals", principals);
		return KD3_E_NOMEM;
	}
	return KD3_OK;
}

/* Opener threads beside the reading one: every other core, for a table big enough. */
static size_t opener_threads(size_t nkeys)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	return nkeys >= KDC_TABLE_PARALLEL_KEYS && cores > 1 ? (size_t)cores - 1 : 0;
}

static int table_fill(kdc_table *t, kdc_db *db, int64_t now, char *err, size_t err_len)
{
	struct table_load l = {t, NULL, 0, 1, err, err_len};
	size_t nkeys = 0, name_bytes = 0;
	int ret = kdc_db_load_counts(db, &l.cap, &name_bytes, &nkeys, err, err_len);
	if (ret == KD3_OK)
		ret = table_alloc(t, l.cap, name_bytes, nkeys, err, err_len);
	if (ret == KD3_OK)
		ret =
		    kdc_keyopen_start(&l.opener, &db->master, opener_threads(nkeys), err, err_len);
	if (ret == KD3_OK)
		ret = kdc_db_load_each(db, now, load_row, &l, err, err_len);
	/* Always: it joins the threads. Its own failure only when the read went well. */
	int opened = kdc_keyopen_finish(l.opener, db->path, ret == KD3_OK ? err : NULL, err_len);
	if (ret == KD3_OK)
		ret = opened;
	/* SQLite's BINARY order is this table's; a sort only if a build of it disagrees.
	 * The state bytes are all KDC_KEYS_RAW still, so only the entries move. */
	if (ret == KD3_OK && !l.sorted)
		qsort(t->p, t->n, sizeof(*t->p), principal_cmp);
	return ret;
}

int kdc_table_load(kdc_table *t, kdc_db *db, int64_t now, char *err, size_t err_len)
{
	memset(t, 0, sizeof(*t));
	kdc_db_load_prepare(db);
	/* One read snapshot, so the counts and the rows agree. */
	int ret = kdc_db_begin_read(db, err, err_len);
	if (ret != KD3_OK)
		return ret;
	ret = table_fill(t, db, now, err, err_len);
	kdc_db_rollback(db);
	if (ret != KD3_OK)
		kdc_table_free(t);
	return ret;
}

void kdc_table_free(kdc_table *t)
{
	locked_free(t->keys, t->keys_bytes);
	locked_free(t->raw, t->raw_bytes);
	free(t->p);
	free(t->names);
	free((void *)t->state);
	memset(t, 0, sizeof(*t));
}
