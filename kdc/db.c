/* kdc database: the backend-neutral layer over kdc/store/store.h. Keys are sealed and
 * opened here (kdc/seal.h), so no caller handles a sealed blob except dump and load,
 * which move them unopened, and no backend sees a key in the clear. */
#include "db.h"

#include <stdio.h>
#include <string.h>

#include "crashpoint.h"
#include "crypto.h"
#include "err.h"
#include "msg.h"
#include "stash.h"

void kdc_db_set_busy_timeout_ms(int ms)
{
	kdc_sqlite_set_busy_timeout_ms(ms);
}

static int key_open_fail(kdc_db *db, const char *name, uint32_t kvno, char *err, size_t len)
{
	return kdc_master_open_failed(&db->master, db->path, name, kvno, err, len);
}

/* ---- open, create, close ----------------------------------------------------- */

static int db_init(kdc_db *db, const char *where, const char *stash, char *err, size_t len)
{
	memset(db, 0, sizeof(*db));
	kdc_store_redact(where, db->path);
	if (strlen(where) >= KDC_STORE_WHERE_MAX ||
	    snprintf(db->stash, sizeof(db->stash), "%s", stash) >= (int)sizeof(db->stash)) {
		snprintf(err, len, "%.64s...: path is too long", db->path);
		return KD3_E_DB;
	}
	db->ops = kdc_store_for(where, err, len);
	return db->ops ? KD3_OK : KD3_E_USAGE;
}

void kdc_db_close(kdc_db *db)
{
	if (db->st)
		db->ops->close(db->st);
	db->st = NULL;
	kdc_master_free(&db->master);
}

int kdc_db_restore_begin(const char *path, const char *stash, const uint8_t master[KD3_KEY_LEN],
                         const uint8_t realm_sealed[KDC_SEALED_LEN], kdc_db *db, char *err,
                         size_t err_len)
{
	uint8_t secret[KD3_KEY_LEN];
	int ret = db_init(db, path, stash, err, err_len);
	if (ret == KD3_OK)
		ret = db->ops->create(path, &db->st, err, err_len);
	if (ret != KD3_OK)
		return ret;
	db->writable = 1;
	ret = kdc_master_init(&db->master, master, 1);
	if (ret != KD3_OK)
		snprintf(err, err_len, "%s: cannot set up the master key", db->path);
	if (ret == KD3_OK &&
	    kdc_master_open(&db->master, NULL, 0, realm_sealed, secret) != KD3_OK) {
		snprintf(err, err_len, "the realm secret does not open under master key %s",
		         db->master.id);
		ret = KD3_E_BLOB_AUTH;
	}
	kd3_wipe(secret, sizeof(secret));
	if (ret == KD3_OK)
		ret = db->ops->realm_insert(db->st, realm_sealed, db->master.check, err, err_len);
	if (ret != KD3_OK)
		kdc_db_restore_end(db, ret, err, err_len);
	return ret;
}

int kdc_db_restore_end(kdc_db *db, int ret, char *err, size_t err_len)
{
	if (ret == KD3_OK)
		ret = db->ops->commit(db->st, err, err_len);
	if (ret != KD3_OK) {
		db->ops->discard(db->st);
		db->st = NULL;
		kdc_db_close(db);
	}
	return ret;
}

int kdc_db_create(const char *path, const char *stash, const uint8_t master[KD3_KEY_LEN],
                  const uint8_t realm_secret[KD3_KEY_LEN], kdc_db *db, char *err, size_t err_len)
{
	uint8_t sealed[KDC_SEALED_LEN];
	kdc_master m;
	/* The realm secret sealed first, so restore_begin's checks hold for it too. */
	int ret = kdc_master_init(&m, master, 1);
	if (ret == KD3_OK)
		ret = kdc_master_seal(&m, NULL, 0, realm_secret, sealed);
	kdc_master_free(&m);
	if (ret != KD3_OK) {
		snprintf(err, err_len, "%s: cannot seal the realm secret", path);
		return ret;
	}
	/* Schema and realm row in one transaction: a database is whole or absent. */
	ret = kdc_db_restore_begin(path, stash, master, sealed, db, err, err_len);
	if (ret == KD3_OK)
		ret = kdc_db_restore_end(db, KD3_OK, err, err_len);
	return ret;
}

