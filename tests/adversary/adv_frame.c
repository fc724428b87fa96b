/* kd3adv: names of directions and kinds, frame classification, hex. */
#include "adv.h"

#include <string.h>

#include "wire.h"

static const char *const dir_names[ADV_NDIRS] = {"I->R", "R->I", "R->KDC", "KDC->R"};

static const char *const kind_names[ADV_NKINDS] = {
    "M1", "M2", "M3", "M4", "RECORD", "ERROR", "OTHER", "FINISHED", "KEY_UPDATE", "ANY"};

/* An empty-payload record: header, seq, inner type, tag. */
#define ADV_EMPTY_RECORD_LEN (KD3_HDR_LEN + KD3_SEQ_LEN + 1 + KD3_TAG_LEN)

const char *adv_dir_name(int dir)
{
	return dir >= 0 && dir < ADV_NDIRS ? dir_names[dir] : "?";
}

static int name_index(const char *const *names, int count, const char *s, size_t len)
{
	for (int i = 0; i < count; i++)
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
			return i;
	return -1;
}

int adv_dir_parse(const char *s, size_t len)
{
	return name_index(dir_names, ADV_NDIRS, s, len);
}

int adv_dir_back(int dir)
{
	return dir ^ 1; /* the table pairs each direction with its reverse */
}

const char *adv_transport_name(int transport)
{
	return transport == ADV_TCP ? "tcp" : transport == ADV_UDP ? "udp" : "any";
}

const char *adv_kind_name(int kind)
{
	return kind >= 0 && kind < ADV_NKINDS ? kind_names[kind] : "?";
}

int adv_kind_parse(const char *s, size_t len)
{
	return name_index(kind_names, ADV_NKINDS, s, len);
}

int adv_kind_of(const uint8_t *frame, size_t len)
{
	if (len < KD3_HDR_LEN || frame[0] != KD3_VERSION)
		return ADV_K_OTHER;
	switch (frame[1]) {
	case KD3_T_M1:
		return ADV_K_M1;
	case KD3_T_M2:
		return ADV_K_M2;
	case KD3_T_M3:
		return ADV_K_M3;
	case KD3_T_M4:
		return ADV_K_M4;
	case KD3_T_RECORD:
		return ADV_K_RECORD;
	case KD3_T_ERROR:
		return ADV_K_ERROR;
	default:
		return ADV_K_OTHER;
	}
}

void adv_classify(unsigned counters[ADV_NDIRS][ADV_NKINDS], int dir, int transport,
                  const uint8_t *frame, size_t len, unsigned conn_records, adv_seen *seen)
{
	int kinds[3], n = 0;

	memset(seen, 0, sizeof(*seen));
	seen->dir = dir;
	seen->transport = transport;
	kinds[n++] = adv_kind_of(frame, len);
	kinds[n++] = ADV_K_ANY;
	if (kinds[0] == ADV_K_RECORD && dir == ADV_I2R && conn_records == 1)
		kinds[n++] = ADV_K_FINISHED;
	else if (kinds[0] == ADV_K_RECORD && len == ADV_EMPTY_RECORD_LEN)
		kinds[n++] = ADV_K_KEY_UPDATE;
	for (int i = 0; i < n; i++)
		seen->idx[kinds[i]] = ++counters[dir][kinds[i]];
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long adv_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t cap)
{
	if (hex_len % 2 != 0 || hex_len / 2 > cap)
		return -1;
	for (size_t i = 0; i < hex_len / 2; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(hex_len / 2);
}

void adv_hex_encode(const uint8_t *p, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
}
