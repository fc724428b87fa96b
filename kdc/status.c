/* kdc status: the status file of a running kdc serve, written and read. */
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "privfile.h"

#define STATUS_MAGIC "kd3 kdc status 1"

int kdc_status_write(const char *path, const kdc_status *st, char *err, size_t err_len)
{
	char text[KDC_STATUS_MAX], tmp[PATH_MAX];
	int n = snprintf(
	    text, sizeof(text),
	    STATUS_MAGIC
	    "\npid = %ld\ndatabase = %s\ngeneration = %" PRIu64 "\nloaded = %" PRId64
	    "\nprincipals = %" PRIu64 "\nkeys = %" PRIu64 "\ndatabase-ok = %d\nchecked = %" PRId64
	    "\ndatabase-error = %.400s\nlockout-queued = %" PRIu64 "\nwritten = %" PRId64 "\n",
	    st->pid, st->database, st->generation, st->loaded, st->principals, st->keys,
	    st->database_ok, st->checked, st->database_error, st->lockout_queued, st->written);
	if (n < 0 || (size_t)n >= sizeof(text) ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp)) {
		snprintf(err, err_len, "%s: status too long", path);
		return KD3_E_NO_SPACE;
	}
	/* A new file of our own (O_EXCL, 0600): a name planted in a shared folder, or a
	 * link there, is never opened or followed. */
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, err_len, "%s: %s", tmp, strerror(errno));
		return KD3_E_IO;
	}
	/* Not fsynced: a status that a crash loses is rewritten by the next start. */
	int ok = write(fd, text, (size_t)n) == n;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return KD3_E_IO;
	}
	return KD3_OK;
}

static int parse_i64(const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end)
		return -1;
	*out = x;
	return 0;
}

static int status_line(void *ctx, char *name, char *value, const char **why)
{
	kdc_status *st = ctx;
	int64_t v = 0;
	struct {
		const char *name;
		void *dst;
		int kind; /* 0: int64, 1: uint64, 2: int, 3: long, 4: text */
		size_t cap;
	} fields[] = {
	    {"pid", &st->pid, 3, 0},
	    {"database", st->database, 4, sizeof(st->database)},
	    {"generation", &st->generation, 1, 0},
	    {"loaded", &st->loaded, 0, 0},
	    {"principals", &st->principals, 1, 0},
	    {"keys", &st->keys, 1, 0},
	    {"database-ok", &st->database_ok, 2, 0},
	    {"checked", &st->checked, 0, 0},
	    {"database-error", st->database_error, 4, sizeof(st->database_error)},
	    {"lockout-queued", &st->lockout_queued, 1, 0},
	    {"written", &st->written, 0, 0},
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (strcmp(name, fields[i].name) != 0)
			continue;
		if (fields[i].kind == 4) {
			snprintf(fields[i].dst, fields[i].cap, "%s", value);
			return KD3_OK;
		}
		if (parse_i64(value, &v) != 0 || (fields[i].kind != 0 && v < 0)) {
			*why = "not a number";
			return KD3_E_MALFORMED;
		}
		if (fields[i].kind == 0)
			*(int64_t *)fields[i].dst = v;
		else if (fields[i].kind == 1)
			*(uint64_t *)fields[i].dst = (uint64_t)v;
		else if (fields[i].kind == 2)
			*(int *)fields[i].dst = v != 0;
		else
			*(long *)fields[i].dst = (long)v;
		return KD3_OK;
	}
	return KD3_OK; /* a field of a newer kdc */
}

int kdc_status_read(const char *path, kdc_status *st, char *err, size_t err_len)
{
	char *text = NULL;
	size_t n = 0;
	memset(st, 0, sizeof(*st));
	int ret = kd3_privfile_read(path, "status", KD3_PRIV_ANY, KDC_STATUS_MAX, &text, &n, err,
	                            err_len);
	if (ret != KD3_OK)
		return ret;
	size_t magic = strlen(STATUS_MAGIC);
	if (n <= magic || memcmp(text, STATUS_MAGIC "\n", magic + 1) != 0) {
		snprintf(err, err_len, "%s: not a kdc status file", path);
		ret = KD3_E_MALFORMED;
	} else {
		ret = kd3_privfile_each_line(path, text + magic + 1, n - magic - 1,
		                             KD3_PRIVFILE_LINE_MAX, "'name = value'", status_line,
		                             st, err, err_len);
	}
	free(text);
	if (ret == KD3_OK && st->pid <= 0) {
		snprintf(err, err_len, "%s: no pid", path);
		ret = KD3_E_MALFORMED;
	}
	return ret;
}

static void utc(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!t || !gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "never");
}

int kdc_cmd_status(kdc_opts *o)
{
	char err[768], loaded[32], checked[32];
	kdc_status st;
	if (!o->status_file[0]) {
		kd3_log_error("status: give --status-file FILE, the file 'kdc serve --status-file' "
		              "writes");
		return KD3_E_USAGE;
	}
	int ret = kdc_status_read(o->status_file, &st, err, sizeof(err));
	if (ret != KD3_OK) {
		kd3_log_error("%s", err);
		return ret;
	}
	int64_t now = (int64_t)time(NULL);
	/* kill(pid, 0): EPERM still means the process exists (another user's). */
	int running = kill((pid_t)st.pid, 0) == 0 || errno == EPERM;
	int stale = now - st.written > 3 * KDC_STATUS_HEARTBEAT_S;
	utc(st.loaded, loaded);
	utc(st.checked, checked);
	printf("kdc serve pid %ld: %s\n", st.pid,
	       !running ? "not running"
	       : stale  ? "running, but its status is not being updated"
	                : "running");
	printf("database:    %s\n", st.database);
	printf("snapshot:    generation %" PRIu64 ", loaded %s (%" PRId64 " s ago), %" PRIu64
	       " principals, %" PRIu64 " key versions\n",
	       st.generation, loaded, now - st.loaded, st.principals, st.keys);
	if (st.database_ok)
		printf("reachable:   yes (last checked %s)\n", checked);
	else
		printf("reachable:   no (last reached %s): %s; serving the snapshot above\n",
		       checked, st.database_error[0] ? st.database_error : "?");
	if (st.lockout_queued)
		printf("lockout:     %" PRIu64 " failed authentications wait for the primary\n",
		       st.lockout_queued);
	return running && !stale && st.database_ok ? KD3_OK : KD3_E_IO;
}
