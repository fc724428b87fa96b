/* kd3adv: a frame's fields by name. A frame is decoded with the project's own decoders
 * (shared/msg.h) into an adv_msg, fields are changed there, and the message is encoded
 * again with msg.h's encoders: the result is well formed, only its authenticators,
 * blobs and tags no longer fit, so whatever refuses it is the cryptography.
 *
 * Field names are those of docs/PROTOCOL.md section 4: suite flags id_i id_r n_i kvno_i
 * e_i auth_i (M1, and M2's inner M1, also written m1.NAME), n_r kvno_r e_r auth_r (M2),
 * n_r lifetime blob_r blob_i (M3), n_r kvno_r e_r lifetime blob_i confirm_r (M4), code
 * text (ERROR), seq sealed (RECORD). e_i and e_r are on the wire only in forward-secret
 * mode: M1 and M2 carry them when bit 0 of flags is set (so setting flags adds or removes
 * them), an M4 when it came with one. */
#ifndef KD3ADV_FIELD_H
#define KD3ADV_FIELD_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef struct adv_msg {
	uint8_t type; /* KD3_T_* */
	int m4_fs;    /* an M4 with e_r */
	uint64_t suite, flags, kvno_i, kvno_r, lifetime, code, seq;
	uint8_t id_i[KD3_NAME_MAX], id_r[KD3_NAME_MAX], text[255];
	size_t id_i_len, id_r_len, text_len;
	uint8_t n_i[KD3_NONCE_LEN], e_i[KD3_DH_LEN], auth_i[KD3_MAC_LEN];
	uint8_t n_r[KD3_NONCE_LEN], e_r[KD3_DH_LEN], auth_r[KD3_MAC_LEN];
	uint8_t blob_r[KD3_BLOB_LEN], blob_i[KD3_BLOB_LEN], confirm_r[KD3_MAC_LEN];
	uint8_t sealed[KD3_RECORD_BODY_MAX];
	size_t sealed_len;
} adv_msg;

/* KD3_OK, or the kd3_err of the decoder that refused the frame. */
int adv_msg_decode(const uint8_t *frame, size_t len, adv_msg *m);
/* The whole frame, header included; KD3_OK or KD3_E_NO_SPACE. */
int adv_msg_encode(const adv_msg *m, uint8_t *out, size_t cap, size_t *len);

/* 1 when frames of type (KD3_T_*) have the field name. */
int adv_field_known(uint8_t type, const char *name);

/* Each returns 0, or -1 with one line of why in err (err_len bytes). */
int adv_field_set(adv_msg *m, const char *name, const char *value, char *err, size_t err_len);
int adv_field_swap(adv_msg *m, const char *a, const char *b, char *err, size_t err_len);
int adv_field_copy(adv_msg *dst, const adv_msg *src, const char *name, char *err, size_t err_len);
/* Flips bit (counted from the most significant bit of the field's first byte, as on
 * the wire); bit < 0: a bit in the middle of the field. */
int adv_field_flip(adv_msg *m, const char *name, long bit, char *err, size_t err_len);

#endif
