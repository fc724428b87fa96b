#include "privfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crashpoint.h"
#include "crypto.h"
#include "err.h"

/* ---- reading ------------------------------------------------------------------------ */

static int open_error(const char *path, const char *what, int saved, char *err, size_t len)
{
	if (saved == ENOENT) {
		snprintf(err, len, "%s: no such %s file", path, what);
		return KD3_E_NOT_FOUND;
	}
	if (saved == ELOOP)
		snprintf(err, len, "%s: is a symbolic link; refusing to follow it", path);
	else
		snprintf(err, len, "%s: %s", path, strerror(saved));
	return KD3_E_IO;
}

/* Someone else's file could be changed or swapped under us; one others can read is
 * no longer secret. */
static int check_private(const struct stat *st, const char *path, const char *what, int checks,
                         char *err, size_t len)
{
	int root_ok = (checks & KD3_PRIV_ROOT_OK) != 0;

	if (st->st_uid != geteuid() && !(root_ok && st->st_uid == 0)) {
		snprintf(err, len, "%s: %s file is owned by uid %u, not by this user (uid %u)%s",
		         path, what, (unsigned)st->st_uid, (unsigned)geteuid(),
		         root_ok ? " or root" : "");
		return KD3_E_KEYFILE_PERMS;
	}
	if ((st->st_mode & 077) != 0) {
		snprintf(
		    err, len,
		    "%s: %s file is readable by group or others (mode 0%03o); run chmod 600 %s",
		    path, what, (unsigned)(st->st_mode & 0777), path);
		return KD3_E_KEYFILE_PERMS;
	}
	return KD3_OK;
}

static int check_opened(int fd, const char *path, const char *what, int checks, size_t max,
                        size_t *size, char *err, size_t len)
{
	struct stat st;
	int ret;

	if (fstat(fd, &st) != 0) {
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return KD3_E_IO;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, len, "%s: not a regular file", path);
		return KD3_E_IO;
	}
	if ((checks & KD3_PRIV_OWNER) &&
	    (ret = check_private(&st, path, what, checks, err, len)) != KD3_OK)
		return ret;
	if ((uint64_t)st.st_size > max) {
		snprintf(err, len, "%s: %s file is too large (%lld bytes, max %zu)", path, what,
		         (long long)st.st_size, max);
		return KD3_E_IO;
	}
	*size = (size_t)st.st_size;
	return KD3_OK;
}

/* Reads the size bytes fstat promised; one more means the file grew meanwhile. */
static int read_bounded(int fd, const char *path, char *buf, size_t size, size_t *n, char *err,
                        size_t len)
{
	size_t have = 0;
	for (;;) {
		ssize_t r = read(fd, buf + have, size + 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, len, "%s: %s", path, strerror(errno));
			return KD3_E_IO;
		}
		if (r == 0)
			break;
		have += (size_t)r;
		if (have > size) {
			snprintf(err, len, "%s: the file grew while it was read", path);
			return KD3_E_IO;
		}
	}
	buf[have] = '\0';
	*n = have;
	return KD3_OK;
}

int kd3_privfile_read(const char *path, const char *what, int checks, size_t max, char **out,
                      size_t *n, char *err, size_t err_len)
{
	size_t size = 0;
	char *buf = NULL;

	*out = NULL;
	*n = 0;
	/* O_NONBLOCK: a FIFO cannot block the open. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return open_error(path, what, errno, err, err_len);
	int ret = check_opened(fd, path, what, checks, max, &size, err, err_len);
	if (ret == KD3_OK && !(buf = malloc(size + 2))) {
		snprintf(err, err_len, "%s: out of memory", path);
		ret = KD3_E_NOMEM;
	}
	if (ret == KD3_OK)
		ret = read_bounded(fd, path, buf, size, n, err, err_len);
	close(fd);
	if (ret != KD3_OK && buf) {
		kd3_wipe(buf, size + 2);
		free(buf);
		buf = NULL;
		*n = 0;
	}
	*out = buf;
	return ret;
}

/* ---- parsing ------------------------------------------------------------------------ */

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* One line, NUL-terminated and free of its '\n'. */
static int one_line(char *line, const char *no_eq, kd3_privfile_line_fn fn, void *ctx,
                    const char **why)
{
	char *s = trim(line);
	if (*s == '\0' || *s == '#')
		return KD3_OK;
	char *eq = strchr(s, '=');
	if (!eq) {
		*why = no_eq;
		return KD3_E_KEYFILE;
	}
	*eq = '\0';
	return fn(ctx, trim(s), trim(eq + 1), why);
}

int kd3_privfile_each_line(const char *path, const char *text, size_t n, size_t line_max,
                           const char *no_eq, kd3_privfile_line_fn fn, void *ctx, char *err,
                           size_t err_len)
{
	char line[KD3_PRIVFILE_LINE_MAX + 1], too_long[64];
	const char *why = NULL;
	size_t pos = 0;
	int lineno = 0, ret = KD3_OK;

	if (line_max > KD3_PRIVFILE_LINE_MAX)
		line_max = KD3_PRIVFILE_LINE_MAX;
	snprintf(too_long, sizeof(too_long), "line is too long (max %zu bytes)", line_max);
	while (ret == KD3_OK && pos < n) {
		const char *nl = memchr(text + pos, '\n', n - pos);
		size_t line_len = nl ? (size_t)(nl - (text + pos)) : n - pos;
		lineno++;
		ret = KD3_E_KEYFILE;
		if (line_len > line_max)
			why = too_long;
		else if (memchr(text + pos, '\0', line_len))
			why = "line contains a NUL byte";
		else {
			memcpy(line, text + pos, line_len);
			line[line_len] = '\0';
			ret = one_line(line, no_eq, fn, ctx, &why);
		}
		pos += line_len + 1;
	}
	if (ret != KD3_OK)
		snprintf(err, err_len, "%s:%d: %s", path, lineno, why ? why : kd3_strerror(ret));
	kd3_wipe(line, sizeof(line));
	return ret;
}

/* ---- writing ------------------------------------------------------------------------ */

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return KD3_E_IO;
		}
		p += w;
		n -= (size_t)w;
	}
	return KD3_OK;
}

