/* shared/keyfile.c: round trip, permissions, strict parsing with line numbers, and
 * atomic writes that never overwrite by accident. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit_tmpdir.h"

#include "err.h"
#include "keyfile.h"

#define HEX_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX_B "FFEEDDCCBBAA99887766554433221100ffeeddccbbaa99887766554433221100"

static char dir[64];
static char path[128];
static char err[1024];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/kd3-test-keyfile-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/alice.key", dir);
	err[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return tmpdir_remove(dir);
}

static size_t dir_entries(void)
{
	size_t n = 0;
	struct dirent *e;
	DIR *d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void write_text(const char *p, const char *text, mode_t mode)
{
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(p, mode), 0);
}

static int load_text(const char *text, kd3_keyfile *kf)
{
	write_text(path, text, 0600);
	err[0] = '\0';
	return kd3_keyfile_load(path, kf, err, sizeof(err));
}

static int is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static void assert_err_at(int line, const char *reason)
{
	char want[1200];
	snprintf(want, sizeof(want), "%s:%d: %s", path, line, reason);
	assert_string_equal(err, want);
}

static void sample(kd3_keyfile *kf)
{
	memset(kf, 0, sizeof(*kf));
	snprintf(kf->principal, sizeof(kf->principal), "host/alice@EXAMPLE.org");
	kf->nkeys = 3;
	for (size_t i = 0; i < kf->nkeys; i++) {
		kf->keys[i].kvno = (uint32_t[]){7, 4294967295u, 1}[i];
		for (size_t b = 0; b < KD3_KEY_LEN; b++)
			kf->keys[i].key[b] = (uint8_t)(i * 64 + b);
	}
}

static void test_round_trip(void **state)
{
	kd3_keyfile kf, back;
	struct stat st;
	(void)state;
	sample(&kf);
	assert_int_equal(kd3_keyfile_write(path, &kf, 0, err, sizeof(err)), KD3_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(dir_entries(), 1); /* no temporary file left behind */
	assert_int_equal(kd3_keyfile_load(path, &back, err, sizeof(err)), KD3_OK);
	assert_string_equal(back.principal, kf.principal);
	assert_int_equal(back.nkeys, kf.nkeys);
	for (size_t i = 0; i < kf.nkeys; i++) {
		assert_int_equal(back.keys[i].kvno, kf.keys[i].kvno);
		assert_memory_equal(back.keys[i].key, kf.keys[i].key, KD3_KEY_LEN);
	}
	assert_int_equal(kd3_keyfile_latest(&back)->kvno, 4294967295u);
	kd3_keyfile_wipe(&back);
	assert_true(is_zero(&back, sizeof(back)));
}

static void test_parse_format(void **state)
{
	kd3_keyfile kf;
	(void)state;
	assert_int_equal(load_text("# kd3 key file\r\n"
	                           "\n"
	                           "   principal   =   alice  \r\n"
	                           "\t# indented comment\n"
	                           "key = 2:" HEX_A "\n"
	                           "key=1:" HEX_B, /* no final newline */
	                           &kf),
	                 KD3_OK);
	assert_string_equal(kf.principal, "alice");
	assert_int_equal(kf.nkeys, 2);
	assert_int_equal(kf.keys[0].kvno, 2);
	assert_int_equal(kf.keys[0].key[31], 0x1f);
	assert_int_equal(kf.keys[1].key[0], 0xff);
	assert_int_equal(kd3_keyfile_latest(&kf)->kvno, 2);
	kd3_keyfile_wipe(&kf);
}

static void test_perms_refused(void **state)
{
	static const mode_t modes[] = {0644, 0640, 0604, 0660};
	kd3_keyfile kf;
	char want[600];
	(void)state;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		write_text(path, "principal = alice\nkey = 1:" HEX_A "\n", modes[i]);
		assert_int_equal(kd3_keyfile_load(path, &kf, err, sizeof(err)),
		                 KD3_E_KEYFILE_PERMS);
		snprintf(want, sizeof(want),
		         "%s: key file is readable by group or others (mode 0%o); run chmod 600 %s",
		         path, (unsigned)modes[i], path);
		assert_string_equal(err, want);
		assert_true(is_zero(&kf, sizeof(kf)));
	}
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(kd3_keyfile_load(path, &kf, err, sizeof(err)), KD3_OK);
	kd3_keyfile_wipe(&kf);
}

/* A key file owned by someone else (not us, not root) is refused. Needs root to
 * give the file away; skipped otherwise. */
