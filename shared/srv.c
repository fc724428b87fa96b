/* kd3 SRV records (resolve.h): the TTL of a DNS reply, read through the bounds-checked
 * reader (c-ares parses the records but drops their TTL), and RFC 2782's use order. */
#include "resolve.h"

#include <string.h>

#include "buf.h"
#include "err.h"

#define DNS_HEADER_LEN   12
#define DNS_NAME_MAX     255         /* RFC 1035 2.3.4: a name's wire form, length bytes included */
#define DNS_POINTER      0xc0        /* the top two bits of a compression pointer's first byte */
#define DNS_TTL_MAX      0x7fffffffu /* RFC 2181 8: a TTL with the top bit set means 0 */
#define DNS_POINTER_HOPS 127         /* more than any name of 255 bytes can need */

/* A reader over msg with its cursor at off (past the end: a reader in error). */
static void reader_at(kd3_reader *r, const uint8_t *msg, size_t len, size_t off)
{
	kd3_view skipped;
	kd3_rd_init(r, msg, len);
	kd3_rd_view(r, off, &skipped);
}

/* Walks the name that starts at off in msg, following compression pointers, and checks
 * it: labels of 1-63 bytes, at most DNS_NAME_MAX bytes in all, every pointer aimed
 * strictly before the run of labels it ends (so a walk always moves backwards and a
 * loop cannot close) and past the header. *end is where the name ends in the stream
 * at off. */
static int walk_name(const uint8_t *msg, size_t len, size_t off, size_t *end)
{
	size_t run_start = off, wire_len = 0;
	int hops = 0, jumped = 0;
	kd3_reader r;
	for (;;) {
		uint8_t label = 0;
		reader_at(&r, msg, len, off);
		if (kd3_rd_u8(&r, &label))
			return KD3_E_MALFORMED;
		if ((label & DNS_POINTER) == DNS_POINTER) {
			uint8_t low = 0;
			if (kd3_rd_u8(&r, &low))
				return KD3_E_MALFORMED;
			size_t target = (size_t)(label & 0x3f) << 8 | low;
			if (!jumped)
				*end = r.off;
			if (target >= run_start || target < DNS_HEADER_LEN ||
			    ++hops > DNS_POINTER_HOPS)
				return KD3_E_MALFORMED;
			jumped = 1;
			off = run_start = target;
			continue;
		}
		if (label & DNS_POINTER) /* 0x40 and 0x80: extended and reserved label types */
			return KD3_E_MALFORMED;
		wire_len += 1u + label;
		if (wire_len > DNS_NAME_MAX)
			return KD3_E_MALFORMED;
		if (label == 0) {
			if (!jumped)
				*end = r.off;
			return KD3_OK;
		}
		kd3_view text;
		if (kd3_rd_view(&r, label, &text))
			return KD3_E_MALFORMED;
		off = r.off;
	}
}

/* Moves r past the name at its cursor. */
static int skip_name(kd3_reader *r)
{
	size_t end = 0;
	if (r->err || walk_name(r->p, r->len, r->off, &end) != KD3_OK) {
		r->err = KD3_E_MALFORMED;
		return KD3_E_MALFORMED;
	}
	r->off = end;
	return KD3_OK;
}

static int skip_question(kd3_reader *r)
{
	uint16_t qtype = 0, qclass = 0;
	skip_name(r);
	kd3_rd_u16(r, &qtype);
	return kd3_rd_u16(r, &qclass);
}

/* One resource record; *ttl_s is its TTL when its type is want (*matched set). */
static int read_rr(kd3_reader *r, uint16_t want, int *matched, uint32_t *ttl_s)
{
	uint16_t type = 0, rr_class = 0;
	uint32_t ttl = 0;
	kd3_view rdata;
	skip_name(r);
	kd3_rd_u16(r, &type);
	kd3_rd_u16(r, &rr_class);
	kd3_rd_u32(r, &ttl);
	if (kd3_rd_blob16(r, &rdata))
		return r->err;
	*matched = type == want;
	*ttl_s = ttl > DNS_TTL_MAX ? 0 : ttl;
	return KD3_OK;
}

