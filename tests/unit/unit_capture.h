/* Unit-test helper: what the code under test writes to stderr, through a pipe. Keep a
 * capture under the pipe's 64 KiB, which the writer fills without a reader. */
#ifndef KD3_UNIT_CAPTURE_H
#define KD3_UNIT_CAPTURE_H

#include <fcntl.h>
#include <unistd.h>

static int saved_stderr = -1, pipe_rd = -1;

static inline void capture_begin(void)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	saved_stderr = dup(2);
	assert_int_equal(dup2(p[1], 2), 2);
	close(p[1]);
	pipe_rd = p[0];
}

/* stderr back as it was; what was written meanwhile, NUL-terminated (static). */
static inline char *capture_end(void)
{
	static char text[65536];
	size_t at = 0;
	ssize_t n;
	dup2(saved_stderr, 2);
	close(saved_stderr);
	while (at < sizeof(text) - 1 && (n = read(pipe_rd, text + at, sizeof(text) - 1 - at)) > 0)
		at += (size_t)n;
	close(pipe_rd);
	text[at] = '\0';
	return text;
}

#endif
