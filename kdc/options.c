/* kdc options: defaults, then kdc.conf, then the command line (which wins). */
#include "options.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "wire.h"

#define KDC_TABLE_MAX 48
#define KDC_CLI_MAX   64 /* table options given on one command line */

enum {
	OPT_HELP = 'h',
	OPT_CONFIG = 256,
	OPT_KEYFILE,
	OPT_FORCE,
	OPT_KVNO,
	OPT_ALL,
	OPT_TABLE = 512
};

/* Command-line-only options besides the table: config, help, keyfile, force, kvno, all. */
#define KDC_CLI_ONLY_MAX 6

size_t kdc_options_table(kdc_opts *o, kd3_option *out, size_t cap)
{
	const kd3_option table[] = {
	    {"db", KD3_OPT_STR, o->db, 0, 0,
	     "SQLite file, or postgresql:// URI, of principals and keys (./kd3.db)"},
	    {"stash", KD3_OPT_STR, o->stash, 0, 0,
	     "master key stash file (the database's path + .stash; needed with a URI)"},
	    {"db-write", KD3_OPT_STR, o->db_write, 0, 0,
	     "serve: the primary that last-used times and lockouts go to (--db)"},
	    {"status-file", KD3_OPT_STR, o->status_file, 0, 0,
	     "the file kdc serve keeps up to date and kdc status reads (none)"},
	    {"grace-period-seconds", KD3_OPT_UINT, &o->grace_period, 0, KDC_GRACE_MAX,
	     "after a rotation, older kvnos stay live this long (604800: 7 days)"},
	    {"listen", KD3_OPT_STR, o->listen, 0, 0,
	     "where to serve, UDP and TCP: host[:port]; a name binds each address "
	     "(127.0.0.1:7088)"},
	    {"workers", KD3_OPT_UINT, &o->workers, 1, KDC_WORKERS_MAX,
	     "worker threads, each with its own sockets (online cores)"},
	    {"lifetime", KD3_OPT_UINT, &o->lifetime, 1, 604800,
	     "session key lifetime in seconds (3600)"},
	    {"deny", KD3_OPT_LIST, &o->deny, 0, 0,
	     "refuse INITIATOR->RESPONDER, '*' for any; repeatable (none)"},
	    {"suites", KD3_OPT_SUITES, &o->suites, 0, 0,
	     "suites the KDC issues keys for (chacha20-poly1305,aes-256-gcm)"},
	    {"require-fs", KD3_OPT_BOOL, &o->require_fs, 0, 0,
	     "refuse requests without forward-secret mode (no)"},
	    {"cache-window-ms", KD3_OPT_UINT, &o->cache_window_ms, 0, 60000,
	     "an identical M2 within this window gets the same M3 (5000)"},
	    {"max-conns", KD3_OPT_UINT, &o->max_conns, 1, 65536,
	     "open TCP connections per worker; more are closed at once (1024)"},
	    {"idle-timeout-ms", KD3_OPT_UINT, &o->idle_timeout_ms, 100, 600000,
	     "close a TCP connection that sends no whole frame for this long (5000)"},
	    {"log-requests", KD3_OPT_BOOL, &o->log_requests, 0, 0,
	     "one log line per request (yes)"},
	    {"trace", KD3_OPT_BOOL, &o->trace, 0, 0,
	     "print every frame in and out (no; also KD3_TRACE=1)"},
	    {"metrics", KD3_OPT_STR, o->metrics, 0, 0,
	     "serve OpenMetrics at http://ADDR/metrics: PORT (on 127.0.0.1) or HOST:PORT (none)"},
	    {"transcript", KD3_OPT_STR, o->transcript, 0, 0,
	     "write a JSON record of every request to FILE (docs/TRANSCRIPT.md)"},
	    {"reveal-keys", KD3_OPT_BOOL, &o->reveal_keys, 0, 0,
	     "put each issued SK into the transcript (teaching only; warns)"},
	    {"rule", KD3_OPT_LIST, &o->rule, 0, 0,
	     "allow|deny INITIATOR->RESPONDER [lifetime=S fs=required suites=A+B]; first "
	     "match wins (none)"},
	    {"policy-default", KD3_OPT_STR, o->policy_default, 0, 0,
	     "allow or deny the pairs no rule matches (allow)"},
	    {"lockout-failures", KD3_OPT_UINT, &o->lockout_failures, 0, 1000000,
	     "lock a principal after this many BAD_AUTH within the window (0: never)"},
	    {"lockout-window-seconds", KD3_OPT_UINT, &o->lockout_window_seconds, 1, 86400,
	     "the window in which failures are counted (60)"},
	    {"lockout-seconds", KD3_OPT_UINT, &o->lockout_seconds, 1, 86400,
	     "how long a locked principal is refused (300; 'kdc unlock NAME' ends it)"},
	    {"rate-limit", KD3_OPT_UINT, &o->rate_limit, 0, 1000000,
	     "requests per second from one source address; more get BUSY (0: no limit)"},
	    {"rate-limit-burst", KD3_OPT_UINT, &o->rate_limit_burst, 1, 65535,
	     "requests one source may send at once before the rate applies (20)"},
	    {"log", KD3_OPT_STR, o->log, 0, 0, "where log lines go: stderr or syslog (stderr)"},
	    {"log-json", KD3_OPT_BOOL, &o->log_json, 0, 0, "one JSON object per log line (no)"},
	    {"log-time", KD3_OPT_BOOL, &o->log_time, 0, 0,
	     "start each stderr line with the UTC time (yes unless stderr is the journal)"},
	    {"syslog-socket", KD3_OPT_STR, o->syslog_socket, 0, 0,
	     "the local syslog socket for log = syslog (/dev/log)"},
	    {"drain-timeout-ms", KD3_OPT_UINT, &o->drain_timeout_ms, 0, 600000,
	     "on SIGTERM, how long TCP requests in flight may take to finish (5000)"},
	    {"last-used-flush-seconds", KD3_OPT_UINT, &o->last_used_flush_seconds, 0, 3600,
	     "write principals' last-used times to the database this often (10; 0: never)"},
	};
	size_t n = sizeof(table) / sizeof(table[0]);
	if (n > cap)
		n = cap;
	memcpy(out, table, n * sizeof(table[0]));
	return n;
}

