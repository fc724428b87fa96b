/* kdc upgrade and kdc rekey-master: the two commands that change which master key seals
 * the database.
 *
 * rekey-master spans two files, the database and the stash, and stays crash-safe by
 * one rule: the stash always holds the master key the committed database names.
 *   1. under the database's write lock: stash := {current, new}   (atomic rename)
 *   2. the same transaction re-seals every key under new and stores new's check
 *   3. commit                                                       (SQLite: atomic)
 *   4. under the write lock again: stash := {new}                   (atomic rename)
 * A crash before 3 leaves the old database, whose key is in both stashes; after 3, the
 * new database, whose key is in both. The stash is only ever replaced while holding the
 * write lock, so two rekey-masters (or a reader choosing its key) never interleave.
 * A crash between 3 and 4 leaves the old key in the stash too: kdc says so, and the
 * next rekey-master drops it. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "crypto.h"
#include "db.h"
#include "err.h"
#include "log.h"
#include "stash.h"

int kdc_cmd_upgrade(kdc_opts *o)
{
	char err[KDC_ADMIN_ERR_MAX], stash[PATH_MAX];
	size_t nkeys = 0;
	int ret = kdc_admin_stash_path(o, stash);
	if (ret != KD3_OK)
		return ret;
	ret = kdc_db_upgrade(o->db, stash, &nkeys, err, sizeof(err));
	if (ret != KD3_OK) {
		kd3_log_error("%s", err);
		return ret;
	}
	printf("upgraded %s to schema %d: %zu key%s and the realm secret sealed under the master "
	       "key in %s\n",
	       o->db, KDC_DB_SCHEMA_VERSION, nkeys, nkeys == 1 ? "" : "s", stash);
	return KD3_OK;
}

/* Under the write lock: stash := {the key the database uses} (+ next when given). */
static int stash_settle(kdc_db *db, const uint8_t next[KD3_KEY_LEN], char *err, size_t len)
{
	kdc_stash s;
	int ret = kdc_stash_load(db->stash, &s, err, len);
	int at = ret == KD3_OK ? kdc_stash_find(&s, db->master.check) : -1;
	if (ret == KD3_OK && at < 0) { /* cannot happen while we hold the lock */
		snprintf(err, len, "%.400s: no longer holds master key %s", db->stash,
		         db->master.id);
		ret = KD3_E_KEYFILE;
	}
	if (ret == KD3_OK && s.n == 1 && !next)
		goto out; /* already settled */
	if (ret == KD3_OK) {
		kdc_stash_keep_only(&s, (size_t)at);
		if (next && (ret = kdc_stash_add(&s, next)) != KD3_OK)
			snprintf(err, len, "cannot compute the new master key's id");
	}
	if (ret == KD3_OK)
		ret = kdc_stash_write(db->stash, &s, 0, err, len);
out:
	kdc_stash_wipe(&s);
	return ret;
}

/* Steps 1-3 (see the top of this file). */
static int rekey_commit(kdc_db *db, const uint8_t next_key[KD3_KEY_LEN], kdc_master *next,
                        size_t *nkeys, char *err, size_t len)
{
	int ret = kdc_db_begin(db, err, len);
	if (ret != KD3_OK)
		return ret;
	ret = stash_settle(db, next_key, err, len);
	kd3_crash_point("rekey-stash-both");
	if (ret == KD3_OK)
		ret = kdc_db_rekey(db, next, nkeys, err, len);
	kd3_crash_point("rekey-resealed");
	if (ret == KD3_OK)
		ret = kdc_db_commit(db, err, len);
	else
		kdc_db_rollback(db);
	kd3_crash_point("rekey-committed");
	return ret;
}

/* Step 4, or after a failed commit the undo of step 1: the stash back to one key. */
static int rekey_tidy(kdc_db *db, char *err, size_t len)
{
	int ret = kdc_db_begin(db, err, len);
	if (ret != KD3_OK)
		return ret;
	ret = stash_settle(db, NULL, err, len);
	kdc_db_rollback(db); /* nothing changed in the database */
	return ret;
}

int kdc_cmd_rekey_master(kdc_opts *o)
{
	char err[KDC_ADMIN_ERR_MAX], old_id[KDC_MASTER_ID_TEXT];
	uint8_t next_key[KD3_KEY_LEN];
	kdc_master next;
	kdc_db db;
	size_t nkeys = 0;
	int ret = kdc_admin_open_for_rekey(o, &db);

	memset(&next, 0, sizeof(next));
	memset(next_key, 0, sizeof(next_key));
	if (ret != KD3_OK)
		return ret;
	memcpy(old_id, db.master.id, sizeof(old_id));
	ret = kdc_admin_new_key("kd3 kdc master key", next_key);
	if (ret == KD3_OK && (ret = kdc_master_init(&next, next_key, 1)) != KD3_OK)
		kd3_log_error("cannot set up the new master key");
	if (ret == KD3_OK &&
	    (ret = rekey_commit(&db, next_key, &next, &nkeys, err, sizeof(err))) != KD3_OK)
		kd3_log_error("%s", err);
	kd3_wipe(next_key, sizeof(next_key));
	kdc_master_free(&next);
	/* Whether or not the commit happened: one key in the stash again, the one in use
	 * (kdc_db_begin makes db.master the new key once the database names it). */
	if (rekey_tidy(&db, err, sizeof(err)) != KD3_OK)
		kd3_log_info("warning: %s; %s may still hold two master keys: run 'kdc "
		             "rekey-master' again to finish",
		             err, db.stash);
	else if (ret == KD3_OK)
		printf("re-sealed %zu key%s and the realm secret under master key %s (was %s); %s "
		       "holds the new key only\n",
		       nkeys, nkeys == 1 ? "" : "s", db.master.id, old_id, db.stash);
	kdc_db_close(&db);
	return ret;
}
