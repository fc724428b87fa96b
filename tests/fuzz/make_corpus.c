/* Seed corpus generator for the fuzz targets.
 *
 *   usage: fuzz_make_corpus DIR           write DIR/<target>/<name> (DIR: tests/fuzz/corpus)
 *          fuzz_make_corpus --check DIR   exit 1 when a file differs or is missing
 *
 * Files it does not make (crash-* regression inputs) are left alone. */
#include "make_corpus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

static const char *out_dir;
static int check_mode;
static int stale, written;

void corpus_die(const char *what)
{
	fprintf(stderr, "make_corpus: %s\n", what);
	exit(1);
}

static int same_file(const char *path, const void *bytes, size_t len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	uint8_t *have = malloc(len + 1);
	size_t n = have ? fread(have, 1, len + 1, f) : 0;
	int same = have && n == len && memcmp(have, bytes, len) == 0;
	free(have);
	fclose(f);
	return same;
}

static void emit_one(const char *target, const char *name, const void *bytes, size_t len);

/* The transcript writer takes any frame: it gets the frame target's seeds. */
void corpus_emit(const char *target, const char *name, const void *bytes, size_t len)
{
	emit_one(target, name, bytes, len);
	if (strcmp(target, "frame") == 0)
		emit_one("transcript", name, bytes, len);
}

static void emit_one(const char *target, const char *name, const void *bytes, size_t len)
{
	char dir[1024], path[2048];
	snprintf(dir, sizeof(dir), "%s/%s", out_dir, target);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (check_mode) {
		if (!same_file(path, bytes, len)) {
			fprintf(stderr, "make_corpus: %s is missing or out of date\n", path);
			stale++;
		}
		return;
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		corpus_die(dir);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) != 0)
		corpus_die(path);
	written++;
}

void cb_reset(corpus_buf *b)
{
	b->len = 0;
}

void cb_bytes(corpus_buf *b, const void *p, size_t n)
{
	if (n > sizeof(b->bytes) - b->len)
		corpus_die("corpus input too large");
	memcpy(b->bytes + b->len, p, n);
	b->len += n;
}

void cb_u8(corpus_buf *b, uint8_t v)
{
	cb_bytes(b, &v, 1);
}

void cb_u16(corpus_buf *b, uint16_t v)
{
	uint8_t be[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	cb_bytes(b, be, 2);
}

void cb_str(corpus_buf *b, const char *s)
{
	cb_bytes(b, s, strlen(s));
}

void cb_item(corpus_buf *b, int flag, const void *p, size_t n)
{
	cb_u16(b, (uint16_t)((flag ? FUZZ_FLAG : 0) | n));
	cb_bytes(b, p, n);
}

void cb_item_fixup(corpus_buf *b, int flag, const void *p, size_t n)
{
	cb_u16(b, (uint16_t)((flag ? FUZZ_FLAG : 0) | (FUZZ_FIXUP_BASE + n)));
	cb_bytes(b, p, n);
}

void cb_emit(const corpus_buf *b, const char *target, const char *name)
{
	corpus_emit(target, name, b->bytes, b->len);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--check") == 0) {
		check_mode = 1;
		out_dir = argv[2];
	} else if (argc == 2 && argv[1][0] != '-') {
		out_dir = argv[1];
		if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
			corpus_die(out_dir);
	} else {
		fprintf(stderr, "usage: %s [--check] DIR\n", argv[0]);
		return 2;
	}
	corpus_from_runs();
	corpus_edges();
	corpus_pgcopy();
	if (check_mode) {
		if (stale) {
			fprintf(stderr,
			        "make_corpus: %d files differ; regenerate with: "
			        "fuzz_make_corpus tests/fuzz/corpus\n",
			        stale);
			return 1;
		}
		printf("make_corpus: corpus is current\n");
		return 0;
	}
	printf("make_corpus: wrote %d files under %s\n", written, out_dir);
	return 0;
}
