/* Hand-made seed inputs: edges of every parser (empty, one byte short, the largest
 * lengths, unknown versions, types, flags and codes), and configuration and key
 * files, valid and not. */
#include <stdio.h>
#include <string.h>

#include "make_corpus.h"
#include "wire.h"

static corpus_buf b;

#define EMIT_LIT(target, name, lit) corpus_emit(target, name, lit, sizeof(lit) - 1)

/* The largest record frame (every length at its maximum), and one byte more. */
static void largest_records(void)
{
	static uint8_t big[KD3_FRAME_MAX + 1];
	memcpy(big, "\x01\x10\x40\x19", 4);
	corpus_emit("frame", "edge-record-largest", big, KD3_FRAME_MAX);
	corpus_emit("record", "edge-largest", big, KD3_FRAME_MAX);
	corpus_emit("record", "edge-one-over", big, KD3_FRAME_MAX + 1);

	cb_reset(
	    &b); /* the channel target seals the rest of the input: 16384 bytes, then one more */
	cb_u8(&b, 0);
	cb_u16(&b, 0xbfff);
	cb_u8(&b, KD3_R_DATA);
	for (size_t i = 0; i < KD3_PAYLOAD_MAX; i++)
		cb_u8(&b, (uint8_t)i);
	cb_emit(&b, "channel", "edge-largest-payload");
	cb_u8(&b, 0);
	cb_emit(&b, "channel", "edge-payload-one-over");
}

static void frame_edges(void)
{
	corpus_emit("frame", "edge-empty", "", 0);
	EMIT_LIT("frame", "edge-three-bytes", "\x01\x10\x00");
	EMIT_LIT("frame", "edge-record-header-only", "\x01\x10\x00\x00");
	EMIT_LIT("frame", "edge-version-0", "\x00\x01\x00\x00");
	EMIT_LIT("frame", "edge-unknown-type", "\x01\x05\x00\x00");
	EMIT_LIT("frame", "edge-record-largest-length", "\x01\x10\x40\x19");
	EMIT_LIT("frame", "edge-record-length-one-over", "\x01\x10\x40\x1a");
	EMIT_LIT("frame", "edge-two-errors",
	         "\x01\x7f\x00\x03\x00\x07\x00\x01\x7f\x00\x03\x00\x09\x00");
}

/* An M1 body with the given names (lengths as given, bytes as they are). */
static void m1_body(uint8_t flags, const char *id_i, const char *id_r)
{
	static const uint8_t zeros[64];
	cb_reset(&b);
	cb_u8(&b, KD3_SUITE_CHACHAPOLY);
	cb_u8(&b, flags);
	cb_u8(&b, (uint8_t)strlen(id_i));
	cb_str(&b, id_i);
	cb_u8(&b, (uint8_t)strlen(id_r));
	cb_str(&b, id_r);
	cb_bytes(&b, zeros, KD3_NONCE_LEN);
	cb_bytes(&b, "\x00\x00\x00\x01", 4);
	if (flags & 1)
		cb_bytes(&b, zeros, KD3_DH_LEN);
	cb_bytes(&b, zeros, KD3_MAC_LEN);
}

static void message_edges(void)
{
	static const uint8_t zeros[KD3_M4_BODY_MAX];

	m1_body(0x02, "alice", "bob");
	cb_emit(&b, "m1", "edge-unknown-flag");
	m1_body(0, "", "bob");
	cb_emit(&b, "m1", "edge-empty-name");
	m1_body(1, "al ice", "bob");
	cb_emit(&b, "m1", "edge-bad-name-char");
	EMIT_LIT("m2", "edge-m1-length-past-end", "\xff\xff\x02\x00");
	corpus_emit("m3", "edge-one-short", zeros, KD3_M3_BODY_LEN - 1);
	corpus_emit("m4", "edge-between-layouts", zeros, KD3_M4_BODY_MAX - 16);
	EMIT_LIT("error", "edge-code-0", "\x00\x00\x00");
	EMIT_LIT("error", "edge-code-10", "\x00\x0a\x00");
	EMIT_LIT("error", "edge-text-unprintable", "\x00\x04\x03\x01\x7f\x41");
	EMIT_LIT("error", "edge-text-nul", "\x00\x01\x02\x41\x00");
	EMIT_LIT("error", "edge-text-length-past-end", "\x00\x01\x05\x41");
	corpus_emit("record", "edge-smallest", zeros, KD3_HDR_LEN + KD3_SEQ_LEN + 1 + KD3_TAG_LEN);
	corpus_emit("record", "edge-one-short", zeros, KD3_HDR_LEN + KD3_SEQ_LEN + KD3_TAG_LEN);
	EMIT_LIT("kdc", "edge-empty-datagram", "");
	EMIT_LIT("kdc", "edge-http", "GET / HTTP/1.0\r\n\r\n");
	EMIT_LIT("kdc", "edge-error-frame", "\x01\x7f\x00\x03\x00\x07\x00");
}

