/* Seed corpora for the state machine targets: for every place the honest exchange can
 * stop, the frames that party would have received next (fuzz_peer.h's input format),
 * a few runs mixing in local operations and errors, and records for the channel
 * target sealed with its fixed traffic secrets. */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "fuzz_peer.h"
#include "fuzz_util.h"
#include "make_corpus.h"
#include "msg.h"

static corpus_buf b;

static uint8_t mode_byte(uint8_t suite, uint8_t fs, size_t stop_index)
{
	return (uint8_t)((suite == KD3_SUITE_AES256GCM ? 1 : 0) | fs << 1 | stop_index << 2);
}

static void frame_item(const fw_world *f, int step)
{
	const fw_frame *fr = corpus_step_frame(f, step);
	cb_item(&b, fr->src == KD3_SRC_KDC, fr->bytes, fr->len);
}

static void op_item(unsigned op)
{
	cb_u16(&b, (uint16_t)(FUZZ_OP_BASE | op));
}

/* The longest ERROR text there is. */
static const char *longest_text(void)
{
	static char text[256];
	for (size_t i = 0; i < 255; i++)
		text[i] = (char)(' ' + i % 95);
	text[255] = '\0';
	return text;
}

static void error_item(int from_kdc, uint16_t code, const char *text)
{
	uint8_t buf[KD3_HDR_LEN + KD3_ERROR_BODY_MAX];
	kd3_writer w;
	kd3_wr_init(&w, buf, sizeof(buf));
	if (kd3_error_encode(&w, code, text) != KD3_OK)
		corpus_die("cannot encode an ERROR");
	cb_item_fixup(&b, from_kdc, buf, w.len); /* mutations may grow the text */
}

/* Everything the role receives after the stop, in order. */
static void honest_rest(const fw_world *f, fw_party role, uint8_t suite, uint8_t fs)
{
	const int *stops = role == FW_I ? fuzz_stops_i : fuzz_stops_r;
	size_t nstops = role == FW_I ? fuzz_nstops_i : fuzz_nstops_r;
	const char *target = role == FW_I ? "initiator" : "responder";
	char name[64];

	for (size_t si = 0; si < nstops; si++) {
		cb_reset(&b);
		cb_u8(&b, mode_byte(suite, fs, si));
		for (size_t i = 0; i < f->nlog; i++) {
			const fw_frame *fr = &f->log[i];
			if (fr->to == role && fr->step > stops[si])
				cb_item(&b, fr->src == KD3_SRC_KDC, fr->bytes, fr->len);
		}
		snprintf(name, sizeof(name), "%s-after-step%02d", corpus_tag(suite, fs), stops[si]);
		cb_emit(&b, target, name);
	}
}

/* Stop indexes into fuzz_stops_i / fuzz_stops_r used below. */
enum { I_WAIT_M4 = 0, I_ESTABLISHED = 1 };
enum { R_WAIT_M1 = 0, R_WAIT_M3 = 1, R_ESTABLISHED = 3 };

static void initiator_variants(const fw_world *f, uint8_t suite, uint8_t fs)
{
	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, I_WAIT_M4));
	error_item(0, KD3_E_BAD_AUTH, "KDC: initiator authenticator did not verify");
	frame_item(f, 5);
	cb_emit(&b, "initiator", "wait-m4-error-then-m4");

	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, I_WAIT_M4));
	error_item(0, KD3_E_BUSY, longest_text());
	cb_emit(&b, "initiator", "wait-m4-error-longest-text");

	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, I_WAIT_M4));
	cb_item(&b, 1, corpus_step_frame(f, 5)->bytes, corpus_step_frame(f, 5)->len);
	cb_emit(&b, "initiator", "m4-from-kdc-source");

	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, I_ESTABLISHED));
	op_item(FUZZ_OP_SEND);
	frame_item(f, 7);
	op_item(FUZZ_OP_REKEY);
	frame_item(f, 9);
	op_item(FUZZ_OP_CLOSE);
	frame_item(f, 12);
	frame_item(f, 7); /* after CLOSED: refused */
	op_item(FUZZ_OP_SEND);
	cb_emit(&b, "initiator", "established-ops-close");

	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, I_ESTABLISHED));
	op_item(FUZZ_OP_LATER);
	frame_item(f, 7); /* expired */
	op_item(FUZZ_OP_SEND);
	cb_emit(&b, "initiator", "established-expired");

	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, I_ESTABLISHED));
	op_item(FUZZ_OP_EOF);
	frame_item(f, 7);
	op_item(FUZZ_OP_CLOSE);
	cb_emit(&b, "initiator", "established-eof");
}

static void responder_variants(const fw_world *f, uint8_t suite, uint8_t fs)
{
	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, R_WAIT_M3));
	error_item(1, KD3_E_UNKNOWN_PRINCIPAL, "unknown responder principal");
	frame_item(f, 4);
	cb_emit(&b, "responder", "wait-m3-kdc-error");

	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, R_WAIT_M3));
	error_item(1, KD3_E_BUSY, longest_text());
	cb_emit(&b, "responder", "wait-m3-kdc-error-longest-text");

	uint8_t m1[KD3_HDR_LEN + KD3_M1_BODY_MAX];
	size_t n = corpus_build_m1(m1, sizeof(m1), KD3_SUITE_AES256GCM, 1, corpus_longest_name('i'),
	                           "bob", 1);
	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, 1, R_WAIT_M1)); /* R draws e_r too */
	cb_item(&b, 0, m1, n);
	cb_emit(&b, "responder", "wait-m1-longest-name");

	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, R_WAIT_M3));
	error_item(0, KD3_E_TIMEOUT, "initiator gave up");
	cb_emit(&b, "responder", "wait-m3-peer-error");

	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, R_WAIT_M3));
	op_item(FUZZ_OP_KDC_FAILED);
	frame_item(f, 4);
	cb_emit(&b, "responder", "wait-m3-kdc-failed");

	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, R_WAIT_M3));
	cb_item(&b, 0, corpus_step_frame(f, 4)->bytes, corpus_step_frame(f, 4)->len);
	cb_emit(&b, "responder", "m3-from-peer-source");

	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, R_WAIT_M1));
	frame_item(f, 2);
	frame_item(f, 2); /* a second M1 */
	cb_emit(&b, "responder", "wait-m1-twice");

	cb_reset(&b);
	cb_u8(&b, mode_byte(suite, fs, R_ESTABLISHED));
	op_item(FUZZ_OP_SEND);
	frame_item(f, 8);
	frame_item(f, 10);
	op_item(FUZZ_OP_REKEY);
	frame_item(f, 11);
	op_item(FUZZ_OP_CLOSE);
	frame_item(f, 8); /* after CLOSED: refused */
	cb_emit(&b, "responder", "established-ops-close");
}

