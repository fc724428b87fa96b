#include "peer.h"

#include <string.h>

#include "err.h"
#include "msg.h"

/* ---- helpers -------------------------------------------------------------- */

static const kd3_kvno_key *latest_key(const kd3_peer_config *cfg)
{
	const kd3_kvno_key *best = NULL;
	for (size_t i = 0; i < cfg->nkeys; i++)
		if (!best || cfg->keys[i].kvno > best->kvno)
			best = &cfg->keys[i];
	return best;
}

static kd3_view name_view(const char *s)
{
	return (kd3_view){(const uint8_t *)s, strlen(s)};
}

static void copy_name(char dst[KD3_NAME_MAX + 1], kd3_view v)
{
	memcpy(dst, v.p, v.len);
	dst[v.len] = '\0';
}

/* The wire code to tell the other side about a local failure. */
static uint16_t wire_code(int err)
{
	if (kd3_err_is_wire(err))
		return (uint16_t)err;
	switch (err) {
	case KD3_E_SAME_PRINCIPAL:
	case KD3_E_UNEXPECTED:
	case KD3_E_NONCE:
	case KD3_E_RECORD_TYPE:
		return KD3_E_MALFORMED;
	case KD3_E_RECORD_SEQ: /* a record dropped, replayed or reordered: not authentic */
	case KD3_E_BLOB_AUTH:
	case KD3_E_CONFIRM:
	case KD3_E_WEAK_KEY:
	case KD3_E_RECORD_AUTH: /* e.g. a FINISHED that failed its tag */
		return KD3_E_BAD_AUTH;
	case KD3_E_NO_KDC:
	case KD3_E_EXPIRED:
		return KD3_E_TIMEOUT;
	default:
		return KD3_E_INTERNAL;
	}
}

/* Handshake secrets are needed only until the channel is keyed. */
static void wipe_handshake(kd3_peer *p)
{
	kd3_wipe(p->e_priv, sizeof(p->e_priv));
	kd3_wipe(&p->secrets, sizeof(p->secrets));
}

/* The one way into FAILED: the first error is kept, and every secret the exchange
 * or the channel held is wiped, whatever the path. */
static int enter_failed(kd3_peer *p, int err)
{
	p->state = KD3_PS_FAILED;
	if (p->err == KD3_OK)
		p->err = err;
	wipe_handshake(p);
	kd3_channel_free(&p->ch);
	kd3_peer_forget_revealed(p);
	return p->err;
}

static int draw_ephemeral(kd3_peer *p)
{
	int ret = p->rng(p->rng_ctx, p->e_priv, sizeof(p->e_priv));
	if (ret == KD3_OK)
		ret = kd3_x25519_public(p->e_priv, p->e_pub);
	return ret;
}

/* Session secrets from SK (and the X25519 result in forward-secret mode). */
static int derive(kd3_peer *p, const uint8_t sk[KD3_KEY_LEN], const uint8_t *peer_e)
{
	uint8_t dh[KD3_DH_LEN];
	int ret = KD3_OK;

	if (p->fs)
		ret = kd3_x25519_shared(p->e_priv, peer_e, dh);
	if (ret == KD3_OK)
		ret = kd3_derive_session(p->crypto, p->th, sk, p->fs ? dh : NULL, &p->secrets);
	if (ret == KD3_OK && p->cfg.reveal_keys) {
		memcpy(p->revealed.sk, sk, KD3_KEY_LEN);
		if (p->fs)
			memcpy(p->revealed.dh, dh, KD3_DH_LEN);
		p->revealed.have_dh = p->fs;
		p->revealed.have = 1;
	}
	kd3_wipe(dh, sizeof(dh));
	kd3_wipe(p->e_priv, sizeof(p->e_priv)); /* forward secrecy: gone once used */
	return ret;
}

static int start_channel(kd3_peer *p, uint32_t lifetime, uint64_t now_ms)
{
	int is_i = p->cfg.role == KD3_ROLE_INITIATOR;
	const uint8_t *tx = is_i ? p->secrets.ts_i2r : p->secrets.ts_r2i;
	const uint8_t *rx = is_i ? p->secrets.ts_r2i : p->secrets.ts_i2r;
	int ret = kd3_channel_init(&p->ch, p->crypto, p->suite, tx, rx);
	if (ret != KD3_OK)
		return ret;
	p->ch.rekey_records = p->cfg.rekey_records ? p->cfg.rekey_records : 1;
	p->ch.rekey_bytes = p->cfg.rekey_bytes;
	p->lifetime = lifetime;
	p->expires_ms = now_ms + (uint64_t)lifetime * 1000u;
	p->tx_key_since_ms = now_ms;
	return KD3_OK;
}

