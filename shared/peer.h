/* kd3 initiator and responder state machines, sans I/O: docs/PROTOCOL.md,
 * "State machines".
 *
 * A kd3_peer consumes whole frames (from the peer, or for a responder from the KDC)
 * and produces frames into the caller's writers; it never touches a socket, a clock
 * or the system RNG (both are passed in). Each (state, source, type) pair that is
 * legal has one row in a transition table; everything else is KD3_E_UNEXPECTED.
 * Errors are sticky: after the first failure the peer is FAILED and refuses all.
 *
 * The caller's loop:
 *   initiator: kd3_peer_start -> send to_peer; then feed frames from R.
 *   responder: feed frames from I; send to_kdc to the KDC (retransmit the same bytes
 *              on timeout); feed the KDC's reply with KD3_SRC_KDC.
 *   both:      once ESTABLISHED, kd3_peer_send for each message typed, deliver
 *              out.data, kd3_peer_close at EOF, kd3_peer_eof when the stream ends. */
#ifndef KD3_PEER_H
#define KD3_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "channel.h"
#include "crypto.h"
#include "schedule.h"
#include "wire.h"

typedef enum kd3_peer_state {
	KD3_PS_START = 0,     /* I: before M1 */
	KD3_PS_WAIT_M4,       /* I: M1 sent */
	KD3_PS_WAIT_M1,       /* R: connection accepted */
	KD3_PS_WAIT_M3,       /* R: M2 sent to the KDC */
	KD3_PS_WAIT_FINISHED, /* R: M4 sent */
	KD3_PS_ESTABLISHED,   /* both: records flow */
	KD3_PS_CLOSED,        /* both directions closed cleanly */
	KD3_PS_FAILED,        /* sticky failure; see kd3_peer.err */
	KD3_PS_COUNT
} kd3_peer_state;

typedef enum kd3_source { KD3_SRC_PEER = 0, KD3_SRC_KDC = 1 } kd3_source;

#define KD3_KEYS_MAX 8

typedef struct kd3_peer_config {
	kd3_role role;
	char self[KD3_NAME_MAX + 1];      /* our principal name */
	char peer_name[KD3_NAME_MAX + 1]; /* I: the responder to reach; R: unused */
	kd3_kvno_key keys[KD3_KEYS_MAX];  /* our live key versions (subkeys) */
	size_t nkeys;
	uint8_t suite;          /* I: the suite to ask for */
	uint8_t suites_allowed; /* bit (1 << suite) */
	uint8_t forward_secret; /* I: ask for it; R: require it when set */
	uint64_t rekey_records; /* tx key update policy (>= 1) */
	uint64_t rekey_bytes;   /* 0: no byte limit */
	uint64_t rekey_ms;      /* and after this long under one key (0: no time limit) */
	uint8_t reveal_keys;    /* keep SK (and the X25519 result) for a transcript */
} kd3_peer_config;

/* With cfg.reveal_keys only (--reveal-keys, for teaching): the session's SK and, in
 * forward-secret mode, the X25519 shared secret, kept from the key derivation until
 * kd3_peer_forget_revealed, a failure or kd3_peer_free. */
typedef struct kd3_peer_revealed {
	uint8_t have; /* 1 once the session keys were derived */
	uint8_t have_dh;
	uint8_t sk[KD3_KEY_LEN];
	uint8_t dh[KD3_DH_LEN];
} kd3_peer_revealed;

/* Events reported by one call. */
#define KD3_EV_ESTABLISHED 0x01 /* keys confirmed; records may flow */
#define KD3_EV_DATA        0x02 /* out.data holds one delivered DATA payload */
#define KD3_EV_KEY_UPDATE  0x04 /* the peer moved to its next key */
#define KD3_EV_PEER_CLOSED 0x08 /* the peer closed its direction (CLOSE received) */
#define KD3_EV_CLOSED      0x10 /* both directions closed: the session is over */
#define KD3_EV_TO_KDC      0x20 /* out.to_kdc holds a frame for the KDC */

