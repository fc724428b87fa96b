/* responder: accepts kd3 sessions from initiators, asks a KDC for each session key,
 * then exchanges messages (docs/PROTOCOL.md; --help for the options). */
#include <stdio.h>
#include <string.h>

#include <kd3/kd3.h>

#include "err.h"
#include "keys.h"
#include "log.h"
#include "opts.h"
#include "proc.h"
#include "server.h"
#include "exitcode.h"
#include "trace.h"
#include "transcript.h"

/* Large (the trace buffer, the option lists): static, not on the stack. */
static resp_opts opts;
static resp_server server;
static resp_settings settings;
static kd3_transcript transcript;

static void main_settings(const resp_opts *o, resp_settings *set)
{
	set->suites = o->suites;
	set->require_fs = o->require_fs ? 1 : 0;
	set->rekey_records = o->rekey_messages;
	set->rekey_bytes = o->rekey_bytes;
	set->rekey_seconds = o->rekey_seconds;
	set->reveal_keys = o->reveal_keys && o->transcript[0] ? 1 : 0;
}

int main(int argc, char **argv)
{
	char err[512];
	kd3_key *key = NULL;
	int done = 0;
	int opened = 0;
	int code = KD3_EXIT_USAGE;
	int ret;

	kd3_log_set_program("responder");
	/* First: fds 0-2 open (so no socket lands on stdout), no core dumps, no SIGPIPE. */
	if (kd3_proc_harden() != KD3_OK) {
		kd3_log_error("cannot set up the process (open /dev/null on a closed stdin, "
		              "stdout or stderr)");
		return KD3_EXIT_RUNTIME;
	}
	ret = resp_opts_parse(argc, argv, &opts, &done);
	if (ret != KD3_OK || done)
		return ret == KD3_OK ? KD3_EXIT_OK : KD3_EXIT_USAGE;
	kd3_trace_enable(opts.trace);

	code = KD3_EXIT_RUNTIME;
	main_settings(&opts, &settings);
	ret = resp_keys_load(opts.keyfile, opts.name, &key, err, sizeof(err));
	if (ret != KD3_OK) {
		kd3_log_error("%s", err);
		code = KD3_EXIT_USAGE;
		goto out;
	}
	if (opts.reveal_keys && !opts.transcript[0]) {
		kd3_log_error("--reveal-keys needs --transcript FILE (keys go only into a "
		              "transcript)");
		code = KD3_EXIT_USAGE;
		goto out;
	}
	if (opts.transcript[0] &&
	    kd3_transcript_open(&transcript, opts.transcript, "responder", opts.reveal_keys, err,
	                        sizeof(err)) != KD3_OK) {
		kd3_log_error("%s", err);
		code = KD3_EXIT_USAGE;
		goto out;
	}
	opened = 1;
	settings.key = key;
	if (resp_server_open(&server, &opts, &settings, kd3_key_principal(key),
	                     opts.transcript[0] ? &transcript : NULL) != KD3_OK)
		goto out;
	code = resp_server_run(&server) == KD3_OK ? KD3_EXIT_OK : KD3_EXIT_RUNTIME;
out:
	if (opened)
		resp_server_close(&server);
	kd3_transcript_close(&transcript, code);
	kd3_key_free(key);
	return code;
}
