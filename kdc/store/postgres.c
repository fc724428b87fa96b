/* kdc storage over PostgreSQL: a primary that takes the admin writes, and hot standbys
 * that kdc serve may load from (read-only). Tables as in SQLite (store/sqlite.c), names
 * in the "C" collation so that ORDER BY name is the table's byte order, plus:
 *
 *   kd3_schema(version)                 one row: the schema version (3)
 *   realm.generation                    bumped by every admin transaction's commit:
 *                                       servers poll it (NOTIFY does not reach standbys)
 *   auth_failures(id, name, tag, at_ms, kdc)
 *                                       every KDC's failed authentications, so that a
 *                                       lockout counts them all (postgres_watch.c)
 *
 * A write transaction locks the realm row first (FOR UPDATE), so admin writers take
 * turns as SQLite's BEGIN IMMEDIATE makes them, and every statement after the lock sees
 * all that committed before (READ COMMITTED). A read transaction is one REPEATABLE READ
 * READ ONLY snapshot, which a hot standby serves. */
#include "postgres_store.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "msg.h"

#define PG_SQLSTATE_UNIQUE    "23505"
#define PG_SQLSTATE_FOREIGN   "23503"
#define PG_SQLSTATE_READ_ONLY "25006"

/* ---- queries ------------------------------------------------------------------------ */

/* The server's message, first line only, without its severity prefix. */
static void pg_first_line(const char *msg, char *out, size_t cap)
{
	if (!msg || !msg[0])
		msg = "no message from the server";
	if (strncmp(msg, "ERROR:  ", 8) == 0 || strncmp(msg, "FATAL:  ", 8) == 0)
		msg += 8;
	size_t n = strcspn(msg, "\n");
	snprintf(out, cap, "%.*s", (int)n, msg);
}

int pg_fail(PGconn *c, const char *where, const PGresult *res, char *err, size_t len,
            const char *what)
{
	char why[256];
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	pg_first_line(res ? PQresultErrorMessage(res) : NULL, why, sizeof(why));
	if ((!res || !PQresultErrorMessage(res)[0]) && c)
		pg_first_line(PQerrorMessage(c), why, sizeof(why));
	if (state && strcmp(state, PG_SQLSTATE_READ_ONLY) == 0) {
		snprintf(err, len,
		         "%s: %s: a read-only server (a hot standby?): run admin commands against "
		         "the primary",
		         where, what);
		return KD3_E_DB;
	}
	snprintf(err, len, "%s: %s: %s", where, what, why);
	if (state &&
	    (strcmp(state, PG_SQLSTATE_UNIQUE) == 0 || strcmp(state, PG_SQLSTATE_FOREIGN) == 0))
		return KD3_E_EXISTS;
	return KD3_E_DB;
}

int pg_query(PGconn *c, const char *where, const char *sql, int n, const char *const *vals,
             const int *lens, PGresult **res, char *err, size_t len, const char *what)
{
	int formats[8] = {0};
	if (n > 8) {
		snprintf(err, len, "%s: %s: too many parameters", where, what);
		return KD3_E_INTERNAL;
	}
	for (int i = 0; i < n; i++)
		formats[i] = lens && lens[i] > 0;
	PGresult *r = PQexecParams(c, sql, n, NULL, vals, lens, formats, 1);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		int ret = pg_fail(c, where, r, err, len, what);
		PQclear(r);
		return ret;
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return KD3_OK;
}

int pg_run(PGconn *c, const char *where, const char *sql, char *err, size_t len, const char *what)
{
	/* The simple protocol: sql may be several statements (the schema). */
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int ret = KD3_OK;
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
		ret = pg_fail(c, where, r, err, len, what);
	PQclear(r);
	return ret;
}

int pg_commit_tx(PGconn *c, const char *where, char *err, size_t len)
{
	PGresult *r = PQexec(c, "COMMIT");
	int ret = KD3_OK;
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
		ret = pg_fail(c, where, r, err, len, "cannot commit");
	} else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		/* A transaction that failed earlier: COMMIT "succeeds" and answers ROLLBACK. */
		snprintf(err, len, "%s: cannot commit: the server rolled the transaction back",
		         where);
		ret = KD3_E_DB;
	}
	PQclear(r);
	return ret;
}

int pg_get_i64(const PGresult *res, int row, int col, int64_t *v)
{
	*v = 0;
	if (PQgetisnull(res, row, col))
		return 0;
	int n = PQgetlength(res, row, col);
	const uint8_t *p = (const uint8_t *)PQgetvalue(res, row, col);
	if (n == 8) {
		uint64_t u = 0;
		for (int i = 0; i < 8; i++)
			u = u << 8 | p[i];
		*v = (int64_t)u;
		return 0;
	}
	if (n == 4) {
		*v = (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
		               p[3]);
		return 0;
	}
	return -1;
}

