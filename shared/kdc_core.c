#include "kdc_core.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "msg.h"

void kd3_kdc_init(kd3_kdc *k, kd3_crypto *crypto, kd3_lookup_fn lookup, void *lookup_ctx,
                  const kd3_kdc_config *cfg)
{
	memset(k, 0, sizeof(*k));
	k->crypto = crypto;
	k->lookup = lookup;
	k->lookup_ctx = lookup_ctx;
	k->cfg = *cfg;
	/* Keyed once: every SK derived after this skips the realm secret's pad blocks. */
	k->realm_key_ok =
	    kd3_hmac_key_init(&k->realm_key, cfg->realm_secret, KD3_KEY_LEN) == KD3_OK;
}

void kd3_kdc_free(kd3_kdc *k)
{
	kd3_wipe(k, sizeof(*k));
}

/* A request, as far as it has been understood, and the checks still to come. */
struct request {
	kd3_m2 m2;
	const kd3_principal *pi, *pr;
	const kd3_kvno_key *ki, *kr;
	uint8_t th[KD3_HASH_LEN];
	uint32_t lifetime;
};

static const kd3_kvno_key *find_kvno(const kd3_principal *p, uint32_t kvno)
{
	for (size_t i = 0; i < p->nkeys; i++)
		if (p->keys[i].kvno == kvno)
			return &p->keys[i];
	return NULL;
}

static int fail(kd3_kdc_result *res, int err, const char *detail)
{
	res->err = err;
	res->detail = detail;
	return err;
}

/* Version, suite, flags and names: what the request asks for. */
static int check_request_shape(kd3_kdc *k, struct request *q, kd3_kdc_result *res)
{
	const kd3_m1 *m1 = &q->m2.m1;

	if (!(k->cfg.suites_allowed & (1u << m1->suite)))
		return fail(res, KD3_E_UNSUPPORTED, "suite not allowed by the KDC");
	if (k->cfg.require_fs && !(m1->flags & KD3_FLAG_FS))
		return fail(res, KD3_E_POLICY_DENIED, "forward-secret mode is required");
	if (m1->id_i.len == m1->id_r.len && memcmp(m1->id_i.p, m1->id_r.p, m1->id_i.len) == 0)
		return fail(res, KD3_E_MALFORMED, "initiator and responder are the same principal");
	return KD3_OK;
}

/* Both principals known and enabled, both kvnos live. */
static int check_principals(kd3_kdc *k, struct request *q, kd3_kdc_result *res)
{
	const kd3_m1 *m1 = &q->m2.m1;

	q->pi = k->lookup(k->lookup_ctx, m1->id_i.p, m1->id_i.len);
	if (!q->pi)
		return fail(res, KD3_E_UNKNOWN_PRINCIPAL, "unknown initiator principal");
	q->pr = k->lookup(k->lookup_ctx, m1->id_r.p, m1->id_r.len);
	if (!q->pr)
		return fail(res, KD3_E_UNKNOWN_PRINCIPAL, "unknown responder principal");
	if (!q->pi->enabled || !q->pr->enabled)
		return fail(res, KD3_E_POLICY_DENIED, "principal is disabled");
	q->ki = find_kvno(q->pi, m1->kvno_i);
	if (!q->ki)
		return fail(res, KD3_E_KVNO_UNKNOWN, "initiator key version is not live");
	q->kr = find_kvno(q->pr, q->m2.kvno_r);
	if (!q->kr)
		return fail(res, KD3_E_KVNO_UNKNOWN, "responder key version is not live");
	return KD3_OK;
}

/* auth_i over M1, auth_r over M2, both in constant time. */
static int check_authenticators(struct request *q, kd3_kdc_result *res)
{
	const kd3_m1 *m1 = &q->m2.m1;
	int ret;

	ret = kd3_authenticator_check_with(&q->ki->sub.auth_key, KD3_LABEL_M1, m1->body.p,
	                                   m1->signed_len, m1->auth_i);
	if (ret != KD3_OK)
		return fail(res, ret, "initiator authenticator did not verify");
	ret = kd3_authenticator_check_with(&q->kr->sub.auth_key, KD3_LABEL_M2, q->m2.body.p,
	                                   q->m2.signed_len, q->m2.auth_r);
	if (ret != KD3_OK)
		return fail(res, ret, "responder authenticator did not verify");
	return KD3_OK;
}

