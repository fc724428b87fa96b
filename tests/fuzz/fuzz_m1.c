/* M1 decoder: strict, zero-copy, and what it accepts re-encodes to the same bytes.
 * Input: an M1 body (no frame header). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz_util.h"
#include "msg.h"

static uint8_t out[KD3_HDR_LEN + KD3_M1_BODY_MAX];

static void check_fields(const uint8_t *body, size_t len, const kd3_m1 *m)
{
	FUZZ_CHECK(m->suite == KD3_SUITE_AES256GCM || m->suite == KD3_SUITE_CHACHAPOLY);
	FUZZ_CHECK((m->flags & ~KD3_FLAGS_KNOWN) == 0);
	FUZZ_CHECK(kd3_name_valid(m->id_i.p, m->id_i.len) &&
	           kd3_name_valid(m->id_r.p, m->id_r.len));
	FUZZ_CHECK(fuzz_inside(body, len, m->id_i.p, m->id_i.len));
	FUZZ_CHECK(fuzz_inside(body, len, m->id_r.p, m->id_r.len));
	FUZZ_CHECK(fuzz_inside(body, len, m->n_i, KD3_NONCE_LEN));
	FUZZ_CHECK((m->e_i != NULL) == ((m->flags & KD3_FLAG_FS) != 0));
	FUZZ_CHECK(!m->e_i || fuzz_inside(body, len, m->e_i, KD3_DH_LEN));
	FUZZ_CHECK(m->signed_len + KD3_MAC_LEN == len && m->auth_i == body + m->signed_len);
	FUZZ_CHECK(m->body.p == body && m->body.len == len && len <= KD3_M1_BODY_MAX);
}

static void check_roundtrip(const uint8_t *body, size_t len, const kd3_m1 *m)
{
	kd3_writer w;
	size_t start;

	kd3_wr_init(&w, out, sizeof(out));
	kd3_frame_begin(&w, KD3_T_M1, &start);
	kd3_m1_encode_signed(&w, m->suite, m->flags, m->id_i, m->id_r, m->n_i, m->kvno_i, m->e_i);
	kd3_wr_bytes(&w, m->auth_i, KD3_MAC_LEN);
	FUZZ_CHECK(kd3_frame_end(&w, start) == KD3_OK);
	FUZZ_CHECK(w.len == KD3_HDR_LEN + len && memcmp(out + KD3_HDR_LEN, body, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kd3_m1 m;
	int ret = kd3_m1_decode(data, size, &m);
	if (ret != KD3_OK) {
		FUZZ_CHECK(ret == KD3_E_MALFORMED || ret == KD3_E_UNSUPPORTED);
		return 0;
	}
	check_fields(data, size, &m);
	check_roundtrip(data, size, &m);
	return 0;
}