int kdc_db_master_check_get(kdc_db *db, uint8_t check[KD3_HASH_LEN], char *err, size_t err_len)
{
	return db->ops->realm_get(db->st, NULL, check, err, err_len);
}

static int db_check_schema(kdc_db *db, int version, char *err, size_t len)
{
	if (version == KDC_DB_SCHEMA_VERSION)
		return KD3_OK;
	if (version == KDC_DB_SCHEMA_V2)
		snprintf(err, len,
		         "%s: a kd3 0.1 database (schema 2, keys not sealed); convert it with 'kdc "
		         "upgrade --db %s' (creates the stash %s)",
		         db->path, db->path, db->stash);
	else if (version > KDC_DB_SCHEMA_VERSION)
		snprintf(err, len,
		         "%s: schema version %d is newer than this kdc reads (%d); run a newer kdc",
		         db->path, version, KDC_DB_SCHEMA_VERSION);
	else
		snprintf(err, len, "%s: not a kd3 database (schema version %d, expected %d)",
		         db->path, version, KDC_DB_SCHEMA_VERSION);
	return KD3_E_DB;
}

static int stash_error(kdc_db *db, int ret, const char *why, char *err, size_t len)
{
	if (ret == KD3_E_NOT_FOUND)
		snprintf(err, len,
		         "%s: no such stash file; the database %s needs the master key stash made "
		         "with it (--stash FILE)",
		         db->stash, db->path);
	else
		snprintf(err, len, "%s (the master key stash of %s)", why, db->path);
	return ret == KD3_E_KEYFILE_PERMS ? ret : KD3_E_KEYFILE;
}

/* Inside a transaction: the stash key the database's check names, set up in db->master.
 * rekey-master replaces the stash only while it holds the write lock, and cannot commit
 * while this transaction reads, so the check and the stash read here belong together. */
static int db_attach_master_in_tx(kdc_db *db, char *err, size_t len)
{
	uint8_t check[KD3_HASH_LEN];
	char serr[512], db_id[KDC_MASTER_ID_TEXT], have[64];
	kdc_stash s;
	memset(&s, 0, sizeof(s));
	kdc_master_free(&db->master);
	int ret = kdc_db_master_check_get(db, check, err, len);
	if (ret == KD3_OK && (ret = kdc_stash_load(db->stash, &s, serr, sizeof(serr))) != KD3_OK)
		ret = stash_error(db, ret, serr, err, len);
	int at = ret == KD3_OK ? kdc_stash_find(&s, check) : -1;
	if (ret == KD3_OK && at < 0) {
		kdc_master_id_text(check, db_id);
		kdc_stash_ids(&s, have, sizeof(have));
		snprintf(err, len,
		         "%s: its master key %s is not in the stash %s (which holds %s); give the "
		         "stash made with this database (--stash)",
		         db->path, db_id, db->stash, have);
		ret = KD3_E_KEYFILE;
	}
	if (ret == KD3_OK && kdc_master_init(&db->master, s.key[at], db->writable) != KD3_OK) {
		snprintf(err, len, "%s: cannot set up the master key", db->stash);
		ret = KD3_E_CRYPTO;
	}
	db->stash_extra = ret == KD3_OK && s.n > 1;
	kdc_stash_wipe(&s);
	return ret;
}

static int db_attach_master(kdc_db *db, char *err, size_t len)
{
	int ret = db->ops->begin(db->st, 0, err, len);
	if (ret != KD3_OK)
		return ret;
	ret = db_attach_master_in_tx(db, err, len);
	kdc_db_rollback(db);
	return ret;
}

/* The store opened; *version gets its schema version. */
static int db_open_store(const char *path, const char *stash, int writable, kdc_db *db,
                         int *version, char *err, size_t len)
{
	int ret = db_init(db, path, stash, err, len);
	if (ret == KD3_OK)
		ret = db->ops->open(path, writable, &db->st, version, err, len);
	db->writable = writable;
	return ret;
}

int kdc_db_open(const char *path, const char *stash, int writable, kdc_db *db, char *err,
                size_t err_len)
{
	int version = -1;
	int ret = db_open_store(path, stash, writable, db, &version, err, err_len);
	if (ret == KD3_OK)
		ret = db_check_schema(db, version, err, err_len);
	if (ret == KD3_OK)
		ret = db_attach_master(db, err, err_len);
	if (ret != KD3_OK)
		kdc_db_close(db);
	return ret;
}

