/* libkd3: kd3 sessions for applications and devices (docs/LIBRARY.md, kd3(3)).
 *
 * Two layers:
 *   - kd3_session: the protocol, sans I/O. Bytes from the peer go in, bytes for the
 *     peer (and, for a responder, one request for the KDC) come out; messages are
 *     written and read whole. It never touches a socket, a file or a clock: the
 *     caller passes the time (any monotonic milliseconds) to the calls that need it.
 *   - kd3_conn / kd3_server: a thin blocking layer over TCP and UDP sockets for a
 *     program that just wants a channel: kd3_connect, kd3_server_accept, send, recv,
 *     rekey, close.
 *
 * Rules for every call:
 *   - The return value is a kd3_err (include/kd3/error.h): KD3_OK, or the reason.
 *     A NULL pointer or a length out of range is KD3_E_ARG; a call the object's
 *     state does not allow is KD3_E_STATE; a buffer too small is KD3_E_NO_SPACE. No
 *     call aborts the program.
 *   - Objects are opaque, made by a *_new / connect / accept call and released by
 *     their *_free (which wipes every secret they held). The caller owns every buffer
 *     it passes in; the library keeps no pointer to it after the call returns.
 *   - No global state: each object may be used by one thread at a time, and different
 *     objects by different threads at once.
 *   - Strings returned by the library live as long as their object. */
#ifndef KD3_KD3_H
#define KD3_KD3_H

#include <stddef.h>
#include <stdint.h>

#include <kd3/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version, "MAJOR.MINOR.PATCH"; the SONAME changes with MAJOR. */
#define KD3_LIB_VERSION_MAJOR 0
KD3_API const char *kd3_version(void);

/* The longest message: one record's payload. */
#define KD3_MESSAGE_MAX 16384
/* The longest principal name, in bytes. */
#define KD3_PRINCIPAL_MAX 255
/* Key material: 32 bytes per key version. */
#define KD3_SECRET_LEN 32

/* ---- keys ----------------------------------------------------------------------------- */

/* One principal's long-term key versions (up to 8), as the KDC issued them. */
typedef struct kd3_key kd3_key;

/* From a key file that `kdc add` or `kdc export` wrote. A file that group or others
 * can read is refused (KD3_E_KEYFILE_PERMS). err (may be NULL) gets one line naming
 * the file and the reason. */
KD3_API int kd3_key_load(kd3_key **key, const char *path, char *err, size_t err_len);
/* From bytes held elsewhere (a device's secure storage): principal and its first
 * key version. kvno >= 1. */
KD3_API int kd3_key_new(kd3_key **key, const char *principal, uint32_t kvno,
                        const uint8_t secret[KD3_SECRET_LEN]);
/* Another key version (during a rotation both the old and the new one are live).
 * KD3_E_EXISTS for a kvno it has, KD3_E_NO_SPACE beyond 8 versions. */
KD3_API int kd3_key_add(kd3_key *key, uint32_t kvno, const uint8_t secret[KD3_SECRET_LEN]);
KD3_API const char *kd3_key_principal(const kd3_key *key);
/* Wipes the key material. NULL is allowed. */
KD3_API void kd3_key_free(kd3_key *key);

/* ---- sessions, sans I/O --------------------------------------------------------------- */

typedef struct kd3_session kd3_session;

typedef enum kd3_suite { KD3_AES_256_GCM = 1, KD3_CHACHA20_POLY1305 = 2 } kd3_suite;

typedef enum kd3_state {
	KD3_STATE_HANDSHAKE = 1, /* messages 1-4 under way */
	KD3_STATE_ESTABLISHED,   /* messages flow both ways */
	KD3_STATE_CLOSED,        /* both directions closed cleanly */
	KD3_STATE_FAILED         /* kd3_session_error says why; nothing more passes */
} kd3_state;

/* A session that will reach the principal responder. key is copied: it may be freed
 * once this returns. */
KD3_API int kd3_session_new_initiator(kd3_session **s, const kd3_key *key, const char *responder);
/* A session that answers one initiator, with the KDC's help. */
KD3_API int kd3_session_new_responder(kd3_session **s, const kd3_key *key);
/* Wipes every key and buffer. NULL is allowed. */
KD3_API void kd3_session_free(kd3_session *s);

