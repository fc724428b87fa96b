/* kdc storage: which backend a --db names, and what the backends share. */
#include "store.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"

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

/* Copies where into out with the value of a password (user:password@ before the host,
 * or a password= parameter) shown as ***. */
void kdc_store_redact(const char *where, char out[KDC_STORE_WHERE_MAX])
{
	const char *scheme = strstr(where, "://");
	const char *host_end = scheme ? strpbrk(scheme + 3, "@/?") : NULL;
	const char *colon = NULL;
	size_t o = 0;
	if (host_end && *host_end == '@')
		colon = memchr(scheme + 3, ':', (size_t)(host_end - scheme - 3));
	for (const char *p = where; *p && o + 4 < KDC_STORE_WHERE_MAX;) {
		int secret_starts = (p == colon) || ((p[0] == '?' || p[0] == '&') &&
		                                     strncmp(p + 1, "password=", 9) == 0);
		if (!secret_starts) {
			out[o++] = *p++;
			continue;
		}
		size_t keep = p == colon ? 1 : 10; /* ':' or "?password=" */
		if (o + keep + 3 >= KDC_STORE_WHERE_MAX)
			break;
		int in_userinfo = p == colon;
		memcpy(out + o, p, keep);
		memcpy(out + o + keep, "***", 3);
		o += keep + 3;
		p += keep;
		if (in_userinfo)
			p = host_end; /* the '@' and the host follow */
		else
			while (*p && *p != '&')
				p++;
	}
	out[o] = '\0';
}

void kdc_store_group_reset(kdc_store_group *g)
{
	g->n = g->dropped = 0;
}

void kdc_store_group_add(kdc_store_group *g, uint32_t kvno, int64_t retire_at,
                         const uint8_t sealed[KDC_SEALED_LEN])
{
	if (g->n == KD3_KVNOS_MAX) { /* the oldest goes */
		memmove(&g->key[0], &g->key[1], sizeof(g->key[0]) * (KD3_KVNOS_MAX - 1));
		g->n--;
		g->dropped++;
	}
	g->key[g->n].kvno = kvno;
	g->key[g->n].retire_at = retire_at;
	memcpy(g->key[g->n].sealed, sealed, KDC_SEALED_LEN);
	g->n++;
}

int kdc_store_group_emit(kdc_store_group *g, kdc_db_load_row *r, kdc_db_load_fn fn, void *ctx)
{
	int ret = KD3_OK;
	if (g->dropped)
		kd3_log_info("principal %s: %zu older live key versions not loaded (at most %d)",
		             r->name, g->dropped, KD3_KVNOS_MAX);
	r->kvno = 0;
	r->sealed = NULL;
	if (g->n == 0)
		return fn(ctx, r);
	for (size_t i = g->n; i-- > 0 && ret == KD3_OK;) {
		r->kvno = g->key[i].kvno;
		r->retire_at = g->key[i].retire_at;
		r->sealed = g->key[i].sealed;
		ret = fn(ctx, r);
	}
	return ret;
}