static kd3_kdc_cache_slot *cache_slot(kd3_kdc *k, const uint8_t th[KD3_HASH_LEN])
{
	return &k->cache[th[0] % KD3_KDC_CACHE_SLOTS];
}

/* An identical M2 (same TH, same auth_r: the same bytes) seen within the window gets
 * the M3 it got before without redoing the work. (Safety does not rest on it: SK is
 * a function of TH, so a retransmit that misses the cache gets the same M3 too.) */
static const kd3_kdc_cache_slot *cache_find(kd3_kdc *k, const struct request *q, uint64_t now_ms)
{
	const kd3_kdc_cache_slot *s = cache_slot(k, q->th);
	if (k->cfg.cache_window_ms == 0) /* the cache is off */
		return NULL;
	if (!s->used || now_ms - s->stored_ms > k->cfg.cache_window_ms)
		return NULL;
	if (!kd3_ct_equal(s->th, q->th, KD3_HASH_LEN) ||
	    !kd3_ct_equal(s->auth_r, q->m2.auth_r, KD3_MAC_LEN))
		return NULL;
	return s;
}

static void cache_store(kd3_kdc *k, const struct request *q, uint64_t now_ms, const uint8_t *m3,
                        size_t m3_len)
{
	kd3_kdc_cache_slot *s = cache_slot(k, q->th);
	memcpy(s->th, q->th, KD3_HASH_LEN);
	memcpy(s->auth_r, q->m2.auth_r, KD3_MAC_LEN);
	memcpy(s->reply, m3, m3_len);
	s->reply_len = (uint16_t)m3_len;
	s->stored_ms = now_ms;
	s->used = 1;
}

/* Derive SK, seal it to both principals, write M3. */
static int issue_m3(kd3_kdc *k, struct request *q, kd3_writer *w)
{
	const uint8_t suite = q->m2.m1.suite;
	uint8_t sk[KD3_KEY_LEN], blob_r[KD3_BLOB_LEN], blob_i[KD3_BLOB_LEN];
	int ret;

	ret = k->realm_key_ok ? kd3_derive_sk_with(&k->realm_key, q->th, sk) : KD3_E_CRYPTO;
	if (ret != KD3_OK)
		goto out;
	ret = kd3_blob_seal_with(k->crypto, suite, &q->kr->sub.wrap_key, KD3_ROLE_RESPONDER, q->th,
	                         q->lifetime, sk, blob_r);
	if (ret != KD3_OK)
		goto out;
	ret = kd3_blob_seal_with(k->crypto, suite, &q->ki->sub.wrap_key, KD3_ROLE_INITIATOR, q->th,
	                         q->lifetime, sk, blob_i);
	if (ret != KD3_OK)
		goto out;
	kd3_m3 m3 = {.n_r = q->m2.n_r, .lifetime = q->lifetime, .blob_r = blob_r, .blob_i = blob_i};
	ret = kd3_m3_encode(w, &m3);
out:
	kd3_wipe(sk, sizeof(sk));
	return ret;
}

static void note_request(const struct request *q, kd3_kdc_result *res)
{
	const kd3_m1 *m1 = &q->m2.m1;
	res->id_i = m1->id_i.p;
	res->id_i_len = m1->id_i.len;
	res->id_r = m1->id_r.p;
	res->id_r_len = m1->id_r.len;
	res->kvno_i = m1->kvno_i;
	res->kvno_r = q->m2.kvno_r;
	res->suite = m1->suite;
	res->flags = m1->flags;
}

