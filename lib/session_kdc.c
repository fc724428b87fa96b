/* libkd3 sessions, the responder's side of the KDC: message 2 out (the same bytes on
 * every retransmission), message 3 or the KDC's ERROR in. */
#include <string.h>

#include "err.h"
#include "lib.h"
#include "msg.h"

static int waiting_for_kdc(const kd3_session *s)
{
	return s->cfg.role == KD3_ROLE_RESPONDER && s->begun && s->peer.state == KD3_PS_WAIT_M3;
}

int kd3_session_kdc_request(kd3_session *s, uint8_t *out, size_t cap, size_t *len)
{
	if (len)
		*len = 0;
	if (!s || !out || !len)
		return KD3_E_ARG;
	if (s->cfg.role != KD3_ROLE_RESPONDER)
		return KD3_E_STATE;
	if (s->err)
		return s->err;
	if (!waiting_for_kdc(s) || s->kdc_req_len == 0)
		return KD3_E_AGAIN;
	if (cap < s->kdc_req_len)
		return KD3_E_NO_SPACE;
	memcpy(out, s->kdc_req, s->kdc_req_len);
	*len = s->kdc_req_len;
	return KD3_OK;
}

/* Only an M3 for this exchange's n_r, or a well-formed ERROR, is an answer: anything
 * else (a stray datagram, a late answer to another exchange, a forgery without n_r)
 * must not end the exchange. n_r is public: it went out in M2. */
static int answers_us(const kd3_session *s, const uint8_t *reply, size_t len)
{
	kd3_frame f;
	kd3_m3 m3;
	kd3_error_msg e;

	if (kd3_frame_decode(reply, len, &f) != KD3_OK)
		return 0;
	if (f.type == KD3_T_ERROR)
		return kd3_error_decode(f.body.p, f.body.len, &e) == KD3_OK;
	return f.type == KD3_T_M3 && kd3_m3_decode(f.body.p, f.body.len, &m3) == KD3_OK &&
	       memcmp(m3.n_r, s->peer.n_r, KD3_NONCE_LEN) == 0;
}

int kd3_session_kdc_check(const kd3_session *s, const uint8_t *reply, size_t len, unsigned *code)
{
	kd3_frame f;
	kd3_error_msg e;

	if (code)
		*code = 0;
	if (!s || (!reply && len))
		return KD3_E_ARG;
	if (s->err)
		return s->err;
	if (!waiting_for_kdc(s))
		return KD3_E_STATE;
	if (len > sizeof(s->kdc_reply))
		return KD3_E_TOO_BIG;
	if (!answers_us(s, reply, len))
		return KD3_E_UNEXPECTED;
	if (kd3_frame_decode(reply, len, &f) == KD3_OK && f.type == KD3_T_ERROR &&
	    kd3_error_decode(f.body.p, f.body.len, &e) == KD3_OK) {
		if (code)
			*code = e.code;
		return KD3_E_PEER_ERROR;
	}
	return KD3_OK;
}

int kd3_session_kdc_reply(kd3_session *s, const uint8_t *reply, size_t len, uint64_t now_ms)
{
	kd3_writer w;
	kd3_peer_out out;

	if (!s || (!reply && len))
		return KD3_E_ARG;
	if (s->err)
		return s->err;
	if (!waiting_for_kdc(s))
		return KD3_E_STATE;
	if (len > sizeof(s->kdc_reply))
		return KD3_E_TOO_BIG;
	if (!answers_us(s, reply, len))
		return KD3_E_UNEXPECTED; /* ignored: the session still waits for the KDC */
	if (kd3_lib_tx_free(s) < KD3_LIB_INPUT_ROOM)
		return KD3_E_AGAIN; /* take the output first */
	if (len)
		memcpy(s->kdc_reply, reply, len);
	kd3_lib_tx_writer(s, &w);
	memset(&out, 0, sizeof(out));
	out.to_peer = &w;
	s->now_ms = now_ms;
	kd3_lib_note_in_begin(s, reply, len);
	int ret = kd3_peer_input(&s->peer, KD3_SRC_KDC, s->kdc_reply, len, now_ms, &out);
	kd3_lib_note_in_end(s, ret, &out, 1);
	kd3_lib_tx_commit(s, &w, -1); /* M4, or an ERROR for the initiator */
	if (ret != KD3_OK)            /* before the wipe: an ERROR's text is in the reply */
		ret = kd3_lib_fail(s, ret, &out, KD3_SRC_KDC);
	kd3_wipe(s->kdc_reply, len);
	if (ret != KD3_OK)
		return ret;
	s->kdc_req_len = 0;
	return KD3_OK;
}

int kd3_session_kdc_failed(kd3_session *s)
{
	kd3_writer w;

	if (!s)
		return KD3_E_ARG;
	if (s->err)
		return s->err;
	if (!waiting_for_kdc(s))
		return KD3_E_STATE;
	kd3_lib_tx_writer(s, &w);
	kd3_peer_kdc_failed(&s->peer, KD3_E_NO_KDC, &w);
	kd3_lib_tx_commit(s, &w, -1);
	kd3_lib_fail(s, KD3_E_NO_KDC, NULL, KD3_SRC_PEER); /* "no KDC answered" */
	return KD3_OK;
}
