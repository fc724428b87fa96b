/* kdc admin subcommands: each database change is one transaction, and a key file that
 * cannot be written rolls the change back, so the database and the key files agree.
 * A new key file is staged before the commit and renamed into place after it
 * (kd3_keyfile_stage_*):
 * a failed commit never leaves a key file the database does not match. */
#include "admin.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "db.h"
#include "err.h"
#include "hex.h"
#include "keyfile.h"
#include "log.h"
#include "msg.h"
#include "stash.h"

#define ADMIN_ERR_MAX KDC_ADMIN_ERR_MAX

static int check_name(const char *name)
{
	if (kd3_name_valid_cstr(name))
		return KD3_OK;
	kd3_log_error("invalid principal name '%.64s' (1..255 characters of A-Z a-z 0-9 . _ @ / -)",
	              name);
	return KD3_E_USAGE;
}

/* A default key file name longer than a file name may be (255 bytes: NAME of 252 to
 * 255 bytes + ".key") keeps the first KEYFILE_NAME_KEPT bytes of NAME, then '~' and 16
 * hex digits of SHA-256(NAME), so that two such names never share a file. */
#define KEYFILE_NAME_KEPT 230

/* --keyfile, or ./NAME.key with any '/' in NAME written as '_'. */
static void keyfile_path(const kdc_opts *o, const char *name, char path[PATH_MAX])
{
	size_t len = strlen(name);
	int n;

	if (o->keyfile[0]) {
		snprintf(path, PATH_MAX, "%s", o->keyfile);
		return;
	}
	if (len + 4 <= NAME_MAX) {
		n = snprintf(path, PATH_MAX, "./%s.key", name);
	} else {
		uint8_t h[KD3_HASH_LEN];
		char hex[2 * KD3_HASH_LEN + 1];
		kd3_iov part = {name, len};
		kd3_sha256(&part, 1, h);
		kd3_hex_encode(h, 8, hex);
		hex[16] = '\0';
		n = snprintf(path, PATH_MAX, "./%.*s~%s.key", KEYFILE_NAME_KEPT, name, hex);
	}
	for (int i = 2; i < n && i < PATH_MAX; i++)
		if (path[i] == '/')
			path[i] = '_';
}

int kdc_admin_stash_path(const kdc_opts *o, char out[PATH_MAX])
{
	int ret = kdc_stash_path(o->db, o->stash, out);
	if (ret == KD3_OK)
		return KD3_OK;
	if (ret == KD3_E_NOT_FOUND)
		kd3_log_error("--db names a database server: give the master key stash, a local "
		              "file on this host, with --stash FILE");
	else
		kd3_log_error("stash: path is too long");
	return KD3_E_USAGE;
}

static int admin_open(const kdc_opts *o, int writable, int warn, kdc_db *db)
{
	char err[ADMIN_ERR_MAX], stash[PATH_MAX];
	memset(db, 0, sizeof(*db));
	int ret = kdc_admin_stash_path(o, stash);
	if (ret != KD3_OK)
		return ret;
	ret = kdc_db_open(o->db, stash, writable, db, err, sizeof(err));
	if (ret != KD3_OK) {
		kd3_log_error("%s", err);
		return ret;
	}
	if (db->stash_extra && warn)
		kd3_log_info("warning: %s holds a master key %s does not use (left by an "
		             "interrupted 'kdc rekey-master'); run 'kdc rekey-master' to finish",
		             stash, o->db);
	return KD3_OK;
}

int kdc_admin_open(const kdc_opts *o, int writable, kdc_db *db)
{
	return admin_open(o, writable, 1, db);
}

int kdc_admin_open_for_rekey(const kdc_opts *o, kdc_db *db)
{
	return admin_open(o, 1, 0, db); /* rekey-master finishes what the warning is about */
}

void kdc_admin_utc(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "?");
}