/* ---- transactions ------------------------------------------------------------- */

/* Inside a transaction: the master key the database names now. A rekey-master that
 * committed since the last transaction changed it: follow it (the stash holds the new
 * key by then), so a long-running reader or a command that raced it goes on. */
static int db_check_master(kdc_db *db, char *err, size_t len)
{
	uint8_t check[KD3_HASH_LEN];
	if (!db->master.ready)
		return KD3_OK;
	int ret = kdc_db_master_check_get(db, check, err, len);
	if (ret == KD3_OK && !kd3_ct_equal(check, db->master.check, KD3_HASH_LEN))
		ret = db_attach_master_in_tx(db, err, len);
	if (ret != KD3_OK)
		kdc_db_rollback(db);
	return ret;
}

int kdc_db_begin(kdc_db *db, char *err, size_t err_len)
{
	int ret = db->ops->begin(db->st, 1, err, err_len);
	return ret == KD3_OK ? db_check_master(db, err, err_len) : ret;
}

int kdc_db_begin_read(kdc_db *db, char *err, size_t err_len)
{
	int ret = db->ops->begin(db->st, 0, err, err_len);
	return ret == KD3_OK ? db_check_master(db, err, err_len) : ret;
}

int kdc_db_commit(kdc_db *db, char *err, size_t err_len)
{
	return db->ops->commit(db->st, err, err_len);
}

void kdc_db_rollback(kdc_db *db)
{
	db->ops->rollback(db->st);
}

/* ---- re-sealing: rekey-master and the upgrade from schema 2 --------------------------- */

/* A blob opened under from (or, with from NULL, a key in the clear: the upgrade from
 * schema 2) and sealed under to. name NULL: the realm secret. */
struct reseal {
	kdc_master *from, *to;
	char failed[KD3_NAME_MAX + 32]; /* the row that did not open */
};

static int reseal_row(void *ctx, const char *name, uint32_t kvno, const uint8_t *in, size_t in_len,
                      uint8_t out[KDC_SEALED_LEN])
{
	struct reseal *r = ctx;
	uint8_t key[KD3_KEY_LEN];
	int ret = KD3_E_BLOB_AUTH;
	if (r->from && in_len == KDC_SEALED_LEN)
		ret = kdc_master_open(r->from, name, kvno, in, key);
	else if (!r->from && in_len == KD3_KEY_LEN) {
		memcpy(key, in, KD3_KEY_LEN);
		ret = KD3_OK;
	}
	if (ret == KD3_OK)
		ret = kdc_master_seal(r->to, name, kvno, key, out);
	kd3_wipe(key, sizeof(key));
	if (ret != KD3_OK)
		snprintf(r->failed, sizeof(r->failed), name ? "%.255s:%u" : "the realm secret",
		         name ? name : "", (unsigned)kvno);
	return ret;
}

/* A re-seal failed: name the row that did not open, if one did not. */
static int reseal_error(kdc_db *db, const struct reseal *r, int ret, char *err, size_t len)
{
	if (ret == KD3_OK || !r->failed[0])
		return ret;
	snprintf(err, len, "%s: %s does not open under master key %s (damaged?)", db->path,
	         r->failed, r->from ? r->from->id : "?");
	return KD3_E_BLOB_AUTH;
}

int kdc_db_rekey(kdc_db *db, kdc_master *next, size_t *nkeys, char *err, size_t err_len)
{
	struct reseal r = {&db->master, next, ""};
	int ret = db->ops->reseal(db->st, reseal_row, &r, next->check, nkeys, err, err_len);
	return reseal_error(db, &r, ret, err, err_len);
}

/* The stash of an upgrade: the existing one when it holds one key (an upgrade that
 * stopped before its commit created it), else a new one with a new master key. */
static int upgrade_stash(const char *path, kdc_stash *s, char *err, size_t len)
{
	uint8_t key[KD3_KEY_LEN];
	kd3_crypto c;
	int ret = kdc_stash_load(path, s, err, len);
	if (ret == KD3_OK && s->n != 1) {
		snprintf(err, len, "%s: holds %zu master keys; an upgrade needs one", path, s->n);
		ret = KD3_E_KEYFILE;
	}
	if (ret != KD3_E_NOT_FOUND)
		return ret;
	ret = kd3_crypto_init(&c, "kd3 kdc master key", 1);
	if (ret == KD3_OK)
		ret = kd3_crypto_rng(&c, key, sizeof(key));
	kd3_crypto_free(&c);
	if (ret == KD3_OK)
		ret = kdc_stash_add(s, key);
	kd3_wipe(key, sizeof(key));
	if (ret != KD3_OK) {
		snprintf(err, len, "%s: cannot draw a master key", path);
		return ret;
	}
	return kdc_stash_write(path, s, 1, err, len);
}

