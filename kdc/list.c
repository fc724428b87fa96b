/* kdc list: principals as an aligned table. Names, key versions with their state,
 * enabled state, creation time and last use: never a key, and nothing is opened (list
 * does not need the master key's secret, only the stash that matches).
 *
 * LAST USED is the last time a kdc serve issued a key (M3) naming the principal, on
 * either side, as the servers wrote it: each notes it in memory and writes it every
 * last-used-flush-seconds (10) and when it stops, so a running server's latest uses may
 * not show yet. "never": no server wrote one. */
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
	int64_t now;
};

/* One kvno: "2", "1(until 2025-06-08T10:00:00Z)" while in its grace period, or
 * "1(expired)" once past it (no longer served; 'kdc purge' drops it). */
static int kvno_text(const kdc_db_kvno *k, int64_t now, char *out, size_t cap)
{
	char until[32];
	if (k->retire_at == 0)
		return snprintf(out, cap, "%u", (unsigned)k->kvno);
	if (!kdc_db_kvno_live(k, now))
		return snprintf(out, cap, "%u(expired)", (unsigned)k->kvno);
	kdc_admin_utc(k->retire_at, until);
	return snprintf(out, cap, "%u(until %s)", (unsigned)k->kvno, until);
}

/* "1(until ...),2", "-" without keys, ",(+N)" when the database holds more than fit. */
static void kvnos_text(const kdc_db_principal *p, int64_t now, char *out, size_t cap)
{
	size_t at = 0;
	out[0] = '\0';
	if (p->nkvnos == 0) {
		snprintf(out, cap, "-");
		return;
	}
	for (size_t i = 0; i < p->nkvnos && at < cap; i++) {
		if (i && at + 1 < cap)
			out[at++] = ',';
		int n = at < cap ? kvno_text(&p->kvnos[i], now, out + at, cap - at) : -1;
		if (n < 0)
			return;
		at += (size_t)n;
	}
	if (p->total_kvnos > p->nkvnos && at < cap)
		snprintf(out + at, cap - at, ",(+%zu)", p->total_kvnos - p->nkvnos);
}

#define TIME_WIDTH 20 /* 2025-06-01T10:00:00Z */

static int list_row(void *ctx, const kdc_db_principal *p)
{
	struct list_ctx *l = ctx;
	char kvnos[512], created[32], used[32];
	int name_len = (int)strlen(p->name);

	kvnos_text(p, l->now, kvnos, sizeof(kvnos));
	if (!l->printing) { /* first pass: column widths */
		if (name_len > l->name_width)
			l->name_width = name_len;
		if ((int)strlen(kvnos) > l->kvnos_width)
			l->kvnos_width = (int)strlen(kvnos);
		return KD3_OK;
	}
	kdc_admin_utc(p->created, created);
	if (p->last_used)
		kdc_admin_utc(p->last_used, used);
	else
		snprintf(used, sizeof(used), "never");
	printf("%-*s  %-*s  %-8s  %-*s  %s\n", l->name_width, p->name, l->kvnos_width, kvnos,
	       p->enabled ? "enabled" : "disabled", TIME_WIDTH, created, used);
	return KD3_OK;
}

int kdc_cmd_list(kdc_opts *o)
{
	char err[KDC_ADMIN_ERR_MAX];
	struct list_ctx l = {(int)strlen("NAME"), (int)strlen("KVNOS"), 0, (int64_t)time(NULL)};
	kdc_db db;
	int ret = kdc_admin_open(o, 0, &db);
	if (ret != KD3_OK)
		return ret;
	/* One snapshot for both passes, so the widths fit the rows printed. */
	ret = kdc_db_begin_read(&db, err, sizeof(err));
	if (ret == KD3_OK)
		ret = kdc_db_each_principal(&db, list_row, &l, err, sizeof(err));
	if (ret == KD3_OK) {
		printf("%-*s  %-*s  %-8s  %-*s  %s\n", l.name_width, "NAME", l.kvnos_width, "KVNOS",
		       "STATE", TIME_WIDTH, "CREATED", "LAST USED");
		l.printing = 1;
		ret = kdc_db_each_principal(&db, list_row, &l, err, sizeof(err));
	}
	if (ret != KD3_OK)
		kd3_log_error("%s", err);
	kdc_db_rollback(&db);
	kdc_db_close(&db);
	return ret;
}
