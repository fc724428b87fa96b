#include "harness.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "msg.h"

int h_rng_fn(void *ctx, uint8_t *out, size_t len)
{
	h_rng *r = ctx;
	if (len > r->len - r->off)
		return KD3_E_RNG;
	memcpy(out, r->bytes + r->off, len);
	r->off += len;
	return KD3_OK;
}

static void fill(uint8_t *p, size_t n, uint8_t first)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(first + i);
}

void h_inputs_default(h_inputs *in, uint8_t suite, uint8_t fs)
{
	memset(in, 0, sizeof(*in));
	in->suite = suite;
	in->fs = fs;
	fill(in->k_i, sizeof(in->k_i), 0x00);
	fill(in->k_r, sizeof(in->k_r), 0x20);
	in->kvno_i = 1;
	in->kvno_r = 2;
	fill(in->n_i, sizeof(in->n_i), 0xa0);
	fill(in->n_r, sizeof(in->n_r), 0xb0);
	fill(in->realm_secret, sizeof(in->realm_secret), 0xc0);
	fill(in->e_i, sizeof(in->e_i), 0x40);
	fill(in->e_r, sizeof(in->e_r), 0x60);
	in->lifetime = 3600;
	in->rekey_records = KD3_REKEY_RECORDS_DEFAULT;
}

static const kd3_principal *h_lookup(void *ctx, const uint8_t *name, size_t len)
{
	h_world *w = ctx;
	for (size_t i = 0; i < 2; i++)
		if (w->principals[i].name_len == len &&
		    memcmp(w->principals[i].name, name, len) == 0)
			return &w->principals[i];
	return NULL;
}

static int add_principal(h_world *w, size_t at, const char *name, uint32_t kvno,
                         const uint8_t key[KD3_KEY_LEN])
{
	kd3_principal *p = &w->principals[at];
	snprintf(w->principal_names[at], sizeof(w->principal_names[at]), "%s", name);
	p->name = w->principal_names[at];
	p->name_len = (uint8_t)strlen(name);
	p->enabled = 1;
	p->nkeys = 1;
	p->keys = &w->principal_keys[at];
	p->keys[0].kvno = kvno;
	return kd3_derive_subkeys(&w->crypto, key, &p->keys[0].sub);
}

static void peer_config(h_world *w, kd3_peer_config *cfg, kd3_role role)
{
	const kd3_principal *self = &w->principals[role == KD3_ROLE_INITIATOR ? 0 : 1];
	memset(cfg, 0, sizeof(*cfg));
	cfg->role = role;
	snprintf(cfg->self, sizeof(cfg->self), "%s", self->name);
	snprintf(cfg->peer_name, sizeof(cfg->peer_name), "%s", "bob");
	cfg->keys[0] = self->keys[0];
	cfg->nkeys = 1;
	cfg->suite = w->in.suite;
	cfg->suites_allowed = (1u << KD3_SUITE_AES256GCM) | (1u << KD3_SUITE_CHACHAPOLY);
	cfg->forward_secret = role == KD3_ROLE_INITIATOR ? w->in.fs : 0;
	cfg->rekey_records = w->in.rekey_records;
}

int h_world_init(h_world *w, const h_inputs *in)
{
	kd3_peer_config cfg;
	int ret;

	memset(w, 0, sizeof(*w));
	w->in = *in;
	if ((ret = kd3_crypto_init(&w->crypto, "test", 0)) != KD3_OK)
		return ret;
	/* The order each party draws: I n_i then e_i; R n_r then e_r. */
	memcpy(w->rng_i_bytes, in->n_i, 32);
	memcpy(w->rng_i_bytes + 32, in->e_i, 32);
	memcpy(w->rng_r_bytes, in->n_r, 32);
	memcpy(w->rng_r_bytes + 32, in->e_r, 32);
	w->rng_i = (h_rng){w->rng_i_bytes, in->fs ? 64 : 32, 0};
	w->rng_r = (h_rng){w->rng_r_bytes, in->fs ? 64 : 32, 0};
	if ((ret = add_principal(w, 0, "alice", in->kvno_i, in->k_i)) != KD3_OK ||
	    (ret = add_principal(w, 1, "bob", in->kvno_r, in->k_r)) != KD3_OK)
		return ret;
	kd3_kdc_config kcfg = {
	    .suites_allowed = (1u << KD3_SUITE_AES256GCM) | (1u << KD3_SUITE_CHACHAPOLY),
	    .lifetime = in->lifetime,
	    .cache_window_ms = 2000,
	};
	memcpy(kcfg.realm_secret, in->realm_secret, sizeof(kcfg.realm_secret));
	kd3_kdc_init(&w->kdc, &w->crypto, h_lookup, w, &kcfg);
	peer_config(w, &cfg, KD3_ROLE_INITIATOR);
	if ((ret = kd3_peer_init(&w->ini, &cfg, &w->crypto, h_rng_fn, &w->rng_i)) != KD3_OK)
		return ret;
	peer_config(w, &cfg, KD3_ROLE_RESPONDER);
	return kd3_peer_init(&w->resp, &cfg, &w->crypto, h_rng_fn, &w->rng_r);
}