/* ---- initiator ------------------------------------------------------------ */

/* M1: suite | flags | id_i | id_r | n_i | kvno_i | [e_i] | auth_i */
int kd3_peer_start(kd3_peer *p, kd3_writer *to_peer)
{
	size_t start;
	uint8_t n_i[KD3_NONCE_LEN], auth_i[KD3_MAC_LEN];
	int ret;

	if (p->state != KD3_PS_START || p->cfg.role != KD3_ROLE_INITIATOR)
		return KD3_E_UNEXPECTED;
	p->fs = p->cfg.forward_secret ? 1 : 0;
	p->suite = p->cfg.suite;
	if ((ret = p->rng(p->rng_ctx, n_i, sizeof(n_i))) != KD3_OK)
		goto out;
	if (p->fs && (ret = draw_ephemeral(p)) != KD3_OK)
		goto out;
	p->key = latest_key(&p->cfg);
	p->kvno_used = p->key->kvno;

	kd3_frame_begin(to_peer, KD3_T_M1, &start);
	kd3_m1_encode_signed(to_peer, p->suite, p->fs ? KD3_FLAG_FS : 0, name_view(p->cfg.self),
	                     name_view(p->cfg.peer_name), n_i, p->kvno_used, p->e_pub);
	if ((ret = to_peer->err) != KD3_OK)
		goto out;
	const uint8_t *body = to_peer->p + start + KD3_HDR_LEN;
	size_t signed_len = to_peer->len - start - KD3_HDR_LEN;
	ret = kd3_authenticator_with(&p->key->sub.auth_key, KD3_LABEL_M1, body, signed_len, auth_i);
	if (ret != KD3_OK)
		goto out;
	kd3_wr_bytes(to_peer, auth_i, sizeof(auth_i));
	if ((ret = kd3_frame_end(to_peer, start)) != KD3_OK)
		goto out;
	p->m1_len = to_peer->len - start - KD3_HDR_LEN;
	memcpy(p->m1, body, p->m1_len);
	copy_name(p->peer_id, name_view(p->cfg.peer_name));
	p->state = KD3_PS_WAIT_M4;
out:
	if (ret != KD3_OK)
		enter_failed(p, ret);
	return ret;
}

/* TH as the initiator rebuilds it: M2 body before auth_r, from its M1 and M4. */
static int initiator_th(kd3_peer *p, const kd3_m4 *m4)
{
	uint8_t len16[2], kvno[4];
	kd3_put_u16(len16, (uint16_t)p->m1_len);
	kd3_put_u32(kvno, m4->kvno_r);
	kd3_iov prefix[5] = {{len16, 2},
	                     {p->m1, p->m1_len},
	                     {m4->n_r, KD3_NONCE_LEN},
	                     {kvno, 4},
	                     {m4->e_r, KD3_DH_LEN}};
	return kd3_transcript_hash(prefix, p->fs ? 5 : 4, p->th);
}

/* I, on M4: rebuild TH, open blob_i, derive, check confirm_r, send FINISHED. */
static int i_on_m4(kd3_peer *p, uint8_t *frame, const kd3_frame *f, uint64_t now_ms,
                   kd3_peer_out *out)
{
	kd3_m4 m4;
	uint8_t sk[KD3_KEY_LEN];
	int ret;

	(void)frame;
	if ((ret = kd3_m4_decode(f->body.p, f->body.len, p->fs, &m4)) != KD3_OK)
		goto out;
	if ((ret = initiator_th(p, &m4)) != KD3_OK)
		goto out;
	ret = kd3_blob_open_with(p->crypto, p->suite, &p->key->sub.wrap_key, KD3_ROLE_INITIATOR,
	                         p->th, m4.lifetime, m4.blob_i, sk);
	if (ret != KD3_OK)
		goto out;
	if ((ret = derive(p, sk, m4.e_r)) != KD3_OK)
		goto out;
	if (!kd3_ct_equal(p->secrets.confirm_r, m4.confirm_r, KD3_MAC_LEN)) {
		ret = KD3_E_CONFIRM;
		goto out;
	}
	memcpy(p->n_r, m4.n_r, KD3_NONCE_LEN);
	if ((ret = start_channel(p, m4.lifetime, now_ms)) != KD3_OK)
		goto out;
	/* FINISHED: the first I->R record, carrying confirm_i. */
	ret = kd3_channel_seal(&p->ch, KD3_R_FINISHED, p->secrets.confirm_i, KD3_MAC_LEN,
	                       out->to_peer);
	if (ret != KD3_OK)
		goto out;
	p->state = KD3_PS_ESTABLISHED;
	out->events |= KD3_EV_ESTABLISHED;
out:
	kd3_wipe(sk, sizeof(sk));
	wipe_handshake(p);
	return ret;
}

