/* kd3adv: fields by name, decoded and encoded with shared/msg.h (adv_field.h). */
#include "adv_field.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adv.h"
#include "buf.h"
#include "err.h"
#include "msg.h"

/* How a field is held in adv_msg. */
enum { F_INT, F_BYTES, F_VAR };

/* Which frame types carry a field, as a bit mask. */
#define T1  (1u << KD3_T_M1)
#define T2  (1u << KD3_T_M2)
#define T3  (1u << KD3_T_M3)
#define T4  (1u << KD3_T_M4)
#define TR  (1u << 5) /* RECORD and ERROR have types beyond 31: their own bits */
#define TE  (1u << 6)
#define T12 (T1 | T2)

typedef struct field_desc {
	const char *name;
	uint8_t kind;
	uint8_t width;  /* F_INT: bytes on the wire; F_VAR: the shortest value */
	size_t off;     /* of the value in adv_msg */
	size_t len_off; /* F_VAR: of its length */
	size_t size;    /* F_BYTES: length; F_VAR: the longest value */
	unsigned types;
} field_desc;

/* clang-format off */
#define INT(n, w, t)   {#n, F_INT, w, offsetof(adv_msg, n), 0, 8, t}
#define BYTES(n, t)    {#n, F_BYTES, 0, offsetof(adv_msg, n), 0, sizeof(((adv_msg *)0)->n), t}
#define VAR(n, min, t) {#n, F_VAR, min, offsetof(adv_msg, n), offsetof(adv_msg, n##_len), \
                        sizeof(((adv_msg *)0)->n), t}

/* Every field of docs/PROTOCOL.md section 4, and the frames that carry it. */
static const field_desc fields[] = {
	INT(suite, 1, T12),        INT(flags, 1, T12),      VAR(id_i, 1, T12),
	VAR(id_r, 1, T12),         BYTES(n_i, T12),         INT(kvno_i, 4, T12),
	BYTES(e_i, T12),           BYTES(auth_i, T12),      BYTES(n_r, T2 | T3 | T4),
	INT(kvno_r, 4, T2 | T4),   BYTES(e_r, T2 | T4),     BYTES(auth_r, T2),
	INT(lifetime, 4, T3 | T4), BYTES(blob_r, T3),       BYTES(blob_i, T3 | T4),
	BYTES(confirm_r, T4),      INT(code, 2, TE),        VAR(text, 0, TE),
	INT(seq, 8, TR),           VAR(sealed, 1 + KD3_TAG_LEN, TR),
};
/* clang-format on */

static unsigned type_bit(uint8_t type)
{
	if (type == KD3_T_RECORD)
		return TR;
	if (type == KD3_T_ERROR)
		return TE;
	return type >= KD3_T_M1 && type <= KD3_T_M4 ? 1u << type : 0;
}

/* The field of this name in frames of this type; "m1.x" names x of an M2's inner M1. */
static const field_desc *field_find(uint8_t type, const char *name)
{
	if (type == KD3_T_M2 && strncmp(name, "m1.", 3) == 0) {
		const field_desc *d = field_find(KD3_T_M1, name + 3);
		return d && (d->types & T2) ? d : NULL;
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strcmp(fields[i].name, name) == 0 && (fields[i].types & type_bit(type)))
			return &fields[i];
	return NULL;
}

int adv_field_known(uint8_t type, const char *name)
{
	return field_find(type, name) != NULL;
}

/* ---- decoding -------------------------------------------------------------- */

static void take_m1(adv_msg *m, const kd3_m1 *d)
{
	m->suite = d->suite;
	m->flags = d->flags;
	memcpy(m->id_i, d->id_i.p, m->id_i_len = d->id_i.len);
	memcpy(m->id_r, d->id_r.p, m->id_r_len = d->id_r.len);
	memcpy(m->n_i, d->n_i, KD3_NONCE_LEN);
	m->kvno_i = d->kvno_i;
	if (d->e_i)
		memcpy(m->e_i, d->e_i, KD3_DH_LEN);
	memcpy(m->auth_i, d->auth_i, KD3_MAC_LEN);
}

