/* kd3 key files: parsing with size bounds, permission checks, and atomic writes.
 * Every buffer that held key hex or key bytes is wiped before it is released. */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "msg.h"

#define KEYFILE_LINE_MAX 512
#define KEYFILE_SIZE_MAX (64 * 1024)
#define KEYFILE_HEX_LEN  (2 * KD3_KEY_LEN)

static void err_set(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

void kd3_keyfile_wipe(kd3_keyfile *kf)
{
	kd3_wipe(kf, sizeof(*kf));
}

const kd3_keyfile_entry *kd3_keyfile_latest(const kd3_keyfile *kf)
{
	const kd3_keyfile_entry *best = NULL;
	for (size_t i = 0; i < kf->nkeys && i < KD3_KEYFILE_KEYS_MAX; i++)
		if (!best || kf->keys[i].kvno > best->kvno)
			best = &kf->keys[i];
	return best;
}

/* ---- reading --------------------------------------------------------------- */

/* Opens without following a symlink and checks what was opened (not the path, so
 * nothing can be swapped in between): a regular file, private to its owner. */
static int keyfile_open(const char *path, int *fd_out, char *err, size_t len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ELOOP)
			err_set(err, len, "%s: is a symbolic link; refusing to follow it", path);
		else
			err_set(err, len, "%s: %s", path, strerror(errno));
		return KD3_E_KEYFILE;
	}
	if (fstat(fd, &st) != 0) {
		err_set(err, len, "%s: %s", path, strerror(errno));
		close(fd);
		return KD3_E_KEYFILE;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, len, "%s: not a regular file", path);
		close(fd);
		return KD3_E_KEYFILE;
	}
	if ((st.st_mode & 077) != 0) {
		err_set(
		    err, len,
		    "%s: key file is readable by group or others (mode 0%03o); run chmod 600 %s",
		    path, (unsigned)(st.st_mode & 0777), path);
		close(fd);
		return KD3_E_KEYFILE_PERMS;
	}
	/* Like ssh's StrictModes: a key file someone else owns could be swapped under us. */
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		err_set(err, len, "%s: key file is owned by uid %u, not by us (uid %u) or root",
		        path, (unsigned)st.st_uid, (unsigned)geteuid());
		close(fd);
		return KD3_E_KEYFILE_PERMS;
	}
	if (st.st_size > KEYFILE_SIZE_MAX) {
		err_set(err, len, "%s: file is too large (%lld bytes, max %d)", path,
		        (long long)st.st_size, KEYFILE_SIZE_MAX);
		close(fd);
		return KD3_E_KEYFILE;
	}
	*fd_out = fd;
	return KD3_OK;
}