/* ---- responder ------------------------------------------------------------ */

/* What the responder can check of M1 itself (it cannot check auth_i: the KDC does). */
static int refuse(kd3_peer *p, int err, const char *detail)
{
	p->detail = detail;
	return err;
}

static int r_check_m1(kd3_peer *p, const kd3_m1 *m1)
{
	if (!(p->cfg.suites_allowed & (1u << m1->suite)))
		return refuse(p, KD3_E_UNSUPPORTED, "suite not allowed by the responder");
	if (p->cfg.forward_secret && !(m1->flags & KD3_FLAG_FS))
		return refuse(p, KD3_E_POLICY_DENIED, "the responder requires forward-secret mode");
	if (m1->id_r.len != strlen(p->cfg.self) ||
	    memcmp(m1->id_r.p, p->cfg.self, m1->id_r.len) != 0)
		return refuse(p, KD3_E_UNKNOWN_PRINCIPAL, "M1 names another responder");
	if (m1->id_i.len == m1->id_r.len && memcmp(m1->id_i.p, m1->id_r.p, m1->id_i.len) == 0)
		return KD3_E_SAME_PRINCIPAL;
	return KD3_OK;
}

/* R, on M1: draw n_r (and e_r), write M2 = M1 | n_r | kvno_r | [e_r] | auth_r. */
static int r_on_m1(kd3_peer *p, uint8_t *frame, const kd3_frame *f, uint64_t now_ms,
                   kd3_peer_out *out)
{
	kd3_m1 m1;
	uint8_t auth_r[KD3_MAC_LEN];
	size_t start;
	kd3_writer *w = out->to_kdc;
	int ret;

	(void)frame;
	(void)now_ms;
	if ((ret = kd3_m1_decode(f->body.p, f->body.len, &m1)) != KD3_OK)
		return ret;
	copy_name(p->peer_id, m1.id_i);
	if ((ret = r_check_m1(p, &m1)) != KD3_OK)
		return ret;
	memcpy(p->m1, f->body.p, f->body.len);
	p->m1_len = f->body.len;
	p->suite = m1.suite;
	p->fs = (m1.flags & KD3_FLAG_FS) ? 1 : 0;
	p->key = latest_key(&p->cfg);
	p->kvno_used = p->key->kvno;
	if ((ret = p->rng(p->rng_ctx, p->n_r, KD3_NONCE_LEN)) != KD3_OK)
		return ret;
	if (p->fs && (ret = draw_ephemeral(p)) != KD3_OK)
		return ret;

	kd3_frame_begin(w, KD3_T_M2, &start);
	kd3_m2_encode_signed(w, (kd3_view){p->m1, p->m1_len}, p->n_r, p->kvno_used,
	                     p->fs ? p->e_pub : NULL);
	if ((ret = w->err) != KD3_OK)
		return ret;
	const uint8_t *body = w->p + start + KD3_HDR_LEN;
	size_t signed_len = w->len - start - KD3_HDR_LEN;
	kd3_iov prefix = {body, signed_len};
	if ((ret = kd3_transcript_hash(&prefix, 1, p->th)) != KD3_OK)
		return ret;
	ret = kd3_authenticator_with(&p->key->sub.auth_key, KD3_LABEL_M2, body, signed_len, auth_r);
	if (ret != KD3_OK)
		return ret;
	kd3_wr_bytes(w, auth_r, sizeof(auth_r));
	if ((ret = kd3_frame_end(w, start)) != KD3_OK)
		return ret;
	p->state = KD3_PS_WAIT_M3;
	out->events |= KD3_EV_TO_KDC;
	return KD3_OK;
}

