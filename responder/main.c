/* responder: accepts kd3 sessions from initiators, asks a KDC for each session key,
 * then exchanges messages (docs/PROTOCOL.md; --help for the options). */
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "keys.h"
#include "log.h"
#include "opts.h"
#include "peer.h"
#include "proc.h"
#include "server.h"
#include "exitcode.h"
#include "trace.h"
#include "transcript.h"

/* Large (the trace buffer, the option lists): static, not on the stack. */
static resp_opts opts;
static resp_server server;
static kd3_peer_config peer_cfg;
static kd3_crypto crypto;
static kd3_transcript transcript;

static void main_peer_config(const resp_opts *o, kd3_peer_config *cfg)
{
	cfg->role = KD3_ROLE_RESPONDER;
	cfg->suites_allowed = o->suites;
	cfg->forward_secret = o->require_fs ? 1 : 0;
	cfg->rekey_records = o->rekey_messages;
	cfg->rekey_bytes = o->rekey_bytes;
	cfg->rekey_ms = o->rekey_seconds * 1000u;
	cfg->reveal_keys = o->reveal_keys && o->transcript[0] ? 1 : 0;
}

int main(int argc, char **argv)
{
	char err[512];
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
	if ((ret = kd3_crypto_init(&crypto, "kd3 responder", 1)) != KD3_OK) {
		kd3_log_error("cannot set up the crypto library: %s", kd3_strerror(ret));
		goto out;
	}
	main_peer_config(&opts, &peer_cfg);
	ret = resp_keys_load(opts.keyfile, opts.name, &crypto, &peer_cfg, err, sizeof(err));
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
	if (resp_server_open(&server, &opts, &crypto, &peer_cfg,
	                     opts.transcript[0] ? &transcript : NULL) != KD3_OK)
		goto out;
	code = resp_server_run(&server) == KD3_OK ? KD3_EXIT_OK : KD3_EXIT_RUNTIME;
out:
	if (opened)
		resp_server_close(&server);
	kd3_transcript_close(&transcript, code);
	kd3_wipe(&peer_cfg, sizeof(peer_cfg));
	kd3_crypto_free(&crypto);
	return code;
}
