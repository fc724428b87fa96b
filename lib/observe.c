/* libkd3: a session's activity told to its observer (kd3_session_set_observer), as
 * kd3_note values: each frame out or in, the session established, key updates,
 * CLOSEs and ERRORs. Nothing here runs unless an observer is set. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "lib.h"
#include "msg.h"

static void drop_copy(kd3_session *s)
{
	if (!s->watch_copy)
		return;
	kd3_wipe(s->watch_copy, KD3_FRAME_MAX);
	free(s->watch_copy);
	s->watch_copy = NULL;
}

int kd3_session_set_observer(kd3_session *s, kd3_observer fn, void *ctx)
{
	if (!s)
		return KD3_E_ARG;
	if (s->begun || s->err)
		return KD3_E_STATE;
	if (fn && !s->watch_no_bytes && !s->watch_copy && !(s->watch_copy = malloc(KD3_FRAME_MAX)))
		return KD3_E_NOMEM;
	if (!fn)
		drop_copy(s);
	s->observer = fn;
	s->observer_ctx = ctx;
	if (!fn)
		s->cfg.reveal_keys = 0;
	return KD3_OK;
}

int kd3_session_set_observe_bytes(kd3_session *s, int on)
{
	if (!s)
		return KD3_E_ARG;
	if (s->begun || s->err)
		return KD3_E_STATE;
	s->watch_no_bytes = !on;
	if (!on)
		drop_copy(s);
	else if (s->observer && !s->watch_copy && !(s->watch_copy = malloc(KD3_FRAME_MAX)))
		return KD3_E_NOMEM;
	return KD3_OK;
}

void kd3_lib_observer_free(kd3_session *s)
{
	drop_copy(s);
}

int kd3_session_set_reveal_keys(kd3_session *s, int on)
{
	if (!s)
		return KD3_E_ARG;
	if (s->begun || s->err)
		return KD3_E_STATE;
	if (on && !s->observer)
		return KD3_E_STATE; /* secrets only ever go to an observer */
	s->cfg.reveal_keys = on ? 1 : 0;
	return KD3_OK;
}

static kd3_note note_new(kd3_note_kind kind, int sent)
{
	kd3_note n;
	memset(&n, 0, sizeof(n));
	n.kind = kind;
	n.sent = sent;
	n.inner = -1;
	n.generation = -1;
	return n;
}

static void tell(kd3_session *s, const kd3_note *n)
{
	s->observer(s->observer_ctx, n);
}

/* ---- keys, for a teaching transcript ------------------------------------------------- */

typedef struct revealed_dir {
	uint8_t key[KD3_KEY_LEN], iv[KD3_IV_LEN];
} revealed_dir;

/* One direction's secrets into n (only with reveal_keys); the caller wipes out. */
static void reveal_dir(kd3_session *s, kd3_note *n, int tx, revealed_dir *out)
{
	const kd3_direction *d = tx ? &s->peer.ch.tx : &s->peer.ch.rx;

	if (!s->cfg.reveal_keys ||
	    kd3_traffic_key_iv(&s->crypto, d->ts, out->key, out->iv) != KD3_OK)
		return;
	if (tx) {
		n->tx_secret = d->ts;
		n->tx_key = out->key;
		n->tx_iv = out->iv;
	} else {
		n->rx_secret = d->ts;
		n->rx_key = out->key;
		n->rx_iv = out->iv;
	}
}

static void key_update(kd3_session *s, int sent)
{
	kd3_note n = note_new(KD3_NOTE_KEY_UPDATE, sent);
	revealed_dir r;

	n.generation = sent ? s->peer.ch.tx.generation : s->peer.ch.rx.generation;
	reveal_dir(s, &n, sent, &r);
	tell(s, &n);
	kd3_wipe(&r, sizeof(r));
}

static void established(kd3_session *s)
{
	kd3_note n = note_new(KD3_NOTE_ESTABLISHED, 0);
	revealed_dir tx, rx;
	const kd3_peer *p = &s->peer;

	n.generation = 0;
	n.peer = p->peer_id;
	n.suite = p->suite;
	n.forward_secret = p->fs;
	n.kvno = p->kvno_used;
	n.lifetime_s = p->lifetime;
	n.th = p->th;
	if (s->cfg.reveal_keys && p->revealed.have) {
		n.sk = p->revealed.sk;
		n.dh = p->revealed.have_dh ? p->revealed.dh : NULL;
	}
	reveal_dir(s, &n, 1, &tx);
	reveal_dir(s, &n, 0, &rx);
	tell(s, &n);
	kd3_wipe(&tx, sizeof(tx));
	kd3_wipe(&rx, sizeof(rx));
	kd3_peer_forget_revealed(&s->peer); /* told once, then gone */
}

/* ---- frames ------------------------------------------------------------------------- */

