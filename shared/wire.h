/* kd3 wire constants: every size on the wire is named here, once.
 * docs/PROTOCOL.md, "Framing" and "The exchange". */
#ifndef KD3_WIRE_H
#define KD3_WIRE_H

#define KD3_VERSION 1

/* Frame types. */
#define KD3_T_M1     0x01
#define KD3_T_M2     0x02
#define KD3_T_M3     0x03
#define KD3_T_M4     0x04
#define KD3_T_RECORD 0x10
#define KD3_T_ERROR  0x7F

/* Suites. */
#define KD3_SUITE_AES256GCM  0x01
#define KD3_SUITE_CHACHAPOLY 0x02
#define KD3_SUITE_DEFAULT    KD3_SUITE_CHACHAPOLY

/* M1 flags. */
#define KD3_FLAG_FS     0x01 /* forward-secret mode: e_i / e_r present */
#define KD3_FLAGS_KNOWN KD3_FLAG_FS

/* Record inner types. */
#define KD3_R_FINISHED   0x01
#define KD3_R_DATA       0x02
#define KD3_R_KEY_UPDATE 0x03
#define KD3_R_CLOSE      0x04

/* CLOSE reasons (u16). 0 is the normal end; any other value is the kd3_err code
 * (err.h) of the failure that ended the session. */
#define KD3_CLOSE_NORMAL 0

/* Field sizes. */
#define KD3_HDR_LEN     4  /* version u8 | type u8 | length u16 */
#define KD3_KEY_LEN     32 /* long-term keys, SK, subkeys, traffic secrets */
#define KD3_NONCE_LEN   32 /* n_i, n_r */
#define KD3_MAC_LEN     32 /* auth_i, auth_r, confirm_* (HMAC-SHA256) */
#define KD3_HASH_LEN    32 /* TH (SHA-256) */
#define KD3_DH_LEN      32 /* X25519 public keys and shared secret */
#define KD3_TAG_LEN     16 /* AEAD tag */
#define KD3_IV_LEN      12 /* AEAD nonce */
#define KD3_BLOB_LEN    (KD3_KEY_LEN + KD3_TAG_LEN) /* 48 */
#define KD3_SEQ_LEN     8
#define KD3_NAME_MAX    255
#define KD3_PAYLOAD_MAX 16384 /* record payload, before the inner type byte */

/* Largest bodies: names at their maximum, forward-secret mode. */
#define KD3_M1_BODY_MAX                                                                            \
	(1 + 1 + (1 + KD3_NAME_MAX) * 2 + KD3_NONCE_LEN + 4 + KD3_DH_LEN + KD3_MAC_LEN) /* 614 */
#define KD3_M2_BODY_MAX     (2 + KD3_M1_BODY_MAX + KD3_NONCE_LEN + 4 + KD3_DH_LEN + KD3_MAC_LEN)
#define KD3_M3_BODY_LEN     (KD3_NONCE_LEN + 4 + KD3_BLOB_LEN * 2) /* 132 */
#define KD3_M4_BODY_MAX     (KD3_NONCE_LEN + 4 + KD3_DH_LEN + 4 + KD3_BLOB_LEN + KD3_MAC_LEN)
#define KD3_ERROR_BODY_MAX  (2 + 1 + 255)
#define KD3_RECORD_BODY_MAX (KD3_SEQ_LEN + 1 + KD3_PAYLOAD_MAX + KD3_TAG_LEN) /* 16409 */
#define KD3_RECORD_OVERHEAD (KD3_HDR_LEN + KD3_SEQ_LEN + 1 + KD3_TAG_LEN)

/* No legal frame is longer than this; a reader never buffers more. */
#define KD3_FRAME_MAX (KD3_HDR_LEN + KD3_RECORD_BODY_MAX)

/* Key update limits: a sender always updates before this many records under one key. */
#define KD3_RECORDS_PER_KEY_MAX   (1u << 24)
#define KD3_REKEY_RECORDS_DEFAULT (1u << 20)
#define KD3_REKEY_SECONDS_MAX     (7u * 24 * 3600) /* the longest key lifetime */

/* Default ports (docs/OPERATIONS.md). */
#define KD3_KDC_PORT_DEFAULT       7088
#define KD3_RESPONDER_PORT_DEFAULT 7089

#endif
