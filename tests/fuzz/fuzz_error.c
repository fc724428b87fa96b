/* ERROR decoder: code u16 (one of the wire codes) | text str, exactly. What it accepts
 * re-encodes as the encoder promises: text cut at a NUL, non-printable bytes as '?'.
 * Input: an ERROR body (no frame header). */
#include <string.h>

#include "err.h"
#include "fuzz_util.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[KD3_HDR_LEN + KD3_ERROR_BODY_MAX];
	char text[256], expect[256];
	kd3_error_msg m;
	kd3_writer w;

	int ret = kd3_error_decode(data, size, &m);
	if (ret != KD3_OK) {
		FUZZ_CHECK(ret == KD3_E_MALFORMED);
		return 0;
	}
	FUZZ_CHECK(kd3_err_is_wire(m.code) && m.code == kd3_get_u16(data));
	FUZZ_CHECK(m.text.p == data + 3 && m.text.len == data[2] && size == 3 + m.text.len);
	FUZZ_CHECK(strcmp(kd3_err_wire_name(m.code), "?") != 0);

	memcpy(text, m.text.p, m.text.len);
	text[m.text.len] = '\0';
	size_t n = strlen(text);
	for (size_t i = 0; i < n; i++)
		expect[i] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
	kd3_wr_init(&w, out, sizeof(out));
	FUZZ_CHECK(kd3_error_encode(&w, m.code, text) == KD3_OK);
	FUZZ_CHECK(w.len == KD3_HDR_LEN + 3 + n && out[1] == KD3_T_ERROR);
	FUZZ_CHECK(memcmp(out + KD3_HDR_LEN, data, 2) == 0 && out[KD3_HDR_LEN + 2] == n);
	FUZZ_CHECK(memcmp(out + KD3_HDR_LEN + 3, expect, n) == 0);
	return 0;
}