/* Ends a transaction: commit on success, else roll back and report err. */
static int admin_finish(kdc_db *db, int ret, const char *err)
{
	char cerr[ADMIN_ERR_MAX];
	if (ret == KD3_OK) {
		ret = kdc_db_commit(db, cerr, sizeof(cerr));
		if (ret != KD3_OK)
			kd3_log_error("%s", cerr);
	} else {
		kdc_db_rollback(db);
		kd3_log_error("%s", err);
	}
	return ret;
}

static int admin_begin(kdc_db *db)
{
	char err[ADMIN_ERR_MAX];
	int ret = kdc_db_begin(db, err, sizeof(err));
	if (ret != KD3_OK)
		kd3_log_error("%s", err);
	return ret;
}

int kdc_admin_new_key(const char *pers, uint8_t key[KD3_KEY_LEN])
{
	kd3_crypto c;
	int ret = kd3_crypto_init(&c, pers, 1);
	if (ret == KD3_OK)
		ret = kd3_crypto_rng(&c, key, KD3_KEY_LEN);
	kd3_crypto_free(&c);
	if (ret != KD3_OK)
		kd3_log_error("cannot draw a new key: %s", kd3_strerror(ret));
	return ret;
}

/* ---- init ----------------------------------------------------------------------- */

/* The stash (refusing an existing one) with a new master key, into master. */
static int init_stash(const char *path, uint8_t master[KD3_KEY_LEN])
{
	char err[ADMIN_ERR_MAX];
	kdc_stash s = {0};
	int ret = kdc_admin_new_key("kd3 kdc master key", master);
	if (ret == KD3_OK && (ret = kdc_stash_add(&s, master)) != KD3_OK)
		kd3_log_error("cannot compute the master key's id");
	if (ret == KD3_OK && (ret = kdc_stash_write(path, &s, 1, err, sizeof(err))) != KD3_OK)
		kd3_log_error("%s", err);
	kdc_stash_wipe(&s);
	return ret;
}

/* A new database with its realm secret (docs/PROTOCOL.md, "KDC processing"), sealed
 * under a new master key in a new stash. The stash is written first: a crash in
 * between leaves a stash without a database, never a database without its stash. */
int kdc_cmd_init(kdc_opts *o)
{
	char err[ADMIN_ERR_MAX], stash[PATH_MAX];
	uint8_t master[KD3_KEY_LEN], secret[KD3_KEY_LEN];
	struct stat sb;
	kdc_db db = {0};
	int ret = kdc_admin_stash_path(o, stash);

	if (ret != KD3_OK)
		return ret;
	if (lstat(o->db, &sb) == 0) { /* fail before writing a stash; create checks again */
		kd3_log_error("%s: already exists; refusing to overwrite it", o->db);
		return KD3_E_EXISTS;
	}
	if ((ret = init_stash(stash, master)) != KD3_OK)
		goto out;
	kd3_crash_point("init-stash-written");
	ret = kdc_admin_new_key("kd3 kdc realm secret", secret);
	if (ret == KD3_OK &&
	    (ret = kdc_db_create(o->db, stash, master, secret, &db, err, sizeof(err))) != KD3_OK)
		kd3_log_error("%s", err);
	if (ret != KD3_OK)
		unlink(stash); /* ours: written above */
out:
	kd3_wipe(master, sizeof(master));
	kd3_wipe(secret, sizeof(secret));
	if (ret != KD3_OK)
		return ret;
	printf("created database %s, master key %s in stash %s (keep the stash apart from "
	       "database backups)\n",
	       o->db, db.master.id, stash);
	kdc_db_close(&db);
	return KD3_OK;
}

/* ---- add ------------------------------------------------------------------------- */

