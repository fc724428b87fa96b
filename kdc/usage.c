/* kdc usage: last-used slots parallel to a snapshot's table, carried from one snapshot
 * to the next by name, and the bookkeeping of what was written to the database. */
#include "usage.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

int kdc_usage_init(kdc_usage *u, size_t n)
{
	memset(u, 0, sizeof(*u));
	size_t cap = n ? n : 1; /* an empty table still gets arrays: no NULL to test */
	u->last = malloc(cap * sizeof(*u->last));
	u->flushed = calloc(cap, sizeof(*u->flushed));
	u->writing = calloc(cap, sizeof(*u->writing));
	if (!u->last || !u->flushed || !u->writing) {
		kdc_usage_free(u);
		return KD3_E_NOMEM;
	}
	for (size_t i = 0; i < cap; i++)
		atomic_init(&u->last[i], 0);
	u->n = n;
	return KD3_OK;
}

void kdc_usage_free(kdc_usage *u)
{
	free(u->last);
	free(u->flushed);
	free(u->writing);
	memset(u, 0, sizeof(*u));
}

/* Workers may be storing into *slot meanwhile (always a later time): keep the larger. */
static void slot_raise(_Atomic int64_t *slot, int64_t v)
{
	int64_t cur = atomic_load_explicit(slot, memory_order_relaxed);
	while (v > cur && !atomic_compare_exchange_weak_explicit(
	                      slot, &cur, v, memory_order_relaxed, memory_order_relaxed))
		;
}

void kdc_usage_carry(kdc_usage *to, const kdc_table *to_t, const kdc_usage *from,
                     const kdc_table *from_t)
{
	size_t i = 0, j = 0;
	size_t to_n = to_t->n < to->n ? to_t->n : to->n;
	size_t from_n = from_t->n < from->n ? from_t->n : from->n;
	while (i < to_n && j < from_n) { /* a merge of two sorted lists */
		const kd3_principal *a = &to_t->p[i], *b = &from_t->p[j];
		int c = kdc_name_cmp(a->name, a->name_len, b->name, b->name_len);
		if (c < 0) {
			i++;
		} else if (c > 0) {
			j++;
		} else {
			slot_raise(&to->last[i],
			           atomic_load_explicit(&from->last[j], memory_order_relaxed));
			if (from->flushed[j] > to->flushed[i])
				to->flushed[i] = from->flushed[j];
			i++;
			j++;
		}
	}
}

size_t kdc_usage_flush_begin(kdc_usage *u)
{
	size_t marked = 0;
	for (size_t i = 0; i < u->n; i++) {
		int64_t v = atomic_load_explicit(&u->last[i], memory_order_relaxed);
		/* Only a later time: the database keeps the latest anyway (and so a wall
		 * clock stepped back costs no writes until it passes the written time). */
		u->writing[i] = v > u->flushed[i] ? v : 0;
		marked += u->writing[i] != 0;
	}
	return marked;
}

void kdc_usage_flush_end(kdc_usage *u, int committed)
{
	for (size_t i = 0; i < u->n; i++) {
		if (committed && u->writing[i])
			u->flushed[i] = u->writing[i];
		u->writing[i] = 0;
	}
}
