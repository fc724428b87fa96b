/* kd3adv: a man in the middle for kd3's adversary tests. Options, signals, the run.
 * tests/adversary/README.md describes it; `kd3adv --help` gives the grammar. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adv_act.h"
#include "adv_relay.h"
#include "log.h"
#include "net.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2
#define SECONDS_MAX  3600

static const char usage[] =
    "usage: kd3adv [--tcp LISTEN=UPSTREAM] [--kdc LISTEN=UPSTREAM] [options]\n"
    "\n"
    "  A man in the middle for kd3, on loopback only: between initiator and responder\n"
    "  (--tcp) and between responder and KDC (--kdc: UDP and TCP on one port). Every\n"
    "  frame is cut out of the stream, counted, kept on the tape, and the first rule\n"
    "  that matches it decides what happens; each action is one line on stderr.\n"
    "\n"
    "options:\n"
    "  --tcp LISTEN=UPSTREAM  e.g. 127.0.0.1:0=127.0.0.1:7089 (LISTEN port 0: any)\n"
    "  --kdc LISTEN=UPSTREAM  e.g. 127.0.0.1:0=127.0.0.1:7088\n"
    "  --rule RULE            a rule (repeatable, at most 32 in all)\n"
    "  --scenario FILE        rules, one a line; '#' starts a comment\n"
    "  --record FILE          write every frame of the run to FILE\n"
    "  --load FILE            an earlier run's recording, for earlier: sources\n"
    "  --seconds N            end the run after N seconds (60; at most 3600)\n"
    "  --disarm               match and log the rules, but change nothing (SIGUSR1 too)\n"
    "  --verbose              one line for every frame\n"
    "  --check                check the options and rules, then exit (0: all good)\n"
    "\n"
    "rules:\n"
    "  RULE   := DIR[/tcp|/udp] KIND[#N|#N+] ACTION\n"
    "  DIR    := I->R | R->I | R->KDC | KDC->R\n"
    "  KIND   := M1 | M2 | M3 | M4 | RECORD | ERROR | OTHER | ANY | FINISHED | KEY_UPDATE\n"
    "            (FINISHED: the first I->R record of a connection; KEY_UPDATE: a record\n"
    "            with an empty payload). #N: the N-th in DIR this run; #N+: from the N-th\n"
    "  ACTION := record | pass | drop | delay MS | duplicate [MS] | reorder | reflect | cut\n"
    "          | replay SRC | replace SRC | answer SRC | inject HEX | truncate N\n"
    "          | extend N | flip BIT | flip FIELD[:BIT] | set FIELD=VALUE\n"
    "          | swap FIELD FIELD | splice FIELD[,FIELD...] SRC\n"
    "  SRC    := [earlier:][DIR:]KIND#N | hex:HEX\n"
    "  e.g. 'I->R M1#1 drop'  'R->KDC M2#2 replay earlier:M2#1'  'R->I RECORD#3 flip 7'\n"
    "       'KDC->R M3#1 swap blob_i blob_r'  'I->R M1 set suite=1'\n"
    "\n"
    "signals: SIGTERM, SIGINT end the run; SIGUSR1 disarms it.\n"
    "exit codes: 0 the run ended; 1 cannot listen or read a file; 2 usage.\n";

static volatile sig_atomic_t stop_flag, disarm_flag;

static void on_stop(int signo)
{
	(void)signo;
	stop_flag = 1;
}

static void on_disarm(int signo)
{
	(void)signo;
	disarm_flag = 1;
}

static void set_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop; /* no SA_RESTART: poll returns at once */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_disarm;
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

typedef struct options {
	const char *tcp, *kdc, *record, *load;
	long seconds;
	int check;
	struct sockaddr_in tcp_at, tcp_up, kdc_at, kdc_up;
} options;

static int add_rule(adv_ctx *ctx, const char *text)
{
	char err[300];
	if (ctx->nrules >= ADV_MAX_RULES) {
		kd3_log_error("more than %d rules", ADV_MAX_RULES);
		return -1;
	}
	if (adv_rule_parse(text, &ctx->rules[ctx->nrules], err, sizeof(err)) != 0) {
		kd3_log_error("rule %d: %s", ctx->nrules + 1, err);
		return -1;
	}
	ctx->nrules++;
	return 0;
}

/* A scenario file: one rule a line, blank lines and '#' comments skipped. */
static int read_scenario(adv_ctx *ctx, const char *path)
{
	char line[ADV_RULE_MAX + 2];
	FILE *f = fopen(path, "r");
	int ret = 0;
	if (!f) {
		kd3_log_error("--scenario: cannot read %s", path);
		return -1;
	}
	while (ret == 0 && fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#'), *start = line;
		if (!strchr(line, '\n') && !feof(f)) {
			kd3_log_error("--scenario: a line of %s is too long", path);
			ret = -1;
			break;
		}
		if (hash && (hash == line || hash[-1] == ' ' || hash[-1] == '\t'))
			*hash = '\0'; /* a comment; '#' inside a word is a frame index */
		size_t n = strcspn(line, "\r\n");
		line[n] = '\0';
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		while (*start == ' ' || *start == '\t')
			start++;
		if (*start)
			ret = add_rule(ctx, start);
	}
	fclose(f);
	return ret;
}

