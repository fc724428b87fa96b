/* The PostgreSQL bulk load's binary COPY parser (kdc/store/pgcopy.c). The input is the
 * stream as libpq hands it over: messages, each as a big-endian u16 length and its
 * bytes. Invariants: every row given on is a valid principal name of name_len bytes;
 * principals come once each, in strictly ascending byte order; a principal's rows are
 * one without a key, or its keys with kvnos strictly descending, at most KD3_KVNOS_MAX,
 * each with a sealed blob; a disabled principal has no key; the stream is accepted
 * (finish OK) only after its trailer, and nothing is accepted after the trailer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz_util.h"
#include "msg.h"
#include "store/pgcopy.h"
#include "table.h"

struct seen {
	char last[KD3_NAME_MAX + 1];
	size_t last_len;
	int any;
	/* Of the current principal: 0 after its row without a key; above every kvno (a u32,
	 * 2^32-1 included) before its first row. */
	uint64_t last_kvno;
	size_t keys; /* of the current principal */
};

static int row(void *ctx, const kdc_db_load_row *r)
{
	struct seen *s = ctx;
	if (fuzz_verbose())
		fprintf(stderr, "row %.*s enabled %d kvno %u\n", (int)r->name_len, r->name,
		        r->enabled, (unsigned)r->kvno);
	FUZZ_CHECK(r->name_len >= 1 && r->name_len <= KD3_NAME_MAX);
	FUZZ_CHECK(strlen(r->name) == r->name_len);
	FUZZ_CHECK(kd3_name_valid((const uint8_t *)r->name, r->name_len));
	int same =
	    s->any && r->name_len == s->last_len && memcmp(r->name, s->last, s->last_len) == 0;
	if (!same) {
		FUZZ_CHECK(!s->any || kdc_name_cmp(r->name, r->name_len, s->last, s->last_len) > 0);
		memcpy(s->last, r->name, r->name_len + 1);
		s->last_len = r->name_len;
		s->any = 1;
		s->keys = 0;
		s->last_kvno = (uint64_t)UINT32_MAX + 1;
	} else {
		FUZZ_CHECK(s->last_kvno != 0 && r->kvno != 0); /* a keyless row stands alone */
	}
	if (r->kvno == 0) {
		FUZZ_CHECK(!same && r->sealed == NULL);
	} else {
		FUZZ_CHECK(r->enabled && r->sealed != NULL);
		FUZZ_CHECK(r->kvno < s->last_kvno);
		FUZZ_CHECK(++s->keys <= KD3_KVNOS_MAX);
		volatile uint8_t touch = r->sealed[0] ^ r->sealed[KDC_SEALED_LEN - 1];
		(void)touch;
	}
	s->last_kvno = r->kvno;
	return KD3_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_in in;
	kdc_pgcopy c;
	struct seen s;
	int ret = KD3_OK, ended = 0;
	memset(&s, 0, sizeof(s));
	fuzz_in_init(&in, data, size);
	kdc_pgcopy_init(&c, row, &s);
	while (ret == KD3_OK && fuzz_left(&in) >= 2) {
		uint16_t n = 0;
		size_t got = 0;
		fuzz_u16(&in, &n);
		const uint8_t *p = fuzz_take(&in, n, &got);
		uint8_t *msg = fuzz_dup(p, got); /* exactly its size: ASan sees an over-read */
		ret = kdc_pgcopy_message(&c, msg, got);
		if (fuzz_verbose())
			fprintf(stderr, "message of %zu bytes: %d\n", got, ret);
		FUZZ_CHECK(ret == KD3_OK || ret == KD3_E_MALFORMED);
		FUZZ_CHECK(!ended || ret == KD3_E_MALFORMED); /* nothing after the trailer */
		ended = c.ended;
		free(msg);
	}
	if (ret == KD3_OK) {
		ret = kdc_pgcopy_finish(&c);
		if (fuzz_verbose())
			fprintf(stderr, "finish: %d\n", ret);
		FUZZ_CHECK(ret == (ended ? KD3_OK : KD3_E_MALFORMED));
	}
	kdc_pgcopy_wipe(&c);
	return 0;
}
