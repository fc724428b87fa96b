/* kd3 key schedule: docs/PROTOCOL.md, "Long-term keys", "Sealing" and
 * "Session key schedule". Every label is a named constant here. */
#ifndef KD3_SCHEDULE_H
#define KD3_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "wire.h"

#define KD3_LABEL_PRINCIPAL "kd3/1 principal"
#define KD3_LABEL_AUTH      "kd3/1 auth"
#define KD3_LABEL_WRAP      "kd3/1 wrap"
#define KD3_LABEL_M1        "kd3/1 M1"
#define KD3_LABEL_M2        "kd3/1 M2"
#define KD3_LABEL_TH        "kd3/1 TH"
#define KD3_LABEL_SEAL      "kd3/1 seal "
#define KD3_LABEL_SK        "kd3/1 SK"
#define KD3_LABEL_M3        "kd3/1 M3 "
#define KD3_ROLE_I          "initiator"
#define KD3_ROLE_R          "responder"
#define KD3_LABEL_CONFIRM_R "kd3/1 confirm responder"
#define KD3_LABEL_CONFIRM_I "kd3/1 confirm initiator"
#define KD3_LABEL_TS_I2R    "kd3/1 traffic i2r"
#define KD3_LABEL_TS_R2I    "kd3/1 traffic r2i"
#define KD3_LABEL_KEY       "kd3/1 key"
#define KD3_LABEL_IV        "kd3/1 iv"
#define KD3_LABEL_UPDATE    "kd3/1 update"

typedef enum kd3_role { KD3_ROLE_INITIATOR = 0, KD3_ROLE_RESPONDER = 1 } kd3_role;

/* Derived once per long-term key, at load time; each also as a keyed HMAC (crypto.h),
 * so that every authenticator and blob key computed with it skips the pad blocks. */
typedef struct kd3_subkeys {
	uint8_t auth[KD3_KEY_LEN]; /* HMAC key for this principal's request authenticator */
	uint8_t wrap[KD3_KEY_LEN]; /* PRK for sealing session keys to this principal */
	kd3_hmac_key auth_key;     /* auth, keyed */
	kd3_hmac_key wrap_key;     /* wrap, keyed */
} kd3_subkeys;

/* One live key version of a principal, as the parties use it. */
typedef struct kd3_kvno_key {
	uint32_t kvno;
	kd3_subkeys sub;
} kd3_kvno_key;

typedef struct kd3_session_secrets {
	uint8_t confirm_r[KD3_MAC_LEN];
	uint8_t confirm_i[KD3_MAC_LEN];
	uint8_t ts_i2r[KD3_KEY_LEN];
	uint8_t ts_r2i[KD3_KEY_LEN];
} kd3_session_secrets;

/* A principal's subkeys from its long-term key. Needs no context state: c may be NULL
 * (the KDC derives on whichever worker first needs them). */
int kd3_derive_subkeys(kd3_crypto *c, const uint8_t key[KD3_KEY_LEN], kd3_subkeys *out);
/* Keys auth_key and wrap_key from auth and wrap again (after a test changed them). */
int kd3_subkeys_rekey(kd3_subkeys *s);

/* auth = HMAC(auth_key, label || signed bytes). */
int kd3_authenticator(kd3_crypto *c, const uint8_t auth_key[KD3_KEY_LEN], const char *label,
                      const uint8_t *signed_bytes, size_t signed_len, uint8_t out[KD3_MAC_LEN]);
/* Constant-time check of a received authenticator: KD3_OK or KD3_E_BAD_AUTH. */
int kd3_authenticator_check(kd3_crypto *c, const uint8_t auth_key[KD3_KEY_LEN], const char *label,
                            const uint8_t *signed_bytes, size_t signed_len,
                            const uint8_t received[KD3_MAC_LEN]);
/* The same two with the key as a kd3_subkeys' auth_key (the parties' and the KDC's
 * hot path). */
int kd3_authenticator_with(const kd3_hmac_key *auth, const char *label, const uint8_t *signed_bytes,
                           size_t signed_len, uint8_t out[KD3_MAC_LEN]);
