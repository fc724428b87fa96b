/* Seed corpora from real runs of the exchange: every frame type, every message body,
 * streams of whole runs, and what the KDC is sent and answers, in both suites and
 * both modes. */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "fuzz_world.h"
#include "make_corpus.h"
#include "msg.h"

static const char *const step_names[FW_STEPS + 1] = {
    [2] = "m1",
    [3] = "m2",
    [4] = "m3",
    [5] = "m4",
    [6] = "finished",
    [7] = "data-r2i",
    [8] = "data-i2r",
    [9] = "key-update-r2i",
    [10] = "key-update-i2r",
    [11] = "close-i2r",
    [12] = "close-r2i",
};

static fw_world world;

static void run_all(fw_world *f, uint8_t suite, uint8_t fs)
{
	if (fw_init(f, suite, fs) != KD3_OK || fw_run_to(f, FW_STEPS) != KD3_OK)
		corpus_die("the honest exchange failed");
}

const char *corpus_tag(uint8_t suite, uint8_t fs)
{
	static char tag[32];
	snprintf(tag, sizeof(tag), "%s-fs%u", suite == KD3_SUITE_AES256GCM ? "aes" : "chacha", fs);
	return tag;
}

const fw_frame *corpus_step_frame(const fw_world *f, int step)
{
	for (size_t i = 0; i < f->nlog; i++)
		if (f->log[i].step == step)
			return &f->log[i];
	corpus_die("no frame for a step");
}

static void frames_and_bodies(const fw_world *f, const char *tag, int all_frames)
{
	static const char *const body_targets[FW_STEPS + 1] = {
	    [2] = "m1", [3] = "m2", [4] = "m3", [5] = "m4"};
	char name[96];

	for (size_t i = 0; i < f->nlog; i++) {
		const fw_frame *fr = &f->log[i];
		snprintf(name, sizeof(name), "%s-%s", tag, step_names[fr->step]);
		if (all_frames)
			corpus_emit("frame", name, fr->bytes, fr->len);
		if (body_targets[fr->step])
			corpus_emit(body_targets[fr->step], tag, fr->bytes + KD3_HDR_LEN,
			            fr->len - KD3_HDR_LEN);
		if (all_frames && fr->bytes[1] == KD3_T_RECORD)
			corpus_emit("record", name, fr->bytes, fr->len);
	}
}

/* The whole run as one TCP-like stream, cut into chunks of the given sizes. */
static void stream_of_run(const fw_world *f, const char *tag, const uint8_t *chunks, size_t n)
{
	static corpus_buf b;
	cb_reset(&b);
	cb_u8(&b, (uint8_t)(n - 1));
	cb_bytes(&b, chunks, n);
	for (size_t i = 0; i < f->nlog; i++)
		cb_bytes(&b, f->log[i].bytes, f->log[i].len);
	cb_emit(&b, "stream", tag);
}

/* A 255-byte principal name (the longest), all one letter. */
const char *corpus_longest_name(char letter)
{
	static char names[2][KD3_NAME_MAX + 1];
	char *name = names[letter & 1];
	memset(name, letter, KD3_NAME_MAX);
	name[KD3_NAME_MAX] = '\0';
	return name;
}

/* An M1 frame with a zero nonce, ephemeral key and authenticator. */
size_t corpus_build_m1(uint8_t *out, size_t cap, uint8_t suite, uint8_t fs, const char *id_i,
                       const char *id_r, uint32_t kvno_i)
{
	static const uint8_t nonce[KD3_NONCE_LEN], dh[KD3_DH_LEN], mac[KD3_MAC_LEN];
	kd3_writer w;
	size_t start;

	kd3_wr_init(&w, out, cap);
	kd3_frame_begin(&w, KD3_T_M1, &start);
	kd3_m1_encode_signed(&w, suite, fs ? KD3_FLAG_FS : 0,
	                     (kd3_view){(const uint8_t *)id_i, strlen(id_i)},
	                     (kd3_view){(const uint8_t *)id_r, strlen(id_r)}, nonce, kvno_i, dh);
	kd3_wr_bytes(&w, mac, sizeof(mac));
	if (kd3_frame_end(&w, start) != KD3_OK)
		corpus_die("cannot build an M1");
	return w.len;
}

