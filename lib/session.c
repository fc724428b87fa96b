/* libkd3 sessions, sans I/O: a kd3_peer (shared/peer.h) with its byte buffers. Bytes
 * from the peer are gathered into frames (kd3_stream); a DATA frame stays in the stream
 * until the caller reads it, so the library never holds more than one frame of input
 * and three of output. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "lib.h"
#include "msg.h"

/* ---- output ------------------------------------------------------------------------- */

size_t kd3_lib_tx_free(const kd3_session *s)
{
	return KD3_LIB_TX_CAP - (s->tx_len - s->tx_off);
}

/* A writer over the free end of tx (moved to the front first). */
void kd3_lib_tx_writer(kd3_session *s, kd3_writer *w)
{
	if (s->tx_off) {
		memmove(s->tx, s->tx + s->tx_off, s->tx_len - s->tx_off);
		s->tx_len -= s->tx_off;
		s->tx_off = 0;
	}
	kd3_wr_init(w, s->tx + s->tx_len, KD3_LIB_TX_CAP - s->tx_len);
}

/* Frames are written whole or not at all (the room was checked before). */
void kd3_lib_tx_commit(kd3_session *s, const kd3_writer *w, int last_inner)
{
	if (w->err != KD3_OK)
		return;
	kd3_lib_note_frames_out(s, s->tx + s->tx_len, w->len, last_inner, 0);
	s->tx_len += w->len;
}

/* ---- failures ----------------------------------------------------------------------- */

void kd3_lib_printable(const uint8_t *p, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 1 < cap; i++)
		out[n++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	out[n] = '\0';
}

/* Who sent what failed: named in the error line. */
static const char *other_side(const kd3_session *s, kd3_source from)
{
	if (from == KD3_SRC_KDC)
		return "the KDC";
	return s->cfg.role == KD3_ROLE_INITIATOR ? "the responder" : "the initiator";
}