static void options_defaults(kdc_opts *o)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	memset(o, 0, sizeof(*o));
	snprintf(o->db, sizeof(o->db), "%s", KDC_DB_DEFAULT);
	snprintf(o->listen, sizeof(o->listen), "127.0.0.1:%d", KD3_KDC_PORT_DEFAULT);
	o->workers = cores < 1 ? 1 : cores > KDC_WORKERS_MAX ? KDC_WORKERS_MAX : (uint64_t)cores;
	o->lifetime = KDC_LIFETIME_DEFAULT;
	o->suites = (uint8_t)(1u << KD3_SUITE_CHACHAPOLY | 1u << KD3_SUITE_AES256GCM);
	o->cache_window_ms = KDC_CACHE_WINDOW_MS;
	o->max_conns = KDC_MAX_CONNS_DEFAULT;
	o->idle_timeout_ms = KDC_IDLE_MS_DEFAULT;
	o->log_requests = 1;
	o->grace_period = KDC_GRACE_DEFAULT;
	snprintf(o->policy_default, sizeof(o->policy_default), "allow");
	o->lockout_window_seconds = 60;
	o->lockout_seconds = 300;
	o->rate_limit_burst = 20;
	snprintf(o->log, sizeof(o->log), "stderr");
	o->log_time = -1;
	snprintf(o->syslog_socket, sizeof(o->syslog_socket), "%s", KDC_SYSLOG_DEFAULT);
	o->drain_timeout_ms = KDC_DRAIN_MS_DEFAULT;
	o->last_used_flush_seconds = KDC_LAST_USED_FLUSH_S;
}

/* The table options a subcommand takes on its command line: all for serve, else --db
 * and --stash, and --grace-period-seconds where it matters. kdc.conf may set any. */
