/* initiator options: defaults, then --config FILE ([initiator] section), then the
 * command line, which wins. Every config key is also a long option (same table). */
#include "options.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "msg.h"
#include "exitcode.h"
#include "wire.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

#define INI_CONNECT_DEFAULT "127.0.0.1:" STR(KD3_RESPONDER_PORT_DEFAULT)
#define INI_TIMEOUT_DEFAULT 10
#define INI_TIMEOUT_MAX     3600
#define INI_REKEY_BYTES_MAX (1ull << 62)

enum { INI_NOPTS = 16 };

/* Long options that are not config keys. */
enum { OPT_HELP = 'h', OPT_VERSION = 'V', OPT_CONFIG = 'c', OPT_TABLE_BASE = 256 };

static void options_table(ini_settings *s, kd3_option t[INI_NOPTS])
{
	const kd3_option table[INI_NOPTS] = {
	    {"connect", KD3_OPT_STR, s->connect, 0, 0,
	     "responder address, host[:port]; a name's addresses in turn "
	     "(default " INI_CONNECT_DEFAULT ")"},
	    {"keyfile", KD3_OPT_STR, s->keyfile, 0, 0, "our key file, mode 0600 (required)"},
	    {"name", KD3_OPT_STR, s->name, 0, 0,
	     "our principal name (default: the principal in the key file)"},
	    {"peer", KD3_OPT_STR, s->peer, 0, 0, "the responder principal to reach (required)"},
	    {"suite", KD3_OPT_SUITE, &s->suite, 0, 0,
	     "chacha20-poly1305 or aes-256-gcm (default chacha20-poly1305)"},
	    {"forward-secret", KD3_OPT_BOOL, &s->forward_secret, 0, 0,
	     "ask for forward-secret mode, X25519 (default no)"},
	    {"rekey-after-messages", KD3_OPT_UINT, &s->rekey_messages, 1, KD3_RECORDS_PER_KEY_MAX,
	     "update our key after N records (default 1048576)"},
	    {"rekey-after-bytes", KD3_OPT_UINT, &s->rekey_bytes, 0, INI_REKEY_BYTES_MAX,
	     "and after N payload bytes (default 0: no byte limit)"},
	    {"rekey-after-seconds", KD3_OPT_UINT, &s->rekey_seconds, 0, KD3_REKEY_SECONDS_MAX,
	     "and after N seconds under one key (default 0: no time limit)"},
	    {"timeout", KD3_OPT_UINT, &s->timeout_s, 1, INI_TIMEOUT_MAX,
	     "seconds for connect + handshake and for a stalled send (default 10)"},
	    {"trace", KD3_OPT_BOOL, &s->trace, 0, 0,
	     "print every protocol frame to stderr (also KD3_TRACE=1)"},
	    {"batch", KD3_OPT_BOOL, &s->batch, 0, 0,
	     "scripted mode even when stdin and stdout are a terminal"},
	    {"json", KD3_OPT_BOOL, &s->json, 0, 0,
	     "stdout: one JSON object per line per event instead of bare messages"},
	    {"transcript", KD3_OPT_STR, s->transcript, 0, 0,
	     "write a JSON record of every frame to FILE (docs/TRANSCRIPT.md)"},
	    {"reveal-keys", KD3_OPT_BOOL, &s->reveal_keys, 0, 0,
	     "put the session keys into the transcript (teaching only; warns)"},
	    {"quit-words", KD3_OPT_LIST, &s->quit_words, 0, 0,
	     "chat: more lines that close the session (/quit always does)"},
	};
	memcpy(t, table, sizeof(table));
}

static void settings_defaults(ini_settings *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->connect, sizeof(s->connect), "%s", INI_CONNECT_DEFAULT);
	s->suite = KD3_SUITE_DEFAULT;
	s->rekey_messages = KD3_REKEY_RECORDS_DEFAULT;
	s->timeout_s = INI_TIMEOUT_DEFAULT;
}

