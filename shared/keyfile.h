/* kd3 key files: one principal's long-term keys, one line per kvno.
 *
 *   # kd3 key file: keep secret (mode 0600)
 *   principal = alice
 *   key = 1:<64 hex digits>
 *   key = 2:<64 hex digits>
 *
 * Loading refuses a file that group or others can read, or that is not a regular
 * file, with a clear error (keyfile.c); writing creates it with mode 0600 atomically
 * (staging file, fsync, rename: keyfile_write.c), so a crash never leaves half a key
 * file. err must not be NULL for the writing calls. */
#ifndef KD3_KEYFILE_H
#define KD3_KEYFILE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "privfile.h"
#include "wire.h"

#define KD3_KEYFILE_KEYS_MAX 8
#define KD3_KEYFILE_HEX_LEN  (2 * KD3_KEY_LEN) /* a key's hex digits */

typedef struct kd3_keyfile_entry {
	uint32_t kvno;
	uint8_t key[KD3_KEY_LEN];
} kd3_keyfile_entry;

typedef struct kd3_keyfile {
	char principal[KD3_NAME_MAX + 1];
	size_t nkeys;
	kd3_keyfile_entry keys[KD3_KEYFILE_KEYS_MAX];
} kd3_keyfile;

/* err gets "path:line: reason" or "path: reason". Wipes kf on failure. */
int kd3_keyfile_load(const char *path, kd3_keyfile *kf, char *err, size_t err_len);
/* Refuses to overwrite an existing file unless overwrite is set. */
int kd3_keyfile_write(const char *path, const kd3_keyfile *kf, int overwrite, char *err,
                      size_t err_len);
/* The same write in two steps, for a caller whose own commit decides whether the file
 * lands (kdc add/rotate): stage writes the whole file (mode 0600, fsynced) under a
 * temporary name next to path; publish moves it into place (refusing an existing path
 * unless overwrite) and syncs the directory; discard removes a staged file. A staged
 * file is removed on every failure. kd3_keyfile_write is stage + publish. */
typedef kd3_staged_file kd3_keyfile_stage;

int kd3_keyfile_stage_write(kd3_keyfile_stage *st, const char *path, const kd3_keyfile *kf,
                            char *err, size_t err_len);
int kd3_keyfile_stage_publish(kd3_keyfile_stage *st, int overwrite, char *err, size_t err_len);
void kd3_keyfile_stage_discard(kd3_keyfile_stage *st);

/* The value of a "key = KVNO:HEX" line: kvno 1..2^32-1 in plain decimal, ':', exactly 64
 * hex digits. why gets the reason for a refusal (key is wiped then). */
int kd3_keyfile_parse_key(const char *v, uint32_t *kvno, uint8_t key[KD3_KEY_LEN],
                          const char **why);

/* The entry with the highest kvno, or NULL when empty. */
const kd3_keyfile_entry *kd3_keyfile_latest(const kd3_keyfile *kf);
void kd3_keyfile_wipe(kd3_keyfile *kf);

#endif
