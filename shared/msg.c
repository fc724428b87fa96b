#include "msg.h"

#include <string.h>

#include "crypto.h"
#include "err.h"

/* ---- names ---------------------------------------------------------------- */

static int name_char_ok(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '@' || ch == '/' || ch == '-';
}

int kd3_name_valid(const uint8_t *p, size_t len)
{
	if (len < 1 || len > KD3_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!name_char_ok(p[i]))
			return 0;
	return 1;
}

int kd3_name_valid_cstr(const char *s)
{
	return s && kd3_name_valid((const uint8_t *)s, strnlen(s, KD3_NAME_MAX + 1));
}

/* ---- framing -------------------------------------------------------------- */

static size_t body_max(uint8_t type)
{
	switch (type) {
	case KD3_T_M1:
		return KD3_M1_BODY_MAX;
	case KD3_T_M2:
		return KD3_M2_BODY_MAX;
	case KD3_T_M3:
		return KD3_M3_BODY_LEN;
	case KD3_T_M4:
		return KD3_M4_BODY_MAX;
	case KD3_T_RECORD:
		return KD3_RECORD_BODY_MAX;
	case KD3_T_ERROR:
		return KD3_ERROR_BODY_MAX;
	default:
		return 0; /* unknown type */
	}
}

/* Checks a header: version, a known type, a body no longer than that type allows. */
static int header_check(const uint8_t *p, uint16_t *body_len)
{
	if (p[0] != KD3_VERSION)
		return KD3_E_UNSUPPORTED;
	size_t max = body_max(p[1]);
	*body_len = kd3_get_u16(p + 2);
	if (max == 0 || *body_len > max)
		return KD3_E_MALFORMED;
	return KD3_OK;
}

long kd3_frame_size(const uint8_t *p, size_t len)
{
	uint16_t body_len = 0;
	if (len < KD3_HDR_LEN)
		return 0;
	int ret = header_check(p, &body_len);
	if (ret != KD3_OK)
		return -ret;
	return (long)KD3_HDR_LEN + body_len;
}

int kd3_frame_decode(const uint8_t *p, size_t len, kd3_frame *f)
{
	uint16_t body_len = 0;
	if (len < KD3_HDR_LEN)
		return KD3_E_MALFORMED;
	int ret = header_check(p, &body_len);
	if (ret != KD3_OK)
		return ret;
	if ((size_t)body_len != len - KD3_HDR_LEN)
		return KD3_E_MALFORMED; /* truncated, or bytes after the frame */
	f->version = p[0];
	f->type = p[1];
	f->body.p = p + KD3_HDR_LEN;
	f->body.len = body_len;
	return KD3_OK;
}

int kd3_frame_begin(kd3_writer *w, uint8_t type, size_t *start)
{
	*start = w->len;
	kd3_wr_u8(w, KD3_VERSION);
	kd3_wr_u8(w, type);
	return kd3_wr_u16(w, 0); /* length, patched by kd3_frame_end */
}

int kd3_frame_end(kd3_writer *w, size_t start)
{
	if (w->err)
		return w->err;
	size_t body_len = w->len - start - KD3_HDR_LEN;
	if (body_len > body_max(w->p[start + 1])) {
		w->err = KD3_E_NO_SPACE;
		return w->err;
	}
	kd3_put_u16(w->p + start + 2, (uint16_t)body_len);
	return KD3_OK;
}

/* ---- M1 ------------------------------------------------------------------- */

/* M1  suite u8 | flags u8 | id_i str | id_r str | n_i[32] | kvno_i u32 | [e_i[32]] | auth_i[32] */
int kd3_m1_decode(const uint8_t *body, size_t len, kd3_m1 *m)
{
	kd3_reader r;

	memset(m, 0, sizeof(*m));
	kd3_rd_init(&r, body, len);
	kd3_rd_u8(&r, &m->suite);
	if (kd3_rd_u8(&r, &m->flags))
		return r.err;
	if (m->flags & ~KD3_FLAGS_KNOWN)
		return KD3_E_UNSUPPORTED; /* the layout that follows is unknown */
	kd3_rd_str(&r, &m->id_i);
	kd3_rd_str(&r, &m->id_r);
	kd3_rd_fixed(&r, KD3_NONCE_LEN, &m->n_i);
	kd3_rd_u32(&r, &m->kvno_i);
	if (m->flags & KD3_FLAG_FS)
		kd3_rd_fixed(&r, KD3_DH_LEN, &m->e_i);
	m->signed_len = r.off;
	kd3_rd_fixed(&r, KD3_MAC_LEN, &m->auth_i);
	if (kd3_rd_end(&r))
		return r.err;
	if (!kd3_name_valid(m->id_i.p, m->id_i.len) || !kd3_name_valid(m->id_r.p, m->id_r.len))
		return KD3_E_MALFORMED;
	if (!kd3_suite_supported(m->suite))
		return KD3_E_UNSUPPORTED;
	m->body.p = body;
	m->body.len = len;
	return KD3_OK;
}

