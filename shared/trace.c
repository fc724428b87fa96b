#include "trace.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "log.h"
#include "msg.h"
#include "wire.h"

/* -1: not decided yet (the environment is read on first use), 0 off, 1 on. */
static atomic_int trace_state = -1;

/* At most this many bytes are shown of a record's ciphertext, and of a malformed frame. */
#define TRACE_CT_SHOWN        32
#define TRACE_MALFORMED_SHOWN 64
#define TRACE_HEX_CAP         (2 * TRACE_MALFORMED_SHOWN + 4)

#define IND1 "    "
#define IND2 "      "

static int env_asks_trace(void)
{
	const char *v = getenv("KD3_TRACE");
	return v && *v && strcmp(v, "0") != 0;
}

void kd3_trace_enable(int on)
{
	atomic_store(&trace_state, (on || env_asks_trace()) ? 1 : 0);
}

int kd3_trace_enabled(void)
{
	int s = atomic_load(&trace_state);
	if (s < 0) {
		s = env_asks_trace();
		atomic_store(&trace_state, s);
	}
	return s;
}

/* Hex of the first `shown` bytes of p[n], with "..." when some were left off. */
static void hex_text(const uint8_t *p, size_t n, size_t shown, char out[TRACE_HEX_CAP])
{
	static const char digits[] = "0123456789abcdef";
	size_t k = n < shown ? n : shown;
	size_t o = 0;

	if (k > TRACE_MALFORMED_SHOWN)
		k = TRACE_MALFORMED_SHOWN;
	for (size_t i = 0; i < k; i++) {
		out[o++] = digits[p[i] >> 4];
		out[o++] = digits[p[i] & 0x0f];
	}
	if (k < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void field_hex(const char *ind, const char *name, const uint8_t *p, size_t n)
{
	char hex[TRACE_HEX_CAP];
	hex_text(p, n, n, hex);
	fprintf(stderr, "%s%-9s %s\n", ind, name, hex);
}

static void field_name(const char *ind, const char *name, kd3_view v)
{
	char safe[256];
	kd3_log_safe_name(v.p, v.len, safe);
	fprintf(stderr, "%s%-9s \"%s\"\n", ind, name, safe);
}

static void field_u32(const char *ind, const char *name, uint32_t v)
{
	fprintf(stderr, "%s%-9s %u\n", ind, name, v);
}

static void print_malformed(const uint8_t *frame, size_t len)
{
	char hex[TRACE_HEX_CAP];
	hex_text(frame, len, TRACE_MALFORMED_SHOWN, hex);
	fprintf(stderr, IND1 "malformed %s\n", hex);
}

/* M1  suite | flags | id_i | id_r | n_i | kvno_i | [e_i] | auth_i */
static void print_m1_fields(const char *ind, const kd3_m1 *m)
{
	fprintf(stderr, "%s%-9s 0x%02x (%s)\n", ind, "suite", m->suite, kd3_suite_name(m->suite));
	fprintf(stderr, "%s%-9s 0x%02x (%s)\n", ind, "flags", m->flags,
	        (m->flags & KD3_FLAG_FS) ? "forward-secret" : "none");
	field_name(ind, "id_i", m->id_i);
	field_name(ind, "id_r", m->id_r);
	field_hex(ind, "n_i", m->n_i, KD3_NONCE_LEN);
	field_u32(ind, "kvno_i", m->kvno_i);
	if (m->e_i)
		field_hex(ind, "e_i", m->e_i, KD3_DH_LEN);
	field_hex(ind, "auth_i", m->auth_i, KD3_MAC_LEN);
}

static int print_m1(kd3_view body)
{
	kd3_m1 m;
	if (kd3_m1_decode(body.p, body.len, &m) != KD3_OK)
		return KD3_E_MALFORMED;
	print_m1_fields(IND1, &m);
	return KD3_OK;
}

/* M2  m1 blob16 | n_r | kvno_r | [e_r] | auth_r */
static int print_m2(kd3_view body)
{
	kd3_m2 m;
	if (kd3_m2_decode(body.p, body.len, &m) != KD3_OK)
		return KD3_E_MALFORMED;
	fprintf(stderr, IND1 "%-9s (%zu bytes: the M1 body, verbatim)\n", "m1", m.m1.body.len);
	print_m1_fields(IND2, &m.m1);
	field_hex(IND1, "n_r", m.n_r, KD3_NONCE_LEN);
	field_u32(IND1, "kvno_r", m.kvno_r);
	if (m.e_r)
		field_hex(IND1, "e_r", m.e_r, KD3_DH_LEN);
	field_hex(IND1, "auth_r", m.auth_r, KD3_MAC_LEN);
	return KD3_OK;
}

/* M3  n_r | lifetime | blob_r | blob_i */
static int print_m3(kd3_view body)
{
	kd3_m3 m;
	if (kd3_m3_decode(body.p, body.len, &m) != KD3_OK)
		return KD3_E_MALFORMED;
	field_hex(IND1, "n_r", m.n_r, KD3_NONCE_LEN);
	fprintf(stderr, IND1 "%-9s %u s\n", "lifetime", m.lifetime);
	field_hex(IND1, "blob_r", m.blob_r, KD3_BLOB_LEN);
	field_hex(IND1, "blob_i", m.blob_i, KD3_BLOB_LEN);
	return KD3_OK;
}

/* M4  n_r | kvno_r | [e_r] | lifetime | blob_i | confirm_r */
static int print_m4(kd3_view body, int fs)
{
	kd3_m4 m;
	if (kd3_m4_decode(body.p, body.len, fs, &m) != KD3_OK)
		return KD3_E_MALFORMED;
	field_hex(IND1, "n_r", m.n_r, KD3_NONCE_LEN);
	field_u32(IND1, "kvno_r", m.kvno_r);
	if (m.e_r)
		field_hex(IND1, "e_r", m.e_r, KD3_DH_LEN);
	fprintf(stderr, IND1 "%-9s %u s\n", "lifetime", m.lifetime);
	field_hex(IND1, "blob_i", m.blob_i, KD3_BLOB_LEN);
	field_hex(IND1, "confirm_r", m.confirm_r, KD3_MAC_LEN);
	return KD3_OK;
}

/* ERROR  code u16 | text str */
static int print_error(kd3_view body)
{
	kd3_error_msg m;
	char text[256];
	if (kd3_error_decode(body.p, body.len, &m) != KD3_OK)
		return KD3_E_MALFORMED;
	kd3_log_safe_name(m.text.p, m.text.len, text);
	fprintf(stderr, IND1 "%-9s %u (%s)\n", "code", m.code, kd3_err_wire_name(m.code));
	fprintf(stderr, IND1 "%-9s \"%s\"\n", "text", text);
	return KD3_OK;
}

/* RECORD  seq u64 | sealed(inner u8 | payload) || tag */
static int print_record(const uint8_t *frame, kd3_view body, int inner)
{
	kd3_record m;
	char hex[TRACE_HEX_CAP];
	if (kd3_record_decode(frame, body.p, body.len, &m) != KD3_OK)
		return KD3_E_MALFORMED;
	fprintf(stderr, IND1 "%-9s %llu\n", "seq", (unsigned long long)m.seq);
	fprintf(stderr, IND1 "%-9s %zu bytes (inner type, %zu-byte payload, %d-byte tag)\n",
	        "sealed", m.sealed.len, m.sealed.len - 1 - KD3_TAG_LEN, KD3_TAG_LEN);
	if (inner >= 0)
		fprintf(stderr, IND1 "%-9s %s\n", "inner", kd3_inner_name((uint8_t)inner));
	hex_text(m.sealed.p, m.sealed.len, TRACE_CT_SHOWN, hex);
	fprintf(stderr, IND1 "%-9s %s\n", "ct", hex);
	return KD3_OK;
}

static int print_body(const uint8_t *frame, const kd3_frame *f, int fs, int inner)
{
	switch (f->type) {
	case KD3_T_M1:
		return print_m1(f->body);
	case KD3_T_M2:
		return print_m2(f->body);
	case KD3_T_M3:
		return print_m3(f->body);
	case KD3_T_M4:
		return print_m4(f->body, fs);
	case KD3_T_ERROR:
		return print_error(f->body);
	case KD3_T_RECORD:
		return print_record(frame, f->body, inner);
	default:
		return KD3_E_MALFORMED;
	}
}

void kd3_trace_frame(const char *dir, const uint8_t *frame, size_t len, int fs, int inner)
{
	kd3_frame f;

	if (!kd3_trace_enabled())
		return;
	flockfile(stderr); /* one block per frame, even with several threads */
	if (!frame || kd3_frame_decode(frame, len, &f) != KD3_OK) {
		fprintf(stderr, "-> %s  ?  (%zu bytes)  malformed frame\n", dir, len);
		if (frame)
			print_malformed(frame, len);
		goto out;
	}
	fprintf(stderr, "-> %s  %s  (%zu bytes)\n", dir, kd3_type_name(f.type), len);
	if (print_body(frame, &f, fs, inner) != KD3_OK)
		print_malformed(frame, len);
out:
	funlockfile(stderr);
}

void kd3_trace_note(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!kd3_trace_enabled())
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "-- %s\n", line);
}
