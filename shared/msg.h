/* kd3 message codec: one decode/encode pair per message of docs/PROTOCOL.md.
 *
 * Decoders are strict (exact lengths, no trailing bytes, known version, suite and
 * flags, valid names) and zero-copy: the structs hold pointers into the input, which
 * must outlive them. Encoders write a whole frame (header included) to a writer. */
#ifndef KD3_MSG_H
#define KD3_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "wire.h"

typedef struct kd3_frame {
	uint8_t version;
	uint8_t type;
	kd3_view body;
} kd3_frame;

typedef struct kd3_m1 {
	uint8_t suite;
	uint8_t flags;
	kd3_view id_i;
	kd3_view id_r;
	const uint8_t *n_i;
	uint32_t kvno_i;
	const uint8_t *e_i; /* NULL unless KD3_FLAG_FS */
	const uint8_t *auth_i;
	kd3_view body;     /* the whole M1 body */
	size_t signed_len; /* body bytes before auth_i */
} kd3_m1;

typedef struct kd3_m2 {
	kd3_m1 m1; /* decoded from the m1 blob16 */
	const uint8_t *n_r;
	uint32_t kvno_r;
	const uint8_t *e_r; /* NULL unless the M1 flags ask for forward secrecy */
	const uint8_t *auth_r;
	kd3_view body;
	size_t signed_len; /* body bytes before auth_r: the input of TH */
} kd3_m2;

typedef struct kd3_m3 {
	const uint8_t *n_r;
	uint32_t lifetime;
	const uint8_t *blob_r;
	const uint8_t *blob_i;
} kd3_m3;

typedef struct kd3_m4 {
	const uint8_t *n_r;
	uint32_t kvno_r;
	const uint8_t *e_r; /* present iff forward-secret mode (the caller says which) */
	uint32_t lifetime;
	const uint8_t *blob_i;
	const uint8_t *confirm_r;
} kd3_m4;

typedef struct kd3_error_msg {
	uint16_t code;
	kd3_view text;
} kd3_error_msg;

typedef struct kd3_record {
	uint64_t seq;
	kd3_view sealed; /* ciphertext || tag */
	kd3_view ad;     /* header(4) || seq(8): the record's associated data */
} kd3_record;

/* Names: 1..255 bytes of [A-Za-z0-9._@/-]. */
int kd3_name_valid(const uint8_t *p, size_t len);
int kd3_name_valid_cstr(const char *s);

/* Frame header. kd3_frame_decode wants exactly one whole frame. */
int kd3_frame_decode(const uint8_t *p, size_t len, kd3_frame *f);
/* For streams: given the bytes so far, the size of the first whole frame (header
 * included), 0 when fewer than KD3_HDR_LEN bytes are there, or a negative kd3_err
 * when the header is not kd3's (bad version, unknown type, oversized). */
long kd3_frame_size(const uint8_t *p, size_t len);

int kd3_m1_decode(const uint8_t *body, size_t len, kd3_m1 *m);
int kd3_m2_decode(const uint8_t *body, size_t len, kd3_m2 *m);
int kd3_m3_decode(const uint8_t *body, size_t len, kd3_m3 *m);
int kd3_m4_decode(const uint8_t *body, size_t len, int forward_secret, kd3_m4 *m);
int kd3_error_decode(const uint8_t *body, size_t len, kd3_error_msg *m);
/* body is the frame body; hdr the 4 header bytes just before it. */
int kd3_record_decode(const uint8_t *hdr, const uint8_t *body, size_t len, kd3_record *m);

/* Encoders. Fields named as in the structs; the authenticators and confirm_r are
 * computed by the caller over the bytes written so far (see msg_begin/msg_end). */
int kd3_frame_begin(kd3_writer *w, uint8_t type, size_t *start);
int kd3_frame_end(kd3_writer *w, size_t start);

int kd3_m1_encode_signed(kd3_writer *w, uint8_t suite, uint8_t flags, kd3_view id_i, kd3_view id_r,
                         const uint8_t *n_i, uint32_t kvno_i, const uint8_t *e_i);
int kd3_m2_encode_signed(kd3_writer *w, kd3_view m1_body, const uint8_t *n_r, uint32_t kvno_r,
                         const uint8_t *e_r);
int kd3_m3_encode(kd3_writer *w, const kd3_m3 *m);
int kd3_m4_encode(kd3_writer *w, const kd3_m4 *m);
/* text is cut to 255 bytes and to printable ASCII. */
int kd3_error_encode(kd3_writer *w, uint16_t code, const char *text);

const char *kd3_type_name(uint8_t type);
const char *kd3_inner_name(uint8_t inner);

#endif