int kd3_authenticator_check_with(const kd3_hmac_key *auth, const char *label,
                                 const uint8_t *signed_bytes, size_t signed_len,
                                 const uint8_t received[KD3_MAC_LEN]);

/* TH = SHA-256("kd3/1 TH" || M2 body bytes before auth_r), given in parts so the
 * initiator can rebuild it from its M1 and the fields of M4. */
int kd3_transcript_hash(const kd3_iov *m2_prefix, size_t nparts, uint8_t th[KD3_HASH_LEN]);

/* The KDC's session key for an exchange: SK = HKDF-Expand(realm_secret, "kd3/1 SK" ||
 * TH, 32). A function of the request, so an M2 processed twice (a retransmit that
 * reaches another worker or KDC, a replay) seals the same SK, never a second one
 * under the same blob key and nonce. */
int kd3_derive_sk(kd3_crypto *c, const uint8_t realm_secret[KD3_KEY_LEN],
                  const uint8_t th[KD3_HASH_LEN], uint8_t sk[KD3_KEY_LEN]);
/* The same with the realm secret keyed once (the KDC's hot path). */
int kd3_derive_sk_with(const kd3_hmac_key *realm, const uint8_t th[KD3_HASH_LEN],
                       uint8_t sk[KD3_KEY_LEN]);

/* blob = AEAD-Seal(HKDF-Expand(wrap, "kd3/1 seal " || role || TH || lifetime), 0^12,
 *                  "kd3/1 M3 " || role || TH || lifetime, SK). */
int kd3_blob_seal(kd3_crypto *c, uint8_t suite, const uint8_t wrap[KD3_KEY_LEN], kd3_role role,
                  const uint8_t th[KD3_HASH_LEN], uint32_t lifetime, const uint8_t sk[KD3_KEY_LEN],
                  uint8_t blob[KD3_BLOB_LEN]);
/* KD3_OK with sk filled, or KD3_E_BLOB_AUTH (sk wiped). */
int kd3_blob_open(kd3_crypto *c, uint8_t suite, const uint8_t wrap[KD3_KEY_LEN], kd3_role role,
                  const uint8_t th[KD3_HASH_LEN], uint32_t lifetime,
                  const uint8_t blob[KD3_BLOB_LEN], uint8_t sk[KD3_KEY_LEN]);
/* The same two with wrap as a kd3_subkeys' wrap_key. */
int kd3_blob_seal_with(kd3_crypto *c, uint8_t suite, const kd3_hmac_key *wrap, kd3_role role,
                       const uint8_t th[KD3_HASH_LEN], uint32_t lifetime,
                       const uint8_t sk[KD3_KEY_LEN], uint8_t blob[KD3_BLOB_LEN]);
int kd3_blob_open_with(kd3_crypto *c, uint8_t suite, const kd3_hmac_key *wrap, kd3_role role,
                       const uint8_t th[KD3_HASH_LEN], uint32_t lifetime,
                       const uint8_t blob[KD3_BLOB_LEN], uint8_t sk[KD3_KEY_LEN]);

/* PRK = HKDF-Extract(TH, SK [|| dh]); then confirm_r, confirm_i, ts_i2r, ts_r2i.
 * dh is NULL outside forward-secret mode. */
int kd3_derive_session(kd3_crypto *c, const uint8_t th[KD3_HASH_LEN], const uint8_t sk[KD3_KEY_LEN],
                       const uint8_t *dh, kd3_session_secrets *out);

/* key(ts) and iv(ts) for a suite. */
int kd3_traffic_key_iv(kd3_crypto *c, const uint8_t ts[KD3_KEY_LEN], uint8_t key[KD3_KEY_LEN],
                       uint8_t iv[KD3_IV_LEN]);
/* ts = next(ts), in place; the old secret is overwritten. */
int kd3_traffic_next(kd3_crypto *c, uint8_t ts[KD3_KEY_LEN]);

#endif