void kd3_privfile_folder(const char *path, char out[PATH_MAX])
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(out, PATH_MAX, ".");
	else if (slash == path)
		snprintf(out, PATH_MAX, "/");
	else
		snprintf(out, PATH_MAX, "%.*s", (int)(slash - path), path);
}

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];

	kd3_privfile_folder(path, dir);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return KD3_E_IO;
	int ret = fsync(fd) == 0 ? KD3_OK : KD3_E_IO;
	close(fd);
	return ret;
}

/* Staged files are named STAGE_PREFIX + 6 random characters in the target's folder:
 * short, so that a target name of any valid length (255 bytes) can be staged, and one
 * pattern for kd3_privfile_sweep to find. Their writer holds an flock on them from
 * creation to publish: a file of the pattern that nobody holds is a crash's leftover. */
#define STAGE_PREFIX ".kd3-stage."

/* tmp = the folder of path + "/" + STAGE_PREFIX "XXXXXX" (a mkostemp template). */
static int stage_name(const char *path, char tmp[PATH_MAX])
{
	const char *slash = strrchr(path, '/');
	int n = slash ? snprintf(tmp, PATH_MAX, "%.*s/%sXXXXXX", (int)(slash - path), path,
	                         STAGE_PREFIX)
	              : snprintf(tmp, PATH_MAX, "%sXXXXXX", STAGE_PREFIX);
	return n > 0 && n < PATH_MAX ? KD3_OK : KD3_E_NO_SPACE;
}

/* A new staging file, locked, still linked. A sweep may take a file between its
 * creation and our lock; it unlinks it then, and we try another name. -1 with errno
 * on failure. */
static int create_locked(char tmp[PATH_MAX], const char *path)
{
	for (int attempt = 0; attempt < 8; attempt++) {
		struct stat sb;
		if (stage_name(path, tmp) != KD3_OK) {
			errno = ENAMETOOLONG;
			return -1;
		}
		int fd = mkostemp(tmp, O_CLOEXEC); /* O_CREAT | O_EXCL, mode 0600 */
		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX) != 0 || fstat(fd, &sb) != 0) {
			int saved = errno;
			unlink(tmp);
			close(fd);
			errno = saved;
			return -1;
		}
		if (sb.st_nlink > 0)
			return fd;
		close(fd);
	}
	errno = EAGAIN;
	return -1;
}

/* Zeros over the first n bytes of fd and syncs them: what a discarded or leftover
 * staging file held (a key, a master key) is not left in its blocks by us. */
