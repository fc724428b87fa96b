/* kdc status: what a running kdc serve tells an operator about itself, through a small
 * file it rewrites (--status-file; atomically, by rename) whenever something changes
 * and at least every KDC_STATUS_HEARTBEAT_S, and `kdc status` reads:
 *
 *   kd3 kdc status 1
 *   pid = 4242
 *   database = postgresql://kd3@10.0.0.2/kd3       (no password)
 *   generation = 7                                   snapshots published since start
 *   loaded = 1765000000                              when the one in force was built
 *   principals = 1000000
 *   keys = 1000000
 *   database-ok = 1                                  the last look could read it
 *   checked = 1765000123                             the last look that could
 *   database-error = ...                             why not, when it could not
 *   lockout-queued = 0                               failures waiting for the primary
 *   written = 1765000124
 *
 * Times are Unix seconds. Nothing secret is in it (mode 0600 all the same). */
#ifndef KDC_STATUS_H
#define KDC_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"

#define KDC_STATUS_HEARTBEAT_S 2
#define KDC_STATUS_MAX         4096 /* bytes: a status file larger is refused */

typedef struct kdc_status {
	long pid;
	char database[256];
	uint64_t generation;
	int64_t loaded;
	uint64_t principals, keys;
	int database_ok;
	int64_t checked;
	char database_error[512];
	uint64_t lockout_queued;
	int64_t written;
} kdc_status;

/* Writes st to path (a temporary file beside it, then rename). */
int kdc_status_write(const char *path, const kdc_status *st, char *err, size_t err_len);
/* Reads and checks a status file. */
int kdc_status_read(const char *path, kdc_status *st, char *err, size_t err_len);

/* kdc status: the running server's status file (--status-file) in words. Exit status
 * 0 when it runs and reads its database, 1 when it does not run or serves a snapshot
 * it cannot refresh. */
int kdc_cmd_status(kdc_opts *o);

#endif