int kd3_dns_min_ttl(const uint8_t *abuf, size_t alen, uint16_t type, uint32_t *ttl_s)
{
	uint16_t id = 0, flags = 0, qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
	uint32_t min_ttl = UINT32_MAX;
	int found = 0;
	kd3_reader r;

	kd3_rd_init(&r, abuf, alen);
	kd3_rd_u16(&r, &id);
	kd3_rd_u16(&r, &flags);
	kd3_rd_u16(&r, &qdcount);
	kd3_rd_u16(&r, &ancount);
	kd3_rd_u16(&r, &nscount);
	kd3_rd_u16(&r, &arcount);
	for (unsigned i = 0; i < qdcount && !r.err; i++)
		skip_question(&r);
	for (unsigned i = 0; i < ancount && !r.err; i++) {
		int matched = 0;
		uint32_t ttl = 0;
		if (read_rr(&r, type, &matched, &ttl) == KD3_OK && matched) {
			found = 1;
			min_ttl = ttl < min_ttl ? ttl : min_ttl;
		}
	}
	/* The other two sections only have to add up: every count and length exact. */
	for (unsigned i = 0; i < (unsigned)nscount + arcount && !r.err; i++) {
		int matched = 0;
		uint32_t ttl = 0;
		read_rr(&r, type, &matched, &ttl);
	}
	if (kd3_rd_end(&r) != KD3_OK)
		return KD3_E_MALFORMED;
	if (!found)
		return KD3_E_NOT_FOUND;
	*ttl_s = min_ttl;
	return KD3_OK;
}

/* ---- RFC 2782's order ------------------------------------------------------------------ */

static void sort_by_priority(kd3_srv_target *t, size_t n)
{
	/* Insertion sort: at most KD3_SRV_MAX records, and stable, so equal priorities keep
	 * the order they came in. */
	for (size_t i = 1; i < n; i++) {
		kd3_srv_target moving = t[i];
		size_t j = i;
		for (; j > 0 && t[j - 1].priority > moving.priority; j--)
			t[j] = t[j - 1];
		t[j] = moving;
	}
}

/* Moves t[from] to t[to] (to <= from), the records between one place on, in order. */
static void move_to(kd3_srv_target *t, size_t to, size_t from)
{
	kd3_srv_target moving = t[from];
	memmove(t + to + 1, t + to, (from - to) * sizeof(*t));
	t[to] = moving;
}

/* The weight-0 records of t[0..n) first, the others after them, each group in order. */
static void zero_weights_first(kd3_srv_target *t, size_t n)
{
	size_t zeros = 0;
	for (size_t i = 0; i < n; i++)
		if (t[i].weight == 0)
			move_to(t, zeros++, i);
}

/* One priority's records, t[0..n), in weighted random order. */
static void order_by_weight(kd3_srv_target *t, size_t n, uint32_t (*rnd)(void *ctx), void *ctx)
{
	for (size_t done = 0; done + 1 < n; done++) {
		kd3_srv_target *left = t + done;
		size_t nleft = n - done;
		uint64_t sum = 0, running = 0;
		zero_weights_first(left, nleft);
		for (size_t i = 0; i < nleft; i++)
			sum += left[i].weight;
		/* Uniform in [0, sum]: the modulo's bias is below (sum + 1) / 2^32, under
		 * 2^-12 for the sums of KD3_SRV_MAX records (16 * 65535 at most): not worth a
		 * rejection loop. */
		uint64_t pick = rnd(ctx) % (sum + 1);
		size_t chosen = nleft - 1;
		for (size_t i = 0; i < nleft; i++) {
			running += left[i].weight;
			if (running >= pick) {
				chosen = i;
				break;
			}
		}
		move_to(left, 0, chosen);
	}
}

void kd3_srv_order(kd3_srv_target *t, size_t n, uint32_t (*rnd)(void *ctx), void *ctx)
{
	sort_by_priority(t, n);
	for (size_t start = 0; start < n;) {
		size_t end = start + 1;
		while (end < n && t[end].priority == t[start].priority)
			end++;
		order_by_weight(t + start, end - start, rnd, ctx);
		start = end;
	}
}