/* Inside the transaction: the schema-3 tables, every clear key sealed. */
static int upgrade_in_tx(kdc_db *db, size_t *nkeys, char *err, size_t len)
{
	struct reseal r = {NULL, &db->master, ""};
	int ret = db->ops->upgrade_v2(db->st, reseal_row, &r, db->master.check, nkeys, err, len);
	return reseal_error(db, &r, ret, err, len);
}

int kdc_db_upgrade(const char *path, const char *stash, size_t *nkeys, char *err, size_t err_len)
{
	kdc_stash s;
	kdc_db db;
	int version = -1;
	int ret = db_open_store(path, stash, 1, &db, &version, err, err_len);
	if (ret != KD3_OK) {
		kdc_db_close(&db);
		return ret;
	}
	memset(&s, 0, sizeof(s));
	if (version != KDC_DB_SCHEMA_V2 || !db.ops->upgrade_v2) {
		snprintf(err, err_len, "%s: schema version %d, not 2 (kd3 0.1): nothing to upgrade",
		         db.path, version);
		ret = version == KDC_DB_SCHEMA_VERSION ? KD3_E_EXISTS : KD3_E_DB;
		goto out;
	}
	/* The stash first: a crash before the commit leaves it and the old database. */
	if ((ret = upgrade_stash(stash, &s, err, err_len)) != KD3_OK)
		goto out;
	kd3_crash_point("upgrade-stash-written");
	if ((ret = kdc_master_init(&db.master, s.key[0], 1)) != KD3_OK) {
		snprintf(err, err_len, "%s: cannot set up the master key", stash);
		goto out;
	}
	if ((ret = db.ops->begin(db.st, 1, err, err_len)) != KD3_OK)
		goto out;
	ret = upgrade_in_tx(&db, nkeys, err, err_len);
	kd3_crash_point("upgrade-before-commit");
	if (ret == KD3_OK)
		ret = kdc_db_commit(&db, err, err_len);
	else
		kdc_db_rollback(&db);
out:
	kdc_stash_wipe(&s);
	kdc_db_close(&db);
	return ret;
}

/* ---- principals ----------------------------------------------------------------- */

int kdc_db_kvno_live(const kdc_db_kvno *k, int64_t now)
{
	return k->retire_at == 0 || k->retire_at > now;
}

int kdc_db_principal_get(kdc_db *db, const char *name, kdc_db_principal *p, char *err,
                         size_t err_len)
{
	return db->ops->principal_get(db->st, name, p, err, err_len);
}

int kdc_db_principal_insert(kdc_db *db, const char *name, int enabled, int64_t created, char *err,
                            size_t err_len)
{
	return db->ops->principal_insert(db->st, name, enabled, created, err, err_len);
}

int kdc_db_principal_delete(kdc_db *db, const char *name, char *err, size_t err_len)
{
	return db->ops->principal_delete(db->st, name, err, err_len);
}

int kdc_db_principal_set_enabled(kdc_db *db, const char *name, int enabled, char *err,
                                 size_t err_len)
{
	return db->ops->principal_set_enabled(db->st, name, enabled, err, err_len);
}

int kdc_db_each_principal(kdc_db *db, kdc_db_principal_fn fn, void *ctx, char *err, size_t err_len)
{
	return db->ops->each_principal(db->st, fn, ctx, err, err_len);
}

int kdc_db_count(kdc_db *db, int enabled_only, size_t *n, char *err, size_t err_len)
{
	return db->ops->count(db->st, enabled_only, n, err, err_len);
}

/* ---- keys --------------------------------------------------------------------------- */

