/* shared/conf.c: every option type, bounds, and errors that name file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <getopt.h>

#include "conf.h"
#include "err.h"
#include "wire.h"

struct settings {
	char name[KD3_CONF_STR_MAX];
	uint64_t workers;
	uint64_t big;
	int flag;
	uint8_t suite;
	uint8_t suites;
	kd3_conf_list deny;
};

static struct settings S;
static char dir[64];
static char path[128];
static char err[512];

static const kd3_option opts[] = {
    {"name", KD3_OPT_STR, S.name, 0, 0, "a string"},
    {"workers", KD3_OPT_UINT, &S.workers, 1, 256, "worker threads"},
    {"big", KD3_OPT_UINT, &S.big, 0, UINT64_MAX, "any u64"},
    {"flag", KD3_OPT_BOOL, &S.flag, 0, 0, "a switch"},
    {"suite", KD3_OPT_SUITE, &S.suite, 0, 0, "one suite"},
    {"suites", KD3_OPT_SUITES, &S.suites, 0, 0, "allowed suites"},
    {"deny", KD3_OPT_LIST, &S.deny, 0, 0, "pairs"},
    {"rekey-after-messages", KD3_OPT_UINT, &S.big, 0, UINT64_MAX, "dashed name"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int setup(void **state)
{
	(void)state;
	memset(&S, 0, sizeof(S));
	snprintf(dir, sizeof(dir), "/tmp/kd3-test-conf-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/kdc.conf", dir);
	err[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return rmdir(dir);
}

static void write_conf(const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int load(const char *text)
{
	write_conf(text);
	err[0] = '\0';
	return kd3_conf_load(path, "kdc", opts, NOPTS, err, sizeof(err));
}

/* err must be exactly "<path>:<line>: <reason>". */
static void assert_err_at(int line, const char *reason)
{
	char want[600];
	snprintf(want, sizeof(want), "%s:%d: %s", path, line, reason);
	assert_string_equal(err, want);
}

static void test_every_type(void **state)
{
	(void)state;
	assert_int_equal(load("# comment\n"
	                      "name = hello world\n"
	                      "[kdc]\n"
	                      "workers = 256\n"
	                      "big = 18446744073709551615\n"
	                      "flag = yes\n"
	                      "suite = aes-256-gcm\n"
	                      "suites = chacha20-poly1305 , aes-256-gcm\n"
	                      "deny = a->b, c->d\n"
	                      "deny = e->f\n"),
	                 KD3_OK);
	assert_string_equal(S.name, "hello world");
	assert_int_equal(S.workers, 256);
	assert_true(S.big == UINT64_MAX);
	assert_int_equal(S.flag, 1);
	assert_int_equal(S.suite, KD3_SUITE_AES256GCM);
	assert_int_equal(S.suites, (1 << KD3_SUITE_CHACHAPOLY) | (1 << KD3_SUITE_AES256GCM));
	assert_int_equal(S.deny.n, 3);
	assert_string_equal(S.deny.item[0], "a->b");
	assert_string_equal(S.deny.item[1], "c->d");
	assert_string_equal(S.deny.item[2], "e->f");
}

static void test_bool_words(void **state)
{
	static const char *const yes[] = {"yes", "true", "on", "1", "YES"};
	static const char *const no[] = {"no", "false", "off", "0", "Off"};
	char err2[256];
	(void)state;
	for (size_t i = 0; i < 5; i++) {
		S.flag = 0;
		assert_int_equal(kd3_conf_set(opts, NOPTS, "flag", yes[i], err2, sizeof(err2)),
		                 KD3_OK);
		assert_int_equal(S.flag, 1);
		assert_int_equal(kd3_conf_set(opts, NOPTS, "flag", no[i], err2, sizeof(err2)),
		                 KD3_OK);
		assert_int_equal(S.flag, 0);
	}
	assert_int_equal(load("flag = maybe\n"), KD3_E_CONFIG);
	assert_err_at(1, "flag: 'maybe' is not yes/no, true/false, on/off or 1/0");
}

