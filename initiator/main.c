/* initiator: connects to a responder, runs M1..M4 (docs/PROTOCOL.md, "The exchange"),
 * then carries lines of stdin as DATA records and prints the DATA it receives: as a
 * chat screen on a terminal (chat.c), else scripted, one message per line.
 * The protocol is in shared/peer.c; this file wires options, keys and the socket. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "crypto.h"
#include "err.h"
#include "events.h"
#include "keyfile.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "peer.h"
#include "proc.h"
#include "schedule.h"
#include "session_io.h"
#include "trace.h"
#include "transcript.h"

/* Large state lives here, not on the stack. */
static ini_settings settings;
static kd3_crypto crypto;
static kd3_peer peer;
static kd3_sio sio;
/* --transcript FILE: every frame of the run (shared/transcript.h). */
static kd3_transcript transcript;
/* stdout: the received messages, or with --json every event, or the chat screen. */
static kd3_events events;
/* stdin and stdout are a terminal, and no --batch or --json: the chat screen. */
static int chat_mode;
/* The one-line error of a failed run, for the --json error event. */
static char failure[512];

/* Logs a one-line error, and keeps it for the error event. */
static void __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(failure, sizeof(failure), fmt, ap);
	va_end(ap);
	kd3_log_error("%s", failure);
}

/* Our long-term keys -> subkeys for every kvno; the raw keys are wiped at once. */
static int load_keys(const ini_settings *s, kd3_peer_config *cfg)
{
	kd3_keyfile kf;
	char err[512];
	int ret = kd3_keyfile_load(s->keyfile, &kf, err, sizeof(err));

	if (ret != KD3_OK) {
		fail("%s", err);
		goto out;
	}
	ret = KD3_E_KEYFILE;
	if (kf.nkeys == 0 || kf.nkeys > KD3_KEYS_MAX) {
		fail("%s: holds %zu keys (1..%d expected)", s->keyfile, kf.nkeys, KD3_KEYS_MAX);
		goto out;
	}
	for (size_t i = 0; i < kf.nkeys; i++) {
		cfg->keys[i].kvno = kf.keys[i].kvno;
		ret = kd3_derive_subkeys(&crypto, kf.keys[i].key, &cfg->keys[i].sub);
		if (ret != KD3_OK) {
			fail("deriving subkeys: %s", kd3_strerror(ret));
			goto out;
		}
	}
	cfg->nkeys = kf.nkeys;
	if (s->name[0] && strcmp(s->name, kf.principal) != 0)
		kd3_log_info("warning: --name %s differs from the key file's principal %s", s->name,
		             kf.principal);
	snprintf(cfg->self, sizeof(cfg->self), "%s", s->name[0] ? s->name : kf.principal);
out:
	kd3_keyfile_wipe(&kf);
	return ret;
}

static int peer_setup(const ini_settings *s)
{
	kd3_peer_config cfg;
	int ret;

	memset(&cfg, 0, sizeof(cfg));
	cfg.role = KD3_ROLE_INITIATOR;
	snprintf(cfg.peer_name, sizeof(cfg.peer_name), "%s", s->peer);
	cfg.suite = s->suite;
	cfg.suites_allowed = (uint8_t)(1u << s->suite);
	cfg.forward_secret = (uint8_t)(s->forward_secret ? 1 : 0);
	cfg.rekey_records = s->rekey_messages;
	cfg.rekey_bytes = s->rekey_bytes;
	cfg.rekey_ms = s->rekey_seconds * 1000u;
	cfg.reveal_keys = kd3_transcript_on(&transcript) && s->reveal_keys;
	ret = load_keys(s, &cfg);
	if (ret == KD3_OK && strcmp(cfg.self, cfg.peer_name) == 0) {
		fail("--peer %s is our own name: initiator and responder must differ",
		     cfg.peer_name);
		ret = KD3_E_USAGE;
	}
	if (ret == KD3_OK &&
	    (ret = kd3_peer_init(&peer, &cfg, &crypto, kd3_crypto_rng, &crypto)) != KD3_OK)
		fail("cannot set up the exchange: %s", kd3_strerror(ret));
	kd3_wipe(&cfg, sizeof(cfg)); /* it held the subkeys; the peer has its own copy */
	return ret;
}

static int connect_responder(const ini_settings *s, int *fd)
{
	kd3_addr addr;
	char where[80];
	int sys_err = 0;
	int ret = kd3_addr_parse(s->connect, KD3_RESPONDER_PORT_DEFAULT, &addr);

	if (ret != KD3_OK) {
		fail("--connect: '%.64s' is not an IP literal address (127.0.0.1:7089, "
		     "[::1]:7089)",
		     s->connect);
		return KD3_E_USAGE;
	}
	kd3_addr_format(&addr, where, sizeof(where));
	ret = kd3_tcp_connect(&addr, (int)s->timeout_s * 1000, fd, &sys_err);
	if (ret == KD3_E_TIMEOUT)
		fail("cannot connect to the responder at %s: no answer within %llu s", where,
		     (unsigned long long)s->timeout_s);
	else if (ret != KD3_OK)
		fail("cannot connect to the responder at %s: %s", where, strerror(sys_err));
	if (ret == KD3_E_IO)
		sio.sock_errno = sys_err ? sys_err : ECONNREFUSED; /* exit code: unreachable */
	if (ret == KD3_OK)
		kd3_trace_note("connected to %s", where);
	return ret;
}

/* The handshake timed out: tell the responder (an ERROR frame), best effort. */
static void give_up(kd3_sio *s)
{
	if (kd3_peer_close(s->peer, KD3_E_TIMEOUT, "initiator timed out waiting for M4",
	                   &s->tx_w) == KD3_OK)
		kd3_sio_send_out(s, -1);
}

