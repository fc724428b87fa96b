/* M4 decoder, in both layouts (with and without e_r): fixed length, and re-encodes to
 * the same bytes. Input: an M4 body (no frame header); both layouts are tried. */
#include <string.h>

#include "err.h"
#include "fuzz_util.h"
#include "msg.h"

static void check_layout(const uint8_t *data, size_t size, int fs)
{
	static uint8_t out[KD3_HDR_LEN + KD3_M4_BODY_MAX];
	const size_t exact = KD3_M4_BODY_MAX - (fs ? 0 : KD3_DH_LEN);
	kd3_writer w;
	kd3_m4 m;

	int ret = kd3_m4_decode(data, size, fs, &m);
	FUZZ_CHECK((ret == KD3_OK) == (size == exact));
	if (ret != KD3_OK) {
		FUZZ_CHECK(ret == KD3_E_MALFORMED);
		return;
	}
	FUZZ_CHECK((m.e_r != NULL) == (fs != 0));
	FUZZ_CHECK(m.n_r == data && m.confirm_r == data + size - KD3_MAC_LEN);
	FUZZ_CHECK(m.blob_i == data + size - KD3_MAC_LEN - KD3_BLOB_LEN);
	kd3_wr_init(&w, out, sizeof(out));
	FUZZ_CHECK(kd3_m4_encode(&w, &m) == KD3_OK);
	FUZZ_CHECK(w.len == KD3_HDR_LEN + size && memcmp(out + KD3_HDR_LEN, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_layout(data, size, 0);
	check_layout(data, size, 1);
	return 0;
}