/* R, on M3: n_r must be ours; open blob_r; derive; send M4 with the M3's blob_i. */
static int r_on_m3(kd3_peer *p, uint8_t *frame, const kd3_frame *f, uint64_t now_ms,
                   kd3_peer_out *out)
{
	kd3_m3 m3;
	kd3_m1 m1;
	uint8_t sk[KD3_KEY_LEN];
	int ret;

	(void)frame;
	if ((ret = kd3_m3_decode(f->body.p, f->body.len, &m3)) != KD3_OK)
		goto out;
	if (memcmp(m3.n_r, p->n_r, KD3_NONCE_LEN) != 0) { /* n_r is public: no secret here */
		ret = KD3_E_NONCE;
		goto out;
	}
	ret = kd3_blob_open_with(p->crypto, p->suite, &p->key->sub.wrap_key, KD3_ROLE_RESPONDER,
	                         p->th, m3.lifetime, m3.blob_r, sk);
	if (ret != KD3_OK)
		goto out;
	if ((ret = kd3_m1_decode(p->m1, p->m1_len, &m1)) != KD3_OK) /* our own copy: e_i */
		goto out;
	if ((ret = derive(p, sk, m1.e_i)) != KD3_OK)
		goto out;
	kd3_m4 m4 = {.n_r = p->n_r,
	             .kvno_r = p->kvno_used,
	             .e_r = p->fs ? p->e_pub : NULL,
	             .lifetime = m3.lifetime,
	             .blob_i = m3.blob_i,
	             .confirm_r = p->secrets.confirm_r};
	if ((ret = start_channel(p, m3.lifetime, now_ms)) != KD3_OK)
		goto out;
	if ((ret = kd3_m4_encode(out->to_peer, &m4)) != KD3_OK)
		goto out;
	p->state = KD3_PS_WAIT_FINISHED;
out:
	kd3_wipe(sk, sizeof(sk));
	if (ret != KD3_OK)
		wipe_handshake(p);
	return ret;
}

/* R, on the KDC's ERROR: tell the initiator (same code), and fail. */
static int r_on_kdc_error(kd3_peer *p, uint8_t *frame, const kd3_frame *f, uint64_t now_ms,
                          kd3_peer_out *out)
{
	static const char prefix[] = "KDC: ";
	kd3_error_msg e;
	char text[sizeof(prefix) + 255];
	int ret;

	(void)p;
	(void)frame;
	(void)now_ms;
	if ((ret = kd3_error_decode(f->body.p, f->body.len, &e)) != KD3_OK)
		return ret;
	out->peer_error = e.code;
	out->peer_error_text = e.text;
	/* No stdio in the protocol core (it builds for microcontrollers): plain copies. */
	memcpy(text, prefix, sizeof(prefix) - 1);
	memcpy(text + sizeof(prefix) - 1, e.text.p, e.text.len);
	text[sizeof(prefix) - 1 + e.text.len] = '\0';
	kd3_error_encode(out->to_peer, e.code, text);
	return KD3_E_PEER_ERROR;
}

/* ---- both: ERROR from the peer, and records ------------------------------- */

static int on_peer_error(kd3_peer *p, uint8_t *frame, const kd3_frame *f, uint64_t now_ms,
                         kd3_peer_out *out)
{
	kd3_error_msg e;
	int ret;

	(void)frame;
	(void)now_ms;
	/* Once R's records authenticate, an unauthenticated ERROR cannot end the session:
	 * R speaks through CLOSE from then on. */
	if (p->state == KD3_PS_ESTABLISHED && p->ch.rx.records > 0)
		return KD3_E_UNEXPECTED;
	if ((ret = kd3_error_decode(f->body.p, f->body.len, &e)) != KD3_OK)
		return ret;
	/* ERROR is unauthenticated: it ends the exchange, and is never a reason to accept. */
	out->peer_error = e.code;
	out->peer_error_text = e.text;
	return KD3_E_PEER_ERROR;
}

/* CLOSE payload: reason u16 | text str, exactly. */
static int parse_close(kd3_view payload, kd3_peer_out *out)
{
	kd3_reader r;
	kd3_rd_init(&r, payload.p, payload.len);
	kd3_rd_u16(&r, &out->close_reason);
	kd3_rd_str(&r, &out->close_text);
	return kd3_rd_end(&r);
}

/* Which inner types each state accepts: FINISHED only first (R), then the rest. */
static int inner_allowed(kd3_peer_state s, uint8_t inner)
{
	if (s == KD3_PS_WAIT_FINISHED)
		return inner == KD3_R_FINISHED;
	return inner == KD3_R_DATA || inner == KD3_R_KEY_UPDATE || inner == KD3_R_CLOSE;
}

