/* kd3 configuration: one option table per executable, read from an INI file with
 * inih and overridable on the command line (getopt_long) through the same table,
 * so a file key and a long option always mean the same thing.
 * Errors name the place: "kdc.conf:12: unknown key 'lisen'". */
#ifndef KD3_CONF_H
#define KD3_CONF_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#define KD3_CONF_STR_MAX 256

typedef enum kd3_opt_type {
	KD3_OPT_STR,    /* dst: char[KD3_CONF_STR_MAX] */
	KD3_OPT_UINT,   /* dst: uint64_t, within [min, max]; accepts k/M suffixes? no: plain decimal
	                 */
	KD3_OPT_BOOL,   /* dst: int; yes/no, true/false, on/off, 1/0 */
	KD3_OPT_SUITE,  /* dst: uint8_t; "chacha20-poly1305" or "aes-256-gcm" */
	KD3_OPT_SUITES, /* dst: uint8_t bit set (1 << suite); comma-separated suite names */
	KD3_OPT_LIST,   /* dst: kd3_conf_list; comma-separated strings, or repeated keys */
} kd3_opt_type;

#define KD3_CONF_LIST_MAX 64

typedef struct kd3_conf_list {
	size_t n;
	char item[KD3_CONF_LIST_MAX][KD3_CONF_STR_MAX];
} kd3_conf_list;

typedef struct kd3_option {
	const char *name; /* INI key and long option, e.g. "listen" (--listen) */
	kd3_opt_type type;
	void *dst;
	uint64_t min, max; /* KD3_OPT_UINT bounds */
	const char *help;  /* one line for --help */
} kd3_option;

/* Reads path (keys outside any section, or in a section named like the program, are
 * accepted). Unknown keys, bad values and unreadable files are errors; err gets
 * "path:line: reason". */
int kd3_conf_load(const char *path, const char *section, const kd3_option *opts, size_t nopts,
                  char *err, size_t err_len);
/* Sets one option from text (command line). err gets "--name: reason". */
int kd3_conf_set(const kd3_option *opts, size_t nopts, const char *name, const char *value,
                 char *err, size_t err_len);
/* The command-line form of a table option, the same in every executable: its
 * getopt_long entry (a boolean takes an optional value, so that --trace alone means
 * yes; every other type a required one). */
struct option kd3_conf_longopt(const kd3_option *o, int val);
/* The value of table option o that getopt_long just returned with optarg arg.
 * getopt gives a boolean's value only after '=' (--trace=no): when arg is NULL and the
 * next word, argv[*next] (pass &optind), is a boolean word (yes/no, true/false, on/off,
 * 1/0), that word is the value and *next steps past it, so "--trace no" is
 * "--trace=no"; any other next word stays where it is and the bare boolean means
 * "yes". Every getopt loop over one argv must call it for every table option, even a
 * loop that ignores the values, or the loops disagree on which words are arguments. */
const char *kd3_conf_arg_take(const kd3_option *o, const char *arg, int argc, char *const *argv,
                              int *next);

/* Prints "  --name=VALUE   help" lines for --help. */
void kd3_conf_print_help(const kd3_option *opts, size_t nopts);

/* Suite names as used in configs and on the command line. */
int kd3_suite_parse(const char *name, uint8_t *suite);

#endif
