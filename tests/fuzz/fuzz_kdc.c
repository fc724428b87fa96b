/* The KDC request handler with the harness's principals (alice kvno 1, bob kvno 2).
 * Input: one whole datagram.
 *
 * Each input is handled twice: as it is, and "re-signed" (when it parses as an M2,
 * auth_i and auth_r are recomputed with the named principals' keys), so the fuzzer
 * reaches the checks behind the authenticators too. Invariants: no reply means no
 * bytes; KD3_OK means an M3 for this request whose blobs open to one SK for both
 * principals; a failure means an ERROR with the returned wire code; a correctly
 * authenticated request for two known, distinct principals and live kvnos is
 * accepted; only an M2 is ever answered, never with more bytes than it had; and the
 * same M2 again within the window is answered from the cache, byte for byte. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz_util.h"
#include "harness.h"
#include "msg.h"

#define REPLY_CAP (KD3_HDR_LEN + KD3_ERROR_BODY_MAX)

static h_world w;
static int world_ready;

static const kd3_principal *lookup(void *ctx, const uint8_t *name, size_t len)
{
	h_world *hw = ctx;
	for (size_t i = 0; i < 2; i++)
		if (hw->principals[i].name_len == len &&
		    memcmp(hw->principals[i].name, name, len) == 0)
			return &hw->principals[i];
	return NULL;
}

static const kd3_kvno_key *live_key(const kd3_principal *p, uint32_t kvno)
{
	for (size_t i = 0; p && i < p->nkeys; i++)
		if (p->keys[i].kvno == kvno)
			return &p->keys[i];
	return NULL;
}

static void kdc_reset(void)
{
	static kd3_kdc_config cfg;
	if (!world_ready) {
		h_inputs in;
		h_inputs_default(&in, KD3_SUITE_CHACHAPOLY, 0);
		FUZZ_CHECK(h_world_init(&w, &in) == KD3_OK);
		cfg = w.kdc.cfg; /* the harness's: both suites, its realm secret */
		world_ready = 1;
	}
	kd3_kdc_free(&w.kdc);
	kd3_kdc_init(&w.kdc, &w.crypto, lookup, &w, &cfg);
}

/* Both blobs of an M3 open, for their principals, to the same SK. */
static void check_blobs(const kd3_m2 *req, const kd3_m3 *m3)
{
	const kd3_kvno_key *ki =
	    live_key(lookup(&w, req->m1.id_i.p, req->m1.id_i.len), req->m1.kvno_i);
	const kd3_kvno_key *kr =
	    live_key(lookup(&w, req->m1.id_r.p, req->m1.id_r.len), req->kvno_r);
	uint8_t th[KD3_HASH_LEN], sk_i[KD3_KEY_LEN], sk_r[KD3_KEY_LEN];
	kd3_iov prefix = {req->body.p, req->signed_len};

	FUZZ_CHECK(ki && kr);
	FUZZ_CHECK(kd3_transcript_hash(&prefix, 1, th) == KD3_OK);
	FUZZ_CHECK(kd3_blob_open(&w.crypto, req->m1.suite, ki->sub.wrap, KD3_ROLE_INITIATOR, th,
	                         m3->lifetime, m3->blob_i, sk_i) == KD3_OK);
	FUZZ_CHECK(kd3_blob_open(&w.crypto, req->m1.suite, kr->sub.wrap, KD3_ROLE_RESPONDER, th,
	                         m3->lifetime, m3->blob_r, sk_r) == KD3_OK);
	FUZZ_CHECK(memcmp(sk_i, sk_r, KD3_KEY_LEN) == 0);
}