static int on_record(kd3_peer *p, uint8_t *frame, const kd3_frame *f, uint64_t now_ms,
                     kd3_peer_out *out)
{
	kd3_view payload;
	int ret;

	if ((ret = kd3_peer_check_expiry(p, now_ms)) != KD3_OK)
		return ret;
	ret = kd3_channel_open(&p->ch, frame, KD3_HDR_LEN + f->body.len, &out->inner, &payload);
	if (ret != KD3_OK)
		return ret;
	if (!inner_allowed(p->state, out->inner))
		return KD3_E_RECORD_TYPE;
	switch (out->inner) {
	case KD3_R_FINISHED: /* R: confirm_i, in constant time */
		if (payload.len != KD3_MAC_LEN ||
		    !kd3_ct_equal(payload.p, p->secrets.confirm_i, KD3_MAC_LEN))
			return KD3_E_CONFIRM;
		wipe_handshake(p);
		p->state = KD3_PS_ESTABLISHED;
		out->events |= KD3_EV_ESTABLISHED;
		return KD3_OK;
	case KD3_R_DATA:
		out->data = payload;
		out->events |= KD3_EV_DATA;
		return KD3_OK;
	case KD3_R_KEY_UPDATE:
		out->events |= KD3_EV_KEY_UPDATE;
		return KD3_OK;
	default: /* KD3_R_CLOSE */
		if ((ret = parse_close(payload, out)) != KD3_OK)
			return ret;
		out->events |= KD3_EV_PEER_CLOSED;
		if (p->ch.tx.closed) {
			p->state = KD3_PS_CLOSED;
			out->events |= KD3_EV_CLOSED;
		}
		return KD3_OK;
	}
}

/* ---- the transition table ------------------------------------------------- */

typedef int (*handler_fn)(kd3_peer *p, uint8_t *frame, const kd3_frame *f, uint64_t now_ms,
                          kd3_peer_out *out);

static const struct transition {
	kd3_role role;
	kd3_peer_state state;
	kd3_source src;
	uint8_t type;
	handler_fn handle;
} transitions[] = {
    {KD3_ROLE_INITIATOR, KD3_PS_WAIT_M4, KD3_SRC_PEER, KD3_T_M4, i_on_m4},
    {KD3_ROLE_INITIATOR, KD3_PS_WAIT_M4, KD3_SRC_PEER, KD3_T_ERROR, on_peer_error},
    {KD3_ROLE_INITIATOR, KD3_PS_ESTABLISHED, KD3_SRC_PEER, KD3_T_RECORD, on_record},
    /* R refuses our FINISHED with an ERROR (it has no confirmed channel to CLOSE on). */
    {KD3_ROLE_INITIATOR, KD3_PS_ESTABLISHED, KD3_SRC_PEER, KD3_T_ERROR, on_peer_error},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_M1, KD3_SRC_PEER, KD3_T_M1, r_on_m1},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_M3, KD3_SRC_KDC, KD3_T_M3, r_on_m3},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_M3, KD3_SRC_KDC, KD3_T_ERROR, r_on_kdc_error},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_M3, KD3_SRC_PEER, KD3_T_ERROR, on_peer_error},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_FINISHED, KD3_SRC_PEER, KD3_T_RECORD, on_record},
    {KD3_ROLE_RESPONDER, KD3_PS_WAIT_FINISHED, KD3_SRC_PEER, KD3_T_ERROR, on_peer_error},
    {KD3_ROLE_RESPONDER, KD3_PS_ESTABLISHED, KD3_SRC_PEER, KD3_T_RECORD, on_record},
};

static const struct transition *find_transition(const kd3_peer *p, kd3_source src, uint8_t type)
{
	for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++) {
		const struct transition *t = &transitions[i];
		if (t->role == p->cfg.role && t->state == p->state && t->src == src &&
		    t->type == type)
			return t;
	}
	return NULL;
}

/* Before the channel exists the other side gets an ERROR (wire codes only); after,
 * an authenticated CLOSE whose reason is the kd3_err code itself, so the peer can
 * name the precise cause. Then the machine is FAILED, with every secret wiped. */
