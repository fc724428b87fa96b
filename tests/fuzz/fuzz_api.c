/* libkd3's public API (include/kd3/kd3.h), driven as an application would and as an
 * attacker might: one session (responder or initiator, with the test vectors' keys and
 * a fixed RNG, so that the seeds replay the documented exchange) takes a script of
 * calls from the input: bytes from the peer, split anyhow; reads with buffers of any
 * size; writes; the KDC's answer (checked first, as a responder does); rekey, close
 * (with a reason) and end of stream; settings after the start.
 * Invariants: every call returns a kd3_err the header names; the output never holds
 * more than three frames; a failed session stays failed with its error; a message read
 * fits the buffer it was read into; a KDC answer kd3_session_kdc_check calls neither
 * M3 nor ERROR is refused the same way by kd3_session_kdc_reply and changes nothing;
 * the claimed peer, once there, stays, and is the peer once established; frame notes
 * lack bytes only for frames received with kd3_session_set_observe_bytes off.
 *
 * Input: byte 0 chooses the role (bit 0: initiator), bit 1 forward secrecy, bits 2-3
 * an observer (1: notes, 2 or 3: notes with the keys revealed), bit 7 a second byte:
 * its bit 0 observe_bytes off, bits 1-2 the suites a responder takes (1 ChaCha20, 2
 * AES, 3 none: refused); then ops, each a byte and its operand. op < 0xf8, by op % 8:
 * 0 receive(u8 n, n bytes), 1 read(u8 cap*128), 2 output(u8 cap*256), 3 kdc_reply(u16
 * n, n bytes), 4 write(u8 n, n bytes * 64), 5 rekey, 6 close, 7 eof. op >= 0xf8, by
 * op % 8: 0 kdc_check then kdc_reply(u16 n, n bytes), 1 close_reason(u16 code, u8 n,
 * n bytes of text), 2 set_suites(u8), 3 set_observe_bytes(u8), else nothing (the
 * invariants only). tests/fuzz/corpus/api/seed-* are the vectors as scripts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kd3/kd3.h>

#include "fuzz_util.h"

static const uint8_t k_i[32] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
                                0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
                                0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

/* The vectors' inputs are runs of consecutive bytes: K_R from 0x20, n_i from 0xa0, n_r
 * from 0xb0, e_i from 0x40, e_r from 0x60. */
static void run_of(uint8_t *out, uint8_t first)
{
	for (int i = 0; i < 32; i++)
		out[i] = (uint8_t)(first + i);
}

typedef struct fixed_rng {
	uint8_t bytes[64];
	size_t off;
} fixed_rng;

static int rng_fn(void *ctx, uint8_t *out, size_t len)
{
	fixed_rng *r = ctx;
	for (size_t i = 0; i < len; i++, r->off++)
		out[i] = r->off < sizeof(r->bytes) ? r->bytes[r->off] : (uint8_t)r->off;
	return KD3_OK;
}

static int known(int ret)
{
	return ret == KD3_OK || (ret >= 1 && ret <= 9) || (ret >= 64 && ret <= 77) ||
	       (ret >= 96 && ret <= 111);
}

static int bytes_observed = 1; /* kd3_session_set_observe_bytes */

/* The observer reads every byte it is shown (so that a stale pointer shows under
 * ASan) and checks what each kind of note must carry. */
static void observe(void *ctx, const kd3_note *n)
{
	unsigned *sum = ctx;

	FUZZ_CHECK(n->kind >= KD3_NOTE_FRAME && n->kind <= KD3_NOTE_ERROR);
	if (n->kind == KD3_NOTE_FRAME) {
		FUZZ_CHECK(n->len <= 4 + 16409); /* an empty KDC answer: 0 */
		FUZZ_CHECK(n->bytes != NULL || (!n->sent && !bytes_observed));
		for (size_t i = 0; n->bytes && i < n->len; i++)
			*sum += n->bytes[i];
	}
	if (n->kind == KD3_NOTE_CLOSE || n->kind == KD3_NOTE_ERROR)
		FUZZ_CHECK(n->text != NULL && strlen(n->text) < 256);
	if (n->kind == KD3_NOTE_ESTABLISHED) {
		FUZZ_CHECK(n->peer != NULL && n->th != NULL);
		*sum += n->th[0] + (n->sk ? n->sk[31] : 0) + (n->tx_key ? n->tx_key[31] : 0);
	}
}

