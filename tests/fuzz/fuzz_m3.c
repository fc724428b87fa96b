/* M3 decoder: exactly KD3_M3_BODY_LEN bytes, and re-encodes to the same bytes.
 * Input: an M3 body (no frame header). */
#include <string.h>

#include "err.h"
#include "fuzz_util.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[KD3_HDR_LEN + KD3_M3_BODY_LEN];
	kd3_writer w;
	kd3_m3 m;

	int ret = kd3_m3_decode(data, size, &m);
	FUZZ_CHECK((ret == KD3_OK) == (size == KD3_M3_BODY_LEN));
	if (ret != KD3_OK) {
		FUZZ_CHECK(ret == KD3_E_MALFORMED);
		return 0;
	}
	uint32_t lifetime = (uint32_t)kd3_get_u16(data + 32) << 16 | kd3_get_u16(data + 34);
	FUZZ_CHECK(m.n_r == data && m.lifetime == lifetime);
	FUZZ_CHECK(m.blob_r == data + 36 && m.blob_i == data + 36 + KD3_BLOB_LEN);
	kd3_wr_init(&w, out, sizeof(out));
	FUZZ_CHECK(kd3_m3_encode(&w, &m) == KD3_OK);
	FUZZ_CHECK(w.len == sizeof(out) && memcmp(out + KD3_HDR_LEN, data, size) == 0);
	return 0;
}
