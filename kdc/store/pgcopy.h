/* kdc storage over PostgreSQL: the parser of the bulk load's binary COPY stream, apart
 * from libpq so that it is fuzzed on its own (tests/fuzz/fuzz_pgcopy.c). The bytes come
 * from the database server, which is trusted no further than any input: every length is
 * checked with the bounds-checked reader, names must be valid principal names coming in
 * strictly ascending byte order (the table binary-searches them), a principal's kvnos
 * strictly ascending, and nothing may follow the trailer. */
#ifndef KDC_STORE_PGCOPY_H
#define KDC_STORE_PGCOPY_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct kdc_pgcopy {
	kdc_db_load_fn fn;
	void *ctx;
	kdc_db_load_row r; /* the principal whose rows are being gathered */
	kdc_store_group g;
	uint32_t last_kvno; /* its newest kvno so far */
	size_t rows;        /* its rows so far */
	int have;           /* r names such a principal, not given to fn yet */
	int started;        /* a principal was seen: r.name is the last one */
	int header;         /* the file header was read */
	int ended;          /* the trailer was read */
} kdc_pgcopy;

void kdc_pgcopy_init(kdc_pgcopy *c, kdc_db_load_fn fn, void *ctx);
/* One CopyData message: one tuple (the first also carries the header) or the trailer.
 * KD3_E_MALFORMED for bytes that are not what the query returns; fn's error as is. */
int kdc_pgcopy_message(kdc_pgcopy *c, const uint8_t *p, size_t n);
/* The end of the stream: KD3_E_MALFORMED without the trailer, else the last
 * principal's rows to fn. */
int kdc_pgcopy_finish(kdc_pgcopy *c);
/* Wipes what c holds (sealed keys of the last principal). */
void kdc_pgcopy_wipe(kdc_pgcopy *c);

#endif
