#include "opts.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addrs.h"
#include "err.h"
#include "kdcs.h"
#include "log.h"
#include "metrics_http.h"
#include "msg.h"
#include "resolve.h"
#include "wire.h"

#define OPTS_MAX      20
#define OPT_HELP      'h'
#define OPT_VERSION   'V'
#define OPT_CONFIG    'c'
#define OPT_TABLE_VAL 1000 /* getopt value of table entry i: OPT_TABLE_VAL + i */

#define ALL_SUITES ((uint8_t)((1u << KD3_SUITE_AES256GCM) | (1u << KD3_SUITE_CHACHAPOLY)))

static size_t opts_table(resp_opts *o, kd3_option *t)
{
	const kd3_option table[] = {
	    {"listen", KD3_OPT_STR, o->listen, 0, 0,
	     "where initiators connect, host[:port]; a name binds each address "
	     "(" RESP_LISTEN_DEFAULT ")"},
	    {"kdc", KD3_OPT_LIST, &o->kdc, 0, 0,
	     "KDCs tried in order: host[:port], or dns:DOMAIN for SRV records (" RESP_KDC_DEFAULT
	     ")"},
	    {"keyfile", KD3_OPT_STR, o->keyfile, 0, 0, "our key file, mode 0600 (required)"},
	    {"name", KD3_OPT_STR, o->name, 0, 0, "our principal name (the key file's)"},
	    {"suites", KD3_OPT_SUITES, &o->suites, 0, 0,
	     "suites we accept (chacha20-poly1305,aes-256-gcm)"},
	    {"require-forward-secret", KD3_OPT_BOOL, &o->require_fs, 0, 0,
	     "refuse initiators without forward-secret mode (no)"},
	    {"rekey-after-messages", KD3_OPT_UINT, &o->rekey_messages, 1, KD3_RECORDS_PER_KEY_MAX,
	     "update our key after N records (1048576)"},
	    {"rekey-after-bytes", KD3_OPT_UINT, &o->rekey_bytes, 0, UINT64_MAX,
	     "and after N payload bytes (0: no byte limit)"},
	    {"rekey-after-seconds", KD3_OPT_UINT, &o->rekey_seconds, 0, KD3_REKEY_SECONDS_MAX,
	     "and after N seconds under one key (0: no time limit)"},
	    {"exec", KD3_OPT_STR, o->exec_cmd, 0, 0,
	     "run /bin/sh -c CMD per session, its stdin/stdout as the messages"},
	    {"max-sessions", KD3_OPT_UINT, &o->max_sessions, 1, 65536,
	     "sessions at once; more get ERROR BUSY (1024)"},
	    {"handshake-timeout", KD3_OPT_UINT, &o->handshake_timeout_s, 1, 3600,
	     "seconds from accept to the initiator's FINISHED (10)"},
	    {"kdc-timeout-ms", KD3_OPT_UINT, &o->kdc_timeout_ms, 10, 60000,
	     "first UDP retry to the KDC; doubles, 3 tries, then TCP (200)"},
	    {"trace", KD3_OPT_BOOL, &o->trace, 0, 0,
	     "print every protocol frame to stderr (also KD3_TRACE=1)"},
	    {"json", KD3_OPT_BOOL, &o->json, 0, 0,
	     "stdout: one JSON object per line per event, with its session"},
	    {"metrics", KD3_OPT_STR, o->metrics, 0, 0,
	     "serve OpenMetrics at http://ADDR/metrics: PORT (on 127.0.0.1) or HOST:PORT (none)"},
	    {"transcript", KD3_OPT_STR, o->transcript, 0, 0,
	     "write a JSON record of every frame to FILE (docs/TRANSCRIPT.md)"},
	    {"reveal-keys", KD3_OPT_BOOL, &o->reveal_keys, 0, 0,
	     "put session keys into the transcript (teaching only; warns)"},
	};
	size_t n = sizeof(table) / sizeof(table[0]);
	_Static_assert(sizeof(table) / sizeof(table[0]) <= OPTS_MAX, "raise OPTS_MAX");
	memcpy(t, table, sizeof(table));
	return n;
}

static void opts_defaults(resp_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->suites = ALL_SUITES;
	o->rekey_messages = KD3_REKEY_RECORDS_DEFAULT;
	o->max_sessions = RESP_MAX_SESSIONS_DEFAULT;
	o->handshake_timeout_s = RESP_HANDSHAKE_S_DEFAULT;
	o->kdc_timeout_ms = RESP_KDC_TIMEOUT_MS_DEFAULT;
}