/* Inside a transaction: the new principal, its key, then the key file, staged. */
static int add_in_tx(kdc_db *db, const char *name, const char *path, kd3_keyfile *kf,
                     kd3_keyfile_stage *stage, char *err, size_t len)
{
	int64_t now = (int64_t)time(NULL);
	int ret = kdc_db_principal_insert(db, name, 1, now, err, len);
	if (ret == KD3_OK)
		ret = kdc_db_key_insert(db, name, kf->keys[0].kvno, kf->keys[0].key, now, err, len);
	if (ret == KD3_OK) /* publishing checks again, atomically */
		ret = kd3_privfile_refuse_existing(path, 0, err, len);
	if (ret == KD3_OK)
		ret = kd3_keyfile_stage_write(stage, path, kf, err, len);
	return ret;
}

int kdc_cmd_add(kdc_opts *o)
{
	const char *name = o->args[0];
	char path[PATH_MAX], err[ADMIN_ERR_MAX] = "";
	kd3_keyfile kf;
	kdc_db db = {0};
	kd3_keyfile_stage stage = {0};
	int ret = check_name(name);

	memset(&kf, 0, sizeof(kf));
	if (ret != KD3_OK)
		goto out;
	keyfile_path(o, name, path);
	if ((ret = kdc_admin_open(o, 1, &db)) != KD3_OK)
		goto out;
	snprintf(kf.principal, sizeof(kf.principal), "%s", name);
	kf.nkeys = 1;
	kf.keys[0].kvno = 1;
	if ((ret = kdc_admin_new_key("kd3 kdc add", kf.keys[0].key)) != KD3_OK)
		goto out;
	if ((ret = admin_begin(&db)) != KD3_OK)
		goto out;
	ret = admin_finish(&db, add_in_tx(&db, name, path, &kf, &stage, err, sizeof(err)), err);
	if (ret != KD3_OK) {
		kd3_keyfile_stage_discard(&stage); /* the staged file holds a key nobody has */
		goto out;
	}
	if ((ret = kd3_keyfile_stage_publish(&stage, 0, err, sizeof(err))) != KD3_OK) {
		kd3_log_error("%s; principal %s was added: write its key file with 'kdc export %s'",
		              err, name, name);
		goto out;
	}
	printf("added principal %s, kvno 1, key file %s\n", name, path);
out:
	kd3_keyfile_stage_discard(&stage);
	kd3_keyfile_wipe(&kf);
	kdc_db_close(&db);
	return ret;
}

/* ---- rotate ---------------------------------------------------------------------- */

struct rotation {
	uint32_t kvno;     /* the new one */
	int64_t retire_at; /* of the kvnos before it */
	size_t nlive;      /* kvnos in the new key file */
};

/* Inside a transaction: kvno max+1; the kvnos before it stay live until retire_at (those
 * with an earlier retire time keep it); then the key file with every live kvno, staged. */
static int rotate_in_tx(kdc_db *db, const char *name, const char *path, struct rotation *r,
                        kd3_keyfile_stage *stage, char *err, size_t len)
{
	kdc_db_principal p;
	kd3_keyfile kf;
	uint8_t key[KD3_KEY_LEN];
	int64_t now = (int64_t)time(NULL);
	int ret = kdc_db_principal_get(db, name, &p, err, len);

	memset(&kf, 0, sizeof(kf));
	memset(key, 0, sizeof(key));
	if (ret != KD3_OK)
		goto out;
	ret = KD3_E_EXISTS;
	if (p.total_kvnos >= KD3_KEYFILE_KEYS_MAX || p.kvno_max == UINT32_MAX) {
		snprintf(err, len,
		         "principal '%s' has %zu key versions; drop expired ones with 'kdc purge "
		         "%s' or retire one first",
		         name, p.total_kvnos, name);
		goto out;
	}
	r->kvno = p.kvno_max + 1;
	if ((ret = kdc_admin_new_key("kd3 kdc rotate", key)) != KD3_OK) {
		snprintf(err, len, "cannot draw a new key");
		goto out;
	}
	ret = kdc_db_key_insert(db, name, r->kvno, key, now, err, len);
	if (ret == KD3_OK)
		ret = kdc_db_keys_retire_below(db, name, r->kvno, r->retire_at, err, len);
	if (ret == KD3_OK)
		ret = kdc_db_keys_get(db, name, now, &kf, err, len);
	r->nlive = kf.nkeys;
	/* The new file holds every live kvno, the old ones too: it replaces the old file
	 * once the database has committed the new kvno. */
	if (ret == KD3_OK)
		ret = kd3_keyfile_stage_write(stage, path, &kf, err, len);
out:
	kd3_wipe(key, sizeof(key));
	kd3_keyfile_wipe(&kf);
	return ret;
}