static int decode_m2(adv_msg *m, kd3_view body)
{
	kd3_m2 d;
	int ret = kd3_m2_decode(body.p, body.len, &d);
	if (ret != KD3_OK)
		return ret;
	take_m1(m, &d.m1);
	memcpy(m->n_r, d.n_r, KD3_NONCE_LEN);
	m->kvno_r = d.kvno_r;
	if (d.e_r)
		memcpy(m->e_r, d.e_r, KD3_DH_LEN);
	memcpy(m->auth_r, d.auth_r, KD3_MAC_LEN);
	return KD3_OK;
}

static int decode_m3(adv_msg *m, kd3_view body)
{
	kd3_m3 d;
	int ret = kd3_m3_decode(body.p, body.len, &d);
	if (ret != KD3_OK)
		return ret;
	memcpy(m->n_r, d.n_r, KD3_NONCE_LEN);
	m->lifetime = d.lifetime;
	memcpy(m->blob_r, d.blob_r, KD3_BLOB_LEN);
	memcpy(m->blob_i, d.blob_i, KD3_BLOB_LEN);
	return KD3_OK;
}

static int decode_m4(adv_msg *m, kd3_view body)
{
	kd3_m4 d;
	m->m4_fs = body.len == KD3_M4_BODY_MAX; /* the length says which layout */
	int ret = kd3_m4_decode(body.p, body.len, m->m4_fs, &d);
	if (ret != KD3_OK)
		return ret;
	memcpy(m->n_r, d.n_r, KD3_NONCE_LEN);
	m->kvno_r = d.kvno_r;
	if (d.e_r)
		memcpy(m->e_r, d.e_r, KD3_DH_LEN);
	m->lifetime = d.lifetime;
	memcpy(m->blob_i, d.blob_i, KD3_BLOB_LEN);
	memcpy(m->confirm_r, d.confirm_r, KD3_MAC_LEN);
	return KD3_OK;
}

int adv_msg_decode(const uint8_t *frame, size_t len, adv_msg *m)
{
	kd3_frame f;
	kd3_m1 m1;
	kd3_error_msg e;
	kd3_record r;
	int ret;

	memset(m, 0, sizeof(*m));
	if ((ret = kd3_frame_decode(frame, len, &f)) != KD3_OK)
		return ret;
	m->type = f.type;
	switch (f.type) {
	case KD3_T_M1:
		if ((ret = kd3_m1_decode(f.body.p, f.body.len, &m1)) == KD3_OK)
			take_m1(m, &m1);
		return ret;
	case KD3_T_M2:
		return decode_m2(m, f.body);
	case KD3_T_M3:
		return decode_m3(m, f.body);
	case KD3_T_M4:
		return decode_m4(m, f.body);
	case KD3_T_ERROR:
		if ((ret = kd3_error_decode(f.body.p, f.body.len, &e)) != KD3_OK)
			return ret;
		m->code = e.code;
		memcpy(m->text, e.text.p, m->text_len = e.text.len);
		return KD3_OK;
	case KD3_T_RECORD:
		if ((ret = kd3_record_decode(frame, f.body.p, f.body.len, &r)) != KD3_OK)
			return ret;
		m->seq = r.seq;
		memcpy(m->sealed, r.sealed.p, m->sealed_len = r.sealed.len);
		return KD3_OK;
	default:
		return KD3_E_MALFORMED;
	}
}

/* ---- encoding -------------------------------------------------------------- */

static int write_m1_body(kd3_writer *w, const adv_msg *m)
{
	kd3_view id_i = {m->id_i, m->id_i_len}, id_r = {m->id_r, m->id_r_len};
	kd3_m1_encode_signed(w, (uint8_t)m->suite, (uint8_t)m->flags, id_i, id_r, m->n_i,
	                     (uint32_t)m->kvno_i, m->e_i);
	return kd3_wr_bytes(w, m->auth_i, KD3_MAC_LEN);
}

