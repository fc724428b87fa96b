/* M2 decoder (with the M1 inside it): strict, zero-copy, and what it accepts
 * re-encodes to the same bytes. Input: an M2 body (no frame header). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz_util.h"
#include "msg.h"

static uint8_t out[KD3_HDR_LEN + KD3_M2_BODY_MAX];

static void check_fields(const uint8_t *body, size_t len, const kd3_m2 *m)
{
	const kd3_m1 *m1 = &m->m1;
	kd3_m1 again;

	/* The M1 is the blob16 at the front, and decodes the same on its own. */
	FUZZ_CHECK(m1->body.p == body + 2 && m1->body.len == kd3_get_u16(body));
	FUZZ_CHECK(kd3_m1_decode(m1->body.p, m1->body.len, &again) == KD3_OK);
	FUZZ_CHECK(again.signed_len == m1->signed_len && again.kvno_i == m1->kvno_i);
	FUZZ_CHECK(fuzz_inside(body, len, m->n_r, KD3_NONCE_LEN));
	FUZZ_CHECK((m->e_r != NULL) == ((m1->flags & KD3_FLAG_FS) != 0));
	FUZZ_CHECK(!m->e_r || fuzz_inside(body, len, m->e_r, KD3_DH_LEN));
	FUZZ_CHECK(m->signed_len + KD3_MAC_LEN == len && m->auth_r == body + m->signed_len);
	FUZZ_CHECK(m->body.p == body && m->body.len == len && len <= KD3_M2_BODY_MAX);
}

static void check_roundtrip(const uint8_t *body, size_t len, const kd3_m2 *m)
{
	kd3_writer w;
	size_t start;

	kd3_wr_init(&w, out, sizeof(out));
	kd3_frame_begin(&w, KD3_T_M2, &start);
	kd3_m2_encode_signed(&w, m->m1.body, m->n_r, m->kvno_r, m->e_r);
	kd3_wr_bytes(&w, m->auth_r, KD3_MAC_LEN);
	FUZZ_CHECK(kd3_frame_end(&w, start) == KD3_OK);
	FUZZ_CHECK(w.len == KD3_HDR_LEN + len && memcmp(out + KD3_HDR_LEN, body, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kd3_m2 m;
	int ret = kd3_m2_decode(data, size, &m);
	if (ret != KD3_OK) {
		FUZZ_CHECK(ret == KD3_E_MALFORMED || ret == KD3_E_UNSUPPORTED);
		return 0;
	}
	check_fields(data, size, &m);
	check_roundtrip(data, size, &m);
	return 0;
}
