/* Seeds for the pgcopy target: binary COPY streams as PostgreSQL sends the bulk load's
 * query (kdc/store/postgres_load.c), each message behind a u16 length, valid and not. */
#include <string.h>

#include "make_corpus.h"

static corpus_buf b, msg;

static void m_u16(uint16_t v)
{
	cb_u16(&msg, v);
}

static void m_u32(uint32_t v)
{
	cb_u16(&msg, (uint16_t)(v >> 16));
	cb_u16(&msg, (uint16_t)v);
}

static void m_i64(int64_t v)
{
	m_u32((uint32_t)((uint64_t)v >> 32));
	m_u32((uint32_t)v);
}

static void m_header(void)
{
	cb_bytes(&msg, "PGCOPY\n\377\r\n", 11);
	m_u32(0); /* flags */
	m_u32(0); /* no header extension */
}

static void m_field(const void *p, size_t n)
{
	m_u32((uint32_t)n);
	cb_bytes(&msg, p, n);
}

static void m_null(void)
{
	m_u32(UINT32_MAX);
}

/* A tuple (name, enabled, kvno or 0 for NULL, a sealed blob, retire_at or 0). */
static void m_tuple(const char *name, int enabled, int64_t kvno, int64_t retire_at)
{
	uint8_t sealed[61], on = (uint8_t)enabled;
	memset(sealed, (int)kvno + 1, sizeof(sealed));
	m_u16(5);
	m_field(name, strlen(name));
	m_field(&on, 1);
	if (kvno) {
		m_u32(8);
		m_i64(kvno);
		m_field(sealed, sizeof(sealed));
	} else {
		m_null();
		m_null();
	}
	if (retire_at) {
		m_u32(8);
		m_i64(retire_at);
	} else {
		m_null();
	}
}

static void flush_msg(void)
{
	cb_u16(&b, (uint16_t)msg.len);
	cb_bytes(&b, msg.bytes, msg.len);
	cb_reset(&msg);
}

static void trailer(void)
{
	m_u16(0xffff);
	flush_msg();
}

void corpus_pgcopy(void)
{
	/* A realm: alice with two keys (one retiring), bob disabled, carol without keys. */
	cb_reset(&b);
	cb_reset(&msg);
	m_header();
	m_tuple("alice", 1, 1, 1900000000);
	flush_msg();
	m_tuple("alice", 1, 2, 0);
	flush_msg();
	m_tuple("bob", 0, 0, 0);
	flush_msg();
	m_tuple("carol", 1, 0, 0);
	flush_msg();
	trailer();
	cb_emit(&b, "pgcopy", "seed-realm");

	/* An empty realm: the header with the trailer. */
	cb_reset(&b);
	m_header();
	trailer();
	cb_emit(&b, "pgcopy", "seed-empty");

	/* Nine live keys: the oldest is not loaded. */
	cb_reset(&b);
	m_header();
	for (int k = 1; k <= 9; k++) {
		m_tuple("dave", 1, k, 0);
		flush_msg();
	}
	trailer();
	cb_emit(&b, "pgcopy", "seed-nine-keys");

	/* The highest kvno a key file allows (2^32-1), then the one below it. */
	cb_reset(&b);
	m_header();
	m_tuple("erin", 1, 4294967295LL, 0);
	flush_msg();
	m_tuple("erin", 1, 4294967294LL, 0);
	flush_msg();
	trailer();
	cb_emit(&b, "pgcopy", "seed-kvno-max");

	/* Refused: names out of order, no trailer, a row after the trailer. */
	cb_reset(&b);
	m_header();
	m_tuple("bob", 1, 1, 0);
	flush_msg();
	m_tuple("alice", 1, 1, 0);
	flush_msg();
	trailer();
	cb_emit(&b, "pgcopy", "bad-order");
	cb_reset(&b);
	m_header();
	m_tuple("alice", 1, 1, 0);
	flush_msg();
	cb_emit(&b, "pgcopy", "bad-no-trailer");
	cb_reset(&b);
	m_header();
	trailer();
	m_tuple("alice", 1, 1, 0);
	flush_msg();
	cb_emit(&b, "pgcopy", "bad-after-trailer");
}