/* An M2 with zero authenticators (fuzz_kdc re-signs what parses). */
static size_t build_m2(uint8_t *out, size_t cap, uint8_t suite, uint8_t fs, const char *id_i,
                       const char *id_r, uint32_t kvno_i, uint32_t kvno_r)
{
	static const uint8_t nonce[KD3_NONCE_LEN], dh[KD3_DH_LEN], mac[KD3_MAC_LEN];
	uint8_t m1[KD3_HDR_LEN + KD3_M1_BODY_MAX];
	kd3_writer w;
	size_t start;

	size_t m1_len = corpus_build_m1(m1, sizeof(m1), suite, fs, id_i, id_r, kvno_i);
	kd3_wr_init(&w, out, cap);
	kd3_frame_begin(&w, KD3_T_M2, &start);
	kd3_m2_encode_signed(&w, (kd3_view){m1 + KD3_HDR_LEN, m1_len - KD3_HDR_LEN}, nonce, kvno_r,
	                     fs ? dh : NULL);
	kd3_wr_bytes(&w, mac, sizeof(mac));
	if (kd3_frame_end(&w, start) != KD3_OK)
		corpus_die("cannot build an M2");
	return w.len;
}

/* What the KDC answers to a datagram, as an ERROR body for the error corpus. */
static void kdc_error_body(fw_world *f, const uint8_t *in, size_t len, const char *name)
{
	uint8_t reply[KD3_HDR_LEN + KD3_ERROR_BODY_MAX];
	size_t n = 0;
	kd3_kdc_result res;
	if (kd3_kdc_handle(&f->w.kdc, in, len, 0, reply, sizeof(reply), &n, &res) == KD3_OK ||
	    n < KD3_HDR_LEN || reply[1] != KD3_T_ERROR)
		corpus_die("expected an ERROR from the KDC");
	corpus_emit("error", name, reply + KD3_HDR_LEN, n - KD3_HDR_LEN);
}

static void kdc_corpus(fw_world *f, const char *tag, int variants)
{
	uint8_t m[KD3_FRAME_MAX];
	const fw_frame *m2 = corpus_step_frame(f, 3);
	corpus_emit("kdc", tag, m2->bytes, m2->len);
	if (!variants)
		return;

	memcpy(m, m2->bytes, m2->len);
	m[m2->len - 1] ^= 1; /* auth_r no longer verifies */
	corpus_emit("kdc", "m2-bad-auth-r", m, m2->len);
	kdc_error_body(f, m, m2->len, "kdc-bad-auth");
	m[0] = 2;
	corpus_emit("kdc", "m2-version-2", m, m2->len);
	corpus_emit("kdc", "m2-truncated", m2->bytes, m2->len - 1);
	const fw_frame *m1 = corpus_step_frame(f, 2);
	corpus_emit("kdc", "m1-not-m2", m1->bytes, m1->len);

	static const struct {
		const char *name, *id_i, *id_r;
		uint32_t kvno_i, kvno_r;
		uint8_t suite, fs;
	} built[] = {
	    {"built-bob-to-alice", "bob", "alice", 2, 1, KD3_SUITE_AES256GCM, 1},
	    {"built-same-principal", "alice", "alice", 1, 1, KD3_SUITE_CHACHAPOLY, 0},
	    {"built-unknown-responder", "alice", "carol", 1, 2, KD3_SUITE_CHACHAPOLY, 0},
	    {"built-old-kvno", "alice", "bob", 1, 9, KD3_SUITE_CHACHAPOLY, 1},
	};
	size_t n = build_m2(m, sizeof(m), KD3_SUITE_CHACHAPOLY, 1, corpus_longest_name('i'),
	                    corpus_longest_name('r'), 1, 2);
	corpus_emit("kdc", "built-longest", m, n);
	for (size_t i = 0; i < sizeof(built) / sizeof(built[0]); i++) {
		n = build_m2(m, sizeof(m), built[i].suite, built[i].fs, built[i].id_i,
		             built[i].id_r, built[i].kvno_i, built[i].kvno_r);
		corpus_emit("kdc", built[i].name, m, n);
		if (strcmp(built[i].id_r, "carol") == 0)
			kdc_error_body(f, m, n, "kdc-unknown-principal");
	}
}

void corpus_from_runs(void)
{
	static const uint8_t suites[2] = {KD3_SUITE_CHACHAPOLY, KD3_SUITE_AES256GCM};
	static const uint8_t chunks_a[] = {1, 0}, chunks_b[] = {5, 13, 200, 3};

	for (size_t s = 0; s < 2; s++) {
		for (uint8_t fs = 0; fs <= 1; fs++) {
			const char *tag = corpus_tag(suites[s], fs);
			int first = s == 0 && fs == 0, last = s == 1 && fs == 1;
			run_all(&world, suites[s], fs);
			frames_and_bodies(&world, tag, first || last);
			if (first)
				stream_of_run(&world, tag, chunks_a, sizeof(chunks_a));
			if (last)
				stream_of_run(&world, tag, chunks_b, sizeof(chunks_b));
			kdc_corpus(&world, tag, first);
			corpus_peers(&world, suites[s], fs, first);
			fw_free(&world);
		}
	}
	corpus_channel();
}