/* The request path, in the order of docs/PROTOCOL.md, "KDC processing". */
static int process(kd3_kdc *k, const kd3_frame *f, uint64_t now_ms, kd3_writer *w,
                   kd3_kdc_result *res)
{
	struct request q;
	int ret;

	memset(&q, 0, sizeof(q));
	if ((ret = kd3_m2_decode(f->body.p, f->body.len, &q.m2)) != KD3_OK)
		return fail(res, ret,
		            ret == KD3_E_UNSUPPORTED ? "unsupported suite or flags"
		                                     : "M2 does not parse");
	note_request(&q, res);
	kd3_iov prefix = {q.m2.body.p, q.m2.signed_len};
	if ((ret = kd3_transcript_hash(&prefix, 1, q.th)) != KD3_OK)
		return fail(res, KD3_E_INTERNAL, "hash failed");
	memcpy(res->th, q.th, KD3_HASH_LEN); /* public: for a transcript */
	res->have_th = 1;
	const kd3_kdc_cache_slot *hit = cache_find(k, &q, now_ms);
	if (hit) {
		res->from_cache = 1;
		return kd3_wr_bytes(w, hit->reply, hit->reply_len);
	}
	if ((ret = check_request_shape(k, &q, res)) != KD3_OK ||
	    (ret = check_principals(k, &q, res)) != KD3_OK ||
	    (ret = check_authenticators(&q, res)) != KD3_OK)
		return ret;
	q.lifetime = k->cfg.lifetime;
	if (k->policy && (ret = k->policy(k->policy_ctx, q.pi, q.pr, &q.lifetime)) != KD3_OK)
		return fail(res, KD3_E_POLICY_DENIED, "denied by policy");
	size_t start = w->len;
	if ((ret = issue_m3(k, &q, w)) != KD3_OK)
		return fail(res, KD3_E_INTERNAL, "could not issue a key");
	cache_store(k, &q, now_ms, w->p + start, w->len - start);
	return KD3_OK;
}

/* Only an M2 is ever answered (any version, so a future client learns UNSUPPORTED),
 * and only when it is at least as long as the shortest M2 and its length field
 * matches: answering anything else would make the KDC a reflector, or let two KDCs
 * answer each other's ERRORs forever. */
static int worth_an_answer(const uint8_t *in, size_t in_len)
{
	return in_len >= KD3_M2_FRAME_MIN && in[1] == KD3_T_M2 &&
	       kd3_get_u16(in + 2) == in_len - KD3_HDR_LEN;
}

/* An ERROR never longer than the request it answers. */
static int write_error(kd3_writer *w, int code, const char *detail, size_t in_len)
{
	char text[256];
	size_t room = in_len - (KD3_HDR_LEN + 2 + 1);
	snprintf(text, sizeof(text) < room + 1 ? sizeof(text) : room + 1, "%s", detail);
	return kd3_error_encode(w, (uint16_t)code, text);
}

int kd3_kdc_handle(kd3_kdc *k, const uint8_t *in, size_t in_len, uint64_t now_ms, uint8_t *out,
                   size_t out_cap, size_t *out_len, kd3_kdc_result *res)
{
	kd3_writer w;
	kd3_frame f;
	int ret;

	memset(res, 0, sizeof(*res));
	*out_len = 0;
	if (!worth_an_answer(in, in_len)) {
		res->err = KD3_E_MALFORMED;
		res->detail = "not an M2 frame: not answered";
		return KD3_E_MALFORMED;
	}
	res->reply = 1;
	kd3_wr_init(&w, out, out_cap);
	ret = kd3_frame_decode(in, in_len, &f);
	if (ret != KD3_OK)
		fail(res, ret,
		     ret == KD3_E_UNSUPPORTED ? "unsupported protocol version" : "bad frame");
	else
		ret = process(k, &f, now_ms, &w, res);
	if (ret != KD3_OK) {
		int code = kd3_err_is_wire(ret) ? ret : KD3_E_INTERNAL;
		kd3_wr_init(&w, out, out_cap);
		if (write_error(&w, code, res->detail, in_len) != KD3_OK)
			return KD3_E_NO_SPACE;
		res->err = code;
	}
	*out_len = w.len;
	return ret == KD3_OK ? KD3_OK : res->err;
}
