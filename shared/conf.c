/* kd3 configuration: INI files (inih) and command-line values through one option
 * table, so a file key and a long option always mean the same thing. */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "err.h"
#include "items.h"
#include "wire.h"

/* Longest value quoted back in an error message. */
#define CONF_QUOTE_MAX 64

/* Most options one table may have (the kdc has 16): seen_line has a slot for each. */
#define CONF_OPTS_MAX 64

struct conf_ctx {
	FILE *file;
	const char *section;
	const kd3_option *opts;
	size_t nopts;
	int lineno;                   /* lines handed to inih so far: the line being parsed */
	int seen_line[CONF_OPTS_MAX]; /* where each option was set in this file (0: not yet) */
	int err;                      /* first failure, KD3_OK while none */
	int err_line;                 /* where it happened */
	char why[320];                /* its reason, without the "path:line: " prefix */
};

static void why_set(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void why_set(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

/* ---- one parser per value type ------------------------------------------- */

static int set_str(const kd3_option *o, const char *v, char *why, size_t len)
{
	size_t n = strlen(v);
	if (n >= KD3_CONF_STR_MAX) {
		why_set(why, len, "value is too long (%zu bytes, max %d)", n, KD3_CONF_STR_MAX - 1);
		return KD3_E_CONFIG;
	}
	memcpy(o->dst, v, n + 1);
	return KD3_OK;
}

/* Plain decimal only: no sign, no spaces, no base prefixes, no suffixes. */
static int parse_decimal(const char *v, uint64_t *out)
{
	uint64_t x = 0;
	if (!*v)
		return KD3_E_CONFIG;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9')
			return KD3_E_CONFIG;
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return KD3_E_CONFIG; /* overflow */
		x = x * 10 + d;
	}
	*out = x;
	return KD3_OK;
}

static int set_uint(const kd3_option *o, const char *v, char *why, size_t len)
{
	uint64_t x = 0;
	if (parse_decimal(v, &x) != KD3_OK) {
		why_set(why, len, "'%.*s' is not a decimal number in range %llu..%llu",
		        CONF_QUOTE_MAX, v, (unsigned long long)o->min, (unsigned long long)o->max);
		return KD3_E_CONFIG;
	}
	if (x < o->min || x > o->max) {
		why_set(why, len, "'%.*s' is out of range %llu..%llu", CONF_QUOTE_MAX, v,
		        (unsigned long long)o->min, (unsigned long long)o->max);
		return KD3_E_CONFIG;
	}
	*(uint64_t *)o->dst = x;
	return KD3_OK;
}

/* The words a boolean takes, each with its value; 1 when v is one of them. */
static int bool_word(const char *v, int *value)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
			*value = strcasecmp(v, yes[i]) == 0;
			return 1;
		}
	}
	return 0;
}

static int set_bool(const kd3_option *o, const char *v, char *why, size_t len)
{
	int value = 0;
	if (!bool_word(v, &value)) {
		why_set(why, len, "'%.*s' is not yes/no, true/false, on/off or 1/0", CONF_QUOTE_MAX,
		        v);
		return KD3_E_CONFIG;
	}
	*(int *)o->dst = value;
	return KD3_OK;
}

int kd3_suite_parse(const char *name, uint8_t *suite)
{
	if (strcasecmp(name, "chacha20-poly1305") == 0) {
		*suite = KD3_SUITE_CHACHAPOLY;
		return KD3_OK;
	}
	if (strcasecmp(name, "aes-256-gcm") == 0) {
		*suite = KD3_SUITE_AES256GCM;
		return KD3_OK;
	}
	return KD3_E_CONFIG;
}

static int set_suite(const kd3_option *o, const char *v, char *why, size_t len)
{
	if (kd3_suite_parse(v, (uint8_t *)o->dst) != KD3_OK) {
		why_set(why, len, "unknown suite '%.*s' (chacha20-poly1305 or aes-256-gcm)",
		        CONF_QUOTE_MAX, v);
		return KD3_E_CONFIG;
	}
	return KD3_OK;
}

static int suites_item(void *ctx, const char *s, size_t n, char *why, size_t len)
{
	uint8_t *bits = ctx;
	char name[32];
	uint8_t suite = 0;
	if (n < sizeof(name)) {
		memcpy(name, s, n);
		name[n] = '\0';
	}
	if (n >= sizeof(name) || kd3_suite_parse(name, &suite) != KD3_OK) {
		why_set(why, len, "unknown suite '%.*s' (chacha20-poly1305 or aes-256-gcm)",
		        (int)(n > CONF_QUOTE_MAX ? CONF_QUOTE_MAX : n), s);
		return KD3_E_CONFIG;
	}
	*bits |= (uint8_t)(1u << suite);
	return KD3_OK;
}

static int set_suites(const kd3_option *o, const char *v, char *why, size_t len)
{
	uint8_t bits = 0;
	int ret = kd3_split_items(v, suites_item, &bits, why, len);
	if (ret != KD3_OK)
		return ret;
	*(uint8_t *)o->dst = bits; /* a new value replaces the old set */
	return KD3_OK;
}