int kdc_cmd_rotate(kdc_opts *o)
{
	const char *name = o->args[0];
	char path[PATH_MAX], err[ADMIN_ERR_MAX] = "", until[32];
	kdc_db db = {0};
	kd3_keyfile_stage stage = {0};
	struct rotation r = {0, (int64_t)time(NULL) + (int64_t)o->grace_period, 0};
	int ret = check_name(name);

	if (ret != KD3_OK)
		return ret;
	keyfile_path(o, name, path);
	if ((ret = kdc_admin_open(o, 1, &db)) != KD3_OK)
		return ret;
	if ((ret = admin_begin(&db)) != KD3_OK)
		goto out;
	ret = admin_finish(&db, rotate_in_tx(&db, name, path, &r, &stage, err, sizeof(err)), err);
	if (ret != KD3_OK) /* the old key file stays: the database still matches it */
		goto out;
	if ((ret = kd3_keyfile_stage_publish(&stage, 1, err, sizeof(err))) != KD3_OK) {
		kd3_log_error("%s; the database has kvno %u of %s: write its key file with "
		              "'kdc export %s --force'",
		              err, (unsigned)r.kvno, name, name);
		goto out;
	}
	if (o->grace_period)
		kdc_admin_utc(r.retire_at, until);
	printf("rotated principal %s to kvno %u, key file %s (%zu live kvno%s); older kvnos %s%s\n",
	       name, (unsigned)r.kvno, path, r.nlive, r.nlive == 1 ? "" : "s",
	       o->grace_period ? "stay live until " : "are no longer live",
	       o->grace_period ? until : "");
out:
	kd3_keyfile_stage_discard(&stage);
	kdc_db_close(&db);
	return ret;
}

/* ---- purge, retire ---------------------------------------------------------------- */

static int purge_in_tx(kdc_db *db, const char *name, size_t *n, char *err, size_t len)
{
	kdc_db_principal p;
	int ret = name ? kdc_db_principal_get(db, name, &p, err, len) : KD3_OK;
	if (ret == KD3_OK)
		ret = kdc_db_keys_purge(db, name, (int64_t)time(NULL), n, err, len);
	return ret;
}

int kdc_cmd_purge(kdc_opts *o)
{
	const char *name = o->all ? NULL : o->args[0];
	char err[ADMIN_ERR_MAX] = "";
	kdc_db db = {0};
	size_t n = 0;
	int ret = name ? check_name(name) : KD3_OK;

	if (ret != KD3_OK)
		return ret;
	if ((ret = kdc_admin_open(o, 1, &db)) != KD3_OK)
		return ret;
	if ((ret = admin_begin(&db)) == KD3_OK)
		ret = admin_finish(&db, purge_in_tx(&db, name, &n, err, sizeof(err)), err);
	if (ret == KD3_OK)
		printf("purged %zu expired key version%s of %s\n", n, n == 1 ? "" : "s",
		       name ? name : "every principal");
	kdc_db_close(&db);
	return ret;
}

static int parse_kvno(const char *s, uint32_t *kvno)
{
	uint64_t v = 0;
	if (!*s)
		return KD3_E_USAGE;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return KD3_E_USAGE;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return KD3_E_USAGE;
	}
	*kvno = (uint32_t)v;
	return v ? KD3_OK : KD3_E_USAGE;
}