/* Settings, before any byte went in or out (KD3_E_STATE after).
 * Suite: the initiator's choice (default ChaCha20-Poly1305); a responder accepts both.
 * Forward secrecy: an initiator asks for it (an X25519 exchange on top of the KDC's
 * key), a responder with it set refuses initiators that do not. Default: off.
 * Rekey: our sending key moves on after records messages (>= 1), bytes payload bytes
 * (0: no limit) or ms milliseconds (0: no limit) under one key, whichever comes first.
 * RNG: fills out[len] and returns KD3_OK; default: Mbed TLS's CTR_DRBG seeded from the
 * system's entropy. For devices with their own source, and for reproducible tests. */
KD3_API int kd3_session_set_suite(kd3_session *s, kd3_suite suite);
/* Responder: the suites it accepts, an OR of KD3_SUITE_BIT(suite) (default: both). An
 * M1 that asks for another is refused with KD3_E_UNSUPPORTED. KD3_E_STATE on an
 * initiator, KD3_E_ARG for an empty set or an unknown suite. */
#define KD3_SUITE_BIT(suite) (1u << (unsigned)(suite))
KD3_API int kd3_session_set_suites(kd3_session *s, unsigned suites);
KD3_API int kd3_session_set_forward_secret(kd3_session *s, int on);
KD3_API int kd3_session_set_rekey(kd3_session *s, uint64_t records, uint64_t bytes, uint64_t ms);
typedef int (*kd3_rng_callback)(void *ctx, uint8_t *out, size_t len);
KD3_API int kd3_session_set_rng(kd3_session *s, kd3_rng_callback rng, void *ctx);

/* Initiator: message 1 into the output. */
KD3_API int kd3_session_start(kd3_session *s, uint64_t now_ms);

/* Bytes of the stream from the peer, split anyhow. *used gets how many were taken:
 * fewer than len when a message waits to be read, or when the output holds a whole
 * DATA record (read the message, or take the output, then give the rest). A
 * failure is the session's error from then on; whatever the session wrote for the
 * peer meanwhile (an ERROR, a CLOSE) is in the output: send it before closing. */
KD3_API int kd3_session_receive(kd3_session *s, const uint8_t *in, size_t len, size_t *used,
                                uint64_t now_ms);
/* The next message from the peer into buf[cap]: KD3_OK with *len; KD3_E_AGAIN when
 * none is waiting; KD3_E_NO_SPACE when cap is too small (the message stays);
 * KD3_E_CLOSED once the peer closed its direction and every message was read. */
KD3_API int kd3_session_read(kd3_session *s, uint8_t *buf, size_t cap, size_t *len);
/* One message (len <= KD3_MESSAGE_MAX, KD3_E_TOO_BIG beyond) sealed into the output,
 * after a key update when the rekey policy says so. KD3_E_AGAIN when the output holds
 * more than 1 KiB already (a DATA record, or several small frames): take it first. */
KD3_API int kd3_session_write(kd3_session *s, const uint8_t *msg, size_t len, uint64_t now_ms);
/* Up to cap bytes for the peer, in order (*len 0 when there are none). */
KD3_API int kd3_session_output(kd3_session *s, uint8_t *out, size_t cap, size_t *len);
/* How many bytes for the peer wait. */
KD3_API size_t kd3_session_output_pending(const kd3_session *s);

/* Responder: the request for the KDC, once message 1 arrived (KD3_E_AGAIN before and
 * after). One UDP datagram, or one message on a TCP connection to the KDC. The same
 * bytes on every call: send them again when no answer came in time, to the same KDC
 * or the next one. */
KD3_API int kd3_session_kdc_request(kd3_session *s, uint8_t *out, size_t cap, size_t *len);
/* Responder: the KDC's answer. Give it only what came from the KDC's address. What is
 * not an M3 for this exchange nor a well-formed ERROR (a stray or late datagram) is
 * refused with KD3_E_UNEXPECTED and changes nothing: keep waiting. A longer one than
 * any answer is KD3_E_TOO_BIG, the same way. */
