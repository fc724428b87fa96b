/* Frame header: kd3_frame_size (streams) and kd3_frame_decode (one whole frame) must
 * agree on every input, and never read outside it. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz_util.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kd3_frame f;
	long need = kd3_frame_size(data, size);
	int ret = kd3_frame_decode(data, size, &f);

	FUZZ_CHECK(kd3_type_name(size > 1 ? data[1] : 0) != NULL);
	if (size < KD3_HDR_LEN) {
		FUZZ_CHECK(need == 0 && ret != KD3_OK);
		return 0;
	}
	if (need < 0) { /* a bad header: both say so, with the same error */
		FUZZ_CHECK(ret == (int)-need);
		FUZZ_CHECK(ret == KD3_E_MALFORMED || ret == KD3_E_UNSUPPORTED);
		return 0;
	}
	FUZZ_CHECK(need >= KD3_HDR_LEN && need <= KD3_FRAME_MAX);
	FUZZ_CHECK((ret == KD3_OK) == ((size_t)need == size));
	if ((size_t)need > size)
		return 0;
	/* The first whole frame, alone in a buffer of exactly its size. */
	uint8_t *one = fuzz_dup(data, (size_t)need);
	FUZZ_CHECK(kd3_frame_decode(one, (size_t)need, &f) == KD3_OK);
	FUZZ_CHECK(f.version == KD3_VERSION && f.type == data[1]);
	FUZZ_CHECK(f.body.p == one + KD3_HDR_LEN && f.body.len == (size_t)need - KD3_HDR_LEN);
	FUZZ_CHECK(strcmp(kd3_type_name(f.type), "UNKNOWN") != 0);
	FUZZ_CHECK(kd3_frame_size(one, (size_t)need) == need);
	free(one);
	return 0;
}
