#include "items.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

/* How much of a bad value an error line quotes. */
#define ITEMS_QUOTE_MAX 64

static int blank(char c)
{
	return c == ' ' || c == '\t';
}

int kd3_split_items(const char *v, kd3_item_fn item, void *ctx, char *why, size_t len)
{
	const char *p = v;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *s = p;
		while (s < end && blank(*s))
			s++;
		while (end > s && blank(end[-1]))
			end--;
		if (end == s) {
			if (why && len)
				snprintf(why, len, "empty item in '%.*s'", ITEMS_QUOTE_MAX, v);
			return KD3_E_CONFIG;
		}
		int ret = item(ctx, s, (size_t)(end - s), why, len);
		if (ret != KD3_OK)
			return ret;
		if (!comma)
			return KD3_OK;
		p = comma + 1;
	}
}
