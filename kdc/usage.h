/* kdc usage: when each principal last took part in an issued key (an M3), noted in
 * memory by the workers and written to the database by the reload thread (`kdc list`
 * shows it as LAST USED).
 *
 * A snapshot (kdc/live.h) carries one kdc_usage parallel to its table: slot i belongs to
 * table.p[i], so a worker goes from the principal the handler looked up to its slot by
 * pointer arithmetic, with no search. It is the one part of a snapshot written after
 * publication: for each M3 a worker stores now (Unix seconds) into the slots of both
 * principals, relaxed, and only when the slot holds another value, so a principal costs
 * at most one store a second whatever its request rate, and its cache line is not
 * bounced between the workers. Nothing is allocated, locked or written to disk on the
 * request path.
 *
 * The reload thread alone does the rest:
 *   - after it swapped in a new snapshot and no worker holds the old one any more, it
 *     carries the old slots over to the new table by name (kdc_usage_carry); a
 *     principal gone from the database drops out, so the store never outgrows the table;
 *   - every few seconds it writes the slots that changed since the last write that
 *     committed (kdc_usage_flush_begin, the rows, kdc_usage_flush_end). */
#ifndef KDC_USAGE_H
#define KDC_USAGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kdc_core.h"
#include "table.h"

typedef struct kdc_usage {
	_Atomic int64_t *last; /* [n] workers: Unix seconds of the principal's last M3; 0: none */
	int64_t *flushed;      /* [n] reload thread: the value last written (committed) */
	int64_t *writing; /* [n] reload thread: the value the flush under way writes; 0: none */
	size_t n;
} kdc_usage;

/* n slots, all "never". */
int kdc_usage_init(kdc_usage *u, size_t n);
void kdc_usage_free(kdc_usage *u);

/* Request path: p (a principal of t, the table u is parallel to; anything else is
 * ignored) took part in an M3 at now. */
static inline void kdc_usage_note(const kdc_usage *u, const kdc_table *t, const kd3_principal *p,
                                  int64_t now)
{
	uintptr_t at = (uintptr_t)p, first = (uintptr_t)t->p;
	size_t i = (at - first) / sizeof(*p);
	if (!p || at < first || i >= t->n || i >= u->n)
		return;
	_Atomic int64_t *slot = &u->last[i];
	if (atomic_load_explicit(slot, memory_order_relaxed) != now)
		atomic_store_explicit(slot, now, memory_order_relaxed);
}

/* Reload thread, once no worker writes from any more: to's slots (table to_t) take the
 * later of their own value and from's (table from_t) for the same name; the record of
 * what was written follows too. Both tables are sorted by name (kdc/table.h). */
void kdc_usage_carry(kdc_usage *to, const kdc_table *to_t, const kdc_usage *from,
                     const kdc_table *from_t);

/* Reload thread: marks every slot whose value has not been written yet (writing[i]);
 * returns how many. The caller writes those rows, then calls kdc_usage_flush_end with
 * whether they were committed (if not, they are written again next time). */
size_t kdc_usage_flush_begin(kdc_usage *u);
void kdc_usage_flush_end(kdc_usage *u, int committed);

#endif
