/* kd3 session events: what a session does, told to one sink with two backends.
 *
 * The initiator (initiator/sio.c) and the responder call kd3_events_emit where things
 * happen (a handshake step, the session established, a message sent or received, a
 * key update, a CLOSE, the failure that ended the run). The sink decides what reaches
 * its output:
 *   - plain (KD3_EVENTS_PLAIN): only received messages, each payload and '\n', byte
 *     for byte what the initiator has always printed; every other event is dropped;
 *   - JSON (KD3_EVENTS_JSON): one JSON object per line per event (cJSON), each with
 *     "event" and "t_us" (microseconds since kd3_events_init, monotonic clock).
 * A received payload goes into "data" when it is valid UTF-8 without a NUL byte
 * (a C string cannot hold one), else into "data_base64" (standard base64).
 * A later transcript backend can reuse the same hooks. */
#ifndef KD3_EVENTS_H
#define KD3_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum kd3_event_kind {
	KD3_EVT_HANDSHAKE,   /* step */
	KD3_EVT_ESTABLISHED, /* peer, suite, forward_secrecy, lifetime_s */
	KD3_EVT_MESSAGE,     /* direction, data/size (data only when received) */
	KD3_EVT_KEY_UPDATE,  /* direction, generation */
	KD3_EVT_CLOSE,       /* by, reason, text */
	KD3_EVT_ERROR,       /* code, text (the message), exit_code */
} kd3_event_kind;

typedef struct kd3_event {
	kd3_event_kind kind;
	uint64_t session;      /* the responder's session number (0: not shown) */
	const char *step;      /* "M1 sent", "M4 received", "FINISHED sent" */
	const char *peer;      /* the other principal */
	const char *suite;     /* suite name */
	int forward_secrecy;   /* 0 / 1 */
	uint32_t lifetime_s;   /* key lifetime from the KDC */
	const char *direction; /* "sent" / "received" */
	const uint8_t *data;   /* a received payload (NULL for sent messages) */
	size_t size;           /* payload size */
	uint32_t generation;   /* key generation after the update */
	const char *by;        /* "us" / "peer" */
	unsigned reason;       /* a CLOSE's reason code */
	const char *text;      /* a CLOSE's text, or an error's message */
	const char *code;      /* an error's name: "BAD_AUTH", "RECORD_AUTH", ... */
	int exit_code;         /* the process's exit code (< 0: not shown) */
} kd3_event;

typedef enum kd3_events_mode {
	KD3_EVENTS_PLAIN = 0,
	KD3_EVENTS_JSON = 1,
	KD3_EVENTS_CALLBACK = 2, /* every event to a function (the initiator's chat screen) */
} kd3_events_mode;

/* A callback sink's function: returns a kd3_err (KD3_E_IO with errno set when its
 * output failed). ev and what it points to live only for the call. */
typedef int (*kd3_events_fn)(void *ctx, const kd3_event *ev, uint64_t t_us);

typedef struct kd3_events {
	FILE *out;
	kd3_events_mode mode;
	uint64_t start_us; /* monotonic clock at kd3_events_init */
	kd3_events_fn fn;  /* KD3_EVENTS_CALLBACK */
	void *fn_ctx;
} kd3_events;

void kd3_events_init(kd3_events *e, FILE *out, kd3_events_mode mode);
/* A sink that hands each event to fn(ctx, ev, t_us). */
void kd3_events_init_callback(kd3_events *e, kd3_events_fn fn, void *ctx);

/* Writes ev to the sink's output and flushes it. KD3_E_IO when the write failed
 * (errno says why), KD3_E_NOMEM when the JSON could not be built. */
int kd3_events_emit(kd3_events *e, const kd3_event *ev);

/* The JSON object for ev at time t_us, one line without '\n'; free() it. NULL when
 * out of memory. Exposed for tests. */
char *kd3_event_json(const kd3_event *ev, uint64_t t_us);

/* Makes cJSON wipe every block it frees (they may hold plaintext or keys). Call
 * before the first cJSON use; events and transcripts do. Thread-safe. */
void kd3_json_hooks_init(void);

/* 1 when p[len] is valid UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF) and holds no NUL byte. */
int kd3_events_utf8_ok(const uint8_t *p, size_t len);

/* A stable upper-case name for a kd3_err: the wire names ("BAD_AUTH") for 1..9, the
 * enum's name without KD3_E_ for the others ("RECORD_AUTH"), "UNKNOWN" otherwise. */
const char *kd3_events_err_name(int err);

#endif
