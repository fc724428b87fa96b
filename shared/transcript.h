/* kd3 transcript: a JSON record of a run, for reading what happened on the wire
 * (--transcript FILE on all three programs; docs/TRANSCRIPT.md has the schema).
 *
 * The file is JSON Lines: one object per line, each with "kind" and "t_us"
 * (microseconds since the transcript was opened, monotonic clock):
 *   start    program, version, format, time (UTC wall clock), reveal_keys
 *   frame    every frame sent or received: session, dir ("I->R", "R->I", "R->KDC",
 *            "KDC->R"), type, size, hex (the bytes as on the wire; records sealed),
 *            and "fields", the decoded public values (nonces, kvnos, e_i/e_r, ...)
 *   session  a session established: peer, suite, forward secrecy, lifetime, TH
 *   keys     --reveal-keys only: a direction's traffic secret, key and IV for each
 *            key generation, and the session's SK
 *   kdc      the KDC's verdict on one request (outcome, TH; SK with --reveal-keys)
 *   close    a CLOSE, by us or the peer;  error: the failure that ended a session
 *   end      the run's exit code (the last line of a finished run)
 * Nothing of a session's plaintext is written; keys only with --reveal-keys.
 *
 * Each line is written whole and flushed, under a lock (the KDC's workers share one
 * transcript). The first failed write is kept in write_errno and reported once;
 * the run goes on without the transcript. */
#ifndef KD3_TRANSCRIPT_H
#define KD3_TRANSCRIPT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "peer.h"

#define KD3_TRANSCRIPT_FORMAT 1

typedef struct kd3_transcript {
	FILE *f;
	int reveal_keys;
	uint64_t start_us;
	int write_errno; /* first failed write (0: none) */
	pthread_mutex_t lock;
	char path[256]; /* for the one error line */
} kd3_transcript;

/* One frame as it crossed the wire. */
typedef struct kd3_tframe {
	uint64_t session;      /* the session (responder: its id; initiator: 1); KDC: request */
	const char *dir;       /* "I->R", "R->I", "R->KDC", "KDC->R" */
	const uint8_t *p;      /* the frame's bytes (a record still sealed) */
	size_t len;            /* may hold bytes that are not a frame: shown as malformed */
	int fs;                /* whether an M4 carries e_r */
	int inner;             /* a record's inner type when known (KD3_R_*), else -1 */
	long generation;       /* a record's key generation, -1 when not a record */
	const char *address;   /* the other end's address, or NULL */
	const char *transport; /* "udp" / "tcp" (the KDC's frames), or NULL */
} kd3_tframe;

/* Creates (mode 0600) or truncates path, refusing a symbolic link or anything but a
 * regular file, and writes the start line. program: "initiator", "responder", "kdc".
 * With reveal_keys, prints the warning on stderr. KD3_E_IO with the reason in
 * err[cap] on failure. */
int kd3_transcript_open(kd3_transcript *t, const char *path, const char *program, int reveal_keys,
                        char *err, size_t cap);
/* The end line, and closes the file. No-op on a transcript never opened. */
void kd3_transcript_close(kd3_transcript *t, int exit_code);
/* 1 when t is open (a NULL t is not). */
int kd3_transcript_on(const kd3_transcript *t);

void kd3_transcript_frame(kd3_transcript *t, const kd3_tframe *fr);

/* Each frame of p[len] (what one state-machine call wrote), the way the responder
 * sends them: records before the last are the KEY_UPDATEs kd3_peer_send puts first;
 * the last record's inner type is last_inner (or -1), and tx_generation is the sending
 * key generation after the call. */
void kd3_transcript_frames_out(kd3_transcript *t, uint64_t session, const char *dir,
                               const uint8_t *p, size_t len, int fs, int last_inner,
                               uint32_t tx_generation);

/* One direction's key, for a keys line (ts, key, iv NULL: none to show). */
typedef struct kd3_tkeys {
	const char *direction; /* "sent" / "received" */
	uint32_t generation;
	const uint8_t *ts, *key, *iv;
} kd3_tkeys;

/* A session established, as the session line shows it; sk, dh and the keys are
 * shown only when the transcript reveals keys (sk NULL: no sk line). */
typedef struct kd3_tsession {
	const char *role, *self, *peer, *address, *suite;
	int fs;
	uint32_t kvno, lifetime_s;
	const uint8_t *th;
	uint64_t rekey_records, rekey_bytes, rekey_seconds;
	const uint8_t *sk, *dh;
	kd3_tkeys tx, rx;
} kd3_tsession;

/* The session line, and with reveal_keys the keys lines (sk, then both directions). */
void kd3_transcript_session(kd3_transcript *t, uint64_t session, const kd3_tsession *ts);
/* A key update line, and with reveal_keys the new key of its direction. */
void kd3_transcript_key_update_keys(kd3_transcript *t, uint64_t session, const kd3_tkeys *k);

/* The session is established (p in KD3_PS_ESTABLISHED): the session line, and with
 * reveal_keys the keys lines for both directions; then p's revealed SK is wiped. */
void kd3_transcript_established(kd3_transcript *t, uint64_t session, kd3_peer *p,
                                const char *address);
/* A key update, sent or received (direction "sent" / "received"): with reveal_keys,
 * the new key of that direction. */
void kd3_transcript_key_update(kd3_transcript *t, uint64_t session, kd3_peer *p,
                               const char *direction);
void kd3_transcript_close_event(kd3_transcript *t, uint64_t session, const char *by,
                                unsigned reason, const char *text);
void kd3_transcript_error(kd3_transcript *t, uint64_t session, const char *code, const char *text);

/* The KDC's verdict on one request: outcome ("OK" or an error name), TH when it was
 * computed (else NULL), SK (NULL unless reveal_keys). */
void kd3_transcript_kdc(kd3_transcript *t, uint64_t request, const char *outcome, const uint8_t *th,
                        const uint8_t *sk);

#endif
