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

/* ---- redaction ------------------------------------------------------------------------ */

typedef struct {
	char *buf;
	size_t n;
} shown_text;

/* Appends what fits; the rest of where is cut, never a secret's bytes. */
static void put(shown_text *t, const char *p, size_t n)
{
	size_t room = KDC_STORE_WHERE_MAX - 1 - t->n;
	memcpy(t->buf + t->n, p, n < room ? n : room);
	t->n += n < room ? n : room;
}

static int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Whether a URI parameter's name (n bytes, percent-encoded as libpq allows) is one
 * whose value is a secret. */
static int names_secret(const char *key, size_t n)
{
	char plain[16];
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)key[i];
		if (c == '%' && i + 2 < n) {
			int hi = hex_digit((unsigned char)key[i + 1]);
			int lo = hex_digit((unsigned char)key[i + 2]);
			if (hi >= 0 && lo >= 0) {
				c = hi << 4 | lo;
				i += 2;
			}
		}
		if (o == sizeof(plain) - 1)
			return 0; /* longer than any secret's name */
		plain[o++] = (char)c;
	}
	plain[o] = '\0';
	return strcmp(plain, "password") == 0 || strcmp(plain, "sslpassword") == 0;
}

/* Copies where into out with every secret shown as ***: the password of the user
 * info (user:password@, which libpq ends at the first '@' before any '/'), and the
 * value of a password= or sslpassword= parameter. */
void kdc_store_redact(const char *where, char out[KDC_STORE_WHERE_MAX])
{
	shown_text t = {out, 0};
	const char *p = where, *scheme = strstr(where, "://");
	if (scheme) {
		const char *auth = scheme + 3;
		size_t span = strcspn(auth, "@/");
		put(&t, where, (size_t)(auth - where));
		p = auth;
		if (auth[span] == '@') {
			const char *colon = memchr(auth, ':', span);
			put(&t, auth, colon ? (size_t)(colon + 1 - auth) : span);
			if (colon)
				put(&t, "***", 3);
			p = auth + span; /* the '@' and the host follow */
		}
	}
	const char *query = strchr(p, '?');
	if (!query) {
		put(&t, p, strlen(p));
		out[t.n] = '\0';
		return;
	}
	put(&t, p, (size_t)(query + 1 - p));
	for (p = query + 1; *p;) {
		size_t param = strcspn(p, "&"), key = strcspn(p, "=&");
		if (p[key] == '=' && names_secret(p, key)) {
			put(&t, p, key + 1);
			put(&t, "***", 3);
		} else {
			put(&t, p, param);
		}
		p += param;
		if (*p == '&')
			put(&t, p++, 1);
	}
	out[t.n] = '\0';
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