int pg_get_bool(const PGresult *res, int row, int col, int *v)
{
	if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 1)
		return -1;
	*v = PQgetvalue(res, row, col)[0] != 0;
	return 0;
}

int pg_get_name(const PGresult *res, int row, int col, char out[KD3_NAME_MAX + 1])
{
	int n = PQgetlength(res, row, col);
	const uint8_t *p = (const uint8_t *)PQgetvalue(res, row, col);
	if (PQgetisnull(res, row, col) || n < 1 || n > KD3_NAME_MAX ||
	    !kd3_name_valid(p, (size_t)n))
		return -1;
	memcpy(out, p, (size_t)n);
	out[n] = '\0';
	return 0;
}

int pg_get_fixed(const PGresult *res, int row, int col, uint8_t *out, size_t n)
{
	if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != (int)n)
		return -1;
	memcpy(out, PQgetvalue(res, row, col), n);
	return 0;
}

/* ---- connections ---------------------------------------------------------------------- */

/* The server's warnings (a shutdown under way, ...) into kd3's log, one line each;
 * notices, which only chatter, dropped. libpq would print both on stderr raw. */
static void pg_notice(void *arg, const PGresult *res)
{
	char line[256];
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	(void)arg;
	if (!severity || strcmp(severity, "WARNING") != 0)
		return;
	pg_first_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), line, sizeof(line));
	kd3_log_info("database: warning: %s", line);
}

/* libpq's own parser judges the URI, so every spelling it accepts is checked the way
 * it will be used. A password in it (user:pw@, password=, sslpassword=, names
 * percent-encoded) would sit in the process list and shell histories: refused. */
static int uri_check(const char *uri, const char *shown, char *err, size_t len)
{
	char *why = NULL, line[256];
	PQconninfoOption *opts = PQconninfoParse(uri, &why);
	int has_password = 0;
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if ((strcmp(o->keyword, "password") == 0 ||
		     strcmp(o->keyword, "sslpassword") == 0) &&
		    o->val && o->val[0])
			has_password = 1;
	PQconninfoFree(opts);
	int ret = KD3_OK;
	if (!opts) {
		/* libpq's reason quotes the URI: only shown when nothing in it was hidden. */
		pg_first_line(why && strcmp(shown, uri) == 0 ? why : "", line, sizeof(line));
		snprintf(err, len, "%s: not a valid PostgreSQL connection URI%s%s", shown,
		         line[0] ? ": " : "", line);
		ret = KD3_E_USAGE;
	} else if (has_password) {
		snprintf(err, len,
		         "%s: a password in the URI would be seen by every user of this host; put "
		         "it in a passfile (~/.pgpass or PGPASSFILE) or a service file",
		         shown);
		ret = KD3_E_USAGE;
	}
	PQfreemem(why);
	return ret;
}

int pg_connect(const char *uri, const char *application_name, PGconn **out, char *shown, char *err,
               size_t len)
{
	/* Ours first: the URI's own settings override them (expand_dbname). */
	const char *keys[] = {"connect_timeout",  "tcp_user_timeout", "keepalives_idle",
	                      "application_name", "dbname",           NULL};
	const char *vals[] = {
	    PG_CONNECT_TIMEOUT_S, PG_TCP_USER_TIMEOUT_MS, "5", application_name, uri, NULL};
	*out = NULL;
	kdc_store_redact(uri, shown);
	int bad = uri_check(uri, shown, err, len);
	if (bad != KD3_OK)
		return bad;
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		char why[256];
		pg_first_line(c ? PQerrorMessage(c) : "out of memory", why, sizeof(why));
		snprintf(err, len, "%s: cannot connect: %s", shown, why);
		PQfinish(c);
		return KD3_E_DB;
	}
	PQsetNoticeReceiver(c, pg_notice, NULL);
	/* Every wait bounded; integers and names as kd3 expects them. */
	char set[160];
	snprintf(set, sizeof(set),
	         "SET lock_timeout = %d; SET statement_timeout = %d; SET client_encoding = 'UTF8'",
	         PG_LOCK_TIMEOUT_MS, PG_STATEMENT_TIMEOUT_MS);
	PGresult *r = PQexec(c, set);
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok) {
		pg_fail(c, shown, r, err, len, "cannot configure the session");
		PQclear(r);
		PQfinish(c);
		return KD3_E_DB;
	}
	PQclear(r);
	*out = c;
	return KD3_OK;
}