static unsigned observed;

/* The second mode byte's settings: what set_suites must answer for each choice. */
static void extra_settings(kd3_session *s, int initiator, int watch, uint8_t extra)
{
	static const unsigned masks[4] = {0, KD3_SUITE_BIT(KD3_CHACHA20_POLY1305),
	                                  KD3_SUITE_BIT(KD3_AES_256_GCM), 0};
	unsigned choice = (extra >> 1) & 3;

	bytes_observed = !(extra & 1);
	FUZZ_CHECK(kd3_session_set_observe_bytes(s, bytes_observed) == KD3_OK);
	if (!watch)
		bytes_observed = 1; /* no notes at all */
	if (choice == 0)
		return;
	int ret = kd3_session_set_suites(s, masks[choice]);
	FUZZ_CHECK(ret == (initiator ? KD3_E_STATE : choice == 3 ? KD3_E_ARG : KD3_OK));
}

static kd3_session *make_session(int initiator, int fs, int watch, uint8_t extra, fixed_rng *rng)
{
	uint8_t secret[32];
	kd3_key *key = NULL;
	kd3_session *s = NULL;

	if (initiator) {
		FUZZ_CHECK(kd3_key_new(&key, "alice", 1, k_i) == KD3_OK);
		FUZZ_CHECK(kd3_session_new_initiator(&s, key, "bob") == KD3_OK);
		run_of(rng->bytes, 0xa0);
		run_of(rng->bytes + 32, 0x40);
	} else {
		run_of(secret, 0x20);
		FUZZ_CHECK(kd3_key_new(&key, "bob", 2, secret) == KD3_OK);
		FUZZ_CHECK(kd3_session_new_responder(&s, key) == KD3_OK);
		run_of(rng->bytes, 0xb0);
		run_of(rng->bytes + 32, 0x60);
	}
	kd3_key_free(key);
	FUZZ_CHECK(kd3_session_set_rng(s, rng_fn, rng) == KD3_OK);
	FUZZ_CHECK(kd3_session_set_forward_secret(s, fs) == KD3_OK);
	if (watch) {
		FUZZ_CHECK(kd3_session_set_observer(s, observe, &observed) == KD3_OK);
		FUZZ_CHECK(kd3_session_set_reveal_keys(s, watch > 1) == KD3_OK);
	}
	extra_settings(s, initiator, watch, extra);
	if (initiator)
		FUZZ_CHECK(kd3_session_start(s, 1000) == KD3_OK);
	return s;
}

/* A KDC answer as a responder takes one: asked about first. What the check calls
 * neither M3 nor ERROR must be refused alike by the reply, leaving the session as it
 * was. */
static int checked_kdc_reply(kd3_session *s, fuzz_in *in, uint64_t now)
{
	uint16_t n16 = 0;
	size_t got = 0;
	unsigned code = 1;

	fuzz_u16(in, &n16);
	const uint8_t *p = fuzz_take(in, n16, &got);
	int seen = kd3_session_kdc_check(s, p, got, &code);
	FUZZ_CHECK(seen == KD3_E_PEER_ERROR || code == 0);
	kd3_state before = kd3_session_state(s);
	size_t pending = kd3_session_output_pending(s);
	int ret = kd3_session_kdc_reply(s, p, got, now);
	if (seen != KD3_OK && seen != KD3_E_PEER_ERROR) {
		FUZZ_CHECK(ret == seen);
		FUZZ_CHECK(kd3_session_state(s) == before);
		FUZZ_CHECK(kd3_session_output_pending(s) == pending);
	}
	return ret;
}

static int close_with_reason(kd3_session *s, fuzz_in *in)
{
	char text[300];
	uint16_t code = 0;
	uint8_t n8 = 0;
	size_t got = 0;

	fuzz_u16(in, &code);
	fuzz_u8(in, &n8);
	const uint8_t *p = fuzz_take(in, n8, &got);
	if (got)
		memcpy(text, p, got);
	text[got] = '\0';
	/* Codes past a u8 test the range check; n8 == 1 tests a NULL text. */
	return kd3_session_close_reason(s, code & 0x1ff, n8 == 1 ? NULL : text);
}

