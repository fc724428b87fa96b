/* kdc storage: which backend a --db names, and what the backends share. */
#include "store.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

int kdc_store_is_postgres(const char *where)
{
	return strncmp(where, "postgresql://", 13) == 0 || strncmp(where, "postgres://", 11) == 0;
}

const kdc_store_ops *kdc_store_for(const char *where, char *err, size_t len)
{
	if (!kdc_store_is_postgres(where))
		return &kdc_store_sqlite;
#ifdef KD3_HAVE_LIBPQ
	(void)err;
	(void)len;
	return &kdc_store_postgres;
#else
	char shown[KDC_STORE_WHERE_MAX];
	kdc_store_redact(where, shown);
	snprintf(err, len,
	         "%s: this kdc was built without PostgreSQL support (libpq was not "
	         "found at build time; install libpq-dev and rebuild)",
	         shown);
	return NULL;
#endif
}

void kdc_store_principal_add_kvno(kdc_db_principal *p, uint32_t kvno, int64_t created,
                                  int64_t retire_at)
{
	if (p->nkvnos < KD3_KEYFILE_KEYS_MAX) {
		kdc_db_kvno *k = &p->kvnos[p->nkvnos++];
		k->kvno = kvno;
		k->created = created;
		k->retire_at = retire_at;
	}
	p->total_kvnos++;
	if (kvno > p->kvno_max)
		p->kvno_max = kvno;
}

void kdc_store_redact(const char *where, char out[KDC_STORE_WHERE_MAX])
{
	const char *scheme = strstr(where, "://");
	const char *at = scheme ? strpbrk(scheme + 3, "@/?") : NULL;
	const char *colon =
	    at && *at == '@' ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
	if (!colon) {
		snprintf(out, KDC_STORE_WHERE_MAX, "%s", where);
		return;
	}
	/* scheme://user:secret@host... -> scheme://user:***@host... */
	snprintf(out, KDC_STORE_WHERE_MAX, "%.*s:***%s", (int)(colon - where), where, at);
}
