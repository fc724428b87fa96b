/* libkd3's public API (include/kd3/kd3.h), driven as an application would and as an
 * attacker might: one session (responder or initiator, with the test vectors' keys and
 * a fixed RNG, so that the seeds replay the documented exchange) takes a script of
 * calls from the input: bytes from the peer, split anyhow; reads with buffers of any
 * size; writes; the KDC's answer; rekey, close and end of stream.
 * Invariants: every call returns a kd3_err the header names; the output never holds
 * more than three frames; a failed session stays failed with its error; a message read
 * fits the buffer it was read into.
 *
 * Input: byte 0 chooses the role (bit 0: initiator), bit 1 forward secrecy, bits 2-3
 * an observer (1: notes, 2 or 3: notes with the keys revealed); then ops,
 * each a byte (op % 8) and its operand: 0 receive(u8 n, n bytes), 1 read(u8 cap*128),
 * 2 output(u8 cap*256), 3 kdc_reply(u16 n, n bytes), 4 write(u8 n, n bytes * 64),
 * 5 rekey, 6 close, 7 eof. tests/fuzz/corpus/api/seed-* are the vectors as scripts. */
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

/* The observer reads every byte it is shown (so that a stale pointer shows under
 * ASan) and checks what each kind of note must carry. */
static void observe(void *ctx, const kd3_note *n)
{
	unsigned *sum = ctx;

	FUZZ_CHECK(n->kind >= KD3_NOTE_FRAME && n->kind <= KD3_NOTE_ERROR);
	if (n->kind == KD3_NOTE_FRAME) {
		FUZZ_CHECK(n->bytes != NULL && n->len <= 4 + 16409); /* an empty KDC answer: 0 */
		for (size_t i = 0; i < n->len; i++)
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

static kd3_session *make_session(int initiator, int fs, int watch, fixed_rng *rng)
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
	if (initiator)
		FUZZ_CHECK(kd3_session_start(s, 1000) == KD3_OK);
	return s;
}

static int one_op(kd3_session *s, fuzz_in *in, uint64_t now, uint8_t *buf, size_t cap)
{
	uint8_t op = 0, n8 = 0;
	uint16_t n16 = 0;
	size_t len = 0, got = 0;
	const uint8_t *p;
	int ret = KD3_OK;

	fuzz_u8(in, &op);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[32768];
	fuzz_in in;
	fixed_rng rng = {.off = 0};
	uint8_t mode = 0;

	fuzz_in_init(&in, data, size);
	fuzz_u8(&in, &mode);
	kd3_session *s = make_session(mode & 1, (mode >> 1) & 1, (mode >> 2) & 3, &rng);
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
		now += 7;
	}
	kd3_session_free(s);
	return 0;
}
