/* shared/privfile_stage.c: staging, publish and discard, and the sweep of crash
 * leftovers. The sweep must never zero bytes that another name still reaches (a move
 * into place cut between link and unlink, or a hard link planted in a shared folder),
 * never touch a file its writer holds, never open what is not a regular file, and
 * zero kd3 0.1's unlocked names only once no 0.1 writer can be at work. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit_tmpdir.h"

#include "err.h"
#include "privfile.h"

#define SECRET "master = 1:1111111111111111111111111111111111111111111111111111111111111111\n"

static char dir[64];
static char err[1024];

/* What the sweep told, per outcome, and the last reason. */
typedef struct told {
	int count[3];
	char why[256];
	char path[PATH_MAX];
} told;

static void record(void *ctx, const char *path, int outcome, long long size, const char *why)
{
	told *t = ctx;
	(void)size;
	t->count[outcome]++;
	snprintf(t->why, sizeof(t->why), "%s", why ? why : "");
	snprintf(t->path, sizeof(t->path), "%s", path);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/kd3-test-privstage-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return tmpdir_remove(dir);
}

static void in_dir(char out[PATH_MAX], const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

/* A file holding SECRET, mode 0600. */
static void make_secret(const char *path)
{
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, SECRET, strlen(SECRET)), (ssize_t)strlen(SECRET));
	close(fd);
}

static int holds_secret(const char *path)
{
	char buf[sizeof(SECRET)] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n == (ssize_t)strlen(SECRET) && memcmp(buf, SECRET, strlen(SECRET)) == 0;
}

static int exists(const char *path)
{
	struct stat sb;
	return lstat(path, &sb) == 0;
}

static int only_zeros(int fd)
{
	char buf[sizeof(SECRET)];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] != 0)
			return 0;
	return n == (ssize_t)strlen(SECRET);
}

/* An unheld leftover that is its file's only name: its bytes are zeroed (seen through
 * a descriptor opened before), then the name removed. */