static void test_foreign_owner_refused(void **state)
{
	kd3_keyfile kf;
	(void)state;
	if (geteuid() != 0)
		skip();
	write_text(path, "principal = alice\nkey = 1:" HEX_A "\n", 0600);
	assert_int_equal(chown(path, 54321, 54321), 0);
	assert_int_equal(kd3_keyfile_load(path, &kf, err, sizeof(err)), KD3_E_KEYFILE_PERMS);
	assert_non_null(strstr(err, "owned by uid 54321"));
	assert_true(is_zero(&kf, sizeof(kf)));
	assert_int_equal(chown(path, 0, 0), 0);
	assert_int_equal(kd3_keyfile_load(path, &kf, err, sizeof(err)), KD3_OK);
	kd3_keyfile_wipe(&kf);
}

static void test_bad_hex(void **state)
{
	kd3_keyfile kf;
	(void)state;
	assert_int_equal(
	    load_text("principal = alice\n#\n"
	              "key = 1:g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
	              &kf),
	    KD3_E_KEYFILE);
	assert_err_at(3, "key has a character that is not a hex digit");
	assert_true(is_zero(&kf, sizeof(kf)));
	assert_int_equal(load_text("principal = alice\nkey = 1:" HEX_A "0\n", &kf), KD3_E_KEYFILE);
	assert_err_at(2, "key must be exactly 64 hex digits");
	assert_int_equal(load_text("principal = alice\nkey = 1:0001\n", &kf), KD3_E_KEYFILE);
	assert_err_at(2, "key must be exactly 64 hex digits");
	assert_int_equal(load_text("principal = alice\nkey = 1 " HEX_A "\n", &kf), KD3_E_KEYFILE);
	assert_err_at(2, "expected 'key = KVNO:HEX' (a ':' after the kvno)");
}

static void test_kvno_range(void **state)
{
	kd3_keyfile kf;
	(void)state;
	assert_int_equal(load_text("principal = a\nkey = 0:" HEX_A "\n", &kf), KD3_E_KEYFILE);
	assert_err_at(2, "kvno is out of range 1..4294967295");
	assert_int_equal(load_text("principal = a\nkey = 4294967296:" HEX_A "\n", &kf),
	                 KD3_E_KEYFILE);
	assert_err_at(2, "kvno is out of range 1..4294967295");
	assert_int_equal(load_text("principal = a\nkey = -1:" HEX_A "\n", &kf), KD3_E_KEYFILE);
	assert_int_equal(load_text("principal = a\nkey = 4294967295:" HEX_A "\n", &kf), KD3_OK);
	assert_int_equal(kf.keys[0].kvno, 4294967295u);
	kd3_keyfile_wipe(&kf);
}

static void test_duplicates(void **state)
{
	kd3_keyfile kf;
	(void)state;
	assert_int_equal(
	    load_text("principal = alice\nkey = 3:" HEX_A "\nkey = 3:" HEX_B "\n", &kf),
	    KD3_E_KEYFILE);
	assert_err_at(3, "duplicate kvno");
	assert_true(is_zero(&kf, sizeof(kf)));
	assert_int_equal(load_text("principal = alice\nprincipal = bob\n", &kf), KD3_E_KEYFILE);
	assert_err_at(2, "duplicate 'principal' line");
}

static void test_too_many_keys(void **state)
{
	char text[2048];
	size_t at = 0;
	kd3_keyfile kf;
	(void)state;
	at += (size_t)snprintf(text, sizeof(text), "principal = alice\n");
	for (int i = 1; i <= KD3_KEYFILE_KEYS_MAX + 1; i++)
		at += (size_t)snprintf(text + at, sizeof(text) - at, "key = %d:%s\n", i, HEX_A);
	assert_int_equal(load_text(text, &kf), KD3_E_KEYFILE);
	assert_err_at(KD3_KEYFILE_KEYS_MAX + 2, "too many keys (max 8)");
}

static void test_line_length(void **state)
{
	char text[1200];
	kd3_keyfile kf;
	(void)state;
	/* A 512-byte line is fine; 513 bytes is not. */
	snprintf(text, sizeof(text), "principal = alice\n#%0511d\nkey = 1:%s\n", 0, HEX_A);
	assert_int_equal(load_text(text, &kf), KD3_OK);
	kd3_keyfile_wipe(&kf);
	snprintf(text, sizeof(text), "principal = alice\n#%0512d\nkey = 1:%s\n", 0, HEX_A);
	assert_int_equal(load_text(text, &kf), KD3_E_KEYFILE);
	assert_err_at(2, "line is too long (max 512 bytes)");
}

static void test_file_too_large(void **state)
{
	kd3_keyfile kf;
	(void)state;
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("principal = alice\nkey = 1:" HEX_A "\n", f);
	for (int i = 0; i < 1100; i++)
		fputs("# padding padding padding padding padding padding padding padding\n", f);
	fclose(f);
	chmod(path, 0600);
	assert_int_equal(kd3_keyfile_load(path, &kf, err, sizeof(err)), KD3_E_KEYFILE);
	assert_non_null(strstr(err, ": key file is too large"));
}