int kdc_db_key_insert(kdc_db *db, const char *name, uint32_t kvno, const uint8_t key[KD3_KEY_LEN],
                      int64_t created, char *err, size_t err_len)
{
	kdc_db_sealed_key k = {.kvno = kvno, .created = created};
	if (snprintf(k.name, sizeof(k.name), "%s", name) >= (int)sizeof(k.name) ||
	    kdc_master_seal(&db->master, name, kvno, key, k.sealed) != KD3_OK) {
		snprintf(err, err_len, "%s: cannot seal the key %.64s:%u", db->path, name,
		         (unsigned)kvno);
		return KD3_E_CRYPTO;
	}
	return db->ops->key_insert(db->st, &k, err, err_len);
}

int kdc_db_sealed_key_insert(kdc_db *db, const kdc_db_sealed_key *k, char *err, size_t err_len)
{
	uint8_t key[KD3_KEY_LEN];
	int ret = kdc_master_open(&db->master, k->name, k->kvno, k->sealed, key);
	kd3_wipe(key, sizeof(key));
	if (ret != KD3_OK)
		return key_open_fail(db, k->name, k->kvno, err, err_len);
	return db->ops->key_insert(db->st, k, err, err_len);
}

int kdc_db_keys_retire_below(kdc_db *db, const char *name, uint32_t kvno, int64_t retire_at,
                             char *err, size_t err_len)
{
	return db->ops->keys_retire_below(db->st, name, kvno, retire_at, err, err_len);
}

int kdc_db_key_delete(kdc_db *db, const char *name, uint32_t kvno, char *err, size_t err_len)
{
	return db->ops->key_delete(db->st, name, kvno, err, err_len);
}

int kdc_db_keys_purge(kdc_db *db, const char *name, int64_t now, size_t *n, char *err,
                      size_t err_len)
{
	return db->ops->keys_purge(db->st, name, now, n, err, err_len);
}

struct keys_get {
	kdc_db *db;
	kd3_keyfile *kf;
	char *err;
	size_t err_len;
};

static int keys_get_row(void *ctx, const kdc_db_sealed_key *k)
{
	struct keys_get *g = ctx;
	if (g->kf->nkeys >= KD3_KEYFILE_KEYS_MAX) {
		snprintf(g->err, g->err_len, "principal '%s' has more than %d keys", k->name,
		         KD3_KEYFILE_KEYS_MAX);
		return KD3_E_DB;
	}
	kd3_keyfile_entry *e = &g->kf->keys[g->kf->nkeys++];
	e->kvno = k->kvno;
	if (kdc_master_open(&g->db->master, k->name, k->kvno, k->sealed, e->key) != KD3_OK)
		return key_open_fail(g->db, k->name, k->kvno, g->err, g->err_len);
	return KD3_OK;
}

int kdc_db_keys_get(kdc_db *db, const char *name, int64_t live_at, kd3_keyfile *kf, char *err,
                    size_t err_len)
{
	kdc_store_key_query q = {.name = name, .live_at = live_at};
	struct keys_get g = {db, kf, err, err_len};
	memset(kf, 0, sizeof(*kf));
	snprintf(kf->principal, sizeof(kf->principal), "%s", name);
	int ret = db->ops->each_key(db->st, &q, keys_get_row, &g, err, err_len);
	if (ret != KD3_OK)
		kd3_keyfile_wipe(kf);
	return ret;
}

struct each_key {
	kdc_db *db;
	kdc_db_key_fn fn;
	void *ctx;
	char *err;
	size_t err_len;
};

static int each_key_row(void *ctx, const kdc_db_sealed_key *k)
{
	struct each_key *e = ctx;
	uint8_t key[KD3_KEY_LEN];
	if (kdc_master_open(&e->db->master, k->name, k->kvno, k->sealed, key) != KD3_OK)
		return key_open_fail(e->db, k->name, k->kvno, e->err, e->err_len);
	int ret = e->fn(e->ctx, k->name, k->kvno, k->retire_at, key);
	kd3_wipe(key, sizeof(key));
	return ret;
}

int kdc_db_each_key(kdc_db *db, int64_t live_at, kdc_db_key_fn fn, void *ctx, char *err,
                    size_t err_len)
{
	kdc_store_key_query q = {.live_at = live_at, .enabled_only = 1, .kvno_desc = 1};
	struct each_key e = {db, fn, ctx, err, err_len};
	return db->ops->each_key(db->st, &q, each_key_row, &e, err, err_len);
}

int kdc_db_each_sealed_key(kdc_db *db, kdc_db_sealed_fn fn, void *ctx, char *err, size_t err_len)
{
	kdc_store_key_query q = {0};
	return db->ops->each_key(db->st, &q, fn, ctx, err, err_len);
}