static void test_leftover_is_wiped(void **state)
{
	char left[PATH_MAX];
	told t = {0};
	(void)state;
	in_dir(left, ".kd3-stage.Ab12Cd");
	make_secret(left);
	int fd = open(left, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(kd3_privfile_sweep(dir, record, &t), 1);
	assert_int_equal(t.count[KD3_SWEEP_WIPED], 1);
	assert_false(exists(left));
	assert_true(only_zeros(fd));
	close(fd);
}

/* The staging name is a second link to a live file (the stash after a link() fallback
 * cut before its unlink(), or a hard link someone planted): only the name goes; the
 * live file keeps every byte. Before the fix the sweep zeroed it. */
static void test_second_name_is_only_unlinked(void **state)
{
	char live[PATH_MAX], left[PATH_MAX];
	told t = {0};
	(void)state;
	in_dir(live, "kd3.db.stash");
	in_dir(left, ".kd3-stage.Zz99Yy");
	make_secret(live);
	assert_int_equal(link(live, left), 0);
	assert_int_equal(kd3_privfile_sweep(dir, record, &t), 1);
	assert_int_equal(t.count[KD3_SWEEP_UNLINKED], 1);
	assert_int_equal(t.count[KD3_SWEEP_WIPED], 0);
	assert_non_null(strstr(t.why, "another name links to the same file"));
	assert_false(exists(left));
	assert_true(holds_secret(live));
}

/* The same through a kd3 0.1 name, old enough to be zeroed otherwise. */
static void test_legacy_second_name_is_only_unlinked(void **state)
{
	char live[PATH_MAX], left[PATH_MAX];
	struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
	told t = {0};
	(void)state;
	in_dir(live, "alice.key");
	in_dir(left, "alice.key.tmp.Qr34St");
	make_secret(live);
	assert_int_equal(link(live, left), 0);
	assert_int_equal(utimensat(AT_FDCWD, left, old, 0), 0);
	assert_int_equal(kd3_privfile_sweep(dir, record, &t), 1);
	assert_int_equal(t.count[KD3_SWEEP_UNLINKED], 1);
	assert_true(holds_secret(live));
}

/* A file whose writer holds its lock is a command at work: not touched. */
static void test_held_file_is_left(void **state)
{
	char left[PATH_MAX];
	told t = {0};
	(void)state;
	in_dir(left, ".kd3-stage.Held01");
	make_secret(left);
	int fd = open(left, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(kd3_privfile_sweep(dir, record, &t), 0);
	assert_int_equal(t.count[0] + t.count[1] + t.count[2], 0);
	assert_true(holds_secret(left));
	close(fd);
	assert_int_equal(kd3_privfile_sweep(dir, record, &t), 1);
}

/* Not mode 0600 (so not what we staged): the name goes, the bytes are not ours to
 * overwrite. */
static void test_other_mode_is_only_unlinked(void **state)
{
	char left[PATH_MAX];
	told t = {0};
	(void)state;
	in_dir(left, ".kd3-stage.Mode44");
	make_secret(left);
	assert_int_equal(chmod(left, 0644), 0);
	int fd = open(left, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(kd3_privfile_sweep(dir, record, &t), 1);
	assert_int_equal(t.count[KD3_SWEEP_UNLINKED], 1);
	assert_false(only_zeros(fd));
	close(fd);
}

/* kd3 0.1 held no lock: a name of its written in the last ten minutes may be a 0.1
 * command between its write and its rename, so it stays (and is reported); an older
 * one is wiped. */
static void test_legacy_names_wait_ten_minutes(void **state)
{
	char young[PATH_MAX], old_name[PATH_MAX];
	struct timespec old[2] = {{time(NULL) - 601, 0}, {time(NULL) - 601, 0}};
	told t = {0};
	(void)state;
	in_dir(young, "kd3.db.stash.tmp.Ab12Cd");
	in_dir(old_name, "bob.key.tmp.Ef34Gh");
	make_secret(young);
	make_secret(old_name);
	assert_int_equal(utimensat(AT_FDCWD, old_name, old, 0), 0);
	assert_int_equal(kd3_privfile_sweep(dir, record, &t), 1);
	assert_int_equal(t.count[KD3_SWEEP_WIPED], 1);
	assert_int_equal(t.count[KD3_SWEEP_LEFT], 1);
	assert_non_null(strstr(t.why, "last 10 minutes"));
	assert_true(holds_secret(young));
	assert_false(exists(old_name));
}

/* A FIFO, a symbolic link (to a live file) and a folder under staging names: never
 * opened or followed, reported and left. */
static void test_not_regular_is_left(void **state)
{
	char fifo[PATH_MAX], link_name[PATH_MAX], live[PATH_MAX], sub[PATH_MAX];
	told t = {0};
	(void)state;
	in_dir(fifo, ".kd3-stage.Fifo00");
	in_dir(link_name, ".kd3-stage.Link00");
	in_dir(live, "live.key");
	in_dir(sub, ".kd3-stage.Dir000");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	make_secret(live);
	assert_int_equal(symlink(live, link_name), 0);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(kd3_privfile_sweep(dir, record, &t), 0);
	assert_int_equal(t.count[KD3_SWEEP_LEFT], 3);
	assert_non_null(strstr(t.why, "not a regular file"));
	assert_true(exists(fifo) && exists(link_name) && exists(sub));
	assert_true(holds_secret(live));
}

/* Names that only look alike are not ours. */
static void test_other_names_are_not_looked_at(void **state)
{
	const char *names[] = {".kd3-stage.short", ".kd3-stage.toolong1", "alice.key.tmp.",
	                       "alice.key.tmp.12345", "x.stash.tmp"};
	told t = {0};
	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char p[PATH_MAX];
		in_dir(p, names[i]);
		make_secret(p);
	}
	assert_int_equal(kd3_privfile_sweep(dir, record, &t), 0);
	assert_int_equal(t.count[0] + t.count[1] + t.count[2], 0);
}

static int staging_count(void)
{
	int n = 0;
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d)) != NULL;)
		n += strncmp(e->d_name, ".kd3-stage.", 11) == 0;
	if (d)
		closedir(d);
	return n;
}

/* Staged, then published: one file, mode 0600, no staging name left; publishing over
 * an existing name without overwrite is refused and the staged file removed. */
