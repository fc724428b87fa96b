/* Prints the byte-exact test vectors of docs/PROTOCOL.md: one full exchange per
 * suite and mode from fixed inputs, then one record each way. The ctest
 * "protocol_vectors" checks that this output equals the blocks in the document. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "harness.h"
#include "msg.h"
#include "schedule.h"

static void hex_line(const char *name, const uint8_t *p, size_t n)
{
	printf("%-10s = ", name);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

static void hex_block(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%s%02x%s", i % 32 == 0 ? "    " : "", p[i],
		       (i % 32 == 31 || i + 1 == n) ? "\n" : "");
}

static int print_derived(h_world *w)
{
	kd3_subkeys si, sr;
	kd3_session_secrets s;
	uint8_t th[KD3_HASH_LEN], dh[KD3_DH_LEN], pub_i[KD3_DH_LEN], pub_r[KD3_DH_LEN];
	kd3_m2 m2;
	int ret;

	const h_frame *m2f = &w->frames[1];
	if ((ret = kd3_m2_decode(m2f->bytes + KD3_HDR_LEN, m2f->len - KD3_HDR_LEN, &m2)))
		return ret;
	uint8_t sk[KD3_KEY_LEN];
	kd3_iov prefix = {m2.body.p, m2.signed_len};
	if ((ret = kd3_transcript_hash(&prefix, 1, th)) ||
	    (ret = kd3_derive_sk(&w->crypto, w->in.realm_secret, th, sk)) ||
	    (ret = kd3_derive_subkeys(&w->crypto, w->in.k_i, &si)) ||
	    (ret = kd3_derive_subkeys(&w->crypto, w->in.k_r, &sr)))
		return ret;
	if (w->in.fs) {
		if ((ret = kd3_x25519_public(w->in.e_i, pub_i)) ||
		    (ret = kd3_x25519_public(w->in.e_r, pub_r)) ||
		    (ret = kd3_x25519_shared(w->in.e_i, pub_r, dh)))
			return ret;
	}
	if ((ret = kd3_derive_session(&w->crypto, th, sk, w->in.fs ? dh : NULL, &s)))
		return ret;
	hex_line("K_I.auth", si.auth, 32);
	hex_line("K_I.wrap", si.wrap, 32);
	hex_line("K_R.auth", sr.auth, 32);
	hex_line("K_R.wrap", sr.wrap, 32);
	if (w->in.fs) {
		hex_line("e_i", pub_i, 32);
		hex_line("e_r", pub_r, 32);
		hex_line("X25519", dh, 32);
	}
	hex_line("TH", th, 32);
	hex_line("SK", sk, 32);
	hex_line("confirm_r", s.confirm_r, 32);
	hex_line("confirm_i", s.confirm_i, 32);
	hex_line("ts_i2r", s.ts_i2r, 32);
	hex_line("ts_r2i", s.ts_r2i, 32);
	uint8_t key[KD3_KEY_LEN], iv[KD3_IV_LEN];
	if ((ret = kd3_traffic_key_iv(&w->crypto, s.ts_i2r, key, iv)))
		return ret;
	hex_line("key(i2r)", key, 32);
	hex_line("iv(i2r)", iv, 12);
	if ((ret = kd3_traffic_next(&w->crypto, s.ts_i2r)))
		return ret;
	hex_line("next(i2r)", s.ts_i2r, 32);
	return KD3_OK;
}

static int one_run(uint8_t suite, uint8_t fs)
{
	h_world *w = malloc(sizeof(*w));
	h_inputs in;
	kd3_peer_out out;
	int ret;

	if (!w)
		return KD3_E_NOMEM;
	h_inputs_default(&in, suite, fs);
	printf("### Suite 0x%02x (%s), forward secrecy %s\n\n```\n", suite, kd3_suite_name(suite),
	       fs ? "on" : "off");
	if ((ret = h_world_init(w, &in)) || (ret = h_handshake(w)) ||
	    (ret = h_send(w, 1, "hello bob", &out)) || (ret = h_send(w, 0, "hello alice", &out)))
		goto out;
	if ((ret = print_derived(w)))
		goto out;
	static const char *names[] = {"M1", "M2", "M3", "M4", "FINISHED", "DATA", "DATA"};
	for (size_t i = 0; i < w->nframes && i < 7; i++) {
		printf("%s %s (%zu bytes)\n", names[i], w->frames[i].dir, w->frames[i].len);
		hex_block(w->frames[i].bytes, w->frames[i].len);
	}
	printf("```\n\n");
out:
	h_world_free(w);
	free(w);
	return ret;
}

int main(void)
{
	h_inputs in;
	h_inputs_default(&in, KD3_SUITE_DEFAULT, 0);
	printf("Inputs (all runs):\n\n```\n");
	hex_line("K_I", in.k_i, 32);
	hex_line("K_R", in.k_r, 32);
	printf("%-10s = alice, kvno %u\n%-10s = bob, kvno %u\n", "id_i", in.kvno_i, "id_r",
	       in.kvno_r);
	hex_line("n_i", in.n_i, 32);
	hex_line("n_r", in.n_r, 32);
	hex_line("KDC secret", in.realm_secret, 32);
	hex_line("e_i (priv)", in.e_i, 32);
	hex_line("e_r (priv)", in.e_r, 32);
	printf("%-10s = %u\n", "lifetime", in.lifetime);
	printf("%-10s = \"hello bob\" (I->R), then \"hello alice\" (R->I)\n```\n\n", "DATA");
	const uint8_t suites[] = {KD3_SUITE_CHACHAPOLY, KD3_SUITE_AES256GCM};
	for (size_t s = 0; s < 2; s++)
		for (uint8_t fs = 0; fs < 2; fs++) {
			int ret = one_run(suites[s], fs);
			if (ret) {
				fprintf(stderr, "gen_vectors: %s\n", kd3_strerror(ret));
				return 1;
			}
		}
	return 0;
}