/* One call, with the invariants every answer keeps. Returns the handler's result. */
static int handle(const uint8_t *in, size_t len, uint8_t *reply, size_t *reply_len,
                  kd3_kdc_result *res)
{
	kd3_frame f;
	kd3_m2 req;
	kd3_m3 m3;
	kd3_error_msg e;

	int ret = kd3_kdc_handle(&w.kdc, in, len, 0, reply, REPLY_CAP, reply_len, res);
	FUZZ_CHECK(*reply_len <= REPLY_CAP);
	if (!res->reply) {
		FUZZ_CHECK(*reply_len == 0 && ret != KD3_OK);
		return ret;
	}
	/* Only an M2 is answered, never with more bytes than it had. */
	FUZZ_CHECK(len >= KD3_M2_FRAME_MIN && in[1] == KD3_T_M2 && *reply_len <= len);
	FUZZ_CHECK(kd3_frame_decode(reply, *reply_len, &f) == KD3_OK);
	if (ret != KD3_OK) {
		FUZZ_CHECK(f.type == KD3_T_ERROR && res->err == ret && kd3_err_is_wire(ret));
		FUZZ_CHECK(kd3_error_decode(f.body.p, f.body.len, &e) == KD3_OK && e.code == ret);
		return ret;
	}
	FUZZ_CHECK(res->err == KD3_OK && f.type == KD3_T_M3);
	FUZZ_CHECK(kd3_m3_decode(f.body.p, f.body.len, &m3) == KD3_OK);
	FUZZ_CHECK(kd3_m2_decode(in + KD3_HDR_LEN, len - KD3_HDR_LEN, &req) == KD3_OK);
	FUZZ_CHECK(memcmp(m3.n_r, req.n_r, KD3_NONCE_LEN) == 0);
	check_blobs(&req, &m3);
	return ret;
}

/* Recomputes auth_i and auth_r in place; 1 when the request should then be accepted. */
static int resign(uint8_t *frame, size_t len)
{
	kd3_frame f;
	kd3_m2 m;

	if (kd3_frame_decode(frame, len, &f) != KD3_OK || f.type != KD3_T_M2 ||
	    kd3_m2_decode(f.body.p, f.body.len, &m) != KD3_OK)
		return 0;
	const kd3_principal *pi = lookup(&w, m.m1.id_i.p, m.m1.id_i.len);
	const kd3_principal *pr = lookup(&w, m.m1.id_r.p, m.m1.id_r.len);
	const kd3_kvno_key *ki = live_key(pi, m.m1.kvno_i), *kr = live_key(pr, m.kvno_r);
	const uint8_t *key_i = ki ? ki->sub.auth : w.principals[0].keys[0].sub.auth;
	const uint8_t *key_r = kr ? kr->sub.auth : w.principals[1].keys[0].sub.auth;

	/* The MAC fields are inside frame: write through offsets, not the const views. */
	FUZZ_CHECK(kd3_authenticator(&w.crypto, key_i, KD3_LABEL_M1, m.m1.body.p, m.m1.signed_len,
	                             frame + (m.m1.auth_i - frame)) == KD3_OK);
	FUZZ_CHECK(kd3_authenticator(&w.crypto, key_r, KD3_LABEL_M2, m.body.p, m.signed_len,
	                             frame + (m.auth_r - frame)) == KD3_OK);
	return ki && kr && pi != pr;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t reply[REPLY_CAP], again[REPLY_CAP];
	size_t reply_len, again_len;
	kd3_kdc_result res;

	kdc_reset();
	uint8_t *in = fuzz_dup(data, size);
	handle(in, size, reply, &reply_len, &res);

	int should_accept = resign(in, size);
	kdc_reset();
	int ret = handle(in, size, reply, &reply_len, &res);
	if (should_accept)
		FUZZ_CHECK(ret == KD3_OK && !res.from_cache);
	if (ret == KD3_OK) {
		FUZZ_CHECK(handle(in, size, again, &again_len, &res) == KD3_OK);
		FUZZ_CHECK(res.from_cache && again_len == reply_len);
		FUZZ_CHECK(memcmp(again, reply, reply_len) == 0);
	}
	free(in);
	return 0;
}