static void peer_fail(kd3_peer *p, int err, kd3_peer_state was, kd3_peer_out *out)
{
	if (err == KD3_E_PEER_ERROR) {
		/* They know; a KDC error was forwarded by its handler. */
	} else if (was == KD3_PS_ESTABLISHED && !p->ch.tx.closed && err != KD3_E_CLOSED) {
		const char *text = kd3_strerror(err);
		uint8_t buf[2 + 1 + 255];
		kd3_writer w;
		kd3_wr_init(&w, buf, sizeof(buf));
		kd3_wr_u16(&w, (uint16_t)err);
		kd3_wr_str(&w, text, strlen(text));
		kd3_channel_seal(&p->ch, KD3_R_CLOSE, buf, w.len, out->to_peer);
	} else if (was != KD3_PS_ESTABLISHED) {
		kd3_error_encode(out->to_peer, wire_code(err),
		                 p->detail ? p->detail : kd3_strerror(err));
	}
	enter_failed(p, err);
}

int kd3_peer_input(kd3_peer *p, kd3_source src, uint8_t *frame, size_t len, uint64_t now_ms,
                   kd3_peer_out *out)
{
	kd3_frame f;
	kd3_peer_state was = p->state;
	int ret;

	out->events = 0;
	out->data = (kd3_view){NULL, 0};
	out->inner = 0;
	if (p->state == KD3_PS_FAILED)
		return p->err;
	if (p->state == KD3_PS_CLOSED)
		return KD3_E_CLOSED;
	ret = kd3_frame_decode(frame, len, &f);
	if (ret == KD3_OK) {
		const struct transition *t = find_transition(p, src, f.type);
		ret = t ? t->handle(p, frame, &f, now_ms, out) : KD3_E_UNEXPECTED;
	}
	if (ret != KD3_OK)
		peer_fail(p, ret, was, out);
	return ret;
}

/* ---- the application side ------------------------------------------------- */

int kd3_peer_check_expiry(kd3_peer *p, uint64_t now_ms)
{
	if (p->state != KD3_PS_ESTABLISHED && p->state != KD3_PS_WAIT_FINISHED)
		return KD3_OK;
	if (now_ms >= p->expires_ms)
		return enter_failed(p, KD3_E_EXPIRED); /* the key may not be used again */
	return KD3_OK;
}

/* The sending key's time is up (the count and byte limits live in the channel). */
static int rekey_time_due(const kd3_peer *p, uint64_t now_ms)
{
	return p->cfg.rekey_ms && now_ms - p->tx_key_since_ms >= p->cfg.rekey_ms;
}

static int seal_key_update(kd3_peer *p, uint64_t now_ms, kd3_writer *to_peer)
{
	int ret = kd3_channel_seal(&p->ch, KD3_R_KEY_UPDATE, NULL, 0, to_peer);
	if (ret == KD3_OK)
		p->tx_key_since_ms = now_ms;
	return ret;
}

static int send_record(kd3_peer *p, uint8_t inner, const uint8_t *payload, size_t len,
                       uint64_t now_ms, kd3_writer *to_peer)
{
	int ret = KD3_OK;
	if (kd3_channel_rekey_due(&p->ch) || rekey_time_due(p, now_ms))
		ret = seal_key_update(p, now_ms, to_peer);
	if (ret == KD3_OK)
		ret = kd3_channel_seal(&p->ch, inner, payload, len, to_peer);
	return ret;
}

int kd3_peer_send(kd3_peer *p, const uint8_t *payload, size_t len, uint64_t now_ms,
                  kd3_writer *to_peer)
{
	if (p->state == KD3_PS_FAILED)
		return p->err;
	if (p->state != KD3_PS_ESTABLISHED)
		return KD3_E_UNEXPECTED;
	if (len > KD3_PAYLOAD_MAX)
		return KD3_E_TOO_BIG;
	int ret = kd3_peer_check_expiry(p, now_ms);
	if (ret == KD3_OK)
		ret = send_record(p, KD3_R_DATA, payload, len, now_ms, to_peer);
	if (ret != KD3_OK && ret != KD3_E_CLOSED && p->state != KD3_PS_FAILED)
		enter_failed(p, ret); /* the record layer broke: nothing more may be sealed */
	return ret;
}

int kd3_peer_rekey(kd3_peer *p, uint64_t now_ms, kd3_writer *to_peer)
{
	if (p->state != KD3_PS_ESTABLISHED)
		return p->state == KD3_PS_FAILED ? p->err : KD3_E_UNEXPECTED;
	return seal_key_update(p, now_ms, to_peer);
}