static void test_uint_bounds(void **state)
{
	(void)state;
	assert_int_equal(load("workers = 1\n"), KD3_OK);
	assert_int_equal(S.workers, 1);
	assert_int_equal(load("\n\nworkers = 0\n"), KD3_E_CONFIG);
	assert_err_at(3, "workers: '0' is out of range 1..256");
	assert_int_equal(load("workers = 257\n"), KD3_E_CONFIG);
	assert_err_at(1, "workers: '257' is out of range 1..256");
	assert_int_equal(S.workers, 1); /* a refused value changes nothing */
}

static void test_uint_not_decimal(void **state)
{
	static const char *const bad[] = {"-1", "+1", "0x10", "1k", "1.5", "", "1 2"};
	char text[64];
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "workers = %s\n", bad[i]);
		assert_int_equal(load(text), KD3_E_CONFIG);
		assert_non_null(strstr(err, ":1: workers: '"));
		assert_non_null(strstr(err, "is not a decimal number"));
	}
}

static void test_uint_overflow(void **state)
{
	(void)state;
	assert_int_equal(load("big = 18446744073709551616\n"), KD3_E_CONFIG);
	assert_non_null(strstr(err, ":1: big: '18446744073709551616' is not a decimal number"));
	assert_int_equal(load("big = 99999999999999999999999\n"), KD3_E_CONFIG);
	assert_int_equal(load("big = 0000000000000000000000001\n"), KD3_OK);
	assert_true(S.big == 1);
}

static void test_unknown_key_names_line(void **state)
{
	(void)state;
	assert_int_equal(load("[kdc]\n# x\nworkers = 2\nlisen = 127.0.0.1\nworkers = 3\n"),
	                 KD3_E_CONFIG);
	assert_err_at(4, "unknown key 'lisen'");
	assert_int_equal(S.workers, 2); /* parsing stopped at the first error */
}

static void test_bad_section(void **state)
{
	(void)state;
	assert_int_equal(load("workers = 2\n[responder]\nworkers = 3\n"), KD3_E_CONFIG);
	assert_err_at(3, "unknown section [responder]");
	/* No section asked for: only keys outside any section. */
	write_conf("[kdc]\nworkers = 3\n");
	assert_int_equal(kd3_conf_load(path, NULL, opts, NOPTS, err, sizeof(err)), KD3_E_CONFIG);
	assert_err_at(2, "unknown section [kdc]");
}

static void test_syntax_error(void **state)
{
	(void)state;
	assert_int_equal(load("workers = 2\njust words\n"), KD3_E_CONFIG);
	assert_err_at(2, "syntax error (expected 'key = value' or [section])");
}

static void test_long_line(void **state)
{
	char text[600];
	(void)state;
	snprintf(text, sizeof(text), "workers = 2\nname = %0300d\n", 7);
	assert_int_equal(load(text), KD3_E_CONFIG);
	assert_non_null(strstr(err, ":2: line is too long"));
}

/* The limit in the message is the real one: that many bytes load, one more does not. */
static void test_long_line_limit_exact(void **state)
{
	char text[1200];
	int max = 0;
	(void)state;
	memset(text, 'x', sizeof(text));
	memcpy(text, "name = ", 7);
	text[sizeof(text) - 2] = '\n';
	text[sizeof(text) - 1] = '\0';
	assert_int_equal(load(text), KD3_E_CONFIG);
	assert_int_equal(sscanf(strstr(err, "(max "), "(max %d bytes", &max), 1);
	assert_true(max > 20 && max < (int)sizeof(text) - 2);
	char want[96];
	snprintf(want, sizeof(want), "line is too long (max %d bytes before the line end)", max);
	assert_err_at(1, want);
	/* Exactly max bytes, with and without a final '\n': accepted. */
	text[max] = '\n';
	text[max + 1] = '\0';
	assert_int_equal(load(text), KD3_OK);
	assert_int_equal(strlen(S.name), (size_t)max - 7);
	text[max] = '\0';
	assert_int_equal(load(text), KD3_OK);
	/* max + 1 bytes: refused, with and without the '\n'. */
	text[max] = 'x';
	text[max + 1] = '\n';
	text[max + 2] = '\0';
	assert_int_equal(load(text), KD3_E_CONFIG);
	assert_err_at(1, want);
	text[max + 1] = '\0';
	assert_int_equal(load(text), KD3_E_CONFIG);
	assert_err_at(1, want);
}

