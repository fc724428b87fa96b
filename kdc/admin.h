/* kdc subcommands. Each takes the parsed options, prints one line on success (list
 * prints its table), reports a failure as one line on stderr, and returns a kd3_err:
 * KD3_E_USAGE for a bad argument, other codes for runtime failures. */
#ifndef KDC_ADMIN_H
#define KDC_ADMIN_H

#include <limits.h>

#include "crashpoint.h"
#include "db.h"
#include "options.h"

int kdc_cmd_init(kdc_opts *o);
int kdc_cmd_add(kdc_opts *o);
int kdc_cmd_rotate(kdc_opts *o);
int kdc_cmd_purge(kdc_opts *o);
int kdc_cmd_retire(kdc_opts *o);
int kdc_cmd_remove(kdc_opts *o);
int kdc_cmd_enable(kdc_opts *o);
int kdc_cmd_disable(kdc_opts *o);
int kdc_cmd_unlock(kdc_opts *o);
int kdc_cmd_export(kdc_opts *o);
int kdc_cmd_list(kdc_opts *o);         /* list.c */
int kdc_cmd_import(kdc_opts *o);       /* import.c */
int kdc_cmd_upgrade(kdc_opts *o);      /* master.c */
int kdc_cmd_rekey_master(kdc_opts *o); /* master.c */
int kdc_cmd_dump(kdc_opts *o);         /* dump.c */
int kdc_cmd_load(kdc_opts *o);         /* dump.c */
int kdc_cmd_serve(kdc_opts *o);        /* serve.c */

#define KDC_ADMIN_ERR_MAX 768

/* The database of o with its stash (--stash, or the database's path + ".stash"); a
 * failure is logged. Says so when the stash holds a key the database does not use. */
int kdc_admin_open(const kdc_opts *o, int writable, kdc_db *db);
/* The same, writable, without that warning. */
int kdc_admin_open_for_rekey(const kdc_opts *o, kdc_db *db);
/* The stash path of o, logged when too long. */
int kdc_admin_stash_path(const kdc_opts *o, char out[PATH_MAX]);
/* A new random 32-byte key from a fresh DRBG (pers names its use); logged on failure. */
int kdc_admin_new_key(const char *pers, uint8_t key[KD3_KEY_LEN]);
/* "2025-06-08T10:00:00Z" */
void kdc_admin_utc(int64_t t, char out[32]);

#endif