/* The calls added for programs such as our responder (op >= 0xf8). */
static int one_late_op(kd3_session *s, fuzz_in *in, uint8_t op, uint64_t now)
{
	uint8_t n8 = 0;
	int ret;

	switch (op % 8) {
	case 0:
		return checked_kdc_reply(s, in, now);
	case 1:
		return close_with_reason(s, in);
	case 2:
		fuzz_u8(in, &n8);
		return kd3_session_set_suites(s, n8);
	case 3:
		fuzz_u8(in, &n8);
		ret = kd3_session_set_observe_bytes(s, n8 & 1);
		if (ret == KD3_OK) /* before any byte: it took */
			bytes_observed = n8 & 1;
		return ret;
	default:
		return KD3_OK;
	}
}

static int one_op(kd3_session *s, fuzz_in *in, uint64_t now, uint8_t *buf, size_t cap)
{
	uint8_t op = 0, n8 = 0;
	uint16_t n16 = 0;
	size_t len = 0, got = 0;
	const uint8_t *p;
	int ret = KD3_OK;

	fuzz_u8(in, &op);
	if (op >= 0xf8)
		return one_late_op(s, in, op, now);
	switch (op % 8) {
	case 0:
		fuzz_u8(in, &n8);
		p = fuzz_take(in, n8, &got);
		ret = kd3_session_receive(s, p, got, &len, now);
		FUZZ_CHECK(len <= got);
		break;
	case 1:
		fuzz_u8(in, &n8);
		ret =
		    kd3_session_read(s, buf, (size_t)n8 * 128 > cap ? cap : (size_t)n8 * 128, &len);
		FUZZ_CHECK(ret != KD3_OK || len <= (size_t)n8 * 128);
		break;
	case 2:
		fuzz_u8(in, &n8);
		ret = kd3_session_output(s, buf, (size_t)n8 * 256 > cap ? cap : (size_t)n8 * 256,
		                         &len);
		break;
	case 3:
		fuzz_u16(in, &n16);
		p = fuzz_take(in, n16, &got);
		ret = kd3_session_kdc_reply(s, p, got, now);
		break;
	case 4:
		fuzz_u8(in, &n8);
		memset(buf, 'm', (size_t)n8 * 64);
		ret = kd3_session_write(s, buf, (size_t)n8 * 64, now);
		break;
	case 5:
		ret = kd3_session_rekey(s, now);
		break;
	case 6:
		ret = kd3_session_close(s);
		break;
	default:
		ret = kd3_session_eof(s);
		break;
	}
	return ret;
}

/* A responder's claimed peer: once there it stays, and it is the peer FINISHED
 * proved. An initiator has none. */
static void check_claim(const kd3_session *s, int initiator, const char **was)
{
	const char *claim = kd3_session_peer_claim(s);
	const char *peer = kd3_session_peer(s);

	if (initiator) {
		FUZZ_CHECK(claim == NULL);
		return;
	}
	FUZZ_CHECK(claim != NULL || *was == NULL);
	FUZZ_CHECK(claim == NULL || strlen(claim) <= 255);
	if (peer)
		FUZZ_CHECK(claim != NULL && strcmp(claim, peer) == 0);
	*was = claim;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[32768];
	fuzz_in in;
	fixed_rng rng = {.off = 0};
	uint8_t mode = 0, extra = 0;
	const char *claim = NULL;

	fuzz_in_init(&in, data, size);
	fuzz_u8(&in, &mode);
	if (mode & 0x80)
		fuzz_u8(&in, &extra);
	kd3_session *s = make_session(mode & 1, (mode >> 1) & 1, (mode >> 2) & 3, extra, &rng);
	uint64_t now = 1000;
	while (fuzz_left(&in) > 0) {
		int ret = one_op(s, &in, now, buf, sizeof(buf));
		if (fuzz_verbose())
			fprintf(stderr, "-> %d (%s), state %d\n", ret, kd3_strerror(ret),
			        (int)kd3_session_state(s));
		FUZZ_CHECK(known(ret));
		/* KD3_LIB_TX_CAP: a full record and two small frames. */
		FUZZ_CHECK(kd3_session_output_pending(s) <= (4 + 16409) + 2 * 1024);
		if (kd3_session_state(s) == KD3_STATE_FAILED) {
			FUZZ_CHECK(kd3_session_error(s) != KD3_OK);
			FUZZ_CHECK(kd3_session_error_text(s)[0] != '\0');
		}
		check_claim(s, mode & 1, &claim);
		now += 7;
	}
	kd3_session_free(s);
	return 0;
}