static int cmd_takes_option(const kdc_cmd *cmd, const kd3_option *opt)
{
	if (cmd->takes & KDC_TAKES_SERVE)
		return 1;
	if (strcmp(opt->name, "grace-period-seconds") == 0)
		return (cmd->takes & KDC_TAKES_GRACE) != 0;
	if (strcmp(opt->name, "status-file") == 0)
		return (cmd->takes & KDC_TAKES_STATUS) != 0;
	return strcmp(opt->name, "db") == 0 || strcmp(opt->name, "stash") == 0;
}

static void print_help(const kdc_cmd *cmd, const kd3_option *table, size_t nt)
{
	kd3_option shown[KDC_TABLE_MAX + KDC_CLI_ONLY_MAX];
	size_t n = 0;

	printf("usage: kdc %s%s%s [options]\n  %s\n\noptions:\n", cmd->name, cmd->nargs ? " " : "",
	       cmd->args, cmd->summary);
	if (cmd->takes & KDC_TAKES_SERVE)
		printf("(a yes|no option given alone means yes; --trace no is --trace=no)\n");
	for (size_t i = 0; i < nt; i++)
		if (cmd_takes_option(cmd, &table[i]))
			shown[n++] = table[i];
	shown[n++] = (kd3_option){
	    "config", KD3_OPT_STR, NULL,
	    0,        0,           "read these settings from a kdc.conf first ([kdc] section)"};
	if (cmd->takes & KDC_TAKES_KEYFILE)
		shown[n++] = (kd3_option){"keyfile",
		                          KD3_OPT_STR,
		                          NULL,
		                          0,
		                          0,
		                          "key file to write (./NAME.key, '/' in NAME as '_'; see "
		                          "kdc(8) for long NAMEs)"};
	kd3_conf_print_help(shown, n);
	printf("\n");
	if (cmd->takes & KDC_TAKES_KVNO)
		printf("  --kvno=N    only key version N (default: every live one)\n");
	if (cmd->takes & KDC_TAKES_ALL)
		printf("  --all       every principal (instead of NAME)\n");
	if (cmd->takes & KDC_TAKES_FORCE)
		printf("  --force     overwrite an existing file\n");
	printf("  -h, --help  show this help\n");
}

static int copy_arg(char *dst, const char *src, const char *name, char *err, size_t len)
{
	size_t n = strlen(src);
	if (n >= KD3_CONF_STR_MAX) {
		snprintf(err, len, "--%s: value is too long (max %d bytes)", name,
		         KD3_CONF_STR_MAX - 1);
		return KD3_E_USAGE;
	}
	memcpy(dst, src, n + 1);
	return KD3_OK;
}