/* Width of the option column kd3_conf_print_help uses ("--name=METAVAR"), so the
 * command-line-only options below the table line up with it. */
static int opts_help_width(const kd3_option *t, size_t n)
{
	static const char *const metavar[] = {
	    [KD3_OPT_STR] = "TEXT",    [KD3_OPT_UINT] = "N",           [KD3_OPT_BOOL] = "yes|no",
	    [KD3_OPT_SUITE] = "SUITE", [KD3_OPT_SUITES] = "SUITE,...", [KD3_OPT_LIST] = "ITEM,...",
	};
	int width = 0;
	for (size_t i = 0; i < n; i++) {
		int w = (int)(strlen(t[i].name) + strlen(metavar[t[i].type]) + 3);
		if (w > width)
			width = w;
	}
	return width;
}

static void opts_usage(const kd3_option *t, size_t n)
{
	int w = opts_help_width(t, n);

	printf("usage: responder --keyfile=PATH [options]\n"
	       "\n"
	       "  Accepts kd3 sessions over TCP and asks the KDC for each session key (UDP,\n"
	       "  then TCP, then the next KDC; an ERROR over UDP is asked again over TCP\n"
	       "  before it is believed). Each message received is printed as one line on\n"
	       "  stdout, and each line of stdin is sent to every established session. When\n"
	       "  stdout is not read, sessions that receive messages wait (up to 1 MiB is\n"
	       "  queued); the rest go on. The log on stderr is written blocking: drain it.\n"
	       "  With --exec each session talks to its own child instead: messages are lines\n"
	       "  on its stdin, each line it prints is one message back (lines longer than\n"
	       "  16384 bytes are split). Its environment is PATH, HOME, LANG and TERM (when\n"
	       "  set) plus KD3_PEER (the initiator) and KD3_SESSION (the session id). It\n"
	       "  leads its own process group, which gets SIGTERM when the session ends; once\n"
	       "  it exited, what it left running may hold its stdout 1 s at most.\n"
	       "\n"
	       "options (each is also a key in the [responder] section of --config FILE;\n"
	       "a yes|no option given alone means yes; --trace no is --trace=no):\n");
	kd3_conf_print_help(t, n);
	printf("  %-*s  read options from FILE first (the command line wins)\n", w,
	       "--config=FILE");
	printf("  %-*s  this text\n", w, "--help");
	printf("  %-*s  print the version\n", w, "--version");
	printf("\n"
	       "exit codes:\n"
	       "  0  stopped by SIGTERM or SIGINT (sessions closed)\n"
	       "  1  runtime failure at start (e.g. cannot bind)\n"
	       "  2  usage, config or key file error\n");
}

/* getopt_long's table: every option of the table, plus --config, --help, --version.
 * Booleans take an optional value (--trace, --trace=no). */
static void opts_longopts(const kd3_option *t, size_t n, struct option *lo)
{
	for (size_t i = 0; i < n; i++)
		lo[i] = kd3_conf_longopt(&t[i], OPT_TABLE_VAL + (int)i);
	lo[n] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	lo[n + 1] = (struct option){"help", no_argument, NULL, OPT_HELP};
	lo[n + 2] = (struct option){"version", no_argument, NULL, OPT_VERSION};
	lo[n + 3] = (struct option){NULL, 0, NULL, 0};
}

/* First pass: --help, --version and --config, before anything else is applied. */
static int opts_first_pass(int argc, char **argv, const struct option *lo, const kd3_option *t,
                           size_t n, resp_opts *o, int *want)
{
	int c;
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, "hV", lo, NULL)) != -1) {
		/* Steps past a "--trace no" value as the second pass will. */
		if (c >= OPT_TABLE_VAL && c < OPT_TABLE_VAL + (int)n)
			(void)kd3_conf_arg_take(&t[c - OPT_TABLE_VAL], optarg, argc, argv, &optind);
		if (c == OPT_HELP || c == OPT_VERSION)
			*want = c;
		if (c == OPT_CONFIG && snprintf(o->config, sizeof(o->config), "%s", optarg) >=
		                           (int)sizeof(o->config)) {
			kd3_log_error("--config: path is too long");
			return KD3_E_USAGE;
		}
	}
	return KD3_OK;
}

/* Second pass: the command line over the config file. A --kdc on the command line
 * replaces the file's list instead of adding to it. */