int kdc_db_realm_sealed_get(kdc_db *db, uint8_t sealed[KDC_SEALED_LEN], char *err, size_t err_len)
{
	int ret = db->ops->realm_get(db->st, sealed, NULL, err, err_len);
	if (ret != KD3_OK)
		snprintf(err, err_len, "%s: the realm secret is missing or damaged", db->path);
	return ret;
}

int kdc_db_realm_secret_get(kdc_db *db, uint8_t secret[KD3_KEY_LEN], char *err, size_t err_len)
{
	uint8_t sealed[KDC_SEALED_LEN];
	int ret = kdc_db_realm_sealed_get(db, sealed, err, err_len);
	if (ret == KD3_OK && kdc_master_open(&db->master, NULL, 0, sealed, secret) != KD3_OK) {
		snprintf(err, err_len, "%s: the realm secret does not open under master key %s",
		         db->path, db->master.id);
		ret = KD3_E_BLOB_AUTH;
	}
	return ret;
}

/* ---- the server's bulk read (kdc/db_load.h) ------------------------------------------- */

void kdc_db_load_prepare(kdc_db *db)
{
	db->ops->load_prepare(db->st);
}

int kdc_db_load_counts(kdc_db *db, size_t *principals, size_t *name_bytes, size_t *keys, char *err,
                       size_t err_len)
{
	return db->ops->load_counts(db->st, principals, name_bytes, keys, err, err_len);
}

int kdc_db_load_each(kdc_db *db, int64_t live_at, kdc_db_load_fn fn, void *ctx, char *err,
                     size_t err_len)
{
	return db->ops->load_each(db->st, live_at, fn, ctx, err, err_len);
}

/* ---- for a running kdc serve ------------------------------------------------------ */

int kdc_db_unlock_add(kdc_db *db, const char *name, int64_t now, char *err, size_t err_len)
{
	return db->ops->unlock_add(db->st, name, now, err, err_len);
}

int kdc_db_unlocks_since(kdc_db *db, int64_t *last, kdc_db_unlock_fn fn, void *ctx, char *err,
                         size_t err_len)
{
	return db->ops->unlocks_since(db->st, last, fn, ctx, err, err_len);
}

int kdc_db_watch_open(kdc_db_watch *w, const char *where, const char *write_where, char *err,
                      size_t err_len)
{
	memset(w, 0, sizeof(*w));
	w->ops = kdc_store_for(where, err, err_len);
	if (!w->ops)
		return KD3_E_USAGE;
	return w->ops->watch_open(where, write_where, &w->w, err, err_len);
}

int kdc_db_watch_changed(kdc_db_watch *w)
{
	return w->w ? w->ops->watch_changed(w->w) : -1;
}

void kdc_db_watch_close(kdc_db_watch *w)
{
	if (w->w)
		w->ops->watch_close(w->w);
	w->w = NULL;
}

int kdc_db_watch_store_last_used(kdc_db_watch *w, int busy_ms, kdc_db_used_fn next, void *ctx,
                                 char *err, size_t err_len)
{
	if (!w->w) {
		snprintf(err, err_len, "cannot store last-used times: the database is not open");
		return KD3_E_DB;
	}
	return w->ops->watch_store_last_used(w->w, busy_ms, next, ctx, err, err_len);
}

int kdc_db_watch_shares_failures(const kdc_db_watch *w)
{
	return w->w && w->ops->watch_store_failures && w->ops->watch_failures_since;
}

int kdc_db_watch_store_failures(kdc_db_watch *w, uint64_t kdc_id, const kdc_auth_failure *f,
                                size_t n, char *err, size_t err_len)
{
	if (!kdc_db_watch_shares_failures(w)) {
		snprintf(err, err_len, "the database does not share failed authentications");
		return KD3_E_DB;
	}
	return w->ops->watch_store_failures(w->w, kdc_id, f, n, err, err_len);
}

int kdc_db_watch_failures_since(kdc_db_watch *w, uint64_t kdc_id, int64_t *last, int64_t since_ms,
                                kdc_auth_failure_fn fn, void *ctx, char *err, size_t err_len)
{
	if (!kdc_db_watch_shares_failures(w))
		return KD3_OK;
	return w->ops->watch_failures_since(w->w, kdc_id, last, since_ms, fn, ctx, err, err_len);
}