static int write_m2_body(kd3_writer *w, const adv_msg *m)
{
	uint8_t m1[KD3_M1_BODY_MAX];
	kd3_writer w1;

	kd3_wr_init(&w1, m1, sizeof(m1));
	if (write_m1_body(&w1, m) != KD3_OK)
		return w1.err;
	kd3_view m1_body = {m1, w1.len};
	const uint8_t *e_r = (m->flags & KD3_FLAG_FS) ? m->e_r : NULL;
	kd3_m2_encode_signed(w, m1_body, m->n_r, (uint32_t)m->kvno_r, e_r);
	return kd3_wr_bytes(w, m->auth_r, KD3_MAC_LEN);
}

static int encode_framed(kd3_writer *w, const adv_msg *m)
{
	size_t start;
	kd3_frame_begin(w, m->type, &start);
	switch (m->type) {
	case KD3_T_M1:
		write_m1_body(w, m);
		break;
	case KD3_T_M2:
		write_m2_body(w, m);
		break;
	case KD3_T_RECORD:
		kd3_wr_u64(w, m->seq);
		kd3_wr_bytes(w, m->sealed, m->sealed_len);
		break;
	}
	return kd3_frame_end(w, start);
}

int adv_msg_encode(const adv_msg *m, uint8_t *out, size_t cap, size_t *len)
{
	kd3_writer w;
	char text[256];
	int ret;

	kd3_wr_init(&w, out, cap);
	if (m->type == KD3_T_M3) {
		kd3_m3 d = {m->n_r, (uint32_t)m->lifetime, m->blob_r, m->blob_i};
		ret = kd3_m3_encode(&w, &d);
	} else if (m->type == KD3_T_M4) {
		kd3_m4 d = {
		    m->n_r,    (uint32_t)m->kvno_r, m->m4_fs ? m->e_r : NULL, (uint32_t)m->lifetime,
		    m->blob_i, m->confirm_r};
		ret = kd3_m4_encode(&w, &d);
	} else if (m->type == KD3_T_ERROR) {
		memcpy(text, m->text, m->text_len);
		text[m->text_len] = '\0';
		ret = kd3_error_encode(&w, (uint16_t)m->code, text);
	} else {
		ret = encode_framed(&w, m);
	}
	*len = w.len;
	return ret;
}

/* ---- editing --------------------------------------------------------------- */

static uint64_t *int_at(adv_msg *m, const field_desc *d)
{
	return (uint64_t *)((uint8_t *)m + d->off);
}

static uint8_t *bytes_at(adv_msg *m, const field_desc *d)
{
	return (uint8_t *)m + d->off;
}

static size_t *len_at(adv_msg *m, const field_desc *d)
{
	return (size_t *)((uint8_t *)m + d->len_off);
}

static const field_desc *need(const adv_msg *m, const char *name, char *err, size_t err_len)
{
	const field_desc *d = field_find(m->type, name);
	if (!d)
		snprintf(err, err_len, "%s has no field '%s'", kd3_type_name(m->type), name);
	return d;
}

static int set_int(adv_msg *m, const field_desc *d, const char *value, char *err, size_t err_len)
{
	char *end;
	unsigned long long v = strtoull(value, &end, 0);
	unsigned long long max = d->width == 8 ? ~0ull : (1ull << (8 * d->width)) - 1;
	if (*value == '\0' || *value == '-' || *end != '\0' || v > max) {
		snprintf(err, err_len, "%s: '%s' is not a %u-byte number", d->name, value,
		         (unsigned)d->width);
		return -1;
	}
	*int_at(m, d) = v;
	return 0;
}

static int set_bytes(adv_msg *m, const field_desc *d, const char *value, char *err, size_t err_len)
{
	if (strcmp(value, "zero") == 0) {
		memset(bytes_at(m, d), 0, d->size);
		return 0;
	}
	if (adv_hex_decode(value, strlen(value), bytes_at(m, d), d->size) != (long)d->size) {
		snprintf(err, err_len, "%s: want %zu bytes in hex, or 'zero'", d->name, d->size);
		return -1;
	}
	return 0;
}

/* Names and text are taken as written; the sealed part of a record in hex. */
static int set_var(adv_msg *m, const field_desc *d, const char *value, char *err, size_t err_len)
{
	size_t n = strlen(value);
	long got = (long)n;
	if (d->off == offsetof(adv_msg, sealed))
		got = adv_hex_decode(value, n, bytes_at(m, d), d->size);
	else if (n <= d->size)
		memcpy(bytes_at(m, d), value, n);
	if (got < (long)d->width || got > (long)d->size) {
		snprintf(err, err_len, "%s: want %u..%zu bytes", d->name, (unsigned)d->width,
		         d->size);
		return -1;
	}
	*len_at(m, d) = (size_t)got;
	return 0;
}