typedef struct kd3_peer_out {
	kd3_writer *to_peer; /* frames for the peer are appended here */
	kd3_writer *to_kdc;  /* R: the M2 frame for the KDC */
	unsigned events;
	kd3_view data;         /* KD3_EV_DATA: the plaintext, inside the input frame */
	uint8_t inner;         /* the inner type of the record just opened (for traces) */
	uint16_t close_reason; /* KD3_EV_PEER_CLOSED */
	kd3_view close_text;
	uint16_t peer_error; /* KD3_E_PEER_ERROR: the code the peer or the KDC sent */
	kd3_view peer_error_text;
} kd3_peer_out;

typedef struct kd3_peer {
	kd3_peer_config cfg;
	kd3_peer_state state;
	int err;            /* sticky */
	const char *detail; /* static text naming the failed check, or NULL */
	kd3_crypto *crypto;
	kd3_rng_fn rng;
	void *rng_ctx;

	/* Handshake. */
	uint8_t m1[KD3_M1_BODY_MAX]; /* our M1 body (I), or the received one (R) */
	size_t m1_len;
	uint8_t n_r[KD3_NONCE_LEN];
	uint8_t e_priv[KD3_DH_LEN]; /* X25519 private key, forward-secret mode */
	uint8_t e_pub[KD3_DH_LEN];
	uint8_t fs; /* forward-secret mode in use */
	uint8_t suite;
	uint32_t kvno_used;      /* our kvno in this exchange */
	const kd3_kvno_key *key; /* our key for this exchange */
	uint8_t th[KD3_HASH_LEN];
	kd3_session_secrets secrets;

	/* Session. */
	char peer_id[KD3_NAME_MAX + 1]; /* the other principal's name */
	uint32_t lifetime;              /* seconds, from the KDC */
	uint64_t expires_ms;            /* monotonic deadline */
	uint64_t tx_key_since_ms;       /* when our current sending key came into use */
	kd3_channel ch;
	kd3_peer_revealed revealed; /* empty unless cfg.reveal_keys */
} kd3_peer;

int kd3_peer_init(kd3_peer *p, const kd3_peer_config *cfg, kd3_crypto *c, kd3_rng_fn rng,
                  void *rng_ctx);
/* Wipes every secret and frees the channel. */
void kd3_peer_free(kd3_peer *p);

/* Initiator: write M1. */
int kd3_peer_start(kd3_peer *p, kd3_writer *to_peer);

/* One whole frame in. The frame is decrypted in place (records). */
int kd3_peer_input(kd3_peer *p, kd3_source src, uint8_t *frame, size_t len, uint64_t now_ms,
                   kd3_peer_out *out);

/* Established: seal one DATA record (a KEY_UPDATE first when the policy says so:
 * records, bytes or time under the current key). */
int kd3_peer_send(kd3_peer *p, const uint8_t *payload, size_t len, uint64_t now_ms,
                  kd3_writer *to_peer);
/* Force a key update now. */
int kd3_peer_rekey(kd3_peer *p, uint64_t now_ms, kd3_writer *to_peer);
/* Close our direction: a CLOSE record once established, an ERROR frame before. */
int kd3_peer_close(kd3_peer *p, uint16_t reason, const char *text, kd3_writer *to_peer);
/* The stream from the peer ended: KD3_OK after a CLOSE, KD3_E_TRUNCATED otherwise. */
int kd3_peer_eof(kd3_peer *p);
/* Responder: the KDC could not be reached; writes an ERROR for the initiator. */
int kd3_peer_kdc_failed(kd3_peer *p, int err, kd3_writer *to_peer);
/* KD3_E_EXPIRED once the session key's lifetime has run out. */
int kd3_peer_check_expiry(kd3_peer *p, uint64_t now_ms);

/* Wipes p->revealed (once the transcript has written it). */
void kd3_peer_forget_revealed(kd3_peer *p);

const char *kd3_peer_state_name(kd3_peer_state s);

#endif