/* inih would cut "a ; b" to "a": refused, whatever the blank and the comment sign. */
static void test_inline_comment_refused(void **state)
{
	static const char *const bad[] = {
	    "name = handler --mode=strict ; logger\n",
	    "name = handler --mode=strict # logger\n",
	    "name = handler\t;logger\n",
	    "name = ;x\n",
	    "workers = 2 ; two\n",
	    "[kdc] ; the section\n",
	};
	static const char reason[] =
	    "inline comments are not supported; put the comment on its own line";
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&S, 0, sizeof(S));
		char text[128];
		snprintf(text, sizeof(text), "# ok\n%s", bad[i]);
		assert_int_equal(load(text), KD3_E_CONFIG);
		assert_err_at(2, reason);
		assert_string_equal(S.name, ""); /* nothing was set from that line */
	}
	/* ';' and '#' with no blank before them are part of the value, as inih reads it. */
	assert_int_equal(load("name = a;b#c\n; a comment\n# another\n   ; indented comment\n"),
	                 KD3_OK);
	assert_string_equal(S.name, "a;b#c");
}

/* inih would take an indented line as the previous key's value: refused. */
static void test_indented_line_refused(void **state)
{
	static const char reason[] = "indented line: continuation lines are not supported";
	(void)state;
	assert_int_equal(load("name = first\n  second\n"), KD3_E_CONFIG);
	assert_err_at(2, reason);
	assert_string_equal(S.name, "first");
	assert_int_equal(load("workers = 2\n\tworkers = 3\n"), KD3_E_CONFIG);
	assert_err_at(2, reason);
	assert_int_equal(S.workers, 2);
	assert_int_equal(load(" workers = 4\n"), KD3_E_CONFIG);
	assert_err_at(1, reason);
	assert_int_equal(load("  [kdc]\n"), KD3_E_CONFIG);
	assert_err_at(1, reason);
	/* Blank lines made of blanks, and CRLF line ends, are fine. */
	assert_int_equal(load("name = x\r\n   \r\n\t\nworkers = 5\r\n"), KD3_OK);
	assert_int_equal(S.workers, 5);
}

static void test_nul_byte_refused(void **state)
{
	static const char text[] = "workers = 2\nname = abc\0def\n";
	(void)state;
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, sizeof(text) - 1, f), sizeof(text) - 1);
	fclose(f);
	assert_int_equal(kd3_conf_load(path, "kdc", opts, NOPTS, err, sizeof(err)), KD3_E_CONFIG);
	assert_err_at(2, "line contains a NUL byte");
	assert_string_equal(S.name, "");
}

/* A second value for a single-value key would silently win: refused. Lists repeat. */
static void test_repeated_key_refused(void **state)
{
	(void)state;
	assert_int_equal(load("workers = 2\nname = x\nworkers = 3\n"), KD3_E_CONFIG);
	assert_err_at(3, "workers: set twice (first on line 1); only list options may repeat");
	assert_int_equal(S.workers, 2);
	/* Outside the section and inside it are the same key. */
	assert_int_equal(load("flag = yes\n[kdc]\nflag = no\n"), KD3_E_CONFIG);
	assert_err_at(3, "flag: set twice (first on line 1); only list options may repeat");
	assert_int_equal(load("suites = aes-256-gcm\n\nsuites = chacha20-poly1305\n"),
	                 KD3_E_CONFIG);
	assert_err_at(3, "suites: set twice (first on line 1); only list options may repeat");
	/* Each file starts afresh; a list may repeat. */
	memset(&S, 0, sizeof(S));
	assert_int_equal(load("workers = 7\ndeny = a->b\ndeny = c->d\n"), KD3_OK);
	assert_int_equal(S.workers, 7);
	assert_int_equal(S.deny.n, 2);
}