int kd3_peer_close(kd3_peer *p, uint16_t reason, const char *text, kd3_writer *to_peer)
{
	uint8_t buf[2 + 1 + 255];
	kd3_writer w;
	size_t text_len = text ? strnlen(text, 255) : 0;
	int ret;

	if (p->state == KD3_PS_FAILED)
		return p->err;
	if (p->state == KD3_PS_CLOSED || (p->state == KD3_PS_ESTABLISHED && p->ch.tx.closed))
		return KD3_OK;
	if (p->state != KD3_PS_ESTABLISHED) {
		/* No channel yet: an (unauthenticated) ERROR ends the exchange. */
		ret = kd3_error_encode(to_peer, wire_code(reason ? reason : KD3_E_TIMEOUT), text);
		enter_failed(p, KD3_E_CLOSED);
		return ret;
	}
	kd3_wr_init(&w, buf, sizeof(buf));
	kd3_wr_u16(&w, reason);
	kd3_wr_str(&w, text, text_len);
	/* No clock here: "now" = when the key came into use, so the time policy sees no time
	 * pass for the CLOSE record (the record and byte limits still apply). */
	ret = send_record(p, KD3_R_CLOSE, buf, w.len, p->tx_key_since_ms, to_peer);
	if (ret == KD3_OK && p->ch.rx.closed)
		p->state = KD3_PS_CLOSED;
	return ret;
}

int kd3_peer_eof(kd3_peer *p)
{
	if (p->state == KD3_PS_CLOSED || (p->state == KD3_PS_ESTABLISHED && p->ch.rx.closed))
		return KD3_OK;
	if (p->state == KD3_PS_FAILED)
		return p->err;
	return enter_failed(p, KD3_E_TRUNCATED);
}

int kd3_peer_kdc_failed(kd3_peer *p, int err, kd3_writer *to_peer)
{
	if (p->state != KD3_PS_WAIT_M3)
		return KD3_E_UNEXPECTED;
	int ret = kd3_error_encode(to_peer, wire_code(err), kd3_strerror(err));
	enter_failed(p, err);
	return ret;
}

/* ---- life cycle ----------------------------------------------------------- */

int kd3_peer_init(kd3_peer *p, const kd3_peer_config *cfg, kd3_crypto *c, kd3_rng_fn rng,
                  void *rng_ctx)
{
	memset(p, 0, sizeof(*p));
	if (cfg->nkeys == 0 || cfg->nkeys > KD3_KEYS_MAX || !kd3_name_valid_cstr(cfg->self))
		return KD3_E_USAGE;
	if (cfg->role == KD3_ROLE_INITIATOR) {
		if (!kd3_name_valid_cstr(cfg->peer_name))
			return KD3_E_USAGE;
		if (strcmp(cfg->self, cfg->peer_name) == 0)
			return KD3_E_SAME_PRINCIPAL;
		if (!kd3_suite_supported(cfg->suite))
			return KD3_E_UNSUPPORTED;
	}
	p->cfg = *cfg;
	p->crypto = c;
	p->rng = rng;
	p->rng_ctx = rng_ctx;
	p->state = cfg->role == KD3_ROLE_INITIATOR ? KD3_PS_START : KD3_PS_WAIT_M1;
	return KD3_OK;
}

void kd3_peer_forget_revealed(kd3_peer *p)
{
	kd3_wipe(&p->revealed, sizeof(p->revealed));
}

void kd3_peer_free(kd3_peer *p)
{
	kd3_channel_free(&p->ch);
	kd3_wipe(p, sizeof(*p));
}

const char *kd3_peer_state_name(kd3_peer_state s)
{
	static const char *const names[KD3_PS_COUNT] = {
	    [KD3_PS_START] = "START",
	    [KD3_PS_WAIT_M4] = "WAIT_M4",
	    [KD3_PS_WAIT_M1] = "WAIT_M1",
	    [KD3_PS_WAIT_M3] = "WAIT_M3",
	    [KD3_PS_WAIT_FINISHED] = "WAIT_FINISHED",
	    [KD3_PS_ESTABLISHED] = "ESTABLISHED",
	    [KD3_PS_CLOSED] = "CLOSED",
	    [KD3_PS_FAILED] = "FAILED",
	};
	return (unsigned)s < KD3_PS_COUNT ? names[s] : "?";
}