static int list_item(void *ctx, const char *s, size_t n, char *why, size_t len)
{
	kd3_conf_list *l = ctx;
	if (l->n >= KD3_CONF_LIST_MAX) {
		why_set(why, len, "too many items (max %d)", KD3_CONF_LIST_MAX);
		return KD3_E_CONFIG;
	}
	if (n >= KD3_CONF_STR_MAX) {
		why_set(why, len, "item is too long (%zu bytes, max %d)", n, KD3_CONF_STR_MAX - 1);
		return KD3_E_CONFIG;
	}
	memcpy(l->item[l->n], s, n);
	l->item[l->n][n] = '\0';
	l->n++;
	return KD3_OK;
}

/* Appends: a repeated key adds to the list. All or nothing for one value. */
static int set_list(const kd3_option *o, const char *v, char *why, size_t len)
{
	kd3_conf_list *l = o->dst;
	size_t before = l->n;
	int ret = kd3_split_items(v, list_item, l, why, len);
	if (ret != KD3_OK)
		l->n = before;
	return ret;
}

static int opt_apply(const kd3_option *o, const char *value, char *why, size_t len)
{
	switch (o->type) {
	case KD3_OPT_STR:
		return set_str(o, value, why, len);
	case KD3_OPT_UINT:
		return set_uint(o, value, why, len);
	case KD3_OPT_BOOL:
		return set_bool(o, value, why, len);
	case KD3_OPT_SUITE:
		return set_suite(o, value, why, len);
	case KD3_OPT_SUITES:
		return set_suites(o, value, why, len);
	case KD3_OPT_LIST:
		return set_list(o, value, why, len);
	}
	why_set(why, len, "option type %d is not known", (int)o->type);
	return KD3_E_CONFIG;
}

/* A config key names an option with '-' or '_' alike (rekey_after_messages is
 * rekey-after-messages): INI files are often written with underscores. */
static int key_matches(const char *option, const char *key)
{
	for (; *option && *key; option++, key++)
		if (*option != *key && !(*option == '-' && *key == '_'))
			return 0;
	return *option == *key;
}

static const kd3_option *opt_find(const kd3_option *opts, size_t nopts, const char *name)
{
	for (size_t i = 0; i < nopts; i++)
		if (key_matches(opts[i].name, name))
			return &opts[i];
	return NULL;
}

/* ---- INI files ------------------------------------------------------------ */

static void ctx_fail(struct conf_ctx *cx, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ctx_fail(struct conf_ctx *cx, int err, const char *fmt, ...)
{
	if (cx->err)
		return; /* the first error is the one reported */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cx->why, sizeof(cx->why), fmt, ap);
	va_end(ap);
	cx->err = err;
	cx->err_line = cx->lineno;
}

/* inih's handler: 0 on error, so inih counts the line as failed too. */
static int conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct conf_ctx *cx = user;
	char why[256];

	if (cx->err)
		return 0;
	if (section[0] && !(cx->section && strcmp(section, cx->section) == 0)) {
		ctx_fail(cx, KD3_E_CONFIG, "unknown section [%.*s]", CONF_QUOTE_MAX, section);
		return 0;
	}
	const kd3_option *o = opt_find(cx->opts, cx->nopts, name);
	if (!o) {
		ctx_fail(cx, KD3_E_CONFIG, "unknown key '%.*s'", CONF_QUOTE_MAX, name);
		return 0;
	}
	/* A second value would silently replace the first: only a list may repeat. */
	int *seen = &cx->seen_line[o - cx->opts];
	if (*seen && o->type != KD3_OPT_LIST) {
		ctx_fail(cx, KD3_E_CONFIG,
		         "%s: set twice (first on line %d); only list options may repeat", o->name,
		         *seen);
		return 0;
	}
	*seen = cx->lineno;
	if (opt_apply(o, value, why, sizeof(why)) != KD3_OK) {
		ctx_fail(cx, KD3_E_CONFIG, "%s: %s", o->name, why);
		return 0;
	}
	return 1;
}

static int is_blank(char c)
{
	return isspace((unsigned char)c) != 0;
}

/* Debian's inih is built with multi-line values and inline comments on: it would take
 * an indented line as a continuation that replaces the previous key's value, and cut a
 * value at " ;" (so "exec = a ; b" would run "a"). Both change a value silently, so
 * neither is allowed: a line is a comment, a [section], or key = value from column 0,
 * and a value holds no blank followed by ';' or '#'. */
static int check_line_text(struct conf_ctx *cx, const char *line)
{
	const char *p = line;
	while (*p && is_blank(*p))
		p++;
	if (*p == '\0' || *p == ';' || *p == '#')
		return KD3_OK; /* blank, or a comment line (indented or not) */
	if (p > line) {
		ctx_fail(cx, KD3_E_CONFIG, "indented line: continuation lines are not supported");
		return KD3_E_CONFIG;
	}
	for (; *p; p++) {
		if (is_blank(p[0]) && (p[1] == ';' || p[1] == '#')) {
			ctx_fail(
			    cx, KD3_E_CONFIG,
			    "inline comments are not supported; put the comment on its own line");
			return KD3_E_CONFIG;
		}
	}
	return KD3_OK;
}