/* rekey_after_messages is rekey-after-messages; a key is still set once only, whichever
 * spelling; other characters must match exactly. */
static void test_underscore_is_dash(void **state)
{
	(void)state;
	assert_int_equal(load("rekey_after_messages = 5\n"), KD3_OK);
	assert_true(S.big == 5);
	assert_int_equal(load("rekey-after-messages = 6\n"), KD3_OK);
	assert_true(S.big == 6);
	assert_int_equal(load("rekey_after-messages = 7\n"), KD3_OK);
	assert_true(S.big == 7);
	assert_int_equal(load("rekey_after_messages = 5\nrekey-after-messages = 6\n"),
	                 KD3_E_CONFIG);
	assert_err_at(2, "rekey-after-messages: set twice (first on line 1); only list options "
	                 "may repeat");
	assert_int_equal(load("rekey.after.messages = 5\n"), KD3_E_CONFIG);
	assert_int_equal(load("rekey_after_message = 5\n"), KD3_E_CONFIG);
	assert_int_equal(load("rekey_after_messagess = 5\n"), KD3_E_CONFIG);
}

static void test_str_too_long(void **state)
{
	char value[KD3_CONF_STR_MAX + 8];
	char err2[256];
	(void)state;
	memset(value, 'x', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	assert_int_equal(kd3_conf_set(opts, NOPTS, "name", value, err2, sizeof(err2)),
	                 KD3_E_CONFIG);
	assert_non_null(strstr(err2, "--name: value is too long"));
	value[KD3_CONF_STR_MAX - 1] = '\0'; /* 255 bytes fit */
	assert_int_equal(kd3_conf_set(opts, NOPTS, "name", value, err2, sizeof(err2)), KD3_OK);
	assert_int_equal(strlen(S.name), KD3_CONF_STR_MAX - 1);
}

static void test_suites(void **state)
{
	uint8_t s = 0;
	(void)state;
	assert_int_equal(kd3_suite_parse("chacha20-poly1305", &s), KD3_OK);
	assert_int_equal(s, KD3_SUITE_CHACHAPOLY);
	assert_int_equal(kd3_suite_parse("aes-256-gcm", &s), KD3_OK);
	assert_int_equal(s, KD3_SUITE_AES256GCM);
	assert_int_equal(kd3_suite_parse("aes-128-gcm", &s), KD3_E_CONFIG);
	assert_int_equal(load("suites = chacha20-poly1305\n"), KD3_OK);
	assert_int_equal(S.suites, 1 << KD3_SUITE_CHACHAPOLY);
	assert_int_equal(load("suites = chacha20-poly1305, rot13\n"), KD3_E_CONFIG);
	assert_err_at(1, "suites: unknown suite 'rot13' (chacha20-poly1305 or aes-256-gcm)");
	assert_int_equal(load("suites = chacha20-poly1305,,aes-256-gcm\n"), KD3_E_CONFIG);
	assert_int_equal(load("suite = des\n"), KD3_E_CONFIG);
	assert_err_at(1, "suite: unknown suite 'des' (chacha20-poly1305 or aes-256-gcm)");
}

static void test_list_limits(void **state)
{
	(void)state;
	char text[16 * KD3_CONF_LIST_MAX + 32], want[64];
	size_t at = 0;
	/* Exactly the limit, one item per line: accepted; one more: refused on its line. */
	for (int i = 0; i < KD3_CONF_LIST_MAX; i++)
		at += (size_t)snprintf(text + at, sizeof(text) - at, "deny = %d\n", i);
	if (load(text) != KD3_OK)
		fail_msg("%s", err);
	assert_int_equal(S.deny.n, KD3_CONF_LIST_MAX);
	memset(&S.deny, 0, sizeof(S.deny));
	snprintf(text + at, sizeof(text) - at, "deny = x\n");
	assert_int_equal(load(text), KD3_E_CONFIG);
	snprintf(want, sizeof(want), "deny: too many items (max %d)", KD3_CONF_LIST_MAX);
	assert_err_at(KD3_CONF_LIST_MAX + 1, want);
	memset(&S.deny, 0, sizeof(S.deny));
	assert_int_equal(load("deny = a, ,b\n"), KD3_E_CONFIG);
	assert_non_null(strstr(err, ":1: deny: empty item"));
	assert_int_equal(S.deny.n, 0); /* all or nothing */
}

static void test_command_line(void **state)
{
	char err2[256];
	(void)state;
	assert_int_equal(kd3_conf_set(opts, NOPTS, "workers", "0", err2, sizeof(err2)),
	                 KD3_E_CONFIG);
	assert_string_equal(err2, "--workers: '0' is out of range 1..256");
	assert_int_equal(kd3_conf_set(opts, NOPTS, "lisen", "x", err2, sizeof(err2)), KD3_E_CONFIG);
	assert_string_equal(err2, "--lisen: unknown option");
	/* A repeated list option appends, as a repeated key does. */
	assert_int_equal(kd3_conf_set(opts, NOPTS, "deny", "a->b", err2, sizeof(err2)), KD3_OK);
	assert_int_equal(kd3_conf_set(opts, NOPTS, "deny", "c->d", err2, sizeof(err2)), KD3_OK);
	assert_int_equal(S.deny.n, 2);
}

static void test_missing_file(void **state)
{
	(void)state;
	assert_int_equal(
	    kd3_conf_load("/nonexistent/kdc.conf", "kdc", opts, NOPTS, err, sizeof(err)),
	    KD3_E_CONFIG);
	assert_string_equal(err, "/nonexistent/kdc.conf: No such file or directory");
}

/* Help lines: one per option, the help texts starting in one column. */
static void test_print_help(void **state)
{
	char out_path[160], line[256];
	int col = -1, lines = 0;
	(void)state;
	snprintf(out_path, sizeof(out_path), "%s/help.txt", dir);
	fflush(stdout);
	int saved = dup(1);
	FILE *f = fopen(out_path, "w+");
	assert_non_null(f);
	dup2(fileno(f), 1);
	kd3_conf_print_help(opts, NOPTS);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		const char *help = strstr(line, opts[lines].help);
		assert_non_null(help);
		assert_non_null(strstr(line, opts[lines].name));
		if (col < 0)
			col = (int)(help - line);
		assert_int_equal(help - line, col);
		lines++;
	}
	fclose(f);
	unlink(out_path);
	assert_int_equal(lines, NOPTS);
}

