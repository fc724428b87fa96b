/* RECORD decoder: seq u64 | sealed (inner, payload and tag), with the AD being the
 * header and seq, contiguous. Input: a header (4 bytes, not checked here) and a body. */
#include <stdlib.h>

#include "err.h"
#include "fuzz_util.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kd3_record rec;

	if (size < KD3_HDR_LEN)
		return 0;
	const uint8_t *body = data + KD3_HDR_LEN;
	size_t len = size - KD3_HDR_LEN;
	int ret = kd3_record_decode(data, body, len, &rec);
	int fits = len >= KD3_SEQ_LEN + 1 + KD3_TAG_LEN && len <= KD3_RECORD_BODY_MAX;
	FUZZ_CHECK((ret == KD3_OK) == fits);
	if (ret == KD3_OK) {
		FUZZ_CHECK(rec.seq ==
		           ((uint64_t)kd3_get_u16(body) << 48 |
		            (uint64_t)kd3_get_u16(body + 2) << 32 |
		            (uint64_t)kd3_get_u16(body + 4) << 16 | kd3_get_u16(body + 6)));
		FUZZ_CHECK(rec.sealed.p == body + KD3_SEQ_LEN &&
		           rec.sealed.len == len - KD3_SEQ_LEN);
		FUZZ_CHECK(rec.ad.p == data && rec.ad.len == KD3_HDR_LEN + KD3_SEQ_LEN);
	} else {
		FUZZ_CHECK(ret == KD3_E_MALFORMED);
	}
	/* A body that does not follow its header is refused (the AD must be contiguous). */
	uint8_t *apart = fuzz_dup(body, len);
	FUZZ_CHECK(kd3_record_decode(data, apart, len, &rec) != KD3_OK);
	free(apart);
	return 0;
}
