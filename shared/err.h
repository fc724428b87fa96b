/* kd3: the one error enum used by every module.
 *
 * Values 1..9 are the wire codes of the ERROR message (docs/PROTOCOL.md, "ERROR"),
 * so a failure found while parsing a request maps to its answer without a table.
 * Everything >= 64 is local: it never goes on the wire as such. */
#ifndef KD3_ERR_H
#define KD3_ERR_H

typedef enum kd3_err {
	KD3_OK = 0,

	/* Wire codes (ERROR message). */
	KD3_E_MALFORMED = 1,
	KD3_E_UNSUPPORTED = 2,
	KD3_E_UNKNOWN_PRINCIPAL = 3,
	KD3_E_BAD_AUTH = 4,
	KD3_E_KVNO_UNKNOWN = 5,
	KD3_E_POLICY_DENIED = 6,
	KD3_E_BUSY = 7,
	KD3_E_INTERNAL = 8,
	KD3_E_TIMEOUT = 9,

	/* Protocol failures seen by a party (local). */
	KD3_E_UNEXPECTED = 64, /* message not legal in the current state */
	KD3_E_SAME_PRINCIPAL,  /* id_i == id_r */
	KD3_E_BLOB_AUTH,       /* a sealed blob failed to open: wrong key or tampering */
	KD3_E_CONFIRM,         /* confirm_r / confirm_i mismatch */
	KD3_E_NONCE,           /* M3 for an exchange we do not have open */
	KD3_E_RECORD_SEQ,      /* record out of sequence: replayed, dropped or reordered */
	KD3_E_RECORD_AUTH,     /* record failed its tag: tampered or reflected */
	KD3_E_RECORD_TYPE,     /* inner type not legal here (DATA before FINISHED, ...) */
	KD3_E_TRUNCATED,       /* the stream ended without a CLOSE */
	KD3_E_PEER_ERROR,      /* the peer (or the KDC) answered with ERROR */
	KD3_E_EXPIRED,         /* the session key's lifetime ran out */
	KD3_E_CLOSED,          /* the session or direction is closed; nothing more may pass */
	KD3_E_TOO_BIG,         /* payload larger than one record carries */
	KD3_E_WEAK_KEY,        /* X25519 produced the all-zero shared secret */

	/* Local failures. */
	KD3_E_NO_SPACE = 96, /* output buffer too small (a bug, or an oversized input) */
	KD3_E_CRYPTO,        /* Mbed TLS returned an error */
	KD3_E_RNG,           /* the random generator failed */
	KD3_E_NOMEM,
	KD3_E_IO,
	KD3_E_CONFIG,
	KD3_E_KEYFILE,
	KD3_E_KEYFILE_PERMS, /* key file readable by group or others */
	KD3_E_DB,
	KD3_E_USAGE,
	KD3_E_EXISTS,
	KD3_E_NOT_FOUND,
	KD3_E_NO_KDC, /* every KDC in the list failed to answer */
} kd3_err;

/* One short, stable, lower-case sentence for each code; never NULL. */
const char *kd3_strerror(int err);

/* The wire name of a code 1..9 ("BAD_AUTH"), or "?" for others. */
const char *kd3_err_wire_name(int err);

/* 1 when err is one of the nine codes that may be sent in an ERROR message. */
int kd3_err_is_wire(int err);

#endif