/* kd3_conf_arg_take alone: a bare boolean takes the next word when it is a boolean
 * word, and only then; "=value" and the other types are left as getopt gave them. */
static void test_arg_take(void **state)
{
	const kd3_option *flag = &opts[3], *name = &opts[0];
	char *words[] = {"prog", "--flag", "no", "--flag", "file", "--flag", "OFF", "--flag"};
	int argc = 8, next = 2;
	(void)state;
	assert_string_equal(kd3_conf_arg_take(flag, NULL, argc, words, &next), "no");
	assert_int_equal(next, 3);
	next = 4; /* "file" is not a boolean word: it stays, the flag means yes */
	assert_string_equal(kd3_conf_arg_take(flag, NULL, argc, words, &next), "yes");
	assert_int_equal(next, 4);
	next = 6;
	assert_string_equal(kd3_conf_arg_take(flag, NULL, argc, words, &next), "OFF");
	assert_int_equal(next, 7);
	next = 8; /* last word: nothing follows */
	assert_string_equal(kd3_conf_arg_take(flag, NULL, argc, words, &next), "yes");
	assert_int_equal(next, 8);
	next = 2; /* --flag=on: the word after it is not looked at */
	assert_string_equal(kd3_conf_arg_take(flag, "on", argc, words, &next), "on");
	assert_int_equal(next, 2);
	next = 2; /* a string option's value is getopt's */
	assert_string_equal(kd3_conf_arg_take(name, "x", argc, words, &next), "x");
	assert_int_equal(next, 2);
	const char *each[] = {"yes", "no", "true", "false", "on", "off", "1", "0", "Yes", "NO"};
	for (size_t i = 0; i < sizeof(each) / sizeof(each[0]); i++) {
		char *w[] = {"prog", "--flag", (char *)each[i]};
		next = 2;
		assert_ptr_equal(kd3_conf_arg_take(flag, NULL, 3, w, &next), each[i]);
		assert_int_equal(next, 3);
	}
	char *not_bool[] = {"prog", "--flag", "nope", "--flag", "", "-", "2"};
	for (int at = 2; at < 7; at++) {
		next = at;
		assert_string_equal(kd3_conf_arg_take(flag, NULL, 7, not_bool, &next), "yes");
		assert_int_equal(next, at);
	}
}