static void test_structure_errors(void **state)
{
	kd3_keyfile kf;
	(void)state;
	assert_int_equal(load_text("key = 1:" HEX_A "\n", &kf), KD3_E_KEYFILE);
	assert_non_null(strstr(err, ": no 'principal = NAME' line"));
	assert_int_equal(load_text("principal = alice\n", &kf), KD3_E_KEYFILE);
	assert_non_null(strstr(err, ": no 'key = KVNO:HEX' line"));
	assert_int_equal(load_text("principal = bad name\nkey = 1:" HEX_A "\n", &kf),
	                 KD3_E_KEYFILE);
	assert_non_null(strstr(err, ":1: principal name must be"));
	assert_int_equal(load_text("principal = alice\nsecret = 1\n", &kf), KD3_E_KEYFILE);
	assert_err_at(2, "unknown key (expected 'principal' or 'key')");
	assert_int_equal(load_text("principal = alice\njunk\n", &kf), KD3_E_KEYFILE);
	assert_err_at(2, "expected 'principal = NAME' or 'key = KVNO:HEX'");
	assert_int_equal(load_text("", &kf), KD3_E_KEYFILE);
}

static void test_symlink_refused(void **state)
{
	char target[160];
	kd3_keyfile kf;
	(void)state;
	snprintf(target, sizeof(target), "%s/real.key", dir);
	write_text(target, "principal = alice\nkey = 1:" HEX_A "\n", 0600);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(kd3_keyfile_load(path, &kf, err, sizeof(err)), KD3_E_KEYFILE);
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(kd3_keyfile_load(target, &kf, err, sizeof(err)), KD3_OK);
	kd3_keyfile_wipe(&kf);
}

static void test_not_regular(void **state)
{
	kd3_keyfile kf;
	(void)state;
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(kd3_keyfile_load(path, &kf, err, sizeof(err)), KD3_E_KEYFILE);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(kd3_keyfile_load("/nonexistent/x.key", &kf, err, sizeof(err)),
	                 KD3_E_KEYFILE);
}

static void test_no_overwrite(void **state)
{
	kd3_keyfile kf, other, back;
	(void)state;
	sample(&kf);
	sample(&other);
	other.keys[0].key[0] ^= 1;
	assert_int_equal(kd3_keyfile_write(path, &kf, 0, err, sizeof(err)), KD3_OK);
	assert_int_equal(kd3_keyfile_write(path, &other, 0, err, sizeof(err)), KD3_E_EXISTS);
	assert_non_null(strstr(err, "already exists"));
	assert_int_equal(dir_entries(), 1);
	assert_int_equal(kd3_keyfile_load(path, &back, err, sizeof(err)), KD3_OK);
	assert_memory_equal(back.keys[0].key, kf.keys[0].key, KD3_KEY_LEN);
	/* A dangling symlink at the target counts as existing too. */
	char link_path[160];
	snprintf(link_path, sizeof(link_path), "%s/link.key", dir);
	assert_int_equal(symlink("/nonexistent", link_path), 0);
	assert_int_equal(kd3_keyfile_write(link_path, &kf, 0, err, sizeof(err)), KD3_E_EXISTS);
	/* With overwrite set, the file is replaced whole. */
	assert_int_equal(kd3_keyfile_write(path, &other, 1, err, sizeof(err)), KD3_OK);
	assert_int_equal(kd3_keyfile_load(path, &back, err, sizeof(err)), KD3_OK);
	assert_memory_equal(back.keys[0].key, other.keys[0].key, KD3_KEY_LEN);
	assert_int_equal(dir_entries(), 2);
	kd3_keyfile_wipe(&back);
}

static void test_write_refuses_bad_input(void **state)
{
	kd3_keyfile kf;
	char missing[160];
	(void)state;
	sample(&kf);
	kf.keys[1].kvno = kf.keys[0].kvno;
	assert_int_equal(kd3_keyfile_write(path, &kf, 0, err, sizeof(err)), KD3_E_KEYFILE);
	sample(&kf);
	kf.nkeys = 0;
	assert_int_equal(kd3_keyfile_write(path, &kf, 0, err, sizeof(err)), KD3_E_KEYFILE);
	sample(&kf);
	snprintf(kf.principal, sizeof(kf.principal), "no spaces");
	assert_int_equal(kd3_keyfile_write(path, &kf, 0, err, sizeof(err)), KD3_E_KEYFILE);
	sample(&kf);
	snprintf(missing, sizeof(missing), "%s/no/such/dir.key", dir);
	assert_int_equal(kd3_keyfile_write(missing, &kf, 0, err, sizeof(err)), KD3_E_IO);
	assert_int_equal(dir_entries(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parse_format, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_perms_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_owner_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_hex, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kvno_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_many_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_line_length, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_too_large, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_structure_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_regular, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_overwrite, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_refuses_bad_input, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