static void print_help(const kd3_option *t)
{
	printf("usage: initiator --keyfile=PATH --peer=NAME [options]\n"
	       "\n"
	       "  Connects to a kd3 responder, runs the four-message key exchange (the\n"
	       "  responder asks the KDC), then carries messages both ways, in one of two\n"
	       "  modes. Either way one line is one message, of at most %d bytes (without\n"
	       "  the newline); a longer line is reported and not sent.\n"
	       "\n"
	       "  Chat, when stdin and stdout are a terminal and neither --batch nor --json\n"
	       "  is given: type a line and press Enter to send it. Each message is shown\n"
	       "  with the local time and the sender; a received one is marked verified,\n"
	       "  since only records that passed authentication are ever shown. Messages\n"
	       "  arrive above the line being typed. Control characters and invalid UTF-8\n"
	       "  in them are shown as \\xNN. Up/Down recall earlier lines (kept in memory\n"
	       "  only, wiped at exit); Ctrl-C clears the line being typed. Commands:\n"
	       "    /status   suite, records and bytes each way, key generations, time left\n"
	       "    /rekey    move our sending key to its next generation now (KEY_UPDATE)\n"
	       "    /help     the commands and keys\n"
	       "    /quit     close the session (CLOSE both ways); so do Ctrl-D on an empty\n"
	       "              line and a line holding one of --quit-words\n"
	       "    //text    sends the line \"/text\" (any other /word is not sent)\n"
	       "\n"
	       "  Scripted, otherwise: each line of stdin is sent as one message and each\n"
	       "  message received is printed, one per line. At the end of stdin the session\n"
	       "  is closed (CLOSE both ways). stdout carries only the messages (or, with\n"
	       "  --json, the events), diagnostics go to stderr. Scripts should pass --batch\n"
	       "  so that they behave the same when started from a terminal.\n"
	       "\n"
	       "options (each is also a key in the [initiator] section of --config FILE;\n"
	       "a yes|no option given alone means yes; --trace no is --trace=no):\n",
	       KD3_PAYLOAD_MAX);
	kd3_conf_print_help(t, INI_NOPTS);
	printf("  %-24s  %s\n  %-24s  %s\n  %-24s  %s\n", "--config=FILE",
	       "read options from FILE first (the command line wins)", "--help", "this text",
	       "--version", "print the version");
	printf("\n"
	       "exit codes:\n"
	       "  %d  the session ended cleanly (CLOSE both ways)\n"
	       "  %d  other runtime error\n"
	       "  %d  usage, config or key file error\n"
	       "  %d  handshake failed (including an ERROR from the responder or the KDC)\n"
	       "  %d  authentication failure (a record, confirm_r or the sealed key; also\n"
	       "     the responder reporting that our FINISHED or records failed)\n"
	       "  %d  responder unreachable or vanished, session truncated, timeout, key expired\n",
	       KD3_EXIT_OK, KD3_EXIT_RUNTIME, KD3_EXIT_USAGE, KD3_EXIT_HANDSHAKE, KD3_EXIT_AUTH,
	       KD3_EXIT_GONE);
	printf("\n"
	       "--json events (each also has \"event\" and \"t_us\", microseconds since start):\n"
	       "  handshake    step: \"M1 sent\", \"M4 received\", \"FINISHED sent\"\n"
	       "  established  peer, suite, forward_secrecy, lifetime_s\n"
	       "  message      direction \"sent\" (size) or \"received\" (size, and data if the\n"
	       "               payload is UTF-8 without NUL, else data_base64)\n"
	       "  key_update   direction, generation\n"
	       "  close        by \"us\" or \"peer\", reason, text\n"
	       "  error        code (\"BAD_AUTH\", ...), message, exit: the last line of a failed "
	       "run\n");
}

