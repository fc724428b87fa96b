/* kd3 private files, writing (privfile.h): staged beside the target, locked, synced,
 * moved into place; and the sweep of crash leftovers. Only the kdc writes private
 * files: libkd3 links privfile.c alone, so neither this nor its crash point is in it. */
#include "privfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crashpoint.h"
#include "err.h"

/* Staged files are named STAGE_PREFIX + 6 random characters in the target's folder:
 * short, so that a target name of any valid length (255 bytes) can be staged, and one
 * pattern for kd3_privfile_sweep to find. Their writer holds an flock on them from
 * creation to publish: a file of the pattern that nobody holds is a crash's leftover. */
#define STAGE_PREFIX ".kd3-stage."
#define STAGE_MODE   0600

/* kd3 0.1 staged under NAME.key.tmp.XXXXXX and DB.stash.tmp.XXXXXX and held no lock: a
 * file of those names is only zeroed once it is this old, when no 0.1 writer can still
 * be between its last write and its rename (younger ones are left and reported). */
#define LEGACY_QUIET_S (10 * 60)

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

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];

	if (kd3_privfile_folder(path, dir) != KD3_OK) {
		errno = ENAMETOOLONG;
		return KD3_E_IO;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return KD3_E_IO;
	int ret = fsync(fd) == 0 ? KD3_OK : KD3_E_IO;
	close(fd);
	return ret;
}

/* A file system without flock (some FUSE mounts) cannot hold the writer's lock:
 * writing goes on without it, and the sweep leaves such files alone, since it cannot
 * tell a writer at work from a leftover there. ENOLCK is not that: it also means a
 * full lock table or an NFS lock manager that did not answer, and a writer without
 * its lock could then lose its file to a sweep on another host; it fails. */
static int no_locks_here(int err)
{
	return err == EOPNOTSUPP || err == ENOSYS;
}

/* fd is the file the name names now (the same device and inode, still linked). */
static int is_named(int fd, int dirfd, const char *name)
{
	struct stat opened, named;

	return fstat(fd, &opened) == 0 && opened.st_nlink > 0 &&
	       fstatat(dirfd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
	       opened.st_dev == named.st_dev && opened.st_ino == named.st_ino;
}

/* tmp = the folder of path + "/" + STAGE_PREFIX "XXXXXX" (a mkostemp template). */
static int stage_name(const char *path, char tmp[PATH_MAX])
{
	const char *slash = strrchr(path, '/');
	int n = slash ? snprintf(tmp, PATH_MAX, "%.*s/%sXXXXXX", (int)(slash - path), path,
	                         STAGE_PREFIX)
	              : snprintf(tmp, PATH_MAX, "%sXXXXXX", STAGE_PREFIX);
	return n > 0 && n < PATH_MAX ? KD3_OK : KD3_E_NO_SPACE;
}

/* A new staging file, locked, still under its name. A sweep may take a file between
 * its creation and our lock; it unlinks it then (and the name may be a new file by
 * the time we look), and we try another name. -1 with errno on failure. */
static int create_locked(char tmp[PATH_MAX], const char *path)
{
	for (int attempt = 0; attempt < 8; attempt++) {
		if (stage_name(path, tmp) != KD3_OK) {
			errno = ENAMETOOLONG;
			return -1;
		}
		int fd = mkostemp(tmp, O_CLOEXEC); /* O_CREAT | O_EXCL, mode 0600 */
		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX) != 0 && !no_locks_here(errno)) {
			int saved = errno;
			unlink(tmp);
			close(fd);
			errno = saved;
			return -1;
		}
		if (is_named(fd, AT_FDCWD, tmp))
			return fd;
		close(fd);
	}
	errno = EAGAIN;
	return -1;
}

/* Zeros over the first n bytes of fd and syncs them: what a discarded or leftover
 * staging file held (a key, a master key) is not left in its blocks by us. (Only as
 * far as the file system overwrites in place: a copy-on-write one such as btrfs or
 * ZFS, or a flash drive's remapping, may keep the old blocks.) */
