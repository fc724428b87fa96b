#include "stdfd.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

static int stdfd_reopen(int orig, int mode)
{
	char path[32];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", orig);
	return open(path, mode | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
}

void resp_stdfd_init(resp_stdfd *f, int orig)
{
	f->fd = -1;
	f->orig = orig;
	f->own = 0;
	f->restore = -1;
	f->regular = 0;
}

int resp_stdfd_open(resp_stdfd *f, int orig)
{
	int mode = orig == STDIN_FILENO ? O_RDONLY : O_WRONLY;
	struct stat st;

	resp_stdfd_init(f, orig);
	int flags = fcntl(orig, F_GETFL);
	int acc = flags & O_ACCMODE;
	if (flags < 0 || fstat(orig, &st) != 0 || (acc != mode && acc != O_RDWR))
		return KD3_E_IO;
	if (S_ISREG(st.st_mode)) {
		f->regular = 1;
		f->fd = orig;
		return KD3_OK;
	}
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		int fd = stdfd_reopen(orig, mode);
		if (fd >= 0) {
			f->fd = fd;
			f->own = 1;
			return KD3_OK;
		}
	}
	if (!(flags & O_NONBLOCK)) {
		if (fcntl(orig, F_SETFL, flags | O_NONBLOCK) != 0)
			return KD3_E_IO;
		f->restore = flags;
	}
	f->fd = orig;
	return KD3_OK;
}

void resp_stdfd_close(resp_stdfd *f)
{
	if (f->own && f->fd >= 0)
		close(f->fd);
	if (f->restore >= 0)
		(void)fcntl(f->orig, F_SETFL, f->restore);
	f->fd = -1;
	f->own = 0;
	f->restore = -1;
}