KD3_API int kd3_session_kdc_reply(kd3_session *s, const uint8_t *reply, size_t len,
                                  uint64_t now_ms);
/* Responder: what kd3_session_kdc_reply would make of reply, without taking it:
 * KD3_OK for an M3 for this exchange; KD3_E_PEER_ERROR for a well-formed ERROR (*code,
 * may be NULL, gets its code); KD3_E_UNEXPECTED or KD3_E_TOO_BIG for neither (ignore
 * it). An ERROR is not authenticated, and anyone who can send a datagram with the
 * KDC's address can forge one: ask the same KDC over TCP before believing one that
 * came over UDP (kd3_server does). */
KD3_API int kd3_session_kdc_check(const kd3_session *s, const uint8_t *reply, size_t len,
                                  unsigned *code);
/* Responder: no KDC answered. The initiator is told (an ERROR in the output) and the
 * session fails with KD3_E_NO_KDC. */
KD3_API int kd3_session_kdc_failed(kd3_session *s);

/* A key update now (our direction). */
KD3_API int kd3_session_rekey(kd3_session *s, uint64_t now_ms);
/* Closes our direction: a CLOSE once established, an ERROR during the handshake. The
 * session is CLOSED when the peer's CLOSE has come too. */
KD3_API int kd3_session_close(kd3_session *s);
/* Closes our direction with a reason the peer is told: code KD3_OK is a normal end
 * (as kd3_session_close), another kd3_err says why (KD3_E_BUSY, KD3_E_TIMEOUT,
 * KD3_E_INTERNAL, ...), with text (may be NULL, cut at 255 bytes): a CLOSE with that
 * reason once established, an ERROR with that code during the handshake. */
KD3_API int kd3_session_close_reason(kd3_session *s, int code, const char *text);
/* The peer's stream ended: KD3_OK after its CLOSE, KD3_E_TRUNCATED otherwise (a cut
 * connection could hide dropped messages). */
KD3_API int kd3_session_eof(kd3_session *s);

KD3_API kd3_state kd3_session_state(const kd3_session *s);
/* The failure that ended the session, KD3_OK while it has none. */
KD3_API int kd3_session_error(const kd3_session *s);
/* One line on that failure: the check that failed, or the text of the peer's or the
 * KDC's ERROR. "" while it has none. */
KD3_API const char *kd3_session_error_text(const kd3_session *s);
/* The other principal's name, once established; NULL before. */
KD3_API const char *kd3_session_peer(const kd3_session *s);
/* Responder: the initiator's name as its M1 claims it, from the first M1 on (also
 * after a failure), NULL before. Only a claim until the session is established: for
 * log lines ("claiming NAME"), never for a decision. */
KD3_API const char *kd3_session_peer_claim(const kd3_session *s);
/* The suite in use, once established; 0 before. */
KD3_API int kd3_session_suite(const kd3_session *s);
/* 1 when the session's keys have forward secrecy, once established. */
KD3_API int kd3_session_forward_secret(const kd3_session *s);

/* What an established session has carried, for a status display. */
typedef struct kd3_stats {
	uint64_t sent_records, sent_bytes; /* records and their payload bytes, our direction */
	uint64_t received_records, received_bytes;
	uint32_t sent_generation, received_generation;   /* the keys' generations */
	uint64_t sent_key_records, received_key_records; /* records under the current keys */
	uint32_t lifetime_s;              /* the session key's lifetime, from the KDC */
	uint64_t expires_ms;              /* when it runs out, on the clock of the now_ms given */
	int sent_closed, received_closed; /* our CLOSE went out; the peer's came */
} kd3_stats;

/* KD3_E_STATE before the session was established (and after it failed). */
KD3_API int kd3_session_stats(const kd3_session *s, kd3_stats *st);

/* ---- watching a session --------------------------------------------------------------
 * For traces, transcripts and teaching: a callback told every frame as it goes out or
 * comes in, and each step of the session, in the order they happen. It runs inside
 * the session's calls, on the caller's thread, and must not call the same session.
 * The pointers in a note live for the callback only. */

