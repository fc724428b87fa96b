/* kdc reload: one thread that keeps the running server's snapshot (kdc/live.h) up to
 * date, off the request path.
 *
 * Every KDC_RELOAD_TICK_MS it looks at:
 *   - the database: another connection committed (PRAGMA data_version) or another
 *     file was put under its path: any admin write (add, rotate, disable, enable,
 *     remove, retire, purge, rekey-master, unlock);
 *   - the clock: a loaded key version's grace period ended (table.next_expiry);
 *   - SIGHUP (kdc_reloader_hup): kdc.conf and the command line read again; settings
 *     that need a restart (listen, workers, db, ...) keep their value, one line says so.
 * Then it opens the database and the stash (the master key is in memory only while it
 * loads), builds a whole new snapshot, applies new unlock rows to the lockout table,
 * publishes the snapshot, carries the principals' last-used times over to it
 * (kdc/usage.h) and frees the old one once no worker holds it. A failed
 * reload (database locked, stash unreadable, a bad kdc.conf) leaves the running
 * snapshot in force, says why once, and is tried again each second. */
#ifndef KDC_RELOAD_H
#define KDC_RELOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "crypto.h"
#include "db.h"
#include "live.h"
#include "lockout.h"
#include "lockshare.h"
#include "metrics.h"
#include "options.h"
#include "status.h"

#define KDC_RELOAD_TICK_MS  250
#define KDC_RELOAD_RETRY_MS 1000
#define KDC_RELOAD_ERR_MAX  768
/* How long a last-used flush waits for an admin transaction's write lock: each tick
 * (it tries again at the next flush), and the last one at stop (no next flush). */
#define KDC_USED_BUSY_MS      100
#define KDC_USED_LAST_BUSY_MS 2000

/* Why a reload happens (bits). */
#define KDC_RELOAD_DATABASE 1
#define KDC_RELOAD_EXPIRY   2
#define KDC_RELOAD_CONFIG   4

typedef struct kdc_reloader {
	kdc_rcu *rcu;
	kdc_lockout *lockout;
	kdc_lockshare share; /* a realm on a database server: lockouts shared */
	int sharing;
	kdc_opts opts; /* the settings in force */
	kdc_db_watch watch;
	int watching;
	int64_t unlock_seen; /* the highest unlock row applied */
	uint64_t generation;
	int64_t loaded_at;  /* wall clock of the snapshot in force */
	kdc_status status;  /* the last written to opts.status_file */
	int db_ok;          /* the last look at the database could read it */
	int64_t db_checked; /* when one last could */
	unsigned pending;   /* reasons of a reload that failed, tried again at retry_ms */
	uint64_t retry_ms;
	char last_err[KDC_RELOAD_ERR_MAX]; /* said once */
	uint64_t flush_due_ms;             /* the next last-used flush (monotonic) */
	int flush_failing;                 /* the last one failed (said once) */
	int wake_fd;
	atomic_int hup;
	atomic_int stop;
	atomic_uint_fast64_t reloads; /* snapshots published */
	kdc_reload_gauges gauges;     /* for the metrics; written by this thread alone */
	pthread_t thread;
	int started;
} kdc_reloader;

/* Builds a snapshot from an open database: the settings of o, the table live now
 * (wall clock), and the unlock rows after *unlock_seen applied to lockout (NULL: read
 * none). */
int kdc_snapshot_build(kdc_db *db, const kdc_opts *o, kdc_lockout *lockout, int64_t *unlock_seen,
                       kdc_snapshot **out, char *err, size_t err_len);

/* Overwrites what a load left on the calling thread's stack below the caller (SQLite's
 * and Mbed TLS's locals: pieces of opened keys, of the master key's schedule), since a
 * thread's stack outlives the load. Deeper than any load goes. */
#define KDC_STACK_SCRUB (96 * 1024)
void kdc_stack_scrub(void);

/* The log settings of o (log, log-json, log-time, syslog-socket). */
int kdc_log_apply(const kdc_opts *o, char *err, size_t err_len);

/* o is copied; generation and unlock_seen carry on from the snapshot loaded at start. */
int kdc_reloader_init(kdc_reloader *r, const kdc_opts *o, kdc_rcu *rcu, kdc_lockout *lockout,
                      int64_t unlock_seen, char *err, size_t err_len);
int kdc_reloader_start(kdc_reloader *r);
/* SIGHUP: read the configuration again at the next tick (safe from another thread). */
void kdc_reloader_hup(kdc_reloader *r);
/* One look, what the thread does each tick: 1 when a snapshot was published. Every
 * last-used-flush-seconds it also writes the principals' last-used times that changed
 * (kdc/usage.h). */
int kdc_reloader_tick(kdc_reloader *r);
/* Stops and joins the thread (the reloader stays usable for kdc_reloader_flush). */
void kdc_reloader_stop(kdc_reloader *r);
/* With the thread stopped: writes the last-used times not written yet (kdc serve's
 * last step, once the workers are done); logs why when it cannot. */
int kdc_reloader_flush(kdc_reloader *r);
/* Stops and joins the thread; frees what the reloader holds (not the rcu). */
void kdc_reloader_free(kdc_reloader *r);

#endif
