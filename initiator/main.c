/* initiator: connects to a responder, runs M1..M4 (docs/PROTOCOL.md, "The exchange"),
 * then carries lines of stdin as DATA records and prints the DATA it receives: as a
 * chat screen on a terminal (chat.c), else scripted, one message per line.
 * The protocol is libkd3's kd3_session (include/kd3/kd3.h), linked as libkd3.so like
 * any program that uses it; this file wires options, keys and the socket. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kd3/kd3.h>

#include "addrs.h"
#include "chat.h"
#include "crypto.h"
#include "err.h"
#include "events.h"
#include "keyfile.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "proc.h"
#include "resolve.h"
#include "sio.h"
#include "trace.h"
#include "transcript.h"

/* Large state lives here, not on the stack. */
static ini_settings settings;
static ini_sio sio;
/* Our key versions, and the session (libkd3, as any program uses it). */
static kd3_key *key;
static kd3_session *session;
/* --transcript FILE: every frame of the run (shared/transcript.h). */
static kd3_transcript transcript;
/* stdout: the received messages, or with --json every event, or the chat screen. */
static kd3_events events;
/* stdin and stdout are a terminal, and no --batch or --json: the chat screen. */
static int chat_mode;
/* The one-line error of a failed run, for the --json error event. */
static char failure[512];
/* Our principal: --name, else the key file's. */
static char self[KD3_NAME_MAX + 1];

/* Logs a one-line error, and keeps it for the error event. */
static void __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(failure, sizeof(failure), fmt, ap);
	va_end(ap);
	kd3_log_error("%s", failure);
}

/* The key file's versions into a kd3_key under our name (--name may differ from the
 * file's principal: a warning). The raw keys are wiped at once. */
static int load_keys(const ini_settings *s)
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
	if (s->name[0] && strcmp(s->name, kf.principal) != 0)
		kd3_log_info("warning: --name %s differs from the key file's principal %s", s->name,
		             kf.principal);
	snprintf(self, sizeof(self), "%s", s->name[0] ? s->name : kf.principal);
	ret = kd3_key_new(&key, self, kf.keys[0].kvno, kf.keys[0].key);
	for (size_t i = 1; ret == KD3_OK && i < kf.nkeys; i++)
		ret = kd3_key_add(key, kf.keys[i].kvno, kf.keys[i].key);
	if (ret != KD3_OK)
		fail("%s: cannot use its keys: %s", s->keyfile, kd3_strerror(ret));
out:
	kd3_keyfile_wipe(&kf);
	return ret;
}

/* The session and its settings, from the options. */
static int session_setup(const ini_settings *s)
{
	int ret = load_keys(s);

	if (ret == KD3_OK && strcmp(self, s->peer) == 0) {
		fail("--peer %s is our own name: initiator and responder must differ", s->peer);
		return KD3_E_USAGE;
	}
	if (ret == KD3_OK)
		ret = kd3_session_new_initiator(&session, key, s->peer);
	if (ret == KD3_OK)
		ret = kd3_session_set_suite(session, (kd3_suite)s->suite);
	if (ret == KD3_OK)
		ret = kd3_session_set_forward_secret(session, s->forward_secret);
	if (ret == KD3_OK)
		ret = kd3_session_set_rekey(session, s->rekey_messages, s->rekey_bytes,
		                            s->rekey_seconds * 1000u);
	sio.events = &events;
	sio.self = self;
	sio.forward_secret = s->forward_secret;
	sio.rekey_records = s->rekey_messages;
	sio.rekey_bytes = s->rekey_bytes;
	sio.rekey_seconds = s->rekey_seconds;
	if (ret == KD3_OK)
		ret = ini_sio_init(&sio, session, -1, (int)s->timeout_s * 1000);
	if (ret == KD3_OK && kd3_transcript_on(&transcript)) {
		sio.transcript = &transcript;
		ret = kd3_session_set_reveal_keys(session, s->reveal_keys);
	}
	if (ret != KD3_OK && !failure[0])
		fail("cannot set up the exchange: %s", kd3_strerror(ret));
	return ret;
}

/* One address of the responder's name; the remaining time is shared out between the
 * addresses still to try, so that one that never answers cannot use all of it. */