typedef enum kd3_note_kind {
	KD3_NOTE_FRAME = 1,   /* a frame: as sent, or as received (before it was opened) */
	KD3_NOTE_ESTABLISHED, /* the session's keys are confirmed */
	KD3_NOTE_KEY_UPDATE,  /* a direction moved to its next key */
	KD3_NOTE_CLOSE,       /* a CLOSE record, once sealed or opened */
	KD3_NOTE_ERROR        /* an ERROR message from the peer or the KDC */
} kd3_note_kind;

/* The inner type of a record (kd3_note.inner). */
#define KD3_INNER_FINISHED   1
#define KD3_INNER_DATA       2
#define KD3_INNER_KEY_UPDATE 3
#define KD3_INNER_CLOSE      4

#define KD3_NOTE_HASH_LEN 32
#define KD3_NOTE_IV_LEN   12

typedef struct kd3_note {
	kd3_note_kind kind;
	int sent;             /* 1: we sent it (our direction); 0: it came to us */
	int kdc;              /* FRAME, ERROR: to or from the KDC */
	const uint8_t *bytes; /* FRAME: the frame as on the wire (the bytes, if not kd3's) */
	size_t len;
	int inner;        /* FRAME: a record's inner type, -1 when not known or not one */
	long generation;  /* FRAME (a record), KEY_UPDATE, ESTABLISHED (0); else -1 */
	unsigned code;    /* CLOSE: the reason (0: a normal end); ERROR: the code */
	const char *text; /* CLOSE, ERROR: its words, non-printable bytes as '?' */
	/* ESTABLISHED */
	const char *peer;    /* the other principal */
	int suite;           /* kd3_suite */
	int forward_secret;  /* 1 when the keys have forward secrecy */
	uint32_t kvno;       /* our key version the KDC used */
	uint32_t lifetime_s; /* the session key's lifetime, from the KDC */
	const uint8_t *th;   /* the transcript hash, KD3_NOTE_HASH_LEN bytes */
	/* With kd3_session_set_reveal_keys only, NULL otherwise: the secrets, for a
	 * teaching transcript. ESTABLISHED: all; KEY_UPDATE: its direction's. */
	const uint8_t *sk;        /* the session key, KD3_SECRET_LEN bytes */
	const uint8_t *dh;        /* forward secrecy: the X25519 shared secret */
	const uint8_t *tx_secret; /* traffic secret, AEAD key (KD3_SECRET_LEN) and IV */
	const uint8_t *tx_key, *tx_iv;
	const uint8_t *rx_secret;
	const uint8_t *rx_key, *rx_iv;
} kd3_note;

typedef void (*kd3_observer)(void *ctx, const kd3_note *note);

/* Before any byte went in or out (KD3_E_STATE after). NULL fn: no observer. */
KD3_API int kd3_session_set_observer(kd3_session *s, kd3_observer fn, void *ctx);
/* Whether the FRAME notes of frames received carry their bytes (default: yes). For
 * that the session keeps a copy of each frame as it came (records are opened in
 * place), about 16 KiB more per session; without it (on 0) those notes come
 * with bytes NULL, their len, inner and generation set. Frames sent always carry
 * their bytes. Before any byte went in or out (KD3_E_STATE after). */
KD3_API int kd3_session_set_observe_bytes(kd3_session *s, int on);
/* Puts the session's secrets into its notes (for a teaching transcript: whoever has
 * them can read the whole session). Needs an observer; default off. */
KD3_API int kd3_session_set_reveal_keys(kd3_session *s, int on);

/* ---- blocking sockets ----------------------------------------------------------------- */

/* One established session over a TCP connection. */
typedef struct kd3_conn kd3_conn;
/* A responder: a listening TCP socket and the KDCs to ask. */
typedef struct kd3_server kd3_server;

/* Options of kd3_connect and kd3_server_new; zero means the default. */
typedef struct kd3_options {
	int timeout_ms;         /* the longest wait for the peer or a KDC: 10000 */
	int forward_secret;     /* as kd3_session_set_forward_secret: 0 */
	kd3_suite suite;        /* the initiator's suite: ChaCha20-Poly1305 */
	uint64_t rekey_records; /* as kd3_session_set_rekey: 2^20 records */
} kd3_options;