void corpus_peers(const fw_world *f, uint8_t suite, uint8_t fs, int variants)
{
	honest_rest(f, FW_I, suite, fs);
	honest_rest(f, FW_R, suite, fs);
	if (variants) {
		initiator_variants(f, suite, fs);
		responder_variants(f, suite, fs);
	}
}

/* ---- channel ---------------------------------------------------------------- */

static void sealed_item(int to_mirror, uint8_t inner, const char *payload, size_t n)
{
	cb_u16(&b, (uint16_t)(FUZZ_FLAG | (to_mirror ? 0x4000u : 0) | (1 + n)));
	cb_u8(&b, inner);
	cb_bytes(&b, payload, n);
}

/* Records the mirror seals, as the channel under test should receive them. */
static void raw_records(kd3_crypto *c, uint8_t suite)
{
	uint8_t ts_a[KD3_KEY_LEN], ts_b[KD3_KEY_LEN], buf[KD3_FRAME_MAX];
	static const uint8_t close_normal[3] = {0, 0, 0};
	static const struct {
		uint8_t inner;
		const char *payload;
	} script[] = {
	    {KD3_R_DATA, "first"},
	    {KD3_R_DATA, "second"},
	    {KD3_R_KEY_UPDATE, NULL},
	    {KD3_R_DATA, "rekeyed"},
	    {KD3_R_FINISHED, "0123456789abcdef0123456789abcdef"},
	};
	kd3_channel mirror;
	kd3_writer w;

	memset(ts_a, FUZZ_TS_A, sizeof(ts_a));
	memset(ts_b, FUZZ_TS_B, sizeof(ts_b));
	if (kd3_channel_init(&mirror, c, suite, ts_b, ts_a) != KD3_OK)
		corpus_die("channel init");
	cb_reset(&b);
	cb_u8(&b, suite == KD3_SUITE_AES256GCM ? 1 : 0);
	for (size_t i = 0; i < sizeof(script) / sizeof(script[0]); i++) {
		const char *p = script[i].payload;
		kd3_wr_init(&w, buf, sizeof(buf));
		if (kd3_channel_seal(&mirror, script[i].inner, (const uint8_t *)p,
		                     p ? strlen(p) : 0, &w) != KD3_OK)
			corpus_die("channel seal");
		cb_item(&b, 0, buf, w.len);
	}
	kd3_wr_init(&w, buf, sizeof(buf));
	if (kd3_channel_seal(&mirror, KD3_R_CLOSE, close_normal, 3, &w) != KD3_OK)
		corpus_die("channel seal");
	cb_item(&b, 0, buf, w.len);
	cb_item(&b, 0, buf, w.len); /* replayed after the CLOSE */
	kd3_channel_free(&mirror);
	cb_emit(&b, "channel", suite == KD3_SUITE_AES256GCM ? "aes-raw" : "chacha-raw");
}

static void sealed_script(uint8_t suite)
{
	cb_reset(&b);
	cb_u8(&b, suite == KD3_SUITE_AES256GCM ? 1 : 0);
	sealed_item(0, KD3_R_DATA, "hello", 5);
	sealed_item(0, KD3_R_KEY_UPDATE, "", 0);
	sealed_item(0, KD3_R_DATA, "after the update", 16);
	sealed_item(1, KD3_R_DATA, "the other way", 13);
	sealed_item(1, KD3_R_KEY_UPDATE, "", 0);
	sealed_item(0, KD3_R_CLOSE, "\0\0\0", 3);
	sealed_item(0, KD3_R_DATA, "after close", 11);
	cb_emit(&b, "channel", suite == KD3_SUITE_AES256GCM ? "aes-sealed" : "chacha-sealed");

	cb_reset(&b);
	cb_u8(&b, suite == KD3_SUITE_AES256GCM ? 1 : 0);
	sealed_item(0, 0x05, "unknown inner type", 18);
	sealed_item(1, KD3_R_KEY_UPDATE, "payload", 7);
	sealed_item(1, KD3_R_DATA, "out of sync", 11);
	cb_emit(&b, "channel", suite == KD3_SUITE_AES256GCM ? "aes-bad-inner" : "chacha-bad-inner");
}

void corpus_channel(void)
{
	kd3_crypto c;
	if (kd3_crypto_init(&c, "corpus", 0) != KD3_OK)
		corpus_die("crypto init");
	raw_records(&c, KD3_SUITE_CHACHAPOLY);
	raw_records(&c, KD3_SUITE_AES256GCM);
	sealed_script(KD3_SUITE_CHACHAPOLY);
	sealed_script(KD3_SUITE_AES256GCM);
	kd3_crypto_free(&c);
}