static int connect_one(const kd3_addr *addr, uint64_t deadline_ms, size_t left, int *fd,
                       int *sys_err)
{
	uint64_t now = kd3_now_ms();
	uint64_t budget = deadline_ms > now ? (deadline_ms - now) / left : 0;
	char where[80];
	kd3_addr_format(addr, where, sizeof(where));
	int ret = kd3_tcp_connect(addr, budget ? (int)budget : 1, fd, sys_err);
	if (ret == KD3_OK)
		kd3_trace_note("connected to %s", where);
	else
		kd3_log_debug("connect to %s: %s", where,
		              ret == KD3_E_TIMEOUT ? "no answer" : strerror(*sys_err));
	return ret;
}

/* --connect: every address its name gives, in order, until one takes the connection. */
static int connect_responder(const ini_settings *s, int *fd)
{
	kd3_addr addrs[KD3_RESOLVE_ADDR_MAX];
	size_t n = 0;
	char err[400], where[200];
	int sys_err = 0, ret = KD3_E_IO;
	int timeout_ms = (int)s->timeout_s * 1000;
	uint64_t deadline = kd3_now_ms() + (uint64_t)timeout_ms;

	int rr = kd3_addrs_resolve("--connect", s->connect, KD3_RESPONDER_PORT_DEFAULT, 0,
	                           timeout_ms, addrs, KD3_RESOLVE_ADDR_MAX, &n, err, sizeof(err));
	if (rr != KD3_OK) { /* a bad text is usage (2); a name without an address, gone (5) */
		fail("%s", err);
		if (rr == KD3_E_CONFIG || rr == KD3_E_ARG)
			return KD3_E_USAGE;
		sio.sock_errno = EHOSTUNREACH;
		return rr == KD3_E_TIMEOUT ? KD3_E_TIMEOUT : KD3_E_IO;
	}
	for (size_t i = 0; i < n && ret != KD3_OK; i++)
		ret = connect_one(&addrs[i], deadline, n - i, fd, &sys_err);
	kd3_addrs_format(addrs, n, where, sizeof(where));
	if (ret == KD3_E_TIMEOUT)
		fail("cannot connect to the responder at %s: no answer within %llu s", where,
		     (unsigned long long)s->timeout_s);
	else if (ret != KD3_OK)
		fail("cannot connect to the responder at %s: %s", where, strerror(sys_err));
	if (ret == KD3_E_IO)
		sio.sock_errno = sys_err ? sys_err : ECONNREFUSED; /* exit code: unreachable */
	return ret;
}

static void report_established(void)
{
	kd3_log_info("session with %s established (%s, forward secrecy %s, key lifetime %u s)",
	             sio.peer, kd3_suite_name((uint8_t)kd3_session_suite(session)),
	             kd3_session_forward_secret(session) ? "on" : "off", sio.lifetime_s);
}

/* Connect, handshake, then the session; the kd3_err that ended it. */
static int run(const ini_settings *s)
{
	int fd = -1;
	int ret = connect_responder(s, &fd);

	if (ret != KD3_OK)
		return ret;
	sio.sock = fd;
	if (kd3_set_nonblock(fd) != KD3_OK) {
		sio.sock_errno = errno;
		ret = KD3_E_IO;
	}
	if (ret == KD3_OK)
		ret = ini_sio_handshake(&sio, s->timeout_s * 1000u);
	if (ret == KD3_OK && chat_mode) {
		ret = ini_chat_run(&sio); /* the chat showed the session established */
	} else if (ret == KD3_OK) {
		report_established();
		ret = ini_sio_run(&sio, STDIN_FILENO, stdout);
	}
	if (ret == KD3_OK) {
		kd3_trace_note("session closed cleanly");
	} else {
		ini_sio_describe(&sio, ret, failure, sizeof(failure));
		kd3_log_error("%s", failure);
	}
	return ret;
}

/* --json: the run failed; its last line says how (the error is on stderr too). */
static void report_failure(int err, int code)
{
	kd3_event ev = {.kind = KD3_EVT_ERROR,
	                .code = ini_sio_err_name(&sio, err),
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

	ret = open_transcript(&settings);
	if (ret == KD3_OK)
		ret = session_setup(&settings);
	if (ret == KD3_OK)
		ret = run(&settings);
	code = ini_sio_exit_code(&sio, ret);
	if (ret != KD3_OK)
		report_failure(ret, code);
	ini_sio_wipe(&sio);
	kd3_transcript_close(&transcript, code);
	kd3_session_free(session);
	kd3_key_free(key);
	return code;
}
