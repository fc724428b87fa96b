/* kdc: the key distribution center. A table of subcommands, each a function. */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "err.h"
#include "leftovers.h"
#include "log.h"
#include "options.h"
#include "proc.h"
#include "status.h"

#ifndef KD3_VERSION_STRING
#define KD3_VERSION_STRING "unknown"
#endif

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

static const kdc_cmd commands[] = {
    {"init", kdc_cmd_init, "", 0, 0,
     "create a new database and its master key stash (both mode 0600)"},
    {"add", kdc_cmd_add, "NAME", 1, KDC_TAKES_KEYFILE,
     "add a principal with a new random key (kvno 1) and write its key file"},
    {"import", kdc_cmd_import, "FILE", 1, KDC_TAKES_GRACE,
     "add many principals with their keys (key files one after another), one transaction"},
    {"list", kdc_cmd_list, "", 0, 0, "list principals, key versions, state (never keys)"},
    {"export", kdc_cmd_export, "NAME", 1, KDC_TAKES_KEYFILE | KDC_TAKES_FORCE | KDC_TAKES_KVNO,
     "write a key file with every live key version of NAME (or --kvno N)"},
    {"rotate", kdc_cmd_rotate, "NAME", 1, KDC_TAKES_KEYFILE | KDC_TAKES_GRACE,
     "add a new key version; older ones stay live for the grace period"},
    {"purge", kdc_cmd_purge, "NAME", 1, KDC_TAKES_ALL,
     "drop the key versions of NAME (or --all) whose grace period is over"},
    {"retire", kdc_cmd_retire, "NAME KVNO", 2, 0, "remove one key version of NAME now"},
    {"disable", kdc_cmd_disable, "NAME", 1, 0, "refuse requests naming NAME"},
    {"enable", kdc_cmd_enable, "NAME", 1, 0, "serve NAME again"},
    {"remove", kdc_cmd_remove, "NAME", 1, 0, "remove NAME and all its keys"},
    {"unlock", kdc_cmd_unlock, "NAME", 1, 0,
     "end NAME's lockout after failed authentications (running servers too)"},
    {"rekey-master", kdc_cmd_rekey_master, "", 0, 0,
     "a new master key: re-seal every key in one transaction (crash-safe)"},
    {"dump", kdc_cmd_dump, "FILE", 1, KDC_TAKES_FORCE,
     "back up to FILE, keys still sealed (useless without the stash)"},
    {"load", kdc_cmd_load, "FILE", 1, 0,
     "restore a dump into a new database (needs the dumped database's stash)"},
    {"upgrade", kdc_cmd_upgrade, "", 0, 0,
     "convert a kd3 0.1 database: create its stash, seal every key"},
    {"status", kdc_cmd_status, "", 0, KDC_TAKES_STATUS,
     "how a running kdc serve is doing: snapshot generation and age, database reachable"},
    {"serve", kdc_cmd_serve, "", 0, KDC_TAKES_SERVE,
     "serve over UDP and TCP; SIGHUP re-reads kdc.conf, SIGTERM drains and stops"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: kdc COMMAND [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		char lhs[32];
		snprintf(lhs, sizeof(lhs), "%s %s", commands[i].name, commands[i].args);
		fprintf(out, "  %-16s %s\n", lhs, commands[i].summary);
	}
	fprintf(out,
	        "\nevery command takes --db=PATH (default %s), --stash=FILE (default: the\n"
	        "database's path + .stash) and --config=FILE;\n"
	        "'kdc COMMAND --help' lists its options. kdc --version prints the version.\n",
	        KDC_DB_DEFAULT);
}

static int exit_code(int err)
{
	if (err == KD3_OK)
		return 0;
	return err == KD3_E_USAGE || err == KD3_E_CONFIG ? EXIT_USAGE : EXIT_RUNTIME;
}

int main(int argc, char **argv)
{
	char err[768];
	kdc_opts o;

	kd3_log_set_program("kdc");
	/* Before anything opens a descriptor: a closed stdout or stderr must not become the
	 * database or a socket. Also: no core dumps (keys), no SIGPIPE. */
	if (kd3_proc_harden() != KD3_OK) {
		kd3_log_error("cannot open /dev/null on a closed standard descriptor (0, 1 or 2)");
		return EXIT_RUNTIME;
	}
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("kdc (kd3) %s\n", KD3_VERSION_STRING);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		int ret = kdc_options_parse(&commands[i], argc - 1, argv + 1, &o, err, sizeof(err));
		if (ret != KD3_OK) {
			kd3_log_error("%s", err);
			return exit_code(ret);
		}
		if (o.help_shown)
			return 0;
		if ((ret = kdc_sweep_leftovers(&o)) != KD3_OK)
			return exit_code(ret);
		return exit_code(commands[i].run(&o));
	}
	kd3_log_error("unknown command '%.32s'; see 'kdc --help'", argv[1]);
	return EXIT_USAGE;
}
