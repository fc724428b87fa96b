/* libkd3: the one error enum of every kd3 call, and its text.
 *
 * Every function of the library returns a kd3_err (KD3_OK is 0) or documents what it
 * returns instead. Values 1..9 are also the codes of the protocol's ERROR message;
 * every other value is local. The values are part of the ABI: they never change. */
#ifndef KD3_ERROR_H
#define KD3_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#ifndef KD3_API
#if defined(__GNUC__)
#define KD3_API __attribute__((visibility("default")))
#else
#define KD3_API
#endif
#endif

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

	/* Misuse of the library (include/kd3/kd3.h): never a protocol failure. */
	KD3_E_ARG,   /* a NULL pointer, a length out of range, a bad option value */
	KD3_E_STATE, /* the call is not legal in the session's current state */
	KD3_E_AGAIN, /* nothing to give now: feed more input, or take the output first */
} kd3_err;

/* One short, stable, lower-case sentence for each code ("record failed
 * authentication (tampered or reflected)"); never NULL, "unknown error" for a value
 * that is not a kd3_err. */
KD3_API const char *kd3_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