int kd3_lib_fail(kd3_session *s, int err, const kd3_peer_out *out, kd3_source from)
{
	char said[256];
	const char *detail = s->begun ? s->peer.detail : NULL;

	if (s->err != KD3_OK)
		return s->err;
	s->err = err;
	/* The text first: the ERROR's words are in the frame, the check's name in peer. */
	if (err == KD3_E_PEER_ERROR && out) {
		kd3_lib_printable(out->peer_error_text.p, out->peer_error_text.len, said,
		                  sizeof(said));
		kd3_lib_text(s->err_text, sizeof(s->err_text), "%s refused: %s (%s)",
		             other_side(s, from), said, kd3_strerror(out->peer_error));
	} else {
		kd3_lib_text(s->err_text, sizeof(s->err_text), "%s%s%s%s%s",
		             from == KD3_SRC_KDC ? "the KDC's answer: " : "", kd3_strerror(err),
		             detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
	}
	/* No key outlives the failure: the settings' copy (before the first byte) and the
	 * state machine's (kd3_peer_free is safe on one never or partly set up). */
	kd3_wipe(s->cfg.keys, sizeof(s->cfg.keys));
	kd3_peer_free(&s->peer);
	return err;
}

static int session_fail(kd3_session *s, int err, const kd3_peer_out *out)
{
	return kd3_lib_fail(s, err, out, KD3_SRC_PEER);
}

/* The key's lifetime is over: tell the peer why (an authenticated CLOSE), then fail. */
static int check_expiry(kd3_session *s, uint64_t now_ms)
{
	kd3_writer w;

	if (s->peer.state != KD3_PS_ESTABLISHED || now_ms < s->peer.expires_ms)
		return KD3_OK;
	if (kd3_lib_tx_free(s) < KD3_LIB_INPUT_ROOM)
		return KD3_OK; /* no room for the CLOSE: nothing else passes either until the
		                * output is taken, and the next call ends the session */
	kd3_lib_tx_writer(s, &w);
	const char *why = kd3_strerror(KD3_E_EXPIRED);
	if (kd3_peer_close(&s->peer, KD3_E_EXPIRED, why, &w) == KD3_OK) {
		kd3_lib_tx_commit(s, &w, KD3_R_CLOSE);
		kd3_lib_note_close_out(s, KD3_E_EXPIRED, why);
	}
	kd3_peer_check_expiry(&s->peer, now_ms);
	return session_fail(s, KD3_E_EXPIRED, NULL);
}

/* ---- life cycle --------------------------------------------------------------------- */

static int session_new(kd3_session **out, const kd3_key *key, kd3_role role)
{
	kd3_session *s = malloc(sizeof(*s));
	if (!s)
		return KD3_E_NOMEM;
	memset(s, 0, offsetof(kd3_session, tx)); /* the buffers stay untouched (lib.h) */
	int ret = kd3_crypto_init(&s->crypto, "libkd3 session", 1);
	if (ret != KD3_OK) {
		kd3_session_free(s);
		return ret;
	}
	s->cfg.role = role;
	memcpy(s->cfg.self, key->principal, sizeof(s->cfg.self));
	memcpy(s->cfg.keys, key->keys, sizeof(key->keys));
	s->cfg.nkeys = key->nkeys;
	s->cfg.suite = KD3_SUITE_DEFAULT;
	s->cfg.suites_allowed = (1u << KD3_SUITE_AES256GCM) | (1u << KD3_SUITE_CHACHAPOLY);
	s->cfg.rekey_records = (uint64_t)1 << 20;
	kd3_stream_init(&s->rx);
	*out = s;
	return KD3_OK;
}

int kd3_session_new_initiator(kd3_session **s, const kd3_key *key, const char *responder)
{
	if (!s)
		return KD3_E_ARG;
	*s = NULL;
	if (!key || key->nkeys == 0 || !responder || !kd3_name_valid_cstr(responder))
		return KD3_E_ARG;
	if (strcmp(responder, key->principal) == 0)
		return KD3_E_SAME_PRINCIPAL;
	int ret = session_new(s, key, KD3_ROLE_INITIATOR);
	if (ret == KD3_OK)
		memcpy((*s)->cfg.peer_name, responder, strlen(responder) + 1);
	return ret;
}

int kd3_session_new_responder(kd3_session **s, const kd3_key *key)
{
	if (!s)
		return KD3_E_ARG;
	*s = NULL;
	if (!key || key->nkeys == 0)
		return KD3_E_ARG;
	return session_new(s, key, KD3_ROLE_RESPONDER);
}

void kd3_session_free(kd3_session *s)
{
	if (!s)
		return;
	kd3_peer_free(&s->peer);
	kd3_crypto_free(&s->crypto);
	kd3_stream_wipe(&s->rx);
	kd3_lib_observer_free(s);
	kd3_wipe(s, sizeof(*s));
	free(s);
}

/* The caller's RNG: any non-zero return is a failure of the RNG, whatever its value
 * (a callback's own codes must not pass for one of ours). */
static int caller_rng(void *ctx, uint8_t *out, size_t len)
{
	const kd3_session *s = ctx;
	return s->rng(s->rng_ctx, out, len) == KD3_OK ? KD3_OK : KD3_E_RNG;
}

/* The settings are frozen into the state machine at the first byte in or out. */
static int begin(kd3_session *s)
{
	if (s->begun)
		return KD3_OK;
	kd3_rng_fn rng = s->rng ? caller_rng : kd3_crypto_rng;
	void *ctx = s->rng ? (void *)s : &s->crypto;
	int ret = kd3_peer_init(&s->peer, &s->cfg, &s->crypto, rng, ctx);
	if (ret != KD3_OK)
		return session_fail(s, ret, NULL);
	kd3_wipe(s->cfg.keys, sizeof(s->cfg.keys)); /* the peer holds its own copy */
	s->begun = 1;
	return KD3_OK;
}

/* Every settings call: a session object, before the first byte. */
static int settable(const kd3_session *s)
{
	if (!s)
		return KD3_E_ARG;
	return s->begun || s->err ? KD3_E_STATE : KD3_OK;
}

int kd3_session_set_suite(kd3_session *s, kd3_suite suite)
{
	int ret = settable(s);
	if (ret != KD3_OK)
		return ret;
	if (suite != KD3_AES_256_GCM && suite != KD3_CHACHA20_POLY1305)
		return KD3_E_ARG;
	s->cfg.suite = (uint8_t)suite;
	return KD3_OK;
}

int kd3_session_set_suites(kd3_session *s, unsigned suites)
{
	const unsigned known =
	    KD3_SUITE_BIT(KD3_AES_256_GCM) | KD3_SUITE_BIT(KD3_CHACHA20_POLY1305);
	int ret = settable(s);

	if (ret != KD3_OK)
		return ret;
	if (s->cfg.role != KD3_ROLE_RESPONDER)
		return KD3_E_STATE;
	if (suites == 0 || (suites & ~known))
		return KD3_E_ARG;
	s->cfg.suites_allowed = suites;
	return KD3_OK;
}

int kd3_session_set_forward_secret(kd3_session *s, int on)
{
	int ret = settable(s);
	if (ret == KD3_OK)
		s->cfg.forward_secret = on ? 1 : 0;
	return ret;
}

int kd3_session_set_rekey(kd3_session *s, uint64_t records, uint64_t bytes, uint64_t ms)
{
	int ret = settable(s);
	if (ret != KD3_OK)
		return ret;
	if (records == 0)
		return KD3_E_ARG;
	s->cfg.rekey_records = records;
	s->cfg.rekey_bytes = bytes;
	s->cfg.rekey_ms = ms;
	return KD3_OK;
}

int kd3_session_set_rng(kd3_session *s, kd3_rng_callback rng, void *ctx)
{
	int ret = settable(s);
	if (ret != KD3_OK)
		return ret;
	if (!rng)
		return KD3_E_ARG;
	s->rng = rng;
	s->rng_ctx = ctx;
	return KD3_OK;
}

/* ---- the handshake ------------------------------------------------------------------ */

int kd3_session_start(kd3_session *s, uint64_t now_ms)
{
	kd3_writer w;

	if (!s)
		return KD3_E_ARG;
	if (s->err)
		return s->err;
	if (s->cfg.role != KD3_ROLE_INITIATOR || s->begun)
		return KD3_E_STATE;
	int ret = begin(s);
	if (ret != KD3_OK)
		return ret;
	s->now_ms = now_ms;
	kd3_lib_tx_writer(s, &w);
	ret = kd3_peer_start(&s->peer, &w);
	if (ret != KD3_OK)
		return session_fail(s, ret, NULL);
	kd3_lib_tx_commit(s, &w, -1);
	return KD3_OK;
}

/* The peer's CLOSE: a reason other than normal (an expired key, a failure on its side)
 * is kept with its text for kd3_session_error. */
static void peer_closed(kd3_session *s, const kd3_peer_out *out)
{
	char said[256];

	s->peer_closed = 1;
	s->close_reason = out->close_reason;
	if (out->close_reason == KD3_CLOSE_NORMAL)
		return;
	kd3_lib_printable(out->close_text.p, out->close_text.len, said, sizeof(said));
	kd3_lib_text(s->close_text, sizeof(s->close_text), "%s closed the session: %s (%s)",
	             other_side(s, KD3_SRC_PEER), said, kd3_strerror(out->close_reason));
}

/* A frame the peer state machine handled: what it means for the session. */
static int after_input(kd3_session *s, int ret, const kd3_peer_out *out, kd3_writer *kw,
                       size_t frame_len)
{
	if (kw && (out->events & KD3_EV_TO_KDC) && kw->err == KD3_OK) {
		s->kdc_req_len = kw->len;
		kd3_lib_note_frames_out(s, s->kdc_req, s->kdc_req_len, -1, 1);
	}
	if (ret != KD3_OK) {
		ret = session_fail(s, ret, out); /* it reads the frame: consumed after */
		kd3_stream_consume(&s->rx, frame_len);
		return ret;
	}
	if (out->events & KD3_EV_PEER_CLOSED)
		peer_closed(s, out);
	if (out->events & KD3_EV_DATA) {
		s->held = out->data;
		s->held_len = frame_len;
		return KD3_OK;
	}
	kd3_stream_consume(&s->rx, frame_len);
	return KD3_OK;
}

/* Responder: the name M1 claims, kept past a failure (which wipes the peer) for the
 * caller's log lines. */
static void keep_claim(kd3_session *s)
{
	if (s->cfg.role == KD3_ROLE_RESPONDER && !s->claim[0] && s->peer.peer_id[0])
		memcpy(s->claim, s->peer.peer_id, sizeof(s->claim));
}

static int after_input(kd3_session *s, int ret, const kd3_peer_out *out, kd3_writer *kw,
                       size_t frame_len);

/* An M1 the state machine refused. When our own settings refused it, the error text
 * says so in words an operator can act on (read from the frame before it is
 * consumed). */
static int refuse_m1(kd3_session *s, int err, const kd3_peer_out *out, kd3_writer *kw,
                     const uint8_t *frame, size_t len)
{
	char why[KD3_LIB_ERRTEXT_MAX] = "";
	char asked[256];
	kd3_frame f;
	kd3_m1 m1;

	if (kd3_frame_decode(frame, len, &f) == KD3_OK &&
	    kd3_m1_decode(f.body.p, f.body.len, &m1) == KD3_OK) {
		if (err == KD3_E_UNKNOWN_PRINCIPAL) {
			kd3_lib_printable(m1.id_r.p, m1.id_r.len, asked, sizeof(asked));
			kd3_lib_text(why, sizeof(why), "M1 is for responder '%s', we are '%s'",
			             asked, s->cfg.self);
		} else if (err == KD3_E_POLICY_DENIED) {
			kd3_lib_text(why, sizeof(why),
			             "the initiator did not ask for forward-secret mode");
		} else if (err == KD3_E_UNSUPPORTED) {
			kd3_lib_text(why, sizeof(why), "suite %s is not allowed here",
			             kd3_suite_name(m1.suite));
		}
	}
	int ret = after_input(s, err, out, kw, len);
	if (why[0] && s->err == err)
		memcpy(s->err_text, why, sizeof(why));
	return ret;
}

/* Whole frames already in rx, while nothing waits to be read and the output has room
 * for what a frame can make us write. */
static int take_frames(kd3_session *s)
{
	while (!s->held_len && !s->err && kd3_lib_tx_free(s) >= KD3_LIB_INPUT_ROOM) {
		uint8_t *frame = NULL;
		size_t len = 0;
		int got = kd3_stream_next(&s->rx, &frame, &len);

		if (got == 0)
			return KD3_OK;
		if (got < 0) {
			kd3_writer w;
			kd3_lib_note_not_kd3(s, s->rx.buf, s->rx.len);
			kd3_lib_tx_writer(s, &w);
			if (kd3_peer_close(&s->peer, (uint16_t)-got, "not a kd3 frame", &w) ==
			    KD3_OK)
				kd3_lib_tx_commit(s, &w, KD3_R_CLOSE);
			int err = session_fail(s, -got, NULL);
			kd3_lib_text(s->err_text, sizeof(s->err_text),
			             "%s: %s's bytes are not kd3 frames", kd3_strerror(err),
			             other_side(s, KD3_SRC_PEER));
			return err;
		}
		kd3_writer w, kw;
		kd3_peer_out out;
		memset(&out, 0, sizeof(out));
		kd3_lib_tx_writer(s, &w);
		kd3_wr_init(&kw, s->kdc_req, sizeof(s->kdc_req));
		out.to_peer = &w;
		out.to_kdc = &kw;
		kd3_lib_note_in_begin(s, frame, len);
		int ret = kd3_peer_input(&s->peer, KD3_SRC_PEER, frame, len, s->now_ms, &out);
		keep_claim(s);
		kd3_lib_note_in_end(s, ret, &out, 0);
		/* What it wrote: FINISHED for M4, else a CLOSE (a failure once established). */
		kd3_lib_tx_commit(s, &w,
		                  ret == KD3_OK && (out.events & KD3_EV_ESTABLISHED)
		                      ? KD3_R_FINISHED
		                      : KD3_R_CLOSE);
		if (ret != KD3_OK && frame[1] == KD3_T_M1)
			return refuse_m1(s, ret, &out, &kw, frame, len);
		if ((ret = after_input(s, ret, &out, &kw, len)) != KD3_OK)
			return ret;
	}
	return s->err;
}

int kd3_session_receive(kd3_session *s, const uint8_t *in, size_t len, size_t *used,
                        uint64_t now_ms)
{
	if (used)
		*used = 0;
	if (!s || !used || (!in && len))
		return KD3_E_ARG;
	if (s->err)
		return s->err;
	if (s->cfg.role == KD3_ROLE_INITIATOR && !s->begun)
		return KD3_E_STATE; /* kd3_session_start first */
	int ret = begin(s);
	if (ret != KD3_OK)
		return ret;
	s->now_ms = now_ms;
	if ((ret = check_expiry(s, now_ms)) != KD3_OK)
		return ret;
	for (;;) {
		if ((ret = take_frames(s)) != KD3_OK)
			return ret;
		if (s->held_len || *used == len || kd3_lib_tx_free(s) < KD3_LIB_INPUT_ROOM)
			return KD3_OK;
		size_t room = 0;
		uint8_t *space = kd3_stream_space(&s->rx, &room);
		if (room == 0)
			return KD3_OK; /* cannot happen: a full buffer holds a whole frame */
		size_t n = len - *used < room ? len - *used : room;
		memcpy(space, in + *used, n);
		kd3_stream_added(&s->rx, n);
		*used += n;
	}
}

/* ---- messages ----------------------------------------------------------------------- */

int kd3_session_read(kd3_session *s, uint8_t *buf, size_t cap, size_t *len)
{
	if (len)
		*len = 0;
	if (!s || !len || (!buf && cap))
		return KD3_E_ARG;
	/* Frames that came behind the last message are handled now, not when it was read:
	 * what they do (a CLOSE, a key update, an observer's note) comes after it. */
	if (!s->held_len && !s->err && s->begun)
		take_frames(s);
	if (s->held_len) {
		if (cap < s->held.len)
			return KD3_E_NO_SPACE;
		if (s->held.len)
			memcpy(buf, s->held.p, s->held.len);
		*len = s->held.len;
		kd3_wipe((uint8_t *)s->held.p, s->held.len);
		kd3_stream_consume(&s->rx, s->held_len);
		s->held_len = 0;
		s->held = (kd3_view){NULL, 0};
		return KD3_OK;
	}
	if (s->err)
		return s->err;
	if (s->peer_closed)
		return s->close_reason == KD3_CLOSE_NORMAL ? KD3_E_CLOSED : KD3_E_PEER_ERROR;
	return KD3_E_AGAIN;
}

/* The calls that send: an established session whose direction is still open. */
static int sendable(kd3_session *s, uint64_t now_ms)
{
	if (s->err)
		return s->err;
	if (!s->begun || s->peer.state != KD3_PS_ESTABLISHED)
		return s->begun && s->peer.state == KD3_PS_CLOSED ? KD3_E_CLOSED : KD3_E_STATE;
	if (s->peer.ch.tx.closed)
		return KD3_E_CLOSED;
	s->now_ms = now_ms;
	if (check_expiry(s, now_ms) != KD3_OK)
		return s->err;
	return kd3_lib_tx_free(s) < KD3_LIB_WRITE_ROOM ? KD3_E_AGAIN : KD3_OK;
}

int kd3_session_write(kd3_session *s, const uint8_t *msg, size_t len, uint64_t now_ms)
{
	kd3_writer w;

	if (!s || (!msg && len))
		return KD3_E_ARG;
	if (len > KD3_MESSAGE_MAX)
		return KD3_E_TOO_BIG;
	int ret = sendable(s, now_ms);
	if (ret != KD3_OK)
		return ret;
	kd3_lib_tx_writer(s, &w);
	ret = kd3_peer_send(&s->peer, msg ? msg : (const uint8_t *)"", len, now_ms, &w);
	kd3_lib_tx_commit(s, &w, KD3_R_DATA);
	return ret == KD3_OK ? KD3_OK : session_fail(s, ret, NULL);
}

int kd3_session_rekey(kd3_session *s, uint64_t now_ms)
{
	kd3_writer w;

	if (!s)
		return KD3_E_ARG;
	int ret = sendable(s, now_ms);
	if (ret != KD3_OK)
		return ret;
	kd3_lib_tx_writer(s, &w);
	ret = kd3_peer_rekey(&s->peer, now_ms, &w);
	kd3_lib_tx_commit(s, &w, KD3_R_KEY_UPDATE);
	return ret == KD3_OK ? KD3_OK : session_fail(s, ret, NULL);
}

int kd3_session_output(kd3_session *s, uint8_t *out, size_t cap, size_t *len)
{
	if (len)
		*len = 0;
	if (!s || !len || (!out && cap))
		return KD3_E_ARG;
	size_t n = s->tx_len - s->tx_off;
	if (n > cap)
		n = cap;
	if (n) {
		memcpy(out, s->tx + s->tx_off, n);
		s->tx_off += n;
	}
	if (s->tx_off == s->tx_len)
		s->tx_off = s->tx_len = 0;
	*len = n;
	return KD3_OK;
}

size_t kd3_session_output_pending(const kd3_session *s)
{
	return s ? s->tx_len - s->tx_off : 0;
}

/* ---- ending ------------------------------------------------------------------------- */

static int close_with(kd3_session *s, uint16_t code, const char *text)
{
	kd3_writer w;

	if (s->err)
		return s->err == KD3_E_CLOSED ? KD3_OK : s->err;
	/* A responder's peer connected: it is told why, even before its first byte. */
	if (!s->begun && s->cfg.role == KD3_ROLE_RESPONDER && begin(s) != KD3_OK)
		return s->err;
	if (!s->begun || (s->cfg.role == KD3_ROLE_INITIATOR && s->peer.state == KD3_PS_START)) {
		s->err = KD3_E_CLOSED; /* nothing was sent: nothing to tell */
		kd3_lib_text(s->err_text, sizeof(s->err_text), "closed before it began");
		return KD3_OK;
	}
	if (kd3_lib_tx_free(s) < KD3_LIB_INPUT_ROOM)
		return KD3_E_AGAIN;
	int was_established = s->peer.state == KD3_PS_ESTABLISHED;
	kd3_lib_tx_writer(s, &w);
	int ret = kd3_peer_close(&s->peer, code, text, &w);
	kd3_lib_tx_commit(s, &w, KD3_R_CLOSE);
	if (ret == KD3_OK && was_established)
		kd3_lib_note_close_out(s, code, text);
	if (!was_established && s->peer.state == KD3_PS_FAILED) {
		s->err = KD3_E_CLOSED; /* an ERROR told the peer: the exchange is off */
		kd3_lib_text(s->err_text, sizeof(s->err_text), "closed during the handshake");
		kd3_peer_free(&s->peer);
		return ret;
	}
	return ret == KD3_OK ? KD3_OK : session_fail(s, ret, NULL);
}

int kd3_session_close(kd3_session *s)
{
	return s ? close_with(s, KD3_CLOSE_NORMAL, "bye") : KD3_E_ARG;
}

int kd3_session_close_reason(kd3_session *s, int code, const char *text)
{
	char said[256];

	if (!s || code < 0 || code > 0xffff)
		return KD3_E_ARG;
	/* The peer is told these words: printable, at most what a CLOSE carries. */
	kd3_lib_printable((const uint8_t *)(text ? text : ""), text ? strnlen(text, 255) : 0, said,
	                  sizeof(said));
	return close_with(s, (uint16_t)code, code == KD3_OK && !text ? "bye" : said);
}

int kd3_session_eof(kd3_session *s)
{
	if (!s)
		return KD3_E_ARG;
	if (s->err)
		return s->err;
	if (!s->begun)
		return session_fail(s, KD3_E_TRUNCATED, NULL);
	int ret = kd3_peer_eof(&s->peer);
	return ret == KD3_OK ? KD3_OK : session_fail(s, ret, NULL);
}

/* ---- what the caller may ask -------------------------------------------------------- */

kd3_state kd3_session_state(const kd3_session *s)
{
	if (!s)
		return KD3_STATE_FAILED;
	if (s->err == KD3_E_CLOSED)
		return KD3_STATE_CLOSED;
	if (s->err)
		return KD3_STATE_FAILED;
	if (!s->begun)
		return KD3_STATE_HANDSHAKE;
	switch (s->peer.state) {
	case KD3_PS_ESTABLISHED:
		return KD3_STATE_ESTABLISHED;
	case KD3_PS_CLOSED:
		return KD3_STATE_CLOSED;
	case KD3_PS_FAILED:
		return KD3_STATE_FAILED;
	default:
		return KD3_STATE_HANDSHAKE;
	}
}

/* The peer ended the session with a reason other than normal. */
static int closed_abnormally(const kd3_session *s)
{
	return s->peer_closed && s->close_reason != KD3_CLOSE_NORMAL;
}

int kd3_session_error(const kd3_session *s)
{
	if (!s)
		return KD3_E_ARG;
	if (s->err == KD3_OK || s->err == KD3_E_CLOSED)
		return closed_abnormally(s) ? KD3_E_PEER_ERROR : KD3_OK;
	return s->err;
}

const char *kd3_session_error_text(const kd3_session *s)
{
	if (!s)
		return "";
	if (s->err == KD3_OK || s->err == KD3_E_CLOSED)
		return closed_abnormally(s) ? s->close_text : "";
	return s->err_text;
}

static int keyed(const kd3_session *s)
{
	return s && s->begun &&
	       (s->peer.state == KD3_PS_ESTABLISHED || s->peer.state == KD3_PS_CLOSED);
}

const char *kd3_session_peer_claim(const kd3_session *s)
{
	return s && s->claim[0] ? s->claim : NULL;
}

const char *kd3_session_peer(const kd3_session *s)
{
	return keyed(s) ? s->peer.peer_id : NULL;
}

int kd3_session_suite(const kd3_session *s)
{
	return keyed(s) ? s->peer.suite : 0;
}

int kd3_session_forward_secret(const kd3_session *s)
{
	return keyed(s) ? s->peer.fs : 0;
}

int kd3_session_stats(const kd3_session *s, kd3_stats *st)
{
	if (!s || !st)
		return KD3_E_ARG;
	memset(st, 0, sizeof(*st));
	if (!keyed(s) || s->err)
		return KD3_E_STATE;
	const kd3_direction *tx = &s->peer.ch.tx, *rx = &s->peer.ch.rx;
	st->sent_records = tx->records;
	st->sent_bytes = tx->bytes;
	st->sent_generation = tx->generation;
	st->sent_key_records = tx->key_records;
	st->sent_closed = tx->closed;
	st->received_records = rx->records;
	st->received_bytes = rx->bytes;
	st->received_generation = rx->generation;
	st->received_key_records = rx->key_records;
	st->received_closed = rx->closed;
	st->lifetime_s = s->peer.lifetime;
	st->expires_ms = s->peer.expires_ms;
	return KD3_OK;
}