/* ---- schema, create, open -------------------------------------------------------------- */

static const char pg_schema[] =
    "CREATE TABLE kd3_schema (version integer NOT NULL);"
    "INSERT INTO kd3_schema (version) VALUES (3);"
    "CREATE TABLE principals ("
    "  name text COLLATE \"C\" PRIMARY KEY,"
    "  enabled boolean NOT NULL DEFAULT true,"
    "  created bigint NOT NULL"
    ");"
    "CREATE TABLE keys ("
    "  name text COLLATE \"C\" NOT NULL REFERENCES principals(name) ON DELETE CASCADE,"
    "  kvno bigint NOT NULL CHECK (kvno BETWEEN 1 AND 4294967295),"
    "  sealed bytea NOT NULL CHECK (length(sealed) = 61),"
    "  created bigint NOT NULL,"
    "  retire_at bigint CHECK (retire_at IS NULL OR retire_at > 0),"
    "  PRIMARY KEY (name, kvno)"
    ");"
    "CREATE TABLE realm ("
    "  id integer PRIMARY KEY CHECK (id = 1),"
    "  secret bytea NOT NULL CHECK (length(secret) = 61),"
    "  master_check bytea NOT NULL CHECK (length(master_check) = 32),"
    "  generation bigint NOT NULL DEFAULT 1"
    ");"
    "CREATE TABLE unlocks ("
    "  id bigserial PRIMARY KEY,"
    "  name text COLLATE \"C\" NOT NULL,"
    "  at bigint NOT NULL"
    ");"
    "CREATE TABLE last_used ("
    "  name text COLLATE \"C\" PRIMARY KEY REFERENCES principals(name) ON DELETE CASCADE,"
    "  at bigint NOT NULL"
    ");"
    /* Failed authentications of every KDC (kdc/authfail.h); kdc is the writer's id. */
    "CREATE TABLE auth_failures ("
    "  id bigserial PRIMARY KEY,"
    "  name text COLLATE \"C\" NOT NULL,"
    "  tag bigint NOT NULL,"
    "  at_ms bigint NOT NULL,"
    "  kdc bigint NOT NULL"
    ");"
    "CREATE INDEX auth_failures_at ON auth_failures (at_ms);";

static kdc_store *pg_new(const char *uri, const char *app, char *err, size_t len, int *ret)
{
	kdc_store *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, len, "out of memory");
		*ret = KD3_E_NOMEM;
		return NULL;
	}
	*ret = pg_connect(uri, app, &s->c, s->where, err, len);
	if (*ret != KD3_OK) {
		free(s);
		return NULL;
	}
	return s;
}

static void pg_close(kdc_store *s)
{
	if (!s)
		return;
	PQfinish(s->c);
	free(s);
}

/* The schema version of the database, -1 when it holds no kd3 realm. */
static int pg_schema_version(kdc_store *s, int *version, char *err, size_t len)
{
	PGresult *r = NULL;
	int64_t v = -1;
	int ret = pg_query(s->c, s->where, "SELECT to_regclass('kd3_schema') IS NOT NULL", 0, NULL,
	                   NULL, &r, err, len, "cannot read the schema");
	int has = 0;
	if (ret == KD3_OK && (PQntuples(r) != 1 || pg_get_bool(r, 0, 0, &has) != 0))
		ret = pg_fail(s->c, s->where, NULL, err, len, "cannot read the schema");
	PQclear(r);
	*version = -1;
	if (ret != KD3_OK || !has)
		return ret;
	ret = pg_query(s->c, s->where, "SELECT version FROM kd3_schema", 0, NULL, NULL, &r, err,
	               len, "cannot read the schema version");
	if (ret == KD3_OK &&
	    (PQntuples(r) != 1 || pg_get_i64(r, 0, 0, &v) != 0 || v < 0 || v > INT_MAX)) {
		snprintf(err, len, "%s: the kd3_schema table is damaged (one row expected)",
		         s->where);
		ret = KD3_E_DB;
	}
	PQclear(r);
	*version = ret == KD3_OK ? (int)v : -1;
	return ret;
}