int kd3_m1_encode_signed(kd3_writer *w, uint8_t suite, uint8_t flags, kd3_view id_i, kd3_view id_r,
                         const uint8_t *n_i, uint32_t kvno_i, const uint8_t *e_i)
{
	kd3_wr_u8(w, suite);
	kd3_wr_u8(w, flags);
	kd3_wr_str(w, id_i.p, id_i.len);
	kd3_wr_str(w, id_r.p, id_r.len);
	kd3_wr_bytes(w, n_i, KD3_NONCE_LEN);
	kd3_wr_u32(w, kvno_i);
	if (flags & KD3_FLAG_FS)
		kd3_wr_bytes(w, e_i, KD3_DH_LEN);
	return w->err;
}

/* ---- M2 ------------------------------------------------------------------- */

/* M2  m1 blob16 | n_r[32] | kvno_r u32 | [e_r[32]] | auth_r[32] */
int kd3_m2_decode(const uint8_t *body, size_t len, kd3_m2 *m)
{
	kd3_reader r;
	kd3_view m1;
	int ret;

	memset(m, 0, sizeof(*m));
	kd3_rd_init(&r, body, len);
	if (kd3_rd_blob16(&r, &m1))
		return r.err;
	if ((ret = kd3_m1_decode(m1.p, m1.len, &m->m1)) != KD3_OK)
		return ret;
	kd3_rd_fixed(&r, KD3_NONCE_LEN, &m->n_r);
	kd3_rd_u32(&r, &m->kvno_r);
	if (m->m1.flags & KD3_FLAG_FS)
		kd3_rd_fixed(&r, KD3_DH_LEN, &m->e_r);
	m->signed_len = r.off;
	kd3_rd_fixed(&r, KD3_MAC_LEN, &m->auth_r);
	if (kd3_rd_end(&r))
		return r.err;
	m->body.p = body;
	m->body.len = len;
	return KD3_OK;
}

int kd3_m2_encode_signed(kd3_writer *w, kd3_view m1_body, const uint8_t *n_r, uint32_t kvno_r,
                         const uint8_t *e_r)
{
	kd3_wr_blob16(w, m1_body.p, m1_body.len);
	kd3_wr_bytes(w, n_r, KD3_NONCE_LEN);
	kd3_wr_u32(w, kvno_r);
	if (e_r)
		kd3_wr_bytes(w, e_r, KD3_DH_LEN);
	return w->err;
}

/* ---- M3 ------------------------------------------------------------------- */

/* M3  n_r[32] | lifetime u32 | blob_r[48] | blob_i[48] */
int kd3_m3_decode(const uint8_t *body, size_t len, kd3_m3 *m)
{
	kd3_reader r;

	memset(m, 0, sizeof(*m));
	kd3_rd_init(&r, body, len);
	kd3_rd_fixed(&r, KD3_NONCE_LEN, &m->n_r);
	kd3_rd_u32(&r, &m->lifetime);
	kd3_rd_fixed(&r, KD3_BLOB_LEN, &m->blob_r);
	kd3_rd_fixed(&r, KD3_BLOB_LEN, &m->blob_i);
	return kd3_rd_end(&r);
}

int kd3_m3_encode(kd3_writer *w, const kd3_m3 *m)
{
	size_t start;
	kd3_frame_begin(w, KD3_T_M3, &start);
	kd3_wr_bytes(w, m->n_r, KD3_NONCE_LEN);
	kd3_wr_u32(w, m->lifetime);
	kd3_wr_bytes(w, m->blob_r, KD3_BLOB_LEN);
	kd3_wr_bytes(w, m->blob_i, KD3_BLOB_LEN);
	return kd3_frame_end(w, start);
}

/* ---- M4 ------------------------------------------------------------------- */

