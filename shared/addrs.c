/* kd3: user-written addresses to socket addresses (see addrs.h). */
#include "addrs.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "resolve.h"

int kd3_addrs_resolve(const char *what, const char *text, uint16_t default_port, int flags,
                      int timeout_ms, kd3_addr *out, size_t max, size_t *n, char *err,
                      size_t err_len)
{
	kd3_hostport hp;
	char why[320];
	int ret = kd3_hostport_parse(text, default_port, (flags & KD3_ADDRS_PORT0) != 0, &hp, why,
	                             sizeof(why));
	*n = 0;
	if (ret == KD3_OK)
		ret = kd3_resolve(&hp, (flags & KD3_ADDRS_PASSIVE) != 0, timeout_ms, out, max, n,
		                  why, sizeof(why));
	if (ret != KD3_OK)
		snprintf(err, err_len, "%s: %s", what, why);
	return ret;
}

void kd3_addrs_format(const kd3_addr *addrs, size_t n, char *out, size_t out_len)
{
	size_t used = 0;
	if (out_len)
		out[0] = '\0';
	for (size_t i = 0; i < n && used + 1 < out_len; i++) {
		char one[64];
		kd3_addr_format(&addrs[i], one, sizeof(one));
		int w = snprintf(out + used, out_len - used, "%s%s", i ? ", " : "", one);
		if (w < 0 || (size_t)w >= out_len - used)
			break;
		used += (size_t)w;
	}
}