static int pg_create(const char *uri, kdc_store **out, char *err, size_t len)
{
	int ret, version = -1;
	kdc_store *s = pg_new(uri, "kdc init", err, len, &ret);
	*out = NULL;
	if (!s)
		return ret;
	s->writable = 1;
	ret = pg_run(s->c, s->where, "BEGIN", err, len, "cannot start a transaction");
	if (ret == KD3_OK)
		ret = pg_schema_version(s, &version, err, len);
	if (ret == KD3_OK && version >= 0) {
		snprintf(err, len, "%s: already holds a kd3 realm; refusing to overwrite it",
		         s->where);
		ret = KD3_E_EXISTS;
	}
	if (ret == KD3_OK)
		ret = pg_run(s->c, s->where, pg_schema, err, len, "cannot create the schema");
	if (ret != KD3_OK) {
		pg_close(s);
		return ret;
	}
	s->in_write = 1;
	*out = s;
	return KD3_OK;
}

static void pg_discard(kdc_store *s)
{
	pg_close(s); /* the open transaction ends with the connection: nothing was written */
}

static int pg_open(const char *uri, int writable, kdc_store **out, int *version, char *err,
                   size_t len)
{
	int ret;
	kdc_store *s = pg_new(uri, "kdc", err, len, &ret);
	*out = NULL;
	if (!s)
		return ret;
	s->writable = writable;
	ret = pg_schema_version(s, version, err, len);
	if (ret == KD3_OK && *version < 0) {
		snprintf(err, len, "%s: holds no kd3 realm; create it with 'kdc init'", s->where);
		ret = KD3_E_NOT_FOUND;
	}
	if (ret != KD3_OK) {
		pg_close(s);
		return ret;
	}
	*out = s;
	return KD3_OK;
}

static const char *pg_where(const kdc_store *s)
{
	return s->where;
}

/* ---- transactions -------------------------------------------------------------------- */

static int pg_begin(kdc_store *s, int write, char *err, size_t len)
{
	if (!write)
		return pg_run(s->c, s->where, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
		              err, len, "cannot start a transaction");
	int ret = pg_run(s->c, s->where, "BEGIN", err, len, "cannot start a transaction");
	if (ret == KD3_OK)
		ret = pg_run(s->c, s->where, "SELECT 1 FROM realm WHERE id = 1 FOR UPDATE", err,
		             len, "cannot take the write lock");
	if (ret != KD3_OK) {
		PQclear(PQexec(s->c, "ROLLBACK"));
		return ret;
	}
	s->in_write = 1;
	return KD3_OK;
}

static void pg_rollback(kdc_store *s)
{
	if (PQtransactionStatus(s->c) != PQTRANS_IDLE)
		PQclear(PQexec(s->c, "ROLLBACK"));
	s->in_write = 0;
}

static int pg_commit(kdc_store *s, char *err, size_t len)
{
	int ret = KD3_OK;
	/* Servers notice an admin write by this counter, which a hot standby replays. */
	if (s->in_write)
		ret = pg_run(s->c, s->where, "UPDATE realm SET generation = generation + 1", err,
		             len, "cannot bump the generation");
	if (ret == KD3_OK)
		ret = pg_commit_tx(s->c, s->where, err, len);
	if (ret != KD3_OK)
		pg_rollback(s);
	s->in_write = 0;
	return ret;
}

/* ---- the realm row ------------------------------------------------------------------ */

static int pg_realm_insert(kdc_store *s, const uint8_t sealed[KDC_SEALED_LEN],
                           const uint8_t check[KD3_HASH_LEN], char *err, size_t len)
{
	const char *vals[] = {(const char *)sealed, (const char *)check};
	const int lens[] = {KDC_SEALED_LEN, KD3_HASH_LEN};
	return pg_query(s->c, s->where,
	                "INSERT INTO realm (id, secret, master_check) VALUES (1, $1, $2)", 2, vals,
	                lens, NULL, err, len, "cannot store the realm secret");
}

static int pg_realm_get(kdc_store *s, uint8_t *sealed, uint8_t *check, char *err, size_t len)
{
	PGresult *r = NULL;
	int ret = pg_query(s->c, s->where, "SELECT secret, master_check FROM realm WHERE id = 1", 0,
	                   NULL, NULL, &r, err, len, "cannot read the realm row");
	if (ret != KD3_OK)
		return ret;
	uint8_t sbuf[KDC_SEALED_LEN], cbuf[KD3_HASH_LEN];
	if (PQntuples(r) != 1 || pg_get_fixed(r, 0, 0, sbuf, sizeof(sbuf)) != 0 ||
	    pg_get_fixed(r, 0, 1, cbuf, sizeof(cbuf)) != 0) {
		snprintf(err, len, "%s: the realm row is missing or damaged", s->where);
		ret = KD3_E_DB;
	} else {
		if (sealed)
			memcpy(sealed, sbuf, sizeof(sbuf));
		if (check)
			memcpy(check, cbuf, sizeof(cbuf));
	}
	PQclear(r);
	return ret;
}

