/* kd3_peer as the initiator: an honest exchange up to a point, then frames from the
 * fuzzer (fuzz_peer.h). */
#include "fuzz_peer.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_peer_run(FW_I, data, size);
}