/* inih's line reader over our FILE: counts lines (so the handler knows where it is),
 * refuses a NUL byte (it would cut the line short) and a line longer than inih's buffer
 * (instead of letting inih split it), then the shapes check_line_text refuses.
 * A line holds at most num - 2 bytes before its '\n': with the '\n' and the
 * terminating NUL it fills str[num]. */
static char *conf_reader(char *str, int num, void *stream)
{
	struct conf_ctx *cx = stream;
	size_t n = 0, cap = num > 1 ? (size_t)num - 1 : 0;
	int c = 0, has_nul = 0;

	if (cx->err || cap == 0)
		return NULL; /* stop at the first error */
	while (n < cap && (c = getc(cx->file)) != EOF) {
		str[n++] = (char)c;
		has_nul |= c == '\0';
		if (c == '\n')
			break;
	}
	if (n == 0)
		return NULL; /* end of file (or a read error, which ferror tells) */
	str[n] = '\0';
	cx->lineno++;
	if (has_nul) {
		ctx_fail(cx, KD3_E_CONFIG, "line contains a NUL byte");
		return NULL;
	}
	if (n == cap && str[n - 1] != '\n') {
		ctx_fail(cx, KD3_E_CONFIG, "line is too long (max %d bytes before the line end)",
		         num - 2);
		return NULL;
	}
	return check_line_text(cx, str) == KD3_OK ? str : NULL;
}

int kd3_conf_load(const char *path, const char *section, const kd3_option *opts, size_t nopts,
                  char *err, size_t err_len)
{
	struct conf_ctx cx;

	memset(&cx, 0, sizeof(cx));
	if (nopts > CONF_OPTS_MAX) {
		snprintf(err, err_len, "%s: the option table has %zu entries (max %d)", path, nopts,
		         CONF_OPTS_MAX);
		return KD3_E_CONFIG;
	}
	cx.section = section;
	cx.opts = opts;
	cx.nopts = nopts;
	cx.file = fopen(path, "re");
	if (!cx.file) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return KD3_E_CONFIG;
	}
	int line = ini_parse_stream(conf_reader, &cx, conf_handler, &cx);
	int read_failed = ferror(cx.file);
	fclose(cx.file);

	if (cx.err) {
		snprintf(err, err_len, "%s:%d: %s", path, cx.err_line, cx.why);
		return cx.err;
	}
	if (read_failed) {
		snprintf(err, err_len, "%s: read error", path);
		return KD3_E_CONFIG;
	}
	if (line != 0) { /* a syntax error inih found without calling us */
		snprintf(err, err_len, "%s:%d: syntax error (expected 'key = value' or [section])",
		         path, line);
		return KD3_E_CONFIG;
	}
	return KD3_OK;
}

/* ---- command line ----------------------------------------------------------- */

int kd3_conf_set(const kd3_option *opts, size_t nopts, const char *name, const char *value,
                 char *err, size_t err_len)
{
	char why[256];
	const kd3_option *o = opt_find(opts, nopts, name);
	if (!o) {
		snprintf(err, err_len, "--%s: unknown option", name);
		return KD3_E_CONFIG;
	}
	if (opt_apply(o, value, why, sizeof(why)) != KD3_OK) {
		snprintf(err, err_len, "--%s: %s", name, why);
		return KD3_E_CONFIG;
	}
	return KD3_OK;
}

static const char *opt_metavar(kd3_opt_type type)
{
	switch (type) {
	case KD3_OPT_STR:
		return "TEXT";
	case KD3_OPT_UINT:
		return "N";
	case KD3_OPT_BOOL:
		return "yes|no";
	case KD3_OPT_SUITE:
		return "SUITE";
	case KD3_OPT_SUITES:
		return "SUITE,...";
	case KD3_OPT_LIST:
		return "ITEM,...";
	}
	return "VALUE";
}

void kd3_conf_print_help(const kd3_option *opts, size_t nopts)
{
	char lhs[96];
	int width = 0;

	for (size_t i = 0; i < nopts; i++) {
		int n =
		    snprintf(lhs, sizeof(lhs), "--%s=%s", opts[i].name, opt_metavar(opts[i].type));
		if (n > width)
			width = n;
	}
	for (size_t i = 0; i < nopts; i++) {
		snprintf(lhs, sizeof(lhs), "--%s=%s", opts[i].name, opt_metavar(opts[i].type));
		printf("  %-*s  %s\n", width, lhs, opts[i].help ? opts[i].help : "");
	}
}

struct option kd3_conf_longopt(const kd3_option *o, int val)
{
	int has = o->type == KD3_OPT_BOOL ? optional_argument : required_argument;
	return (struct option){o->name, has, NULL, val};
}

const char *kd3_conf_arg_take(const kd3_option *o, const char *arg, int argc, char *const *argv,
                              int *next)
{
	int value = 0;
	if (arg || o->type != KD3_OPT_BOOL)
		return arg;
	if (*next < argc && argv[*next] && bool_word(argv[*next], &value))
		return argv[(*next)++];
	return "yes";
}