/* getopt_long's table: the config keys, then --config, --help, --version. */
static void long_options(const kd3_option *t, struct option lo[INI_NOPTS + 4])
{
	for (int i = 0; i < INI_NOPTS; i++)
		lo[i] = kd3_conf_longopt(&t[i], OPT_TABLE_BASE + i);
	lo[INI_NOPTS] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	lo[INI_NOPTS + 1] = (struct option){"help", no_argument, NULL, OPT_HELP};
	lo[INI_NOPTS + 2] = (struct option){"version", no_argument, NULL, OPT_VERSION};
	lo[INI_NOPTS + 3] = (struct option){NULL, 0, NULL, 0};
}

/* Pass 1: --help, --version, --config, and every error of the command line's shape. */
static int scan_args(int argc, char **argv, const struct option *lo, const kd3_option *t,
                     const char **config, int *done)
{
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == OPT_HELP) {
			print_help(t);
			*done = 1;
			return KD3_OK;
		}
		if (c == OPT_VERSION) {
			printf("initiator (kd3) %s\n", KD3_VERSION_STRING);
			*done = 1;
			return KD3_OK;
		}
		if (c >= OPT_TABLE_BASE) {
			/* Steps past a "--trace no" value as apply_args will. */
			(void)kd3_conf_arg_take(&t[c - OPT_TABLE_BASE], optarg, argc, argv,
			                        &optind);
		} else if (c == OPT_CONFIG) {
			*config = optarg;
		} else if (c == '?' || c == ':') {
			kd3_log_error("bad option '%s' (unknown, or missing its value; see --help)",
			              argv[optind - 1]);
			return KD3_E_USAGE;
		}
	}
	if (optind < argc) {
		kd3_log_error("unexpected argument '%s' (see --help)", argv[optind]);
		return KD3_E_USAGE;
	}
	return KD3_OK;
}

/* Pass 2: the table options, over what the config file set. */
static int apply_args(int argc, char **argv, const struct option *lo, const kd3_option *t)
{
	char err[512];
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c < OPT_TABLE_BASE)
			continue;
		const kd3_option *o = &t[c - OPT_TABLE_BASE];
		const char *value = kd3_conf_arg_take(o, optarg, argc, argv, &optind);
		if (kd3_conf_set(t, INI_NOPTS, o->name, value, err, sizeof(err)) != KD3_OK) {
			kd3_log_error("%s", err);
			return KD3_E_USAGE;
		}
	}
	return KD3_OK;
}

static int check_settings(const ini_settings *s)
{
	if (!s->keyfile[0]) {
		kd3_log_error("--keyfile is required (see --help)");
		return KD3_E_USAGE;
	}
	if (!s->peer[0]) {
		kd3_log_error("--peer is required: the responder principal to reach");
		return KD3_E_USAGE;
	}
	if (!kd3_name_valid_cstr(s->peer)) {
		kd3_log_error("--peer: '%.64s' is not a valid principal name ([A-Za-z0-9._@/-])",
		              s->peer);
		return KD3_E_USAGE;
	}
	if (s->name[0] && !kd3_name_valid_cstr(s->name)) {
		kd3_log_error("--name: '%.64s' is not a valid principal name ([A-Za-z0-9._@/-])",
		              s->name);
		return KD3_E_USAGE;
	}
	return KD3_OK;
}

int ini_options_parse(int argc, char **argv, ini_settings *s, int *done)
{
	kd3_option t[INI_NOPTS];
	struct option lo[INI_NOPTS + 4];
	const char *config = NULL;
	char err[512];
	int ret;

	*done = 0;
	settings_defaults(s);
	options_table(s, t);
	long_options(t, lo);
	ret = scan_args(argc, argv, lo, t, &config, done);
	if (ret != KD3_OK || *done)
		return ret;
	if (config &&
	    kd3_conf_load(config, "initiator", t, INI_NOPTS, err, sizeof(err)) != KD3_OK) {
		kd3_log_error("%s", err);
		return KD3_E_CONFIG;
	}
	ret = apply_args(argc, argv, lo, t);
	if (ret != KD3_OK)
		return ret;
	return check_settings(s);
}