static size_t build_longopts(const kdc_cmd *cmd, const kd3_option *table, size_t nt,
                             struct option *lo)
{
	size_t n = 0;
	for (size_t i = 0; i < nt; i++) {
		if (!cmd_takes_option(cmd, &table[i]))
			continue;
		lo[n++] = kd3_conf_longopt(&table[i], OPT_TABLE + (int)i);
	}
	lo[n++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	lo[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
	if (cmd->takes & KDC_TAKES_KEYFILE)
		lo[n++] = (struct option){"keyfile", required_argument, NULL, OPT_KEYFILE};
	if (cmd->takes & KDC_TAKES_FORCE)
		lo[n++] = (struct option){"force", no_argument, NULL, OPT_FORCE};
	if (cmd->takes & KDC_TAKES_KVNO)
		lo[n++] = (struct option){"kvno", required_argument, NULL, OPT_KVNO};
	if (cmd->takes & KDC_TAKES_ALL)
		lo[n++] = (struct option){"all", no_argument, NULL, OPT_ALL};
	lo[n] = (struct option){NULL, 0, NULL, 0};
	return n;
}

/* --kvno: 1..4294967295 in plain decimal. */
static int parse_kvno_arg(const char *arg, uint32_t *kvno, char *err, size_t len)
{
	uint64_t v = 0;
	const char *p = arg;
	for (; *p >= '0' && *p <= '9' && v <= UINT32_MAX; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (p == arg || *p || v == 0 || v > UINT32_MAX) {
		snprintf(err, len, "--kvno: '%.32s' is not a number in 1..4294967295", arg);
		return KD3_E_USAGE;
	}
	*kvno = (uint32_t)v;
	return KD3_OK;
}

struct cli_setting {
	size_t index;      /* into the table */
	const char *value; /* points into argv */
};

/* Reads the command line; table settings are kept to apply after kdc.conf. */
static int parse_argv(const kdc_cmd *cmd, int argc, char **argv, kdc_opts *o,
                      const kd3_option *table, size_t nt, struct cli_setting *cli, size_t *ncli,
                      char *err, size_t len)
{
	struct option lo[KDC_TABLE_MAX + KDC_CLI_ONLY_MAX + 1];
	int c;

	build_longopts(cmd, table, nt, lo);
	opterr = 0;
	optind = 0; /* GNU: start over (tests parse more than once) */
	while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		int ret = KD3_OK;
		if (c == OPT_HELP) {
			o->help_shown = 1;
		} else if (c == OPT_CONFIG) {
			ret = copy_arg(o->config, optarg, "config", err, len);
		} else if (c == OPT_KEYFILE) {
			ret = copy_arg(o->keyfile, optarg, "keyfile", err, len);
		} else if (c == OPT_FORCE) {
			o->force = 1;
		} else if (c == OPT_KVNO) {
			ret = parse_kvno_arg(optarg, &o->kvno, err, len);
		} else if (c == OPT_ALL) {
			o->all = 1;
		} else if (c >= OPT_TABLE && (size_t)(c - OPT_TABLE) < nt) {
			if (*ncli >= KDC_CLI_MAX) {
				snprintf(err, len, "kdc %s: too many options", cmd->name);
				return KD3_E_USAGE;
			}
			cli[*ncli].index = (size_t)(c - OPT_TABLE);
			cli[(*ncli)++].value =
			    kd3_conf_arg_take(&table[c - OPT_TABLE], optarg, argc, argv, &optind);
		} else if (c == ':') {
			snprintf(err, len, "kdc %s: option '%s' needs a value", cmd->name,
			         argv[optind - 1]);
			ret = KD3_E_USAGE;
		} else {
			snprintf(err, len, "kdc %s: unknown option '%s'; see 'kdc %s --help'",
			         cmd->name, argv[optind - 1], cmd->name);
			ret = KD3_E_USAGE;
		}
		if (ret != KD3_OK)
			return ret;
	}
	for (int i = optind; i < argc; i++) {
		if (o->nargs >= cmd->nargs || o->nargs >= KDC_ARGS_MAX) {
			snprintf(err, len,
			         "kdc %s: unexpected argument '%.64s'; see 'kdc %s --help'",
			         cmd->name, argv[i], cmd->name);
			return KD3_E_USAGE;
		}
		o->args[o->nargs++] = argv[i];
	}
	return KD3_OK;
}

int kdc_options_parse(const kdc_cmd *cmd, int argc, char **argv, kdc_opts *o, char *err,
                      size_t err_len)
{
	kd3_option table[KDC_TABLE_MAX];
	struct cli_setting cli[KDC_CLI_MAX];
	size_t ncli = 0;

	options_defaults(o);
	o->cmd = cmd;
	o->argc = argc;
	o->argv = argv;
	size_t nt = kdc_options_table(o, table, KDC_TABLE_MAX);
	int ret = parse_argv(cmd, argc, argv, o, table, nt, cli, &ncli, err, err_len);
	if (ret != KD3_OK)
		return ret;
	if (o->help_shown) {
		print_help(cmd, table, nt);
		return KD3_OK;
	}
	if (o->nargs != (o->all ? 0 : cmd->nargs)) {
		snprintf(err, err_len, "kdc %s: expected %s%s; see 'kdc %s --help'", cmd->name,
		         cmd->args, (cmd->takes & KDC_TAKES_ALL) ? " or --all" : "", cmd->name);
		return KD3_E_USAGE;
	}
	if (o->config[0]) {
		ret = kd3_conf_load(o->config, "kdc", table, nt, err, err_len);
		if (ret != KD3_OK)
			return ret;
	}
	for (size_t i = 0; i < ncli; i++) {
		ret = kd3_conf_set(table, nt, table[cli[i].index].name, cli[i].value, err, err_len);
		if (ret != KD3_OK)
			return ret;
	}
	return KD3_OK;
}