static int retire_in_tx(kdc_db *db, const char *name, uint32_t kvno, char *err, size_t len)
{
	kdc_db_principal p;
	int ret = kdc_db_principal_get(db, name, &p, err, len);
	if (ret == KD3_OK)
		ret = kdc_db_key_delete(db, name, kvno, err, len);
	if (ret == KD3_OK && p.total_kvnos <= 1) { /* rolled back by the caller */
		snprintf(err, len, "kvno %u is the last key of '%s'; remove the principal instead",
		         (unsigned)kvno, name);
		ret = KD3_E_USAGE;
	}
	return ret;
}

int kdc_cmd_retire(kdc_opts *o)
{
	const char *name = o->args[0];
	char err[ADMIN_ERR_MAX] = "";
	kdc_db db = {0};
	uint32_t kvno = 0;
	int ret = check_name(name);

	if (ret != KD3_OK)
		return ret;
	if (parse_kvno(o->args[1], &kvno) != KD3_OK) {
		kd3_log_error("kvno '%.32s' is not a number in 1..4294967295", o->args[1]);
		return KD3_E_USAGE;
	}
	if ((ret = kdc_admin_open(o, 1, &db)) != KD3_OK)
		return ret;
	if ((ret = admin_begin(&db)) == KD3_OK)
		ret = admin_finish(&db, retire_in_tx(&db, name, kvno, err, sizeof(err)), err);
	if (ret == KD3_OK)
		printf("retired kvno %u of %s (re-export its key file: kdc export %s --force)\n",
		       (unsigned)kvno, name, name);
	kdc_db_close(&db);
	return ret;
}

/* ---- remove, enable, disable: one statement in one transaction --------------------- */

enum named_change { CHANGE_REMOVE, CHANGE_ENABLE, CHANGE_DISABLE };

static int named_change(kdc_opts *o, enum named_change what)
{
	static const char *const done[] = {"removed", "enabled", "disabled"};
	const char *name = o->args[0];
	char err[ADMIN_ERR_MAX] = "";
	kdc_db db = {0};
	int ret = check_name(name);

	if (ret != KD3_OK)
		return ret;
	if ((ret = kdc_admin_open(o, 1, &db)) != KD3_OK)
		return ret;
	if ((ret = admin_begin(&db)) != KD3_OK)
		goto out;
	if (what == CHANGE_REMOVE)
		ret = kdc_db_principal_delete(&db, name, err, sizeof(err));
	else
		ret = kdc_db_principal_set_enabled(&db, name, what == CHANGE_ENABLE, err,
		                                   sizeof(err));
	ret = admin_finish(&db, ret, err);
	if (ret == KD3_OK)
		printf("%s principal %s\n", done[what], name);
out:
	kdc_db_close(&db);
	return ret;
}

int kdc_cmd_remove(kdc_opts *o)
{
	return named_change(o, CHANGE_REMOVE);
}

int kdc_cmd_enable(kdc_opts *o)
{
	return named_change(o, CHANGE_ENABLE);
}

int kdc_cmd_disable(kdc_opts *o)
{
	return named_change(o, CHANGE_DISABLE);
}

/* ---- unlock: a row the running servers read within a second ------------------------- */

static int unlock_in_tx(kdc_db *db, const char *name, char *err, size_t len)
{
	kdc_db_principal p;
	int ret = kdc_db_principal_get(db, name, &p, err, len);
	if (ret == KD3_OK)
		ret = kdc_db_unlock_add(db, name, (int64_t)time(NULL), err, len);
	return ret;
}

int kdc_cmd_unlock(kdc_opts *o)
{
	const char *name = o->args[0];
	char err[ADMIN_ERR_MAX] = "";
	kdc_db db = {0};
	int ret = check_name(name);

	if (ret != KD3_OK)
		return ret;
	if ((ret = kdc_admin_open(o, 1, &db)) != KD3_OK)
		return ret;
	if ((ret = admin_begin(&db)) == KD3_OK)
		ret = admin_finish(&db, unlock_in_tx(&db, name, err, sizeof(err)), err);
	if (ret == KD3_OK)
		printf("unlocked principal %s (a running kdc serve lets it in again within a "
		       "second)\n",
		       name);
	kdc_db_close(&db);
	return ret;
}

