/* kdc key files staged next to their final name, published after the commit. */
#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return KD3_E_IO;
	int ret = fsync(fd) == 0 ? KD3_OK : KD3_E_IO;
	close(fd);
	return ret;
}

int kdc_stage_write(kdc_stage *st, const char *path, const kd3_keyfile *kf, char *err,
                    size_t err_len)
{
	st->path = path;
	st->tmp[0] = '\0';
	if (snprintf(st->tmp, sizeof(st->tmp), "%s.new.XXXXXX", path) >= (int)sizeof(st->tmp)) {
		st->tmp[0] = '\0';
		snprintf(err, err_len, "%s: path is too long", path);
		return KD3_E_IO;
	}
	/* Reserve a fresh name (O_EXCL, mode 0600); the key file writer then replaces it
	 * atomically with the whole, fsynced file. */
	int fd = mkostemp(st->tmp, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, err_len, "%s: cannot write a temporary file next to it: %s", path,
		         strerror(errno));
		st->tmp[0] = '\0';
		return KD3_E_IO;
	}
	close(fd);
	int ret = kd3_keyfile_write(st->tmp, kf, 1, err, err_len);
	if (ret != KD3_OK)
		kdc_stage_discard(st);
	return ret;
}

/* rename() without replacing an existing path; link() where RENAME_NOREPLACE is not
 * supported (it refuses an existing name too). */
static int rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (link(from, to) != 0)
		return -1;
	unlink(from);
	return 0;
}

int kdc_stage_publish(kdc_stage *st, int overwrite, char *err, size_t err_len)
{
	if (!st->tmp[0]) {
		snprintf(err, err_len, "%s: no key file was staged", st->path);
		return KD3_E_IO;
	}
	int rc = overwrite ? rename(st->tmp, st->path) : rename_noreplace(st->tmp, st->path);
	if (rc != 0) {
		int saved = errno;
		if (saved == EEXIST)
			snprintf(err, err_len, "%s: already exists; refusing to overwrite it",
			         st->path);
		else
			snprintf(err, err_len, "%s: %s", st->path, strerror(saved));
		kdc_stage_discard(st);
		return saved == EEXIST ? KD3_E_EXISTS : KD3_E_IO;
	}
	st->tmp[0] = '\0'; /* published: nothing left to remove */
	if (fsync_dir_of(st->path) != KD3_OK) {
		snprintf(err, err_len, "%s: cannot sync its directory: %s", st->path,
		         strerror(errno));
		return KD3_E_IO;
	}
	return KD3_OK;
}

void kdc_stage_discard(kdc_stage *st)
{
	if (st->tmp[0])
		unlink(st->tmp);
	st->tmp[0] = '\0';
}