/* ---- principals ------------------------------------------------------------------------ */

/* Rows (name, enabled, created, kvno, kcreated, retire_at, last_used) into principals,
 * one per name (rows of one name together, kvnos ascending). */
static int principal_rows(kdc_store *s, const PGresult *r, kdc_db_principal_fn fn, void *ctx,
                          kdc_db_principal *only, char *err, size_t len)
{
	kdc_db_principal p;
	int have = 0, ret = KD3_OK;
	int rows = PQntuples(r);
	for (int i = 0; i < rows && ret == KD3_OK; i++) {
		char name[KD3_NAME_MAX + 1];
		int64_t created, kvno, kcreated, retire_at, used;
		int enabled;
		if (pg_get_name(r, i, 0, name) || pg_get_bool(r, i, 1, &enabled) ||
		    pg_get_i64(r, i, 2, &created) || pg_get_i64(r, i, 3, &kvno) ||
		    pg_get_i64(r, i, 4, &kcreated) || pg_get_i64(r, i, 5, &retire_at) ||
		    pg_get_i64(r, i, 6, &used) || kvno < 0 || kvno > UINT32_MAX) {
			snprintf(err, len, "%s: a principal row is not valid", s->where);
			return KD3_E_DB;
		}
		if (have && strcmp(name, p.name) != 0) {
			ret = fn(ctx, &p);
			have = 0;
		}
		if (!have) {
			memset(&p, 0, sizeof(p));
			memcpy(p.name, name, sizeof(p.name));
			p.enabled = enabled;
			p.created = created;
			p.last_used = used;
			have = 1;
		}
		if (kvno > 0)
			kdc_store_principal_add_kvno(&p, (uint32_t)kvno, kcreated, retire_at);
	}
	if (ret == KD3_OK && have) {
		if (only)
			*only = p;
		else
			ret = fn(ctx, &p);
	}
	return ret;
}

#define PRINCIPAL_SELECT                                                                           \
	"SELECT p.name, p.enabled, p.created, k.kvno, k.created, k.retire_at, u.at"                \
	" FROM principals p LEFT JOIN keys k ON k.name = p.name"                                   \
	" LEFT JOIN last_used u ON u.name = p.name"

static int pg_principal_get(kdc_store *s, const char *name, kdc_db_principal *p, char *err,
                            size_t len)
{
	PGresult *r = NULL;
	const char *vals[] = {name};
	int ret = pg_query(s->c, s->where, PRINCIPAL_SELECT " WHERE p.name = $1 ORDER BY k.kvno", 1,
	                   vals, NULL, &r, err, len, "cannot read a principal");
	if (ret != KD3_OK)
		return ret;
	memset(p, 0, sizeof(*p));
	if (PQntuples(r) == 0) {
		snprintf(err, len, "no principal '%s'", name);
		ret = KD3_E_NOT_FOUND;
	} else {
		ret = principal_rows(s, r, NULL, NULL, p, err, len);
	}
	PQclear(r);
	return ret;
}

static int pg_each_principal(kdc_store *s, kdc_db_principal_fn fn, void *ctx, char *err, size_t len)
{
	PGresult *r = NULL;
	int ret = pg_query(s->c, s->where, PRINCIPAL_SELECT " ORDER BY p.name, k.kvno", 0, NULL,
	                   NULL, &r, err, len, "cannot list principals");
	if (ret == KD3_OK)
		ret = principal_rows(s, r, fn, ctx, NULL, err, len);
	PQclear(r);
	return ret;
}

static int pg_principal_insert(kdc_store *s, const char *name, int enabled, int64_t created,
                               char *err, size_t len)
{
	char created_s[24];
	snprintf(created_s, sizeof(created_s), "%" PRId64, created);
	const char *vals[] = {name, enabled ? "true" : "false", created_s};
	int ret = pg_query(s->c, s->where,
	                   "INSERT INTO principals (name, enabled, created) VALUES ($1, $2, $3)", 3,
	                   vals, NULL, NULL, err, len, "cannot add the principal");
	if (ret == KD3_E_EXISTS)
		snprintf(err, len, "principal '%s' already exists", name);
	return ret;
}

/* A statement on name ($1) and an optional $2 that must change a row. */
static int pg_change_named(kdc_store *s, const char *sql, const char *name, const char *arg2,
                           char *err, size_t len, const char *what)
{
	PGresult *r = NULL;
	const char *vals[] = {name, arg2};
	int ret = pg_query(s->c, s->where, sql, arg2 ? 2 : 1, vals, NULL, &r, err, len, what);
	if (ret != KD3_OK)
		return ret;
	if (strcmp(PQcmdTuples(r), "0") == 0) {
		snprintf(err, len, "no principal '%s'", name);
		ret = KD3_E_NOT_FOUND;
	}
	PQclear(r);
	return ret;
}