/* "LISTEN=UPSTREAM" into two loopback addresses. */
static int parse_pair(const char *opt, const char *text, struct sockaddr_in *at,
                      struct sockaddr_in *up)
{
	char left[64];
	const char *eq = strchr(text, '=');
	if (eq && (size_t)(eq - text) < sizeof(left)) {
		memcpy(left, text, (size_t)(eq - text));
		left[eq - text] = '\0';
		if (adv_parse_loopback(left, 1, at) == 0 && adv_parse_loopback(eq + 1, 0, up) == 0)
			return 0;
	}
	kd3_log_error("%s: want LISTEN=UPSTREAM, IPv4 loopback literals with ports, e.g. "
	              "127.0.0.1:0=127.0.0.1:7089; got '%.64s'",
	              opt, text);
	return -1;
}

static int parse_options(int argc, char **argv, options *o, adv_ctx *ctx)
{
	static const struct option longs[] = {
	    {"tcp", required_argument, NULL, 't'},     {"kdc", required_argument, NULL, 'k'},
	    {"rule", required_argument, NULL, 'r'},    {"scenario", required_argument, NULL, 's'},
	    {"record", required_argument, NULL, 'o'},  {"load", required_argument, NULL, 'l'},
	    {"seconds", required_argument, NULL, 'n'}, {"disarm", no_argument, NULL, 'd'},
	    {"verbose", no_argument, NULL, 'v'},       {"help", no_argument, NULL, 'h'},
	    {"check", no_argument, NULL, 'c'},         {NULL, 0, NULL, 0}};
	int c;
	char *end;

	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 't':
			o->tcp = optarg;
			break;
		case 'k':
			o->kdc = optarg;
			break;
		case 'r':
			if (add_rule(ctx, optarg) != 0)
				return -1;
			break;
		case 's':
			if (read_scenario(ctx, optarg) != 0)
				return -1;
			break;
		case 'o':
			o->record = optarg;
			break;
		case 'l':
			o->load = optarg;
			break;
		case 'n':
			o->seconds = strtol(optarg, &end, 10);
			if (*end || o->seconds < 1 || o->seconds > SECONDS_MAX) {
				kd3_log_error("--seconds: want 1..%d", SECONDS_MAX);
				return -1;
			}
			break;
		case 'd':
			ctx->disarmed = 1;
			break;
		case 'v':
			ctx->verbose = 1;
			break;
		case 'c':
			o->check = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind < argc || (!o->tcp && !o->kdc)) {
		kd3_log_error("%s (see --help)",
		              optind < argc ? "unexpected argument" : "--tcp or --kdc is required");
		return -1;
	}
	if ((o->tcp && parse_pair("--tcp", o->tcp, &o->tcp_at, &o->tcp_up) != 0) ||
	    (o->kdc && parse_pair("--kdc", o->kdc, &o->kdc_at, &o->kdc_up) != 0))
		return -1;
	return 0;
}

/* Rules that take from the --load recording need one. */
static int check_rules(const adv_ctx *ctx, const options *o)
{
	for (int i = 0; i < ctx->nrules; i++) {
		if (ctx->rules[i].src.earlier && !o->load) {
			kd3_log_error("rule %d takes an earlier: frame: --load is required", i + 1);
			return -1;
		}
	}
	return 0;
}

static int open_files(adv_ctx *ctx, const options *o)
{
	char err[300];
	if (o->load && adv_tape_load(&ctx->earlier, o->load, err, sizeof(err)) != 0) {
		kd3_log_error("--load: %s", err);
		return -1;
	}
	if (o->record && !(ctx->record = fopen(o->record, "w"))) {
		kd3_log_error("--record: cannot write %s", o->record);
		return -1;
	}
	return 0;
}

static int start_relays(adv_relay *r, const options *o)
{
	if (o->tcp && adv_relay_tcp(r, &o->tcp_at, &o->tcp_up) != 0)
		return -1;
	if (o->kdc && adv_relay_kdc(r, &o->kdc_at, &o->kdc_up) != 0)
		return -1;
	return 0;
}

static void report(const adv_ctx *ctx)
{
	for (int i = 0; i < ctx->nrules; i++)
		if (!ctx->rules[i].fired)
			kd3_log_info("rule %d never fired: %s", i + 1, ctx->rules[i].text);
	kd3_log_info("end: %lu frames, %lu rule actions, %lu failed", ctx->frames, ctx->actions,
	             ctx->failures);
}

int main(int argc, char **argv)
{
	static adv_ctx ctx;
	static adv_relay relay;
	options o = {.seconds = 60};
	int ret = 0;

	kd3_log_set_program("kd3adv");
	adv_tape_init(&ctx.live);
	adv_tape_init(&ctx.earlier);
	adv_relay_init(&relay);
	if (parse_options(argc, argv, &o, &ctx) != 0 || check_rules(&ctx, &o) != 0)
		return EXIT_USAGE;
	if (o.check) {
		kd3_log_info("%d rules, all good", ctx.nrules);
		return 0;
	}
	set_signals();
	if (open_files(&ctx, &o) != 0 || start_relays(&relay, &o) != 0) {
		ret = EXIT_RUNTIME;
	} else {
		for (int i = 0; i < ctx.nrules; i++)
			kd3_log_info("rule %d is '%s'", i + 1, ctx.rules[i].text);
		kd3_log_info("ready%s", ctx.disarmed ? " (disarmed)" : "");
		adv_relay_run(&relay, &ctx, kd3_now_ms() + 1000 * (uint64_t)o.seconds, &stop_flag,
		              &disarm_flag);
		report(&ctx);
	}
	adv_relay_close(&relay);
	if (ctx.record)
		fclose(ctx.record);
	adv_tape_free(&ctx.live);
	adv_tape_free(&ctx.earlier);
	return ret;
}
