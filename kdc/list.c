/* kdc list: principals as an aligned table. Names, key versions, state and creation
 * time only: never a key. */
#include "admin.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "err.h"
#include "log.h"

struct list_ctx {
	int name_width;
	int kvnos_width;
	int printing;
};

/* "1,2,3", or "1,2,...(+N)" when the database holds more than fit. */
static void kvnos_text(const kdc_db_principal *p, char *out, size_t cap)
{
	size_t at = 0;
	out[0] = '\0';
	if (p->nkvnos == 0) {
		snprintf(out, cap, "-");
		return;
	}
	for (size_t i = 0; i < p->nkvnos && at < cap; i++) {
		int n = snprintf(out + at, cap - at, "%s%u", i ? "," : "", (unsigned)p->kvnos[i]);
		if (n < 0)
			return;
		at += (size_t)n;
	}
	if (p->total_kvnos > p->nkvnos && at < cap)
		snprintf(out + at, cap - at, ",(+%zu)", p->total_kvnos - p->nkvnos);
}

static void utc_iso8601(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "?");
}

static int list_row(void *ctx, const kdc_db_principal *p)
{
	struct list_ctx *l = ctx;
	char kvnos[128], created[32];
	int name_len = (int)strlen(p->name);

	kvnos_text(p, kvnos, sizeof(kvnos));
	if (!l->printing) { /* first pass: column widths */
		if (name_len > l->name_width)
			l->name_width = name_len;
		if ((int)strlen(kvnos) > l->kvnos_width)
			l->kvnos_width = (int)strlen(kvnos);
		return KD3_OK;
	}
	utc_iso8601(p->created, created);
	printf("%-*s  %-*s  %-8s  %s\n", l->name_width, p->name, l->kvnos_width, kvnos,
	       p->enabled ? "enabled" : "disabled", created);
	return KD3_OK;
}

int kdc_cmd_list(kdc_opts *o)
{
	char err[640];
	struct list_ctx l = {(int)strlen("NAME"), (int)strlen("KVNOS"), 0};
	kdc_db db;
	int ret = kdc_db_open(o->db, 0, &db, err, sizeof(err));
	if (ret != KD3_OK) {
		kd3_log_error("%s", err);
		return ret;
	}
	/* One snapshot for both passes, so the widths fit the rows printed. */
	ret = kdc_db_begin_read(&db, err, sizeof(err));
	if (ret == KD3_OK)
		ret = kdc_db_each_principal(&db, list_row, &l, err, sizeof(err));
	if (ret == KD3_OK) {
		printf("%-*s  %-*s  %-8s  %s\n", l.name_width, "NAME", l.kvnos_width, "KVNOS",
		       "STATE", "CREATED");
		l.printing = 1;
		ret = kdc_db_each_principal(&db, list_row, &l, err, sizeof(err));
	}
	if (ret != KD3_OK)
		kd3_log_error("%s", err);
	kdc_db_rollback(&db);
	kdc_db_close(&db);
	return ret;
}