/* ---- export ------------------------------------------------------------------------ */

/* --kvno N: that kvno must exist and still be live. */
static int export_kvno_check(const kdc_db_principal *p, uint32_t kvno, int64_t now, char *err,
                             size_t len)
{
	char when[32];
	for (size_t i = 0; i < p->nkvnos; i++) {
		if (p->kvnos[i].kvno != kvno)
			continue;
		if (kdc_db_kvno_live(&p->kvnos[i], now))
			return KD3_OK;
		kdc_admin_utc(p->kvnos[i].retire_at, when);
		snprintf(err, len,
		         "kvno %u of '%s' expired at %s (its grace period is over); it is no "
		         "longer served",
		         (unsigned)kvno, p->name, when);
		return KD3_E_KVNO_UNKNOWN;
	}
	snprintf(err, len, "principal '%s' has no kvno %u", p->name, (unsigned)kvno);
	return KD3_E_NOT_FOUND;
}

/* Keeps only the entry for kvno in kf. */
static void keyfile_keep_kvno(kd3_keyfile *kf, uint32_t kvno)
{
	size_t at = 0;
	for (size_t i = 0; i < kf->nkeys; i++)
		if (kf->keys[i].kvno == kvno)
			kf->keys[at++] = kf->keys[i];
	for (size_t i = at; i < kf->nkeys; i++)
		kd3_wipe(&kf->keys[i], sizeof(kf->keys[i]));
	kf->nkeys = at;
}

/* In one read snapshot: the principal, then its live kvnos (or the one asked for). */
static int export_read(kdc_db *db, const kdc_opts *o, kd3_keyfile *kf, char *err, size_t len)
{
	const char *name = o->args[0];
	int64_t now = (int64_t)time(NULL);
	kdc_db_principal p;
	int ret = kdc_db_principal_get(db, name, &p, err, len);
	if (ret == KD3_OK && o->kvno)
		ret = export_kvno_check(&p, o->kvno, now, err, len);
	if (ret == KD3_OK)
		ret = kdc_db_keys_get(db, name, now, kf, err, len);
	if (ret == KD3_OK && o->kvno)
		keyfile_keep_kvno(kf, o->kvno);
	if (ret == KD3_OK && kf->nkeys == 0) {
		snprintf(err, len, "principal '%s' has no live key version", name);
		ret = KD3_E_NOT_FOUND;
	}
	return ret;
}

int kdc_cmd_export(kdc_opts *o)
{
	const char *name = o->args[0];
	char path[PATH_MAX], err[ADMIN_ERR_MAX] = "";
	kd3_keyfile kf;
	kdc_db db = {0};
	int ret = check_name(name);

	memset(&kf, 0, sizeof(kf));
	if (ret != KD3_OK)
		return ret;
	keyfile_path(o, name, path);
	if ((ret = kdc_admin_open(o, 0, &db)) != KD3_OK)
		return ret;
	ret = kdc_db_begin_read(&db, err, sizeof(err));
	if (ret == KD3_OK)
		ret = export_read(&db, o, &kf, err, sizeof(err));
	kdc_db_rollback(&db);
	if (ret == KD3_OK)
		ret = kd3_keyfile_write(path, &kf, o->force, err, sizeof(err));
	if (ret == KD3_OK)
		printf("exported %s (%zu key version%s) to %s\n", name, kf.nkeys,
		       kf.nkeys == 1 ? "" : "s", path);
	else
		kd3_log_error("%s", err);
	kd3_keyfile_wipe(&kf);
	kdc_db_close(&db);
	return ret;
}