static void test_stage_and_publish(void **state)
{
	char target[PATH_MAX];
	kd3_staged_file st;
	struct stat sb;
	(void)state;
	in_dir(target, "k.key");
	assert_int_equal(kd3_privfile_stage(&st, target, SECRET, strlen(SECRET), err, sizeof(err)),
	                 KD3_OK);
	assert_int_equal(staging_count(), 1);
	assert_int_equal(kd3_privfile_publish(&st, 0, err, sizeof(err)), KD3_OK);
	assert_int_equal(st.fd, -1);
	assert_int_equal(staging_count(), 0);
	assert_int_equal(stat(target, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_true(holds_secret(target));

	assert_int_equal(kd3_privfile_stage(&st, target, "x = 1\n", 6, err, sizeof(err)), KD3_OK);
	assert_int_equal(kd3_privfile_publish(&st, 0, err, sizeof(err)), KD3_E_EXISTS);
	assert_non_null(strstr(err, "already exists"));
	assert_int_equal(staging_count(), 0);
	assert_true(holds_secret(target));
}

/* A staged file that also got a second name (as publish's link() fallback makes)
 * and is then discarded: the name goes, the other name keeps the bytes. */
static void test_discard_spares_a_second_name(void **state)
{
	char target[PATH_MAX], other[PATH_MAX];
	kd3_staged_file st;
	(void)state;
	in_dir(target, "k.key");
	in_dir(other, "k.key.published");
	assert_int_equal(kd3_privfile_stage(&st, target, SECRET, strlen(SECRET), err, sizeof(err)),
	                 KD3_OK);
	assert_int_equal(link(st.tmp, other), 0);
	kd3_privfile_discard(&st);
	assert_int_equal(staging_count(), 0);
	assert_true(holds_secret(other));
	assert_int_equal(st.fd, -1);
}

/* A plain discard zeroes first (seen through a second descriptor). */
static void test_discard_wipes(void **state)
{
	char target[PATH_MAX];
	kd3_staged_file st;
	(void)state;
	in_dir(target, "k.key");
	assert_int_equal(kd3_privfile_stage(&st, target, SECRET, strlen(SECRET), err, sizeof(err)),
	                 KD3_OK);
	int fd = open(st.tmp, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	kd3_privfile_discard(&st);
	assert_true(only_zeros(fd));
	close(fd);
	assert_int_equal(staging_count(), 0);
	assert_false(exists(target));
}

/* A target named as a staging file would be taken for a leftover by the next sweep
 * (a stash called .kd3-stage.Master was zeroed): refused before anything is written. */
static void test_staging_names_are_no_targets(void **state)
{
	const char *bad[] = {".kd3-stage.Master", "x.key.tmp.backup", "kd3.db.stash.tmp.Ab12Cd"};
	kd3_staged_file st;
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char target[PATH_MAX];
		in_dir(target, bad[i]);
		assert_int_equal(kd3_privfile_is_staging_name(target), 1);
		assert_int_equal(
		    kd3_privfile_write(target, SECRET, strlen(SECRET), 0, err, sizeof(err)),
		    KD3_E_IO);
		assert_non_null(strstr(err, "are kd3's staging files"));
		assert_int_equal(kd3_privfile_stage(&st, target, "x", 1, err, sizeof(err)),
		                 KD3_E_IO);
		assert_false(exists(target));
	}
	assert_int_equal(staging_count(), 0);
	assert_int_equal(kd3_privfile_is_staging_name("/x/.kd3-stage.Ab12Cd/k.key"), 0);
}

/* A kd3_staged_file = {0} that never staged has fd 0: discarding it must not close
 * standard input (kdc add's early errors did). */
static void test_discard_of_nothing_keeps_stdin(void **state)
{
	kd3_staged_file st = {0};
	(void)state;
	int opened = -1;
	if (fcntl(0, F_GETFD) < 0)
		opened = open("/dev/null", O_RDONLY); /* becomes 0 */
	assert_true(fcntl(0, F_GETFD) >= 0);
	kd3_privfile_discard(&st);
	assert_true(fcntl(0, F_GETFD) >= 0);
	assert_int_equal(st.fd, -1);
	if (opened == 0)
		close(opened);
}

static void test_folder(void **state)
{
	char out[PATH_MAX], big[PATH_MAX + 8];
	(void)state;
	assert_int_equal(kd3_privfile_folder("a.key", out), KD3_OK);
	assert_string_equal(out, ".");
	assert_int_equal(kd3_privfile_folder("/a.key", out), KD3_OK);
	assert_string_equal(out, "/");
	assert_int_equal(kd3_privfile_folder("/x/y/a.key", out), KD3_OK);
	assert_string_equal(out, "/x/y");
	memset(big, 'd', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[sizeof(big) - 3] = '/';
	assert_int_equal(kd3_privfile_folder(big, out), KD3_E_NO_SPACE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_leftover_is_wiped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_second_name_is_only_unlinked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_legacy_second_name_is_only_unlinked, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_held_file_is_left, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_mode_is_only_unlinked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_legacy_names_wait_ten_minutes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_regular_is_left, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_names_are_not_looked_at, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stage_and_publish, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_discard_spares_a_second_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_discard_wipes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_folder, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_staging_names_are_no_targets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_discard_of_nothing_keeps_stdin, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