static void zero_fill(int fd, off_t n)
{
	static const uint8_t zeros[4096];
	for (off_t at = 0; at < n;) {
		size_t chunk = n - at < (off_t)sizeof(zeros) ? (size_t)(n - at) : sizeof(zeros);
		ssize_t w = pwrite(fd, zeros, chunk, at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		at += w;
	}
	(void)fsync(fd);
}

/* The whole content in a new staging file, mode 0600 from creation, synced; st->fd
 * keeps it open and locked until publish or discard. */
static int write_tmp(kd3_staged_file *st, const void *data, size_t n)
{
	int fd = create_locked(st->tmp, st->path);
	if (fd < 0) {
		st->tmp[0] = '\0';
		return KD3_E_IO;
	}
	st->fd = fd;
	if (fchmod(fd, 0600) == 0 && write_all(fd, data, n) == KD3_OK && fsync(fd) == 0)
		return KD3_OK;
	return KD3_E_IO; /* errno: the first failure; the caller discards */
}

/* Moves tmp to path; without overwrite, atomically refuses an existing path. */
static int move_into_place(const char *tmp, const char *path, int overwrite)
{
	if (overwrite)
		return rename(tmp, path) == 0 ? KD3_OK : KD3_E_IO;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return KD3_OK;
	if (errno == EEXIST)
		return KD3_E_EXISTS;
	if (errno != EINVAL && errno != ENOSYS)
		return KD3_E_IO;
	/* A file system without RENAME_NOREPLACE: link() refuses an existing name too. */
	if (link(tmp, path) != 0)
		return errno == EEXIST ? KD3_E_EXISTS : KD3_E_IO;
	unlink(tmp);
	return KD3_OK;
}

int kd3_privfile_stage(kd3_staged_file *st, const char *path, const void *data, size_t n, char *err,
                       size_t err_len)
{
	st->tmp[0] = '\0';
	st->fd = -1;
	if (snprintf(st->path, sizeof(st->path), "%s", path) >= (int)sizeof(st->path)) {
		snprintf(err, err_len, "%.200s...: path is too long", path);
		return KD3_E_IO;
	}
	int ret = write_tmp(st, data, n);
	if (ret == KD3_OK)
		kd3_crash_point("file-staged"); /* staged and synced, not in place */
	if (ret != KD3_OK) {
		int saved = errno;
		kd3_privfile_discard(st);
		snprintf(err, err_len, "%s: cannot write a temporary file next to it: %s", path,
		         strerror(saved));
	}
	return ret;
}

int kd3_privfile_publish(kd3_staged_file *st, int overwrite, char *err, size_t err_len)
{
	if (!st->tmp[0]) {
		snprintf(err, err_len, "%s: nothing was staged", st->path);
		return KD3_E_IO;
	}
	int ret = move_into_place(st->tmp, st->path, overwrite);
	if (ret == KD3_E_EXISTS)
		snprintf(err, err_len, "%s: already exists; refusing to overwrite it", st->path);
	else if (ret != KD3_OK)
		snprintf(err, err_len, "%s: %s", st->path, strerror(errno));
	if (ret != KD3_OK) {
		kd3_privfile_discard(st);
		return ret;
	}
	st->tmp[0] = '\0'; /* published: nothing to clean up */
	close(st->fd);     /* and unlocked: it is no staging file any more */
	st->fd = -1;
	if (fsync_dir_of(st->path) != KD3_OK) {
		snprintf(err, err_len, "%s: cannot sync its directory: %s", st->path,
		         strerror(errno));
		return KD3_E_IO;
	}
	return KD3_OK;
}

void kd3_privfile_discard(kd3_staged_file *st)
{
	if (st->tmp[0]) {
		struct stat sb;
		if (fstat(st->fd, &sb) == 0)
			zero_fill(st->fd, sb.st_size);
		unlink(st->tmp);
		close(st->fd);
	}
	st->tmp[0] = '\0';
	st->fd = -1;
}

int kd3_privfile_write(const char *path, const void *data, size_t n, int overwrite, char *err,
                       size_t err_len)
{
	kd3_staged_file st;
	struct stat sb;

	if (!overwrite && lstat(path, &sb) == 0) { /* fail early; publish checks again */
		snprintf(err, err_len, "%s: already exists; refusing to overwrite it", path);
		return KD3_E_EXISTS;
	}
	int ret = kd3_privfile_stage(&st, path, data, n, err, err_len);
	if (ret == KD3_OK)
		ret = kd3_privfile_publish(&st, overwrite, err, err_len);
	return ret;
}

/* ---- leftovers ---------------------------------------------------------------------- */

/* Ours: STAGE_PREFIX + 6, or what kd3 before 0.2 staged under: NAME.key.tmp.XXXXXX and
 * DB.stash.tmp.XXXXXX. */
static int is_staging_name(const char *name)
{
	size_t n = strlen(name), pre = strlen(STAGE_PREFIX);
	static const char *const legacy[] = {".key.tmp.", ".stash.tmp."};

	if (n == pre + 6 && strncmp(name, STAGE_PREFIX, pre) == 0)
		return 1;
	for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++) {
		size_t l = strlen(legacy[i]);
		if (n > l + 6 && strncmp(name + n - 6 - l, legacy[i], l) == 0)
			return 1;
	}
	return 0;
}

/* One candidate: wiped and removed when it is a regular file of ours that nobody holds
 * and the name still is that file. */
static void sweep_one(int dirfd, const char *dir, const char *name, kd3_privfile_sweep_fn fn,
                      void *ctx, int *removed)
{
	char path[PATH_MAX];
	struct stat sb, now;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return; /* gone already, or not a file we may write: not ours */
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid()) {
		fn(ctx, path, 0, "not a regular file of this user; left alone");
		close(fd);
		return;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) { /* its writer is at work */
		close(fd);
		return;
	}
	if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_dev == sb.st_dev &&
	    now.st_ino == sb.st_ino && fstat(fd, &sb) == 0 && sb.st_nlink > 0) {
		zero_fill(fd, sb.st_size);
		if (unlinkat(dirfd, name, 0) == 0) {
			(*removed)++;
			fn(ctx, path, (long long)sb.st_size, NULL);
		}
	}
	close(fd);
}

int kd3_privfile_sweep(const char *dir, kd3_privfile_sweep_fn fn, void *ctx)
{
	int removed = 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0; /* nothing of ours can be where we cannot look */
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (is_staging_name(e->d_name))
			sweep_one(dirfd(d), dir, e->d_name, fn, ctx, &removed);
	if (removed)
		(void)fsync(dirfd(d));
	closedir(d);
	return removed;
}