/* Frames a call wrote (p[len], whole frames): each record's inner type is last_inner
 * for the last one and KEY_UPDATE for any before it (kd3_peer_send puts one first), and
 * its generation counts back from the current one by the KEY_UPDATEs among them. */
void kd3_lib_note_frames_out(kd3_session *s, const uint8_t *p, size_t len, int last_inner, int kdc)
{
	long updates = 0;

	if (!s->observer || len == 0)
		return;
	for (size_t off = 0; off < len;) {
		long n = kd3_frame_size(p + off, len - off);
		if (n <= 0 || (size_t)n > len - off)
			break;
		int last = off + (size_t)n == len;
		if (p[off + 1] == KD3_T_RECORD &&
		    (last ? last_inner == KD3_R_KEY_UPDATE : last_inner >= 0))
			updates++;
		off += (size_t)n;
	}
	long generation = (long)s->peer.ch.tx.generation - updates;
	for (size_t off = 0; off < len;) {
		long n = kd3_frame_size(p + off, len - off);
		if (n <= 0 || (size_t)n > len - off)
			return;
		kd3_note fr = note_new(KD3_NOTE_FRAME, 1);
		int record = p[off + 1] == KD3_T_RECORD;
		int last = off + (size_t)n == len;
		fr.kdc = kdc;
		fr.bytes = p + off;
		fr.len = (size_t)n;
		if (record) {
			fr.inner = last ? last_inner : (last_inner >= 0 ? KD3_R_KEY_UPDATE : -1);
			fr.generation = generation;
		}
		tell(s, &fr);
		if (record && fr.inner == KD3_R_KEY_UPDATE) {
			generation++;
			key_update(s, 1);
		}
		off += (size_t)n;
	}
}

void kd3_lib_note_in_begin(kd3_session *s, const uint8_t *frame, size_t len)
{
	if (!s->observer)
		return;
	if (len && s->watch_copy)
		memcpy(s->watch_copy, frame, len); /* records are opened in place */
	s->watch_type = len > 1 ? frame[1] : 0;
	s->watch_len = len;
	s->watch_generation = s->peer.ch.rx.generation;
}

static void error_in(kd3_session *s, const kd3_peer_out *out, int kdc)
{
	char said[256];
	kd3_note n = note_new(KD3_NOTE_ERROR, 0);

	kd3_lib_printable(out->peer_error_text.p, out->peer_error_text.len, said, sizeof(said));
	n.kdc = kdc;
	n.code = out->peer_error;
	n.text = said;
	tell(s, &n);
}

static void close_in(kd3_session *s, const kd3_peer_out *out)
{
	char said[256];
	kd3_note n = note_new(KD3_NOTE_CLOSE, 0);

	kd3_lib_printable(out->close_text.p, out->close_text.len, said, sizeof(said));
	n.code = out->close_reason;
	n.text = said;
	tell(s, &n);
}

/* The frame kd3_lib_note_in_begin kept, and what it did. Called before the frames it
 * made us write are noted (the order of a trace: M4 in, established, FINISHED out). */
void kd3_lib_note_in_end(kd3_session *s, int ret, const kd3_peer_out *out, int kdc)
{
	if (!s->observer)
		return;
	kd3_note fr = note_new(KD3_NOTE_FRAME, 0);
	int record = s->watch_len > 1 && s->watch_type == KD3_T_RECORD;
	fr.kdc = kdc;
	fr.bytes = s->watch_copy; /* NULL without the bytes */
	fr.len = s->watch_len;
	if (record) {
		fr.inner = ret == KD3_OK && out->inner ? out->inner : -1;
		fr.generation = s->watch_generation;
	}
	tell(s, &fr);
	if (s->watch_copy)
		kd3_wipe(s->watch_copy, s->watch_len);
	s->watch_len = 0;
	if (ret == KD3_E_PEER_ERROR)
		error_in(s, out, kdc);
	if (ret != KD3_OK)
		return;
	if (out->events & KD3_EV_ESTABLISHED)
		established(s);
	if (out->events & KD3_EV_KEY_UPDATE)
		key_update(s, 0);
	if (out->events & KD3_EV_PEER_CLOSED)
		close_in(s, out);
}

void kd3_lib_note_not_kd3(kd3_session *s, const uint8_t *p, size_t len)
{
	if (!s->observer)
		return;
	kd3_note fr = note_new(KD3_NOTE_FRAME, 0);
	fr.bytes = s->watch_no_bytes ? NULL : p;
	fr.len = len;
	tell(s, &fr);
}

void kd3_lib_note_close_out(kd3_session *s, unsigned reason, const char *text)
{
	if (!s->observer)
		return;
	kd3_note n = note_new(KD3_NOTE_CLOSE, 1);
	n.code = reason;
	n.text = text;
	tell(s, &n);
}