static int zero_fill(int fd, off_t n)
{
	static const uint8_t zeros[4096];
	for (off_t at = 0; at < n;) {
		size_t chunk = n - at < (off_t)sizeof(zeros) ? (size_t)(n - at) : sizeof(zeros);
		ssize_t w = pwrite(fd, zeros, chunk, at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		at += w;
	}
	return fsync(fd);
}

/* Only a file that no name reaches any more may be zeroed (its name is unlinked
 * first): with a second link it is, or may be, a live file too, such as one a move
 * into place left linked twice, and one renamed into place meanwhile is live. */
static int unreachable(const struct stat *sb, dev_t folder_dev)
{
	return sb->st_nlink == 0 && sb->st_dev == folder_dev && (sb->st_mode & 07777) == STAGE_MODE;
}

/* The whole content in a new staging file, mode 0600 from creation, synced; st->fd
 * keeps it open and locked until publish or discard. On failure errno is the first
 * failure's. */
static int write_tmp(kd3_staged_file *st, const void *data, size_t n)
{
	int fd = create_locked(st->tmp, st->path);
	if (fd < 0) {
		st->tmp[0] = '\0';
		return KD3_E_IO;
	}
	st->fd = fd;
	if (fchmod(fd, STAGE_MODE) == 0 && write_all(fd, data, n) == KD3_OK && fsync(fd) == 0)
		return KD3_OK;
	return KD3_E_IO;
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
	/* A file system without RENAME_NOREPLACE: link() refuses an existing name too. In
	 * between the two calls the file has two names; a sweep that finds the staging
	 * one then only unlinks it (unreachable). So does the next sweep when this
	 * unlink fails: the file is in place either way. */
	if (link(tmp, path) != 0)
		return errno == EEXIST ? KD3_E_EXISTS : KD3_E_IO;
	(void)unlink(tmp);
	return KD3_OK;
}

enum { NOT_STAGING, STAGING, LEGACY };

/* Ours: STAGE_PREFIX + 6, or what kd3 0.1 staged under. */
static int staging_kind(const char *name)
{
	size_t n = strlen(name), pre = strlen(STAGE_PREFIX);
	static const char *const legacy[] = {".key.tmp.", ".stash.tmp."};

	if (n == pre + 6 && strncmp(name, STAGE_PREFIX, pre) == 0)
		return STAGING;
	for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++) {
		size_t l = strlen(legacy[i]);
		if (n > l + 6 && strncmp(name + n - 6 - l, legacy[i], l) == 0)
			return LEGACY;
	}
	return NOT_STAGING;
}

int kd3_privfile_is_staging_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return staging_kind(slash ? slash + 1 : path) != NOT_STAGING;
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
	if (kd3_privfile_is_staging_name(path)) { /* the next sweep would take it */
		snprintf(err, err_len, "%s: %s", path, KD3_PRIVFILE_STAGING_REFUSED);
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
	st->tmp[0] = '\0'; /* published: never discarded, not even when named twice */
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
	struct stat sb;

	/* Only with tmp is fd ours: a {0} struct's fd is 0, stdin. Our name unlinked
	 * when it still is our file; the bytes zeroed when no name reaches them now. */
	if (st->tmp[0]) {
		if (is_named(st->fd, AT_FDCWD, st->tmp))
			(void)unlink(st->tmp);
		if (fstat(st->fd, &sb) == 0 && unreachable(&sb, sb.st_dev))
			(void)zero_fill(st->fd, sb.st_size);
		close(st->fd);
	}
	st->tmp[0] = '\0';
	st->fd = -1;
}

int kd3_privfile_refuse_existing(const char *path, int overwrite, char *err, size_t err_len)
{
	struct stat sb;

	if (overwrite || lstat(path, &sb) != 0)
		return KD3_OK;
	snprintf(err, err_len, "%s: already exists; refusing to overwrite it", path);
	return KD3_E_EXISTS;
}

int kd3_privfile_write(const char *path, const void *data, size_t n, int overwrite, char *err,
                       size_t err_len)
{
	kd3_staged_file st;
	int ret = kd3_privfile_refuse_existing(path, overwrite, err, err_len);

	if (ret == KD3_OK)
		ret = kd3_privfile_stage(&st, path, data, n, err, err_len);
	if (ret == KD3_OK)
		ret = kd3_privfile_publish(&st, overwrite, err, err_len);
	return ret;
}

