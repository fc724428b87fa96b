/* kdc options: one table for kdc.conf keys and long options (shared/conf.h), plus the
 * few options that exist only on the command line (--config, --keyfile, --force,
 * --kvno, --all). */
#ifndef KDC_OPTIONS_H
#define KDC_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define KDC_DB_DEFAULT        "./kd3.db"
#define KDC_GRACE_DEFAULT     604800   /* 7 days */
#define KDC_GRACE_MAX         31536000 /* 1 year */
#define KDC_LIFETIME_DEFAULT  3600
#define KDC_CACHE_WINDOW_MS   5000
#define KDC_MAX_CONNS_DEFAULT 1024
#define KDC_IDLE_MS_DEFAULT   5000
#define KDC_WORKERS_MAX       256
#define KDC_ARGS_MAX          2
#define KDC_DRAIN_MS_DEFAULT  5000
#define KDC_SYSLOG_DEFAULT    "/dev/log"
#define KDC_LAST_USED_FLUSH_S 10

typedef struct kdc_opts {
	/* kdc.conf keys and their long options. */
	char db[KD3_CONF_STR_MAX];
	char stash[KD3_CONF_STR_MAX];       /* "" = db + ".stash" (a file db only) */
	char db_write[KD3_CONF_STR_MAX];    /* serve: where shared writes go ("" = db) */
	char status_file[KD3_CONF_STR_MAX]; /* serve writes it, status reads it ("": none) */
	uint64_t grace_period;              /* seconds older kvnos stay live after a rotation */
	char listen[KD3_CONF_STR_MAX];
	uint64_t workers;
	uint64_t lifetime;
	kd3_conf_list deny;
	uint8_t suites;
	int require_fs;
	uint64_t cache_window_ms;
	uint64_t max_conns;
	uint64_t idle_timeout_ms;
	int log_requests;
	int trace;
	char transcript[KD3_CONF_STR_MAX]; /* "" = none */
	char metrics[KD3_CONF_STR_MAX];    /* "" = none; PORT or IP:PORT */
	int reveal_keys;
	kd3_conf_list rule;                    /* allow|deny INITIATOR->RESPONDER [options] */
	char policy_default[KD3_CONF_STR_MAX]; /* allow | deny: pairs no rule matches */
	uint64_t lockout_failures;             /* 0: no lockout */
	uint64_t lockout_window_seconds;
	uint64_t lockout_seconds;
	uint64_t rate_limit;        /* requests per second per source address; 0: none */
	uint64_t rate_limit_burst;  /* bucket size */
	char log[KD3_CONF_STR_MAX]; /* stderr | syslog */
	int log_json;
	int log_time; /* -1: unless stderr is the journal */
	char syslog_socket[KD3_CONF_STR_MAX];
	uint64_t drain_timeout_ms;
	uint64_t last_used_flush_seconds; /* 0: last-used times are not written */

	/* Command line only. */
	char config[KD3_CONF_STR_MAX];
	char keyfile[KD3_CONF_STR_MAX];
	int force;
	uint32_t kvno;                  /* --kvno: export one key version (0 = every live one) */
	int all;                        /* --all: purge every principal */
	const char *args[KDC_ARGS_MAX]; /* positional arguments (NAME, KVNO, FILE) */
	size_t nargs;
	int help_shown;

	/* What was parsed, so that kdc serve can read kdc.conf again on SIGHUP. */
	const struct kdc_cmd *cmd;
	int argc;
	char **argv;
} kdc_opts;

/* A subcommand: what it takes on the command line and what it runs. */
#define KDC_TAKES_KEYFILE 0x01
#define KDC_TAKES_FORCE   0x02
#define KDC_TAKES_SERVE   0x04 /* every kdc.conf key as a long option */
#define KDC_TAKES_GRACE   0x08 /* --grace-period-seconds */
#define KDC_TAKES_KVNO    0x10 /* --kvno N */
#define KDC_TAKES_ALL     0x20 /* --all instead of the arguments */
#define KDC_TAKES_STATUS  0x40 /* --status-file */

typedef struct kdc_cmd {
	const char *name;
	int (*run)(kdc_opts *o);
	const char *args; /* e.g. "NAME" */
	size_t nargs;
	unsigned takes;
	const char *summary;
} kdc_cmd;

/* Defaults, then kdc.conf (--config), then the command line, which wins. argv[0] is
 * the subcommand. KD3_E_USAGE or KD3_E_CONFIG with err set on a bad command line or
 * config; o->help_shown after --help. */
int kdc_options_parse(const kdc_cmd *cmd, int argc, char **argv, kdc_opts *o, char *err,
                      size_t err_len);

/* The kdc.conf table over o. */
size_t kdc_options_table(kdc_opts *o, kd3_option *out, size_t cap);

#endif
