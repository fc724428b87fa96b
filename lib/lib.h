/* libkd3 internals: the objects behind the opaque types of include/kd3/kd3.h, and the
 * helpers the library's files share. Never installed. */
#ifndef KD3_LIB_H
#define KD3_LIB_H

#include <stddef.h>
#include <stdint.h>

#include <kd3/kd3.h>

#include "crypto.h"
#include "peer.h"
#include "schedule.h"
#include "stream.h"
#include "wire.h"

struct kd3_key {
	char principal[KD3_NAME_MAX + 1];
	size_t nkeys;
	kd3_kvno_key keys[KD3_KEYS_MAX]; /* subkeys only: the long-term key is wiped */
};

/* Output room. A small frame is anything but a full DATA record: M1, M4, FINISHED, a
 * KEY_UPDATE, a CLOSE or an ERROR (each well under 1 KiB). One frame in from the peer
 * writes at most one small frame; one kd3_session_write a KEY_UPDATE and a DATA record.
 * Writes stop unless the output holds at most one small frame, input unless there is
 * room for one: neither ever runs out, and the buffer is one full frame and two small
 * ones (not three full frames). */
#define KD3_LIB_SMALL_FRAME 1024
#define KD3_LIB_TX_CAP      (KD3_FRAME_MAX + 2 * KD3_LIB_SMALL_FRAME)
#define KD3_LIB_WRITE_ROOM  (KD3_FRAME_MAX + KD3_LIB_SMALL_FRAME)
#define KD3_LIB_INPUT_ROOM  KD3_LIB_SMALL_FRAME
_Static_assert(KD3_HDR_LEN + KD3_M1_BODY_MAX <= KD3_LIB_SMALL_FRAME, "M1 is small");
_Static_assert(KD3_HDR_LEN + KD3_M4_BODY_MAX <= KD3_LIB_SMALL_FRAME, "M4 is small");
_Static_assert(KD3_HDR_LEN + KD3_ERROR_BODY_MAX <= KD3_LIB_SMALL_FRAME, "ERROR is small");
_Static_assert(KD3_RECORD_OVERHEAD + 2 + 1 + 255 <= KD3_LIB_SMALL_FRAME, "CLOSE is small");
_Static_assert(KD3_RECORD_OVERHEAD + KD3_HASH_LEN <= KD3_LIB_SMALL_FRAME, "FINISHED is small");
#define KD3_LIB_ERRTEXT_MAX 320
/* The KDC's side: M2 at its longest, and the longer of M3 and an ERROR (a longer
 * answer is no answer: KD3_E_TOO_BIG). */
#define KD3_LIB_M2_MAX        (KD3_HDR_LEN + KD3_M2_BODY_MAX)
#define KD3_LIB_KDC_REPLY_MAX (KD3_HDR_LEN + KD3_ERROR_BODY_MAX)
_Static_assert(KD3_M3_BODY_LEN <= KD3_ERROR_BODY_MAX, "an M3 fits the KDC answer buffer");

struct kd3_session {
	kd3_peer_config cfg; /* settings, frozen into peer at the first byte */
	kd3_peer peer;
	kd3_crypto crypto;
	kd3_rng_callback rng;
	void *rng_ctx;
	int begun;       /* kd3_peer_init ran */
	int err;         /* sticky failure of the session (KD3_OK: none) */
	uint64_t now_ms; /* the latest time the caller gave */
	char err_text[KD3_LIB_ERRTEXT_MAX];

	size_t held_len; /* > 0: a DATA frame at the front of rx, not read yet */
	kd3_view held;   /* its plaintext, inside rx */
	int peer_closed; /* the peer's CLOSE came */
	uint16_t close_reason;
	char close_text[KD3_LIB_ERRTEXT_MAX]; /* a CLOSE with another reason: what it said */
	char claim[KD3_NAME_MAX + 1];         /* R: the initiator's name as M1 claims it */

	size_t tx_off, tx_len;
	size_t kdc_req_len;

	kd3_observer observer; /* observe.c; NULL: none */
	void *observer_ctx;
	uint8_t *watch_copy; /* with an observer that wants the bytes: the frame in, as it
	                      * came (KD3_FRAME_MAX); NULL otherwise */
	int watch_no_bytes;  /* kd3_session_set_observe_bytes(s, 0) */
	uint8_t watch_type;  /* the frame in's type */
	size_t watch_len;
	long watch_generation; /* the key generation a record in opens under */

	/* The buffers, last: session_new zeroes everything before them and not them (only
	 * what was written is ever read), so that a session holds in memory the pages it
	 * used, not 35 KiB of zeros: an idle session costs a few pages. */
	uint8_t tx[KD3_LIB_TX_CAP];               /* bytes for the peer: tx[tx_off..tx_len) */
	uint8_t kdc_req[KD3_LIB_M2_MAX];          /* R: M2, kept for retransmission */
	uint8_t kdc_reply[KD3_LIB_KDC_REPLY_MAX]; /* R: the KDC's answer, opened in place */
	kd3_stream rx; /* bytes from the peer, gathered into frames (its length last) */
};

/* The output buffer (session.c): its free room, a writer over it, and the frames that
 * writer wrote made part of it (whole frames only: the room is checked first). */
size_t kd3_lib_tx_free(const kd3_session *s);
void kd3_lib_tx_writer(kd3_session *s, kd3_writer *w);
/* last_inner: the inner type of the last record the call wrote (KD3_R_*), -1 if none;
 * records before it are the KEY_UPDATEs kd3_peer_send puts first. */
void kd3_lib_tx_commit(kd3_session *s, const kd3_writer *w, int last_inner);

/* The observer (observe.c): each does nothing without one. */
void kd3_lib_note_frames_out(kd3_session *s, const uint8_t *p, size_t len, int last_inner, int kdc);
/* A frame in: kept before kd3_peer_input opens it, told after with what it did. */
void kd3_lib_note_in_begin(kd3_session *s, const uint8_t *frame, size_t len);
void kd3_lib_note_in_end(kd3_session *s, int ret, const kd3_peer_out *out, int kdc);
void kd3_lib_note_not_kd3(kd3_session *s, const uint8_t *p, size_t len);
void kd3_lib_note_close_out(kd3_session *s, unsigned reason, const char *text);
/* Wipes and frees the frame copy. */
void kd3_lib_observer_free(kd3_session *s);
/* The first failure is the session's: err_text says what failed (the text of the
 * ERROR when the peer or the KDC sent one; out may be NULL), and every key the state
 * machine held is wiped now, not at kd3_session_free. Returns the session's error. */
int kd3_lib_fail(kd3_session *s, int err, const kd3_peer_out *out, kd3_source from);
/* Bytes from the other side, for an error line: non-printable ones become '?'. */
void kd3_lib_printable(const uint8_t *p, size_t len, char *out, size_t cap);

/* err_text[cap] = printf(fmt); the one way the library writes a caller's err buffer. */
void kd3_lib_text(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