/* Reads the whole file into buf (cap KEYFILE_SIZE_MAX + 1, so growth is noticed). */
static int keyfile_read_all(int fd, const char *path, char *buf, size_t *n, char *err, size_t len)
{
	size_t have = 0;
	for (;;) {
		ssize_t r = read(fd, buf + have, KEYFILE_SIZE_MAX + 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_set(err, len, "%s: %s", path, strerror(errno));
			return KD3_E_KEYFILE;
		}
		if (r == 0)
			break;
		have += (size_t)r;
		if (have > KEYFILE_SIZE_MAX) {
			err_set(err, len, "%s: file is too large (max %d bytes)", path,
			        KEYFILE_SIZE_MAX);
			return KD3_E_KEYFILE;
		}
	}
	*n = have;
	return KD3_OK;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "KVNO:HEX64": kvno 1..2^32-1 in plain decimal, exactly 64 hex digits. */
static int parse_key_value(const char *v, uint32_t *kvno, uint8_t key[KD3_KEY_LEN],
                           const char **why)
{
	uint64_t k = 0;
	const char *p = v;

	if (*p < '0' || *p > '9') {
		*why = "expected 'key = KVNO:HEX' with a decimal kvno";
		return KD3_E_KEYFILE;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		k = k * 10 + (uint64_t)(*p - '0');
		if (k > UINT32_MAX) {
			*why = "kvno is out of range 1..4294967295";
			return KD3_E_KEYFILE;
		}
	}
	if (k == 0) {
		*why = "kvno is out of range 1..4294967295";
		return KD3_E_KEYFILE;
	}
	if (*p != ':') {
		*why = "expected 'key = KVNO:HEX' (a ':' after the kvno)";
		return KD3_E_KEYFILE;
	}
	p++;
	if (strlen(p) != KEYFILE_HEX_LEN) {
		*why = "key must be exactly 64 hex digits";
		return KD3_E_KEYFILE;
	}
	for (size_t i = 0; i < KD3_KEY_LEN; i++) {
		int hi = hex_value(p[2 * i]), lo = hex_value(p[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			kd3_wipe(key, KD3_KEY_LEN);
			*why = "key has a character that is not a hex digit";
			return KD3_E_KEYFILE;
		}
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	*kvno = (uint32_t)k;
	return KD3_OK;
}

static int add_key(kd3_keyfile *kf, const char *v, const char **why)
{
	kd3_keyfile_entry e;
	int ret = parse_key_value(v, &e.kvno, e.key, why);
	if (ret != KD3_OK)
		goto out;
	ret = KD3_E_KEYFILE;
	for (size_t i = 0; i < kf->nkeys; i++) {
		if (kf->keys[i].kvno == e.kvno) {
			*why = "duplicate kvno";
			goto out;
		}
	}
	if (kf->nkeys >= KD3_KEYFILE_KEYS_MAX) {
		*why = "too many keys (max 8)";
		goto out;
	}
	kf->keys[kf->nkeys++] = e;
	ret = KD3_OK;
out:
	kd3_wipe(&e, sizeof(e));
	return ret;
}

static int set_principal(kd3_keyfile *kf, const char *v, const char **why)
{
	if (kf->principal[0]) {
		*why = "duplicate 'principal' line";
		return KD3_E_KEYFILE;
	}
	if (!kd3_name_valid_cstr(v)) {
		*why = "principal name must be 1..255 characters of A-Z a-z 0-9 . _ @ / -";
		return KD3_E_KEYFILE;
	}
	memcpy(kf->principal, v, strlen(v) + 1);
	return KD3_OK;
}

/* One line, already NUL-terminated and free of its '\n'. */
static int parse_line(kd3_keyfile *kf, char *line, const char **why)
{
	char *s = trim(line);
	if (*s == '\0' || *s == '#')
		return KD3_OK;
	char *eq = strchr(s, '=');
	if (!eq) {
		*why = "expected 'principal = NAME' or 'key = KVNO:HEX'";
		return KD3_E_KEYFILE;
	}
	*eq = '\0';
	char *name = trim(s), *value = trim(eq + 1);
	if (strcmp(name, "principal") == 0)
		return set_principal(kf, value, why);
	if (strcmp(name, "key") == 0)
		return add_key(kf, value, why);
	*why = "unknown key (expected 'principal' or 'key')";
	return KD3_E_KEYFILE;
}

static int parse_text(kd3_keyfile *kf, const char *path, const char *text, size_t n, char *err,
                      size_t len)
{
	char line[KEYFILE_LINE_MAX + 1];
	const char *why = NULL;
	int ret = KD3_E_KEYFILE;
	size_t pos = 0;
	int lineno = 0;

	while (pos < n) {
		const char *nl = memchr(text + pos, '\n', n - pos);
		size_t line_len = nl ? (size_t)(nl - (text + pos)) : n - pos;
		lineno++;
		if (line_len > KEYFILE_LINE_MAX) {
			why = "line is too long (max 512 bytes)";
			goto fail;
		}
		if (memchr(text + pos, '\0', line_len)) {
			why = "line contains a NUL byte";
			goto fail;
		}
		memcpy(line, text + pos, line_len);
		line[line_len] = '\0';
		if (parse_line(kf, line, &why) != KD3_OK)
			goto fail;
		pos += line_len + 1;
	}
	ret = KD3_E_KEYFILE;
	if (!kf->principal[0])
		err_set(err, len, "%s: no 'principal = NAME' line", path);
	else if (kf->nkeys == 0)
		err_set(err, len, "%s: no 'key = KVNO:HEX' line", path);
	else
		ret = KD3_OK;
	goto out;
fail:
	err_set(err, len, "%s:%d: %s", path, lineno, why);
out:
	kd3_wipe(line, sizeof(line));
	return ret;
}

int kd3_keyfile_load(const char *path, kd3_keyfile *kf, char *err, size_t err_len)
{
	int ret = KD3_E_KEYFILE;
	int fd = -1;
	size_t n = 0;
	char *buf = NULL;

	memset(kf, 0, sizeof(*kf));
	ret = keyfile_open(path, &fd, err, err_len);
	if (ret != KD3_OK)
		goto out;
	ret = KD3_E_NOMEM;
	buf = malloc(KEYFILE_SIZE_MAX + 1);
	if (!buf) {
		err_set(err, err_len, "%s: out of memory", path);
		goto out;
	}
	ret = keyfile_read_all(fd, path, buf, &n, err, err_len);
	if (ret != KD3_OK)
		goto out;
	ret = parse_text(kf, path, buf, n, err, err_len);
out:
	if (buf) {
		kd3_wipe(buf, KEYFILE_SIZE_MAX + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	if (ret != KD3_OK)
		kd3_keyfile_wipe(kf);
	return ret;
}

/* ---- writing --------------------------------------------------------------- */

static int keyfile_check(const kd3_keyfile *kf, const char *path, char *err, size_t len)
{
	if (!kd3_name_valid_cstr(kf->principal)) {
		err_set(err, len, "%s: invalid principal name", path);
		return KD3_E_KEYFILE;
	}
	if (kf->nkeys == 0 || kf->nkeys > KD3_KEYFILE_KEYS_MAX) {
		err_set(err, len, "%s: a key file holds 1..%d keys, not %zu", path,
		        KD3_KEYFILE_KEYS_MAX, kf->nkeys);
		return KD3_E_KEYFILE;
	}
	for (size_t i = 0; i < kf->nkeys; i++) {
		if (kf->keys[i].kvno == 0) {
			err_set(err, len, "%s: kvno 0 is not valid", path);
			return KD3_E_KEYFILE;
		}
		for (size_t j = 0; j < i; j++) {
			if (kf->keys[j].kvno == kf->keys[i].kvno) {
				err_set(err, len, "%s: duplicate kvno %u", path,
				        (unsigned)kf->keys[i].kvno);
				return KD3_E_KEYFILE;
			}
		}
	}
	return KD3_OK;
}

/* The file's text; out is wiped by the caller. */
static int keyfile_render(const kd3_keyfile *kf, char *out, size_t cap, size_t *n)
{
	static const char hex[] = "0123456789abcdef";
	int w = snprintf(out, cap, "# kd3 key file: keep secret (mode 0600)\nprincipal = %s\n",
	                 kf->principal);
	if (w < 0 || (size_t)w >= cap)
		return KD3_E_NO_SPACE;
	size_t at = (size_t)w;
	for (size_t i = 0; i < kf->nkeys; i++) {
		w = snprintf(out + at, cap - at, "key = %u:", (unsigned)kf->keys[i].kvno);
		if (w < 0 || (size_t)w >= cap - at || cap - at - (size_t)w < KEYFILE_HEX_LEN + 2)
			return KD3_E_NO_SPACE;
		at += (size_t)w;
		for (size_t b = 0; b < KD3_KEY_LEN; b++) {
			out[at++] = hex[kf->keys[i].key[b] >> 4];
			out[at++] = hex[kf->keys[i].key[b] & 15];
		}
		out[at++] = '\n';
	}
	*n = at;
	return KD3_OK;
}

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

/* The directory part of path ("." when there is none). */
static void dir_of(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		snprintf(dir, cap, ".");
		return;
	}
	if (slash == path) {
		snprintf(dir, cap, "/");
		return;
	}
	snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

static int fsync_dir(const char *path)
{
	char dir[PATH_MAX];
	dir_of(path, dir, sizeof(dir));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return KD3_E_IO;
	int ret = fsync(fd) == 0 ? KD3_OK : KD3_E_IO;
	close(fd);
	return ret;
}

/* Moves tmp to path; without overwrite, atomically refuses an existing path. */
static int keyfile_publish(const char *tmp, const char *path, int overwrite)
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

static int keyfile_write_tmp(const char *tmp_template, char *tmp, const char *text, size_t n)
{
	memcpy(tmp, tmp_template, strlen(tmp_template) + 1);
	/* mkostemp: O_CREAT | O_EXCL, mode 0600. */
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		tmp[0] = '\0';
		return KD3_E_IO;
	}
	int ret = KD3_E_IO, saved = 0;
	if (fchmod(fd, 0600) == 0 && write_all(fd, text, n) == KD3_OK && fsync(fd) == 0)
		ret = KD3_OK;
	else
		saved = errno;
	if (close(fd) != 0 && ret == KD3_OK) {
		ret = KD3_E_IO;
		saved = errno;
	}
	errno = saved; /* the caller reports the first failure */
	return ret;
}

int kd3_keyfile_stage_write(kd3_keyfile_stage *st, const char *path, const kd3_keyfile *kf,
                            char *err, size_t err_len)
{
	char text[2048], tmpl[PATH_MAX];
	size_t n = 0;
	int ret = keyfile_check(kf, path, err, err_len);

	st->tmp[0] = '\0';
	if (ret != KD3_OK)
		goto out;
	ret = KD3_E_IO;
	if (snprintf(st->path, sizeof(st->path), "%s", path) >= (int)sizeof(st->path) ||
	    snprintf(tmpl, sizeof(tmpl), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmpl)) {
		err_set(err, err_len, "%s: path is too long", path);
		goto out;
	}
	ret = keyfile_render(kf, text, sizeof(text), &n);
	if (ret != KD3_OK) {
		err_set(err, err_len, "%s: %s", path, kd3_strerror(ret));
		goto out;
	}
	ret = keyfile_write_tmp(tmpl, st->tmp, text, n);
	if (ret != KD3_OK)
		err_set(err, err_len, "%s: cannot write a temporary file next to it: %s", path,
		        strerror(errno));
out:
	if (ret != KD3_OK)
		kd3_keyfile_stage_discard(st);
	kd3_wipe(text, sizeof(text));
	return ret;
}

int kd3_keyfile_stage_publish(kd3_keyfile_stage *st, int overwrite, char *err, size_t err_len)
{
	if (!st->tmp[0]) {
		err_set(err, err_len, "%s: no key file was staged", st->path);
		return KD3_E_IO;
	}
	int ret = keyfile_publish(st->tmp, st->path, overwrite);
	if (ret == KD3_E_EXISTS)
		err_set(err, err_len, "%s: already exists; refusing to overwrite it", st->path);
	else if (ret != KD3_OK)
		err_set(err, err_len, "%s: %s", st->path, strerror(errno));
	if (ret != KD3_OK) {
		kd3_keyfile_stage_discard(st);
		return ret;
	}
	st->tmp[0] = '\0'; /* published: nothing to clean up */
	ret = fsync_dir(st->path);
	if (ret != KD3_OK)
		err_set(err, err_len, "%s: cannot sync its directory: %s", st->path,
		        strerror(errno));
	return ret;
}

void kd3_keyfile_stage_discard(kd3_keyfile_stage *st)
{
	if (st->tmp[0])
		unlink(st->tmp);
	st->tmp[0] = '\0';
}

int kd3_keyfile_write(const char *path, const kd3_keyfile *kf, int overwrite, char *err,
                      size_t err_len)
{
	kd3_keyfile_stage st;
	struct stat sb;

	if (!overwrite && lstat(path, &sb) == 0) { /* fail early; publish checks again */
		err_set(err, err_len, "%s: already exists; refusing to overwrite it", path);
		return KD3_E_EXISTS;
	}
	int ret = kd3_keyfile_stage_write(&st, path, kf, err, err_len);
	if (ret == KD3_OK)
		ret = kd3_keyfile_stage_publish(&st, overwrite, err, err_len);
	return ret;
}