static int opts_second_pass(int argc, char **argv, const struct option *lo, const kd3_option *t,
                            size_t n, resp_opts *o)
{
	char err[512];
	int kdc_seen = 0;
	int c;

	opterr = 1;
	optind = 0;
	while ((c = getopt_long(argc, argv, "hV", lo, NULL)) != -1) {
		if (c == OPT_CONFIG || c == OPT_HELP || c == OPT_VERSION)
			continue;
		if (c < OPT_TABLE_VAL || c >= OPT_TABLE_VAL + (int)n)
			return KD3_E_USAGE; /* getopt printed why */
		const kd3_option *opt = &t[c - OPT_TABLE_VAL];
		if (opt->dst == &o->kdc && !kdc_seen) {
			o->kdc.n = 0;
			kdc_seen = 1;
		}
		const char *value = kd3_conf_arg_take(opt, optarg, argc, argv, &optind);
		if (kd3_conf_set(t, n, opt->name, value, err, sizeof(err)) != KD3_OK) {
			kd3_log_error("%s", err);
			return KD3_E_USAGE;
		}
	}
	if (optind < argc) {
		kd3_log_error("unexpected argument '%.64s' (see --help)", argv[optind]);
		return KD3_E_USAGE;
	}
	return KD3_OK;
}

/* Rules across fields, and the addresses. */
static int opts_finish(resp_opts *o)
{
	char err[160];

	if (!o->listen[0])
		snprintf(o->listen, sizeof(o->listen), "%s", RESP_LISTEN_DEFAULT);
	if (o->kdc.n == 0) {
		o->kdc.n = 1;
		snprintf(o->kdc.item[0], sizeof(o->kdc.item[0]), "%s", RESP_KDC_DEFAULT);
	}
	if (!o->keyfile[0]) {
		kd3_log_error("--keyfile is required (see --help)");
		return KD3_E_USAGE;
	}
	if (o->name[0] && !kd3_name_valid_cstr(o->name)) {
		kd3_log_error("--name: '%.64s' is not a valid principal name ([A-Za-z0-9._@/-])",
		              o->name);
		return KD3_E_USAGE;
	}
	if (o->suites == 0) {
		kd3_log_error("--suites: no suite allowed");
		return KD3_E_USAGE;
	}
	char why[400];
	/* A name binds every address it gives; port 0 takes a free port. */
	if (kd3_addrs_resolve("--listen", o->listen, KD3_RESPONDER_PORT_DEFAULT,
	                      KD3_ADDRS_PASSIVE | KD3_ADDRS_PORT0, KD3_RESOLVE_TIMEOUT_MS,
	                      o->listen_addrs, RESP_LISTEN_MAX, &o->nlisten, why,
	                      sizeof(why)) != KD3_OK) {
		kd3_log_error("%s", why);
		return KD3_E_USAGE;
	}
	for (size_t i = 0; i < o->kdc.n; i++) {
		if (resp_kdc_entry_check(o->kdc.item[i], why, sizeof(why)) != KD3_OK) {
			kd3_log_error("--kdc: %s", why);
			return KD3_E_USAGE;
		}
	}
	if (o->metrics[0] &&
	    kd3_metrics_addr_parse(o->metrics, &o->metrics_addr, err, sizeof(err)) != KD3_OK) {
		kd3_log_error("--%s", err);
		return KD3_E_USAGE;
	}
	return KD3_OK;
}

int resp_opts_parse(int argc, char **argv, resp_opts *o, int *done)
{
	kd3_option table[OPTS_MAX];
	struct option longopts[OPTS_MAX + 4];
	char err[512];
	int want = 0;
	int ret;

	*done = 0;
	opts_defaults(o);
	size_t n = opts_table(o, table);
	opts_longopts(table, n, longopts);
	if ((ret = opts_first_pass(argc, argv, longopts, table, n, o, &want)) != KD3_OK)
		return ret;
	if (want == OPT_HELP || want == OPT_VERSION) {
		if (want == OPT_HELP)
			opts_usage(table, n);
		else
			printf("responder (kd3) %s\n", KD3_VERSION_STRING);
		*done = 1;
		return KD3_OK;
	}
	if (o->config[0] &&
	    kd3_conf_load(o->config, "responder", table, n, err, sizeof(err)) != KD3_OK) {
		kd3_log_error("%s", err);
		return KD3_E_CONFIG;
	}
	if ((ret = opts_second_pass(argc, argv, longopts, table, n, o)) != KD3_OK)
		return ret;
	if (o->trace || (getenv("KD3_TRACE") && strcmp(getenv("KD3_TRACE"), "1") == 0))
		o->trace = 1;
	return opts_finish(o);
}