static int pg_principal_delete(kdc_store *s, const char *name, char *err, size_t len)
{
	/* keys and last_used go with it (ON DELETE CASCADE). */
	return pg_change_named(s, "DELETE FROM principals WHERE name = $1", name, NULL, err, len,
	                       "cannot remove the principal");
}

static int pg_principal_set_enabled(kdc_store *s, const char *name, int enabled, char *err,
                                    size_t len)
{
	return pg_change_named(s, "UPDATE principals SET enabled = $2 WHERE name = $1", name,
	                       enabled ? "true" : "false", err, len, "cannot change the principal");
}

static int pg_count(kdc_store *s, int enabled_only, size_t *n, char *err, size_t len)
{
	PGresult *r = NULL;
	int64_t v = 0;
	int ret = pg_query(s->c, s->where,
	                   enabled_only ? "SELECT count(*) FROM principals WHERE enabled"
	                                : "SELECT count(*) FROM principals",
	                   0, NULL, NULL, &r, err, len, "cannot count principals");
	if (ret == KD3_OK && (PQntuples(r) != 1 || pg_get_i64(r, 0, 0, &v) != 0 || v < 0))
		ret = pg_fail(s->c, s->where, NULL, err, len, "cannot count principals");
	PQclear(r);
	*n = (size_t)v;
	return ret;
}

/* ---- keys ------------------------------------------------------------------------------ */

static int pg_key_insert(kdc_store *s, const kdc_db_sealed_key *k, char *err, size_t len)
{
	char kvno[16], created[24], retire[24];
	snprintf(kvno, sizeof(kvno), "%u", (unsigned)k->kvno);
	snprintf(created, sizeof(created), "%" PRId64, k->created);
	snprintf(retire, sizeof(retire), "%" PRId64, k->retire_at);
	const char *vals[] = {k->name, kvno, (const char *)k->sealed, created,
	                      k->retire_at ? retire : NULL};
	const int lens[] = {0, 0, KDC_SEALED_LEN, 0, 0};
	int ret = pg_query(s->c, s->where,
	                   "INSERT INTO keys (name, kvno, sealed, created, retire_at)"
	                   " VALUES ($1, $2, $3, $4, $5)",
	                   5, vals, lens, NULL, err, len, "cannot add the key");
	if (ret == KD3_E_EXISTS)
		snprintf(err, len, "principal '%s' already has kvno %u (or no such principal)",
		         k->name, (unsigned)k->kvno);
	return ret;
}

static int pg_keys_retire_below(kdc_store *s, const char *name, uint32_t kvno, int64_t retire_at,
                                char *err, size_t len)
{
	char kvno_s[16], retire[24];
	snprintf(kvno_s, sizeof(kvno_s), "%u", (unsigned)kvno);
	snprintf(retire, sizeof(retire), "%" PRId64, retire_at);
	const char *vals[] = {name, kvno_s, retire};
	return pg_query(s->c, s->where,
	                "UPDATE keys SET retire_at = $3"
	                " WHERE name = $1 AND kvno < $2 AND retire_at IS NULL",
	                3, vals, NULL, NULL, err, len, "cannot set the retire time");
}

static int pg_key_delete(kdc_store *s, const char *name, uint32_t kvno, char *err, size_t len)
{
	char kvno_s[16];
	snprintf(kvno_s, sizeof(kvno_s), "%u", (unsigned)kvno);
	int ret = pg_change_named(s, "DELETE FROM keys WHERE name = $1 AND kvno = $2", name, kvno_s,
	                          err, len, "cannot remove the key");
	if (ret == KD3_E_NOT_FOUND)
		snprintf(err, len, "principal '%s' has no kvno %u", name, (unsigned)kvno);
	return ret;
}

static int pg_keys_purge(kdc_store *s, const char *name, int64_t now, size_t *n, char *err,
                         size_t len)
{
	PGresult *r = NULL;
	char now_s[24];
	snprintf(now_s, sizeof(now_s), "%" PRId64, now);
	const char *vals[] = {name, now_s};
	int ret = pg_query(s->c, s->where,
	                   "DELETE FROM keys WHERE retire_at IS NOT NULL AND retire_at <= $2"
	                   " AND ($1::text IS NULL OR name = $1)",
	                   2, vals, NULL, &r, err, len, "cannot purge keys");
	*n = ret == KD3_OK ? (size_t)strtoull(PQcmdTuples(r), NULL, 10) : 0;
	PQclear(r);
	return ret;
}