static void stream_edges(void)
{
	EMIT_LIT("stream", "edge-bad-version-after-frame",
	         "\x01\x00"
	         "\x01\x7f\x00\x03\x00\x07\x00"
	         "\x02\x01\x00\x00");
	EMIT_LIT("stream", "edge-oversized-length", "\x00\x00\x01\x10\xff\xff\x00\x00");
	EMIT_LIT("stream", "edge-byte-at-a-time-partial",
	         "\x00\x01"
	         "\x01\x7f\x00\x03\x00\x07\x00"
	         "\x01\x7f\x00\x03\x00");
}

static void conf_files(void)
{
	EMIT_LIT("conf", "all-types",
	         "# every option type\n"
	         "name = kd3\n"
	         "port = 7088\n"
	         "verbose = yes\n"
	         "suite = aes-256-gcm\n"
	         "suites = chacha20-poly1305, aes-256-gcm\n"
	         "kdc = 127.0.0.1:7088, [::1]:7088\n");
	EMIT_LIT("conf", "section-repeated-list",
	         "; comment\n"
	         "[fuzz]\n"
	         "kdc = 127.0.0.1:1\n"
	         "kdc = 127.0.0.1:2\n"
	         "verbose = Off\n");
	EMIT_LIT("conf", "other-section", "[other]\nname = x\n");
	EMIT_LIT("conf", "out-of-range", "port = 70000\n");
	EMIT_LIT("conf", "unknown-key", "lisen = 1\n");
	EMIT_LIT("conf", "no-equals", "just some words\n");
	EMIT_LIT("conf", "empty-list-item", "kdc = a,,b\n");
	EMIT_LIT("conf", "crlf-no-final-newline", "suite = chacha20-poly1305\r\nport = 1");
	cb_reset(&b);
	cb_str(&b, "name = ");
	for (int i = 0; i < 1000; i++)
		cb_u8(&b, (uint8_t)('a' + i % 26));
	cb_str(&b, "\n");
	cb_emit(&b, "conf", "long-line");
}

#define HEX64 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static void keyfile_files(void)
{
	EMIT_LIT("keyfile", "one-key",
	         "# kd3 key file: keep secret (mode 0600)\n"
	         "principal = alice\n"
	         "key = 1:" HEX64 "\n");
	EMIT_LIT("keyfile", "two-keys-crlf",
	         "principal = bob@example/host\r\n"
	         "key = 2:" HEX64 "\r\n"
	         "\r\n"
	         "  key=7:" HEX64 "  \r\n");
	EMIT_LIT("keyfile", "duplicate-kvno",
	         "principal = alice\nkey = 1:" HEX64 "\nkey = 1:" HEX64 "\n");
	EMIT_LIT("keyfile", "bad-hex",
	         "principal = alice\nkey = 1:" HEX64 "\nkey = 2:zz" HEX64 "\n");
	EMIT_LIT("keyfile", "no-principal", "key = 1:" HEX64 "\n");
	EMIT_LIT("keyfile", "kvno-too-big", "principal = a\nkey = 4294967296:" HEX64 "\n");
	cb_reset(&b);
	cb_str(&b, "principal = carol\n");
	for (int i = 1; i <= 9; i++) {
		char line[100];
		snprintf(line, sizeof(line), "key = %d:" HEX64 "\n", i);
		cb_str(&b, line);
	}
	cb_emit(&b, "keyfile", "nine-keys");
}

void corpus_edges(void)
{
	frame_edges();
	largest_records();
	message_edges();
	stream_edges();
	conf_files();
	keyfile_files();
}