/* ---- leftovers ---------------------------------------------------------------------- */

typedef struct sweep {
	int dirfd;
	dev_t dev; /* the folder's */
	const char *dir;
	kd3_privfile_sweep_fn fn;
	void *ctx;
	int removed;
} sweep;

static void tell(sweep *sw, const char *name, int outcome, long long size, const char *why)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", sw->dir, name);
	sw->fn(sw->ctx, path, outcome, size, why);
}

/* The name removed; then, when no name reaches the file any more (none other, and it
 * was not renamed into place meanwhile), its bytes zeroed. */
static void remove_leftover(sweep *sw, int fd, const char *name)
{
	struct stat sb = {0};
	const char *why = NULL;

	if (unlinkat(sw->dirfd, name, 0) != 0) {
		tell(sw, name, KD3_SWEEP_LEFT, -1, strerror(errno));
		return;
	}
	sw->removed++;
	if (fstat(fd, &sb) != 0)
		why = strerror(errno);
	else if (sb.st_nlink > 0)
		why = "another name links to the same file, whose bytes are kept";
	else if (!unreachable(&sb, sw->dev))
		why = "not mode 0600: bytes not overwritten";
	else if (zero_fill(fd, sb.st_size) != 0)
		why = "overwriting it with zeros failed";
	tell(sw, name, why ? KD3_SWEEP_UNLINKED : KD3_SWEEP_WIPED, (long long)sb.st_size, why);
}

/* One of our staging files: removed when nobody holds it and the name is still it. */
static void sweep_staging(sweep *sw, int fd, const char *name)
{
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK) /* its writer is at work */
			return;
		tell(sw, name, KD3_SWEEP_LEFT, -1,
		     no_locks_here(errno)
		         ? "this file system has no file locks, so a writer at work cannot be "
		           "told from a leftover; remove it by hand when no kdc command runs"
		         : strerror(errno));
		return;
	}
	if (is_named(fd, sw->dirfd, name))
		remove_leftover(sw, fd, name);
}

static void sweep_legacy(sweep *sw, int fd, const char *name, const struct stat *sb)
{
	if (time(NULL) - sb->st_mtime < LEGACY_QUIET_S) {
		tell(sw, name, KD3_SWEEP_LEFT, (long long)sb->st_size,
		     "written in the last 10 minutes, perhaps by a kd3 0.1 command at work");
		return;
	}
	remove_leftover(sw, fd, name);
}

/* One candidate, looked at before it is opened (a FIFO or a device is never opened),
 * and opened without following a link or becoming a terminal. */
static void sweep_one(sweep *sw, const char *name, int kind)
{
	struct stat named, opened;

	if (fstatat(sw->dirfd, name, &named, AT_SYMLINK_NOFOLLOW) != 0)
		return; /* gone already */
	if (!S_ISREG(named.st_mode) || named.st_uid != geteuid()) {
		tell(sw, name, KD3_SWEEP_LEFT, -1, "not a regular file of this user");
		return;
	}
	int fd = openat(sw->dirfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT) /* else gone meanwhile */
			tell(sw, name, KD3_SWEEP_LEFT, -1, strerror(errno));
		return;
	}
	if (fstat(fd, &opened) == 0 && opened.st_dev == named.st_dev &&
	    opened.st_ino == named.st_ino) {
		if (kind == STAGING)
			sweep_staging(sw, fd, name);
		else
			sweep_legacy(sw, fd, name, &opened);
	}
	close(fd);
}

int kd3_privfile_sweep(const char *dir, kd3_privfile_sweep_fn fn, void *ctx)
{
	struct stat sb;
	DIR *d = opendir(dir);

	if (!d)
		return 0; /* nothing of ours can be where we cannot look */
	sweep sw = {dirfd(d), 0, dir, fn, ctx, 0};
	if (fstat(sw.dirfd, &sb) == 0) {
		sw.dev = sb.st_dev;
		for (struct dirent *e; (e = readdir(d)) != NULL;) {
			int kind = staging_kind(e->d_name);
			if (kind != NOT_STAGING)
				sweep_one(&sw, e->d_name, kind);
		}
	}
	if (sw.removed)
		(void)fsync(sw.dirfd);
	closedir(d);
	return sw.removed;
}