int adv_field_set(adv_msg *m, const char *name, const char *value, char *err, size_t err_len)
{
	const field_desc *d = need(m, name, err, err_len);
	if (!d)
		return -1;
	if (d->kind == F_INT)
		return set_int(m, d, value, err, err_len);
	if (d->kind == F_BYTES)
		return set_bytes(m, d, value, err, err_len);
	return set_var(m, d, value, err, err_len);
}

/* Copies field d of src into dst (both hold it). */
static void copy_field(adv_msg *dst, const adv_msg *src, const field_desc *d)
{
	const uint8_t *from = (const uint8_t *)src + d->off;
	if (d->kind == F_INT) {
		*int_at(dst, d) = *(const uint64_t *)from;
	} else if (d->kind == F_BYTES) {
		memcpy(bytes_at(dst, d), from, d->size);
	} else {
		size_t n = *(const size_t *)((const uint8_t *)src + d->len_off);
		memcpy(bytes_at(dst, d), from, n);
		*len_at(dst, d) = n;
	}
}

static int same_shape(const field_desc *a, const field_desc *b)
{
	if (a->kind != b->kind)
		return 0;
	if (a->kind == F_INT)
		return a->width == b->width;
	return a->size == b->size;
}

int adv_field_swap(adv_msg *m, const char *a, const char *b, char *err, size_t err_len)
{
	static adv_msg tmp;
	const field_desc *da = need(m, a, err, err_len), *db = da ? need(m, b, err, err_len) : NULL;
	if (!da || !db)
		return -1;
	if (!same_shape(da, db)) {
		snprintf(err, err_len, "%s and %s are not alike: cannot swap", a, b);
		return -1;
	}
	tmp = *m; /* the values before the swap */
	if (da->kind == F_INT) {
		*int_at(m, da) = *int_at(&tmp, db);
		*int_at(m, db) = *int_at(&tmp, da);
	} else {
		memcpy(bytes_at(m, da), bytes_at(&tmp, db), da->size);
		memcpy(bytes_at(m, db), bytes_at(&tmp, da), db->size);
		if (da->kind == F_VAR) {
			*len_at(m, da) = *len_at(&tmp, db);
			*len_at(m, db) = *len_at(&tmp, da);
		}
	}
	return 0;
}

int adv_field_copy(adv_msg *dst, const adv_msg *src, const char *name, char *err, size_t err_len)
{
	const field_desc *d = need(dst, name, err, err_len),
	                 *s = d ? need(src, name, err, err_len) : NULL;
	if (!d || !s)
		return -1;
	copy_field(dst, src, d); /* one name, one slot in adv_msg, whatever the type */
	return 0;
}

int adv_field_flip(adv_msg *m, const char *name, long bit, char *err, size_t err_len)
{
	const field_desc *d = need(m, name, err, err_len);
	uint8_t be[8];
	if (!d)
		return -1;
	size_t size = d->kind == F_INT ? d->width : d->kind == F_BYTES ? d->size : *len_at(m, d);
	uint8_t *p = d->kind == F_INT ? be : bytes_at(m, d);
	if (bit < 0)
		bit = (long)(8 * (size / 2) + 3);
	if (size == 0 || (size_t)bit >= 8 * size) {
		snprintf(err, err_len, "%s has %zu bits: no bit %ld", name, 8 * size, bit);
		return -1;
	}
	for (size_t i = 0; d->kind == F_INT && i < size; i++)
		be[i] = (uint8_t)(*int_at(m, d) >> (8 * (size - 1 - i)));
	p[bit / 8] ^= (uint8_t)(0x80u >> (bit % 8));
	if (d->kind == F_INT) {
		uint64_t v = 0;
		for (size_t i = 0; i < size; i++)
			v = v << 8 | be[i];
		*int_at(m, d) = v;
	}
	return 0;
}