/* One getopt_long pass over argv, as the programs run it: table values applied, the
 * words left over (positional arguments) copied into rest. */
static int getopt_pass(int argc, char **argv, char rest[][32], int *nrest)
{
	struct option lo[NOPTS + 1];
	char why[256];
	int c;
	for (size_t i = 0; i < NOPTS; i++)
		lo[i] = kd3_conf_longopt(&opts[i], 256 + (int)i);
	lo[NOPTS] = (struct option){NULL, 0, NULL, 0};
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c < 256)
			return KD3_E_USAGE;
		const kd3_option *o = &opts[c - 256];
		const char *v = kd3_conf_arg_take(o, optarg, argc, argv, &optind);
		if (kd3_conf_set(opts, NOPTS, o->name, v, why, sizeof(why)) != KD3_OK)
			return KD3_E_CONFIG;
	}
	*nrest = 0;
	for (int i = optind; i < argc; i++)
		snprintf(rest[(*nrest)++], 32, "%s", argv[i]);
	return KD3_OK;
}

/* "--flag no" through getopt_long itself, which permutes argv (positional words move
 * to the end): twice over the same argv, as the responder and the initiator parse it
 * (--config first, then the rest), both passes agree; a word that is no boolean stays
 * positional. */
static void test_bool_next_word_getopt(void **state)
{
	char a0[] = "prog", a1[] = "first", a2[] = "--flag", a3[] = "no", a4[] = "--name",
	     a5[] = "n", a6[] = "--flag", a7[] = "trace.out", a8[] = "--flag", a9[] = "off";
	char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, NULL};
	char rest[8][32];
	int nrest = 0;
	(void)state;
	for (int pass = 0; pass < 2; pass++) {
		S.flag = 1;
		assert_int_equal(getopt_pass(10, argv, rest, &nrest), KD3_OK);
		assert_int_equal(S.flag, 0); /* the last one, "--flag off", wins */
		assert_string_equal(S.name, "n");
		assert_int_equal(nrest, 2);
		assert_string_equal(rest[0], "first");
		assert_string_equal(rest[1], "trace.out");
	}
	/* Alone at the end, and with '=': unchanged. */
	char b2[] = "--flag", b3[] = "--flag=no", b4[] = "--flag";
	char *argv2[] = {a0, b3, b2, NULL};
	S.flag = 0;
	assert_int_equal(getopt_pass(3, argv2, rest, &nrest), KD3_OK);
	assert_int_equal(S.flag, 1);
	assert_int_equal(nrest, 0);
	char *argv3[] = {a0, b4, a3, b3, NULL};
	S.flag = 1;
	assert_int_equal(getopt_pass(4, argv3, rest, &nrest), KD3_OK);
	assert_int_equal(S.flag, 0);
	assert_int_equal(nrest, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_every_type, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bool_words, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uint_bounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uint_not_decimal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uint_overflow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_key_names_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_section, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_line_limit_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inline_comment_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indented_line_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nul_byte_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_repeated_key_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_underscore_is_dash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_str_too_long, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_suites, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_command_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arg_take, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bool_next_word_getopt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_print_help, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