void h_world_free(h_world *w)
{
	kd3_peer_free(&w->ini);
	kd3_peer_free(&w->resp);
	kd3_kdc_free(&w->kdc);
	kd3_crypto_free(&w->crypto);
}

h_frame *h_record(h_world *w, const char *dir, const uint8_t *bytes, size_t len)
{
	if (w->nframes == H_FRAMES_MAX || len > KD3_FRAME_MAX)
		return NULL;
	h_frame *f = &w->frames[w->nframes++];
	snprintf(f->dir, sizeof(f->dir), "%s", dir);
	memcpy(f->bytes, bytes, len);
	f->len = len;
	return f;
}

/* Feeds a recorded frame to a peer; records what it writes. */
static int feed(h_world *w, kd3_peer *p, kd3_source src, const h_frame *in, const char *out_dir,
                kd3_peer_out *out)
{
	static uint8_t work[KD3_FRAME_MAX], to_peer[2 * KD3_FRAME_MAX], to_kdc[KD3_FRAME_MAX];
	kd3_writer wp, wk;
	kd3_wr_init(&wp, to_peer, sizeof(to_peer));
	kd3_wr_init(&wk, to_kdc, sizeof(to_kdc));
	memset(out, 0, sizeof(*out));
	out->to_peer = &wp;
	out->to_kdc = &wk;
	memcpy(work, in->bytes, in->len); /* records are opened in place */
	int ret = kd3_peer_input(p, src, work, in->len, 0, out);
	if (wk.len && !h_record(w, "R->KDC", to_kdc, wk.len))
		return KD3_E_NO_SPACE;
	if (wp.len && !h_record(w, out_dir, to_peer, wp.len))
		return KD3_E_NO_SPACE;
	return ret;
}

int h_handshake(h_world *w)
{
	static uint8_t buf[KD3_FRAME_MAX];
	kd3_writer wr;
	kd3_peer_out out;
	kd3_kdc_result res;
	size_t n = 0;
	int ret;

	kd3_wr_init(&wr, buf, sizeof(buf));
	if ((ret = kd3_peer_start(&w->ini, &wr)) != KD3_OK)
		return ret;
	h_record(w, "I->R", buf, wr.len); /* M1 */
	if ((ret = feed(w, &w->resp, KD3_SRC_PEER, &w->frames[w->nframes - 1], "R->I", &out)))
		return ret;
	const h_frame *m2 = &w->frames[w->nframes - 1];
	ret = kd3_kdc_handle(&w->kdc, m2->bytes, m2->len, 0, buf, sizeof(buf), &n, &res);
	h_record(w, "KDC->R", buf, n);
	if (ret != KD3_OK)
		return ret;
	if ((ret = feed(w, &w->resp, KD3_SRC_KDC, &w->frames[w->nframes - 1], "R->I", &out)))
		return ret;
	if ((ret = feed(w, &w->ini, KD3_SRC_PEER, &w->frames[w->nframes - 1], "I->R", &out)))
		return ret;
	/* FINISHED */
	return feed(w, &w->resp, KD3_SRC_PEER, &w->frames[w->nframes - 1], "R->I", &out);
}

int h_send(h_world *w, int from_i, const char *payload, kd3_peer_out *delivered)
{
	static uint8_t buf[2 * KD3_FRAME_MAX];
	kd3_writer wr;
	kd3_peer *src = from_i ? &w->ini : &w->resp;
	kd3_peer *dst = from_i ? &w->resp : &w->ini;
	int ret;

	kd3_wr_init(&wr, buf, sizeof(buf));
	if ((ret = kd3_peer_send(src, (const uint8_t *)payload, strlen(payload), 0, &wr)))
		return ret;
	/* A KEY_UPDATE may come first: feed every frame written. */
	for (size_t off = 0; off < wr.len;) {
		long size = kd3_frame_size(buf + off, wr.len - off);
		if (size <= 0)
			return KD3_E_MALFORMED;
		h_frame *f = h_record(w, from_i ? "I->R" : "R->I", buf + off, (size_t)size);
		if (!f)
			return KD3_E_NO_SPACE;
		if ((ret = feed(w, dst, KD3_SRC_PEER, f, from_i ? "R->I" : "I->R", delivered)))
			return ret;
		off += (size_t)size;
	}
	return KD3_OK;
}
