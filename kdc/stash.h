/* kdc master key stash: the file that holds the realm's master key, apart from the
 * database (default: the database's path with ".stash" appended).
 *
 *   # kd3 master key stash: keep secret (mode 0600); back it up apart from the database
 *   version = 1
 *   master = 1a2b3c4d5e6f7081:<64 hex digits>
 *
 * Normally one master key; two only while `kdc rekey-master` runs (or after it was
 * interrupted): the database's check value picks the one in use. Each line carries the
 * key's id, so a damaged key is refused rather than used. Read with the key file checks
 * (a regular file, not a symbolic link, owned by this user, mode 0600 or stricter);
 * written atomically (shared/privfile.h). */
#ifndef KDC_STASH_H
#define KDC_STASH_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "seal.h"

#define KDC_STASH_KEYS_MAX 2
#define KDC_STASH_SUFFIX   ".stash"

typedef struct kdc_stash {
	size_t n;
	uint8_t key[KDC_STASH_KEYS_MAX][KD3_KEY_LEN];
	uint8_t check[KDC_STASH_KEYS_MAX][KD3_HASH_LEN];
} kdc_stash;

/* The stash path: opt when set, else db + ".stash". KD3_E_USAGE when too long,
 * KD3_E_NOT_FOUND for a db that is a URI (a database server) and no opt. */
int kdc_stash_path(const char *db, const char *opt, char out[PATH_MAX]);

/* KD3_E_NOT_FOUND when the file does not exist. Wipes s on failure. */
int kdc_stash_load(const char *path, kdc_stash *s, char *err, size_t err_len);
/* Replaces (or, with create_new, creates without replacing) the whole file. */
int kdc_stash_write(const char *path, const kdc_stash *s, int create_new, char *err,
                    size_t err_len);

/* Adds a master key (its check computed here). KD3_E_NO_SPACE when full. */
int kdc_stash_add(kdc_stash *s, const uint8_t key[KD3_KEY_LEN]);
/* The index of the key whose check is check, or -1. */
int kdc_stash_find(const kdc_stash *s, const uint8_t check[KD3_HASH_LEN]);
/* Keeps only entry i. */
void kdc_stash_keep_only(kdc_stash *s, size_t i);
/* "id" or "id, id": the ids the stash holds, for messages. */
void kdc_stash_ids(const kdc_stash *s, char *out, size_t cap);
void kdc_stash_wipe(kdc_stash *s);

#endif