/* M4  n_r[32] | kvno_r u32 | [e_r[32]] | lifetime u32 | blob_i[48] | confirm_r[32] */
int kd3_m4_decode(const uint8_t *body, size_t len, int forward_secret, kd3_m4 *m)
{
	kd3_reader r;

	memset(m, 0, sizeof(*m));
	kd3_rd_init(&r, body, len);
	kd3_rd_fixed(&r, KD3_NONCE_LEN, &m->n_r);
	kd3_rd_u32(&r, &m->kvno_r);
	if (forward_secret)
		kd3_rd_fixed(&r, KD3_DH_LEN, &m->e_r);
	kd3_rd_u32(&r, &m->lifetime);
	kd3_rd_fixed(&r, KD3_BLOB_LEN, &m->blob_i);
	kd3_rd_fixed(&r, KD3_MAC_LEN, &m->confirm_r);
	return kd3_rd_end(&r);
}

int kd3_m4_encode(kd3_writer *w, const kd3_m4 *m)
{
	size_t start;
	kd3_frame_begin(w, KD3_T_M4, &start);
	kd3_wr_bytes(w, m->n_r, KD3_NONCE_LEN);
	kd3_wr_u32(w, m->kvno_r);
	if (m->e_r)
		kd3_wr_bytes(w, m->e_r, KD3_DH_LEN);
	kd3_wr_u32(w, m->lifetime);
	kd3_wr_bytes(w, m->blob_i, KD3_BLOB_LEN);
	kd3_wr_bytes(w, m->confirm_r, KD3_MAC_LEN);
	return kd3_frame_end(w, start);
}

/* ---- ERROR ---------------------------------------------------------------- */

/* ERROR  code u16 | text str */
int kd3_error_decode(const uint8_t *body, size_t len, kd3_error_msg *m)
{
	kd3_reader r;

	memset(m, 0, sizeof(*m));
	kd3_rd_init(&r, body, len);
	kd3_rd_u16(&r, &m->code);
	kd3_rd_str(&r, &m->text);
	if (kd3_rd_end(&r))
		return r.err;
	if (!kd3_err_is_wire(m->code))
		return KD3_E_MALFORMED;
	for (size_t i = 0; i < m->text.len; i++)
		if (m->text.p[i] < 0x20 || m->text.p[i] >= 0x7f)
			return KD3_E_MALFORMED; /* printable ASCII only (section 7) */
	return KD3_OK;
}

int kd3_error_encode(kd3_writer *w, uint16_t code, const char *text)
{
	uint8_t clean[255];
	size_t n = 0, start;

	/* Only printable ASCII goes out, so the peer can print it as it is. */
	for (; text && text[n] && n < sizeof(clean); n++)
		clean[n] = (text[n] >= 0x20 && text[n] < 0x7f) ? (uint8_t)text[n] : '?';
	kd3_frame_begin(w, KD3_T_ERROR, &start);
	kd3_wr_u16(w, code);
	kd3_wr_str(w, clean, n);
	return kd3_frame_end(w, start);
}

/* ---- RECORD --------------------------------------------------------------- */

/* RECORD  seq u64 | AEAD(inner u8 | payload) */
int kd3_record_decode(const uint8_t *hdr, const uint8_t *body, size_t len, kd3_record *m)
{
	kd3_reader r;

	memset(m, 0, sizeof(*m));
	kd3_rd_init(&r, body, len);
	kd3_rd_u64(&r, &m->seq);
	kd3_rd_rest(&r, &m->sealed);
	if (kd3_rd_end(&r))
		return r.err;
	if (m->sealed.len < 1 + KD3_TAG_LEN || m->sealed.len > 1 + KD3_PAYLOAD_MAX + KD3_TAG_LEN)
		return KD3_E_MALFORMED;
	if (body != hdr + KD3_HDR_LEN)
		return KD3_E_MALFORMED; /* the AD is the header and seq, contiguous */
	m->ad.p = hdr;
	m->ad.len = KD3_HDR_LEN + KD3_SEQ_LEN;
	return KD3_OK;
}

/* ---- names for traces and logs -------------------------------------------- */

const char *kd3_type_name(uint8_t type)
{
	switch (type) {
	case KD3_T_M1:
		return "M1";
	case KD3_T_M2:
		return "M2";
	case KD3_T_M3:
		return "M3";
	case KD3_T_M4:
		return "M4";
	case KD3_T_RECORD:
		return "RECORD";
	case KD3_T_ERROR:
		return "ERROR";
	default:
		return "UNKNOWN";
	}
}

const char *kd3_inner_name(uint8_t inner)
{
	switch (inner) {
	case KD3_R_FINISHED:
		return "FINISHED";
	case KD3_R_DATA:
		return "DATA";
	case KD3_R_KEY_UPDATE:
		return "KEY_UPDATE";
	case KD3_R_CLOSE:
		return "CLOSE";
	default:
		return "UNKNOWN";
	}
}