/* Connects to the responder principal at address ("192.0.2.7:7089", "[2001:db8::7]:7089",
 * "responder.example.org:7089"; port 7089 when left out; each address of a name tried
 * in turn) and runs the exchange, all within the options' timeout. opts may be NULL.
 * err (may be NULL) gets one line on a failure; a name that does not resolve gives
 * KD3_E_NOT_FOUND or KD3_E_TIMEOUT. */
KD3_API int kd3_connect(kd3_conn **c, const kd3_key *key, const char *responder,
                        const char *address, const kd3_options *opts, char *err, size_t err_len);

/* Listens on address ("127.0.0.1:7089", "[::]:0" for a free port; a name: its first
 * address) and asks the KDCs in kdcs ("192.0.2.1:7088,kdc2.example.org", tried in
 * order; a name stands for all its addresses, up to 8 in all) for each session's key. */
KD3_API int kd3_server_new(kd3_server **srv, const kd3_key *key, const char *address,
                           const char *kdcs, const kd3_options *opts, char *err, size_t err_len);
/* The port it listens on. */
KD3_API int kd3_server_port(const kd3_server *srv);
/* Waits up to timeout_ms (-1: forever) for one initiator and runs its exchange
 * (within the options' timeout), asking the KDCs in order over UDP (an ERROR over UDP
 * is asked again over TCP before it is believed). KD3_E_TIMEOUT when
 * none came (a connection that went away before it was taken is waited past),
 * KD3_E_AGAIN when a signal interrupted the wait (a handler's flag can stop a loop); a
 * failed exchange returns its error (err says why) and the server goes on. A server
 * that serves many at once runs each kd3_conn on a thread of its own. */
KD3_API int kd3_server_accept(kd3_server *srv, kd3_conn **c, int timeout_ms, char *err,
                              size_t err_len);
KD3_API void kd3_server_free(kd3_server *srv);

/* One message; KD3_E_TOO_BIG beyond KD3_MESSAGE_MAX. Once a send or a receive failed
 * on the socket (KD3_E_IO, KD3_E_TIMEOUT while sending), every later call but
 * kd3_conn_free returns that error: part of a record may have gone out. */
KD3_API int kd3_conn_send(kd3_conn *c, const void *msg, size_t len);
/* The next message, waiting up to timeout_ms (-1: the options' timeout). KD3_E_CLOSED
 * when the peer closed cleanly, KD3_E_TIMEOUT when nothing came. */
KD3_API int kd3_conn_recv(kd3_conn *c, void *buf, size_t cap, size_t *len, int timeout_ms);
KD3_API int kd3_conn_rekey(kd3_conn *c);
/* Closes our direction and waits (within the timeout) for the peer's CLOSE: KD3_OK
 * when both ended cleanly. Messages the peer sent before its CLOSE are dropped: read
 * them first (kd3_conn_recv until KD3_E_CLOSED) if they matter. kd3_conn_free
 * releases the connection. */
KD3_API int kd3_conn_close(kd3_conn *c);
/* Closes the socket and wipes everything. NULL is allowed. Before closing it ends our
 * direction and reads what the peer still sends for up to 200 ms, so that our last
 * frame is not lost to the reset a close with unread input makes. */
KD3_API void kd3_conn_free(kd3_conn *c);
KD3_API const char *kd3_conn_peer(const kd3_conn *c);
/* The socket, for poll(): readable means kd3_conn_recv has something to do. Bytes
 * already read may hold more messages than the one a call returned, so check
 * kd3_conn_pending before waiting on the socket. */
KD3_API int kd3_conn_fd(const kd3_conn *c);
/* 1 when kd3_conn_recv will return without waiting on the socket: a message, bytes
 * read and not yet taken, the end of the stream or a failure; 0 otherwise. */
KD3_API int kd3_conn_pending(const kd3_conn *c);
/* One line on the last failure of a call on c ("" when none). */
KD3_API const char *kd3_conn_error_text(const kd3_conn *c);

#ifdef __cplusplus
}
#endif

#endif