static int pg_each_key(kdc_store *s, const kdc_store_key_query *q, kdc_db_sealed_fn fn, void *ctx,
                       char *err, size_t len)
{
#define EACH_KEY_SELECT                                                                            \
	"SELECT k.name, k.kvno, k.sealed, k.created, k.retire_at FROM keys k"                      \
	" JOIN principals p ON p.name = k.name WHERE ($1::text IS NULL OR k.name = $1)"            \
	" AND ($2::bigint = 0 OR k.retire_at IS NULL OR k.retire_at > $2)"
	static const char *const sql[2][2] = {
	    {EACH_KEY_SELECT " ORDER BY k.name, k.kvno",
	     EACH_KEY_SELECT " ORDER BY k.name, k.kvno DESC"},
	    {EACH_KEY_SELECT " AND p.enabled ORDER BY k.name, k.kvno",
	     EACH_KEY_SELECT " AND p.enabled ORDER BY k.name, k.kvno DESC"}};
#undef EACH_KEY_SELECT
	PGresult *r = NULL;
	char live[24];
	snprintf(live, sizeof(live), "%" PRId64, q->live_at);
	const char *vals[] = {q->name, live};
	int ret = pg_query(s->c, s->where, sql[q->enabled_only != 0][q->kvno_desc != 0], 2, vals,
	                   NULL, &r, err, len, "cannot read keys");
	if (ret != KD3_OK)
		return ret;
	kdc_db_sealed_key k;
	for (int i = 0; i < PQntuples(r) && ret == KD3_OK; i++) {
		int64_t kvno;
		memset(&k, 0, sizeof(k));
		if (pg_get_name(r, i, 0, k.name) || pg_get_i64(r, i, 1, &kvno) ||
		    pg_get_fixed(r, i, 2, k.sealed, KDC_SEALED_LEN) ||
		    pg_get_i64(r, i, 3, &k.created) || pg_get_i64(r, i, 4, &k.retire_at) ||
		    kvno < 1 || kvno > UINT32_MAX) {
			snprintf(err, len, "%s: a key row is not valid", s->where);
			ret = KD3_E_DB;
			break;
		}
		k.kvno = (uint32_t)kvno;
		ret = fn(ctx, &k);
	}
	kd3_wipe(&k, sizeof(k));
	PQclear(r);
	return ret;
}

/* Every key row read, re-sealed, and written back: in one transaction, the caller's. */
static int reseal_keys(kdc_store *s, kdc_store_reseal_fn fn, void *ctx, size_t *nkeys, char *err,
                       size_t len)
{
	PGresult *r = NULL;
	int ret = pg_query(s->c, s->where, "SELECT name, kvno, sealed FROM keys", 0, NULL, NULL, &r,
	                   err, len, "cannot read the keys");
	*nkeys = 0;
	for (int i = 0; ret == KD3_OK && i < PQntuples(r); i++) {
		char name[KD3_NAME_MAX + 1], kvno_s[16];
		uint8_t in[KDC_SEALED_LEN], out[KDC_SEALED_LEN];
		int64_t kvno;
		if (pg_get_name(r, i, 0, name) || pg_get_i64(r, i, 1, &kvno) || kvno < 1 ||
		    kvno > UINT32_MAX || pg_get_fixed(r, i, 2, in, sizeof(in))) {
			snprintf(err, len, "%s: a key row is not valid", s->where);
			ret = KD3_E_DB;
			break;
		}
		if ((ret = fn(ctx, name, (uint32_t)kvno, in, sizeof(in), out)) != KD3_OK)
			break;
		snprintf(kvno_s, sizeof(kvno_s), "%u", (unsigned)kvno);
		const char *vals[] = {name, kvno_s, (const char *)out};
		const int lens[] = {0, 0, KDC_SEALED_LEN};
		ret = pg_query(s->c, s->where,
		               "UPDATE keys SET sealed = $3 WHERE name = $1 AND kvno = $2", 3, vals,
		               lens, NULL, err, len, "cannot re-seal a key");
		if (ret == KD3_OK)
			(*nkeys)++;
	}
	PQclear(r);
	return ret;
}

