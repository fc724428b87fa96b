/* kd3 private files, reading and parsing (privfile.h); writing is privfile_stage.c. */
#include "privfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- names -------------------------------------------------------------------------- */

int kd3_privfile_folder(const char *path, char out[PATH_MAX])
{
	const char *slash = strrchr(path, '/');
	int n;

	if (!slash)
		n = snprintf(out, PATH_MAX, ".");
	else if (slash == path)
		n = snprintf(out, PATH_MAX, "/");
	else
		n = snprintf(out, PATH_MAX, "%.*s", (int)(slash - path), path);
	return n > 0 && n < PATH_MAX ? KD3_OK : KD3_E_NO_SPACE;
}