/* M1 out; then frames in until M4 made the session (FINISHED is sent by kd3_sio_feed). */
static int handshake(kd3_sio *s, uint64_t timeout_ms)
{
	uint64_t deadline = kd3_now_ms() + timeout_ms;
	int ret = kd3_peer_start(s->peer, &s->tx_w);

	if (ret == KD3_OK)
		ret = kd3_sio_send_out(s, -1);
	if (ret == KD3_OK) {
		kd3_event ev = {.kind = KD3_EVT_HANDSHAKE, .step = "M1 sent"};
		if ((ret = kd3_events_emit(&events, &ev)) == KD3_E_IO)
			s->out_errno = errno;
	}
	while (ret == KD3_OK && !s->established) {
		uint8_t *frame = NULL;
		size_t len = 0;
		kd3_peer_out out;

		ret = kd3_sio_wait_frame(s, deadline, &frame, &len);
		if (ret == KD3_E_TIMEOUT)
			give_up(s);
		if (ret != KD3_OK)
			break;
		ret = kd3_sio_feed(s, KD3_SRC_PEER, frame, len, NULL, &out);
		kd3_stream_consume(&s->rx, len);
	}
	return ret;
}

static void report_established(const kd3_peer *p)
{
	char name[256];
	kd3_log_safe_name((const uint8_t *)p->peer_id, strlen(p->peer_id), name);
	kd3_log_info("session with %s established (%s, forward secrecy %s, key lifetime %u s)",
	             name, kd3_suite_name(p->suite), p->fs ? "on" : "off", p->lifetime);
}

/* Connect, handshake, then the session; the kd3_err that ended it. */
static int run(const ini_settings *s)
{
	int fd = -1;
	int ret = connect_responder(s, &fd);

	if (ret != KD3_OK)
		return ret;
	ret = kd3_sio_init(&sio, &peer, fd, "I->R", "R->I", "responder", (int)s->timeout_s * 1000);
	sio.events = &events;
	if (kd3_transcript_on(&transcript)) {
		sio.transcript = &transcript;
		sio.session_id = 1;
	}
	if (ret == KD3_OK)
		ret = handshake(&sio, s->timeout_s * 1000u);
	if (ret == KD3_OK && chat_mode) {
		ret = ini_chat_run(&sio); /* the chat showed the session established */
	} else if (ret == KD3_OK) {
		report_established(&peer);
		ret = kd3_sio_run(&sio, STDIN_FILENO, stdout);
	}
	if (ret == KD3_OK) {
		kd3_trace_note("session closed cleanly");
	} else {
		kd3_sio_describe(&sio, ret, failure, sizeof(failure));
		kd3_log_error("%s", failure);
	}
	return ret;
}

/* --json: the run failed; its last line says how (the error is on stderr too). */
static void report_failure(int err, int code)
{
	kd3_event ev = {.kind = KD3_EVT_ERROR,
	                .code = kd3_sio_err_name(&sio, err),
	                .text = failure[0] ? failure : kd3_strerror(err),
	                .exit_code = code};
	if (settings.json)
		kd3_events_emit(&events, &ev); /* best effort: stdout may be what failed */
	kd3_transcript_error(&transcript, 1, ev.code, ev.text);
}

/* --transcript: opened before anything is sent, so that it holds every frame. */
static int open_transcript(const ini_settings *s)
{
	char err[512];

	if (s->reveal_keys && !s->transcript[0]) {
		fail("--reveal-keys needs --transcript FILE (keys go only into a transcript)");
		return KD3_E_USAGE;
	}
	if (s->transcript[0] && kd3_transcript_open(&transcript, s->transcript, "initiator",
	                                            s->reveal_keys, err, sizeof(err)) != KD3_OK) {
		fail("%s", err);
		return KD3_E_USAGE;
	}
	return KD3_OK;
}

int main(int argc, char **argv)
{
	int done = 0;
	int code = KD3_EXIT_RUNTIME;
	int ret;

	kd3_log_set_program("initiator");
	/* Before anything opens a descriptor: a closed stdout must not become our socket
	 * (received plaintext would go to the responder). Also: no core dumps, no SIGPIPE. */
	if (kd3_proc_harden() != KD3_OK) {
		kd3_log_error("cannot open /dev/null on a closed standard descriptor (0, 1 or 2)");
		return KD3_EXIT_RUNTIME;
	}
	sio.sock = -1;
	ret = ini_options_parse(argc, argv, &settings, &done);
	if (ret != KD3_OK || done)
		return ret == KD3_OK ? KD3_EXIT_OK : KD3_EXIT_USAGE;
	kd3_trace_enable(settings.trace);
	chat_mode = ini_chat_wanted(&settings);
	if (chat_mode)
		ini_chat_events(&events, &settings);
	else
		kd3_events_init(&events, stdout,
		                settings.json ? KD3_EVENTS_JSON : KD3_EVENTS_PLAIN);

	if ((ret = kd3_crypto_init(&crypto, "kd3 initiator", 1)) != KD3_OK) {
		fail("cannot start the crypto library: %s", kd3_strerror(ret));
		goto out;
	}
	ret = open_transcript(&settings);
	if (ret == KD3_OK)
		ret = peer_setup(&settings);
	if (ret == KD3_OK)
		ret = run(&settings);
out:
	code = kd3_sio_exit_code(&sio, ret);
	if (ret != KD3_OK)
		report_failure(ret, code);
	kd3_sio_wipe(&sio);
	kd3_transcript_close(&transcript, code);
	kd3_peer_free(&peer);
	kd3_crypto_free(&crypto);
	return code;
}