static int pg_reseal(kdc_store *s, kdc_store_reseal_fn fn, void *ctx,
                     const uint8_t check[KD3_HASH_LEN], size_t *nkeys, char *err, size_t len)
{
	uint8_t in[KDC_SEALED_LEN], out[KDC_SEALED_LEN];
	int ret = reseal_keys(s, fn, ctx, nkeys, err, len);
	if (ret == KD3_OK)
		ret = pg_realm_get(s, in, NULL, err, len);
	if (ret == KD3_OK)
		ret = fn(ctx, NULL, 0, in, sizeof(in), out);
	if (ret == KD3_OK) {
		const char *vals[] = {(const char *)out, (const char *)check};
		const int lens[] = {KDC_SEALED_LEN, KD3_HASH_LEN};
		ret = pg_query(s->c, s->where,
		               "UPDATE realm SET secret = $1, master_check = $2 WHERE id = 1", 2,
		               vals, lens, NULL, err, len, "cannot re-seal the realm secret");
	}
	return ret;
}

/* ---- unlock requests ------------------------------------------------------------------- */

#define UNLOCK_KEEP_SECONDS 86400

static int pg_unlock_add(kdc_store *s, const char *name, int64_t now, char *err, size_t len)
{
	char now_s[24], old_s[24];
	snprintf(now_s, sizeof(now_s), "%" PRId64, now);
	snprintf(old_s, sizeof(old_s), "%" PRId64, now - UNLOCK_KEEP_SECONDS);
	const char *old[] = {old_s};
	int ret = pg_query(s->c, s->where, "DELETE FROM unlocks WHERE at < $1", 1, old, NULL, NULL,
	                   err, len, "cannot drop old unlocks");
	const char *vals[] = {name, now_s};
	if (ret == KD3_OK)
		ret = pg_query(s->c, s->where, "INSERT INTO unlocks (name, at) VALUES ($1, $2)", 2,
		               vals, NULL, NULL, err, len, "cannot record the unlock");
	/* Gone with the lock, in the same commit: a KDC started later must not count the
	 * failures it ended again. */
	if (ret == KD3_OK)
		ret = pg_query(s->c, s->where, "DELETE FROM auth_failures WHERE name = $1", 1, vals,
		               NULL, NULL, err, len, "cannot drop the failed authentications");
	return ret;
}

static int pg_unlocks_since(kdc_store *s, int64_t *last, kdc_db_unlock_fn fn, void *ctx, char *err,
                            size_t len)
{
	PGresult *r = NULL;
	char last_s[24], max_s[16];
	snprintf(last_s, sizeof(last_s), "%" PRId64, *last);
	snprintf(max_s, sizeof(max_s), "%d", KDC_STORE_UNLOCK_BATCH_MAX);
	const char *vals[] = {last_s, max_s};
	int ret = pg_query(s->c, s->where,
	                   "SELECT id, name FROM unlocks WHERE id > $1 ORDER BY id LIMIT $2", 2,
	                   vals, NULL, &r, err, len, "cannot read the unlocks");
	for (int i = 0; ret == KD3_OK && i < PQntuples(r); i++) {
		char name[KD3_NAME_MAX + 1];
		int64_t id;
		if (pg_get_i64(r, i, 0, &id) != 0)
			continue;
		*last = id;
		if (pg_get_name(r, i, 1, name) == 0) /* a bad row is skipped, not fatal */
			fn(ctx, name);
	}
	PQclear(r);
	return ret;
}

const kdc_store_ops kdc_store_postgres = {
    .name = "postgresql",
    .create = pg_create,
    .discard = pg_discard,
    .open = pg_open,
    .close = pg_close,
    .where = pg_where,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .realm_insert = pg_realm_insert,
    .realm_get = pg_realm_get,
    .principal_get = pg_principal_get,
    .principal_insert = pg_principal_insert,
    .principal_delete = pg_principal_delete,
    .principal_set_enabled = pg_principal_set_enabled,
    .each_principal = pg_each_principal,
    .count = pg_count,
    .key_insert = pg_key_insert,
    .keys_retire_below = pg_keys_retire_below,
    .key_delete = pg_key_delete,
    .keys_purge = pg_keys_purge,
    .each_key = pg_each_key,
    .reseal = pg_reseal,
    .upgrade_v2 = NULL, /* kd3 0.1 was SQLite only */
    .load_prepare = kdc_pg_load_prepare,
    .load_counts = kdc_pg_load_counts,
    .load_each = kdc_pg_load_each,
    .unlock_add = pg_unlock_add,
    .unlocks_since = pg_unlocks_since,
    .watch_open = kdc_pg_watch_open,
    .watch_changed = kdc_pg_watch_changed,
    .watch_store_last_used = kdc_pg_watch_store_last_used,
    .watch_close = kdc_pg_watch_close,
    .watch_store_failures = kdc_pg_watch_store_failures,
    .watch_failures_since = kdc_pg_watch_failures_since,
};
