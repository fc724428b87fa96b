#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", file, line, what);
	abort();
}

int fuzz_verbose(void)
{
	static int verbose = -1;
	if (verbose < 0)
		verbose = getenv("KD3_FUZZ_VERBOSE") != NULL;
	return verbose;
}

void fuzz_in_init(fuzz_in *in, const uint8_t *p, size_t len)
{
	in->p = p;
	in->len = len;
	in->off = 0;
}

size_t fuzz_left(const fuzz_in *in)
{
	return in->len - in->off;
}

int fuzz_u8(fuzz_in *in, uint8_t *v)
{
	if (fuzz_left(in) < 1)
		return 0;
	*v = in->p[in->off++];
	return 1;
}

int fuzz_u16(fuzz_in *in, uint16_t *v)
{
	if (fuzz_left(in) < 2)
		return 0;
	*v = (uint16_t)(in->p[in->off] << 8 | in->p[in->off + 1]);
	in->off += 2;
	return 1;
}

const uint8_t *fuzz_take(fuzz_in *in, size_t n, size_t *got)
{
	const uint8_t *p = in->p + in->off;
	*got = n < fuzz_left(in) ? n : fuzz_left(in);
	in->off += *got;
	return p;
}

uint8_t *fuzz_dup(const uint8_t *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);
	FUZZ_CHECK(q != NULL);
	if (n)
		memcpy(q, p, n);
	return q;
}

int fuzz_inside(const void *base, size_t len, const void *p, size_t n)
{
	const uint8_t *b = base, *q = p;
	return q >= b && n <= len && (size_t)(q - b) <= len - n;
}

/* ---- temp files ------------------------------------------------------------ */

#define TEMPS_MAX 4
static char temp_paths[TEMPS_MAX][256];
static size_t ntemps;

static void temps_remove(void)
{
	for (size_t i = 0; i < ntemps; i++)
		unlink(temp_paths[i]);
}

static const char *temp_dir(void)
{
	const char *dir = getenv("TMPDIR");
	if (access("/dev/shm", W_OK) == 0)
		return "/dev/shm";
	return dir && *dir ? dir : "/tmp";
}

int fuzz_temp_open(fuzz_temp *t, const char *tag)
{
	FUZZ_CHECK(ntemps < TEMPS_MAX);
	snprintf(t->path, sizeof(t->path), "%s/kd3-fuzz-%s-XXXXXX", temp_dir(), tag);
	t->fd = mkstemp(t->path); /* mode 0600 */
	if (t->fd < 0)
		return -1;
	if (ntemps == 0)
		atexit(temps_remove);
	snprintf(temp_paths[ntemps++], sizeof(temp_paths[0]), "%s", t->path);
	return 0;
}

void fuzz_temp_write(fuzz_temp *t, const uint8_t *p, size_t n)
{
	FUZZ_CHECK(ftruncate(t->fd, 0) == 0);
	size_t done = 0;
	while (done < n) {
		ssize_t w = pwrite(t->fd, p + done, n - done, (off_t)done);
		FUZZ_CHECK(w > 0);
		done += (size_t)w;
	}
}
