#include "fuzz_world.h"

#include <string.h>

#include "err.h"

static const char data_from_r[] = "hello from the responder";
static const char data_from_i[] = "hello from the initiator";

int fw_init(fw_world *f, uint8_t suite, uint8_t fs)
{
	h_inputs in;
	h_inputs_default(&in, suite, fs);
	f->pending_len = 0;
	f->nlog = 0;
	return h_world_init(&f->w, &in);
}

void fw_free(fw_world *f)
{
	h_world_free(&f->w);
}

static kd3_peer *party(fw_world *f, fw_party who)
{
	return who == FW_I ? &f->w.ini : &f->w.resp;
}

/* Keeps what a call wrote as the next frame to deliver (one frame per step). */
static int keep(fw_world *f, const kd3_writer *w)
{
	if (w->err != KD3_OK || w->len > sizeof(f->pending))
		return KD3_E_NO_SPACE;
	memcpy(f->pending, w->p, w->len);
	f->pending_len = w->len;
	return KD3_OK;
}

static void log_frame(fw_world *f, int step, fw_party to, kd3_source src)
{
	if (f->nlog == sizeof(f->log) / sizeof(f->log[0]))
		return;
	fw_frame *fr = &f->log[f->nlog++];
	fr->step = step;
	fr->to = to;
	fr->src = src;
	fr->len = f->pending_len;
	memcpy(fr->bytes, f->pending, f->pending_len);
}

/* Delivers the pending frame to a peer; what it writes becomes the pending frame. */
static int deliver(fw_world *f, int step, fw_party to, kd3_source src)
{
	static uint8_t work[FW_FRAME_CAP], to_peer[FW_FRAME_CAP], to_kdc[FW_FRAME_CAP];
	kd3_writer wp, wk;
	kd3_peer_out out;

	log_frame(f, step, to, src);
	memcpy(work, f->pending, f->pending_len); /* records are opened in place */
	kd3_wr_init(&wp, to_peer, sizeof(to_peer));
	kd3_wr_init(&wk, to_kdc, sizeof(to_kdc));
	memset(&out, 0, sizeof(out));
	out.to_peer = &wp;
	out.to_kdc = &wk;
	int ret = kd3_peer_input(party(f, to), src, work, f->pending_len, 0, &out);
	if (ret == KD3_OK)
		ret = keep(f, wk.len ? &wk : &wp);
	return ret;
}

static int kdc_step(fw_world *f, int step)
{
	uint8_t reply[KD3_HDR_LEN + KD3_ERROR_BODY_MAX];
	size_t n = 0;
	kd3_kdc_result res;

	log_frame(f, step, FW_KDC, KD3_SRC_PEER);
	int ret = kd3_kdc_handle(&f->w.kdc, f->pending, f->pending_len, 0, reply, sizeof(reply), &n,
	                         &res);
	if (ret != KD3_OK)
		return ret;
	memcpy(f->pending, reply, n);
	f->pending_len = n;
	return KD3_OK;
}

/* An action by one peer that writes a frame, then its delivery to the other. */
enum action { ACT_START, ACT_SEND, ACT_REKEY, ACT_CLOSE };

static int act(fw_world *f, int step, fw_party who, enum action a)
{
	static uint8_t buf[FW_FRAME_CAP];
	kd3_writer w;
	kd3_peer *p = party(f, who);
	const char *msg = who == FW_I ? data_from_i : data_from_r;
	int ret;

	kd3_wr_init(&w, buf, sizeof(buf));
	switch (a) {
	case ACT_START:
		ret = kd3_peer_start(p, &w);
		break;
	case ACT_SEND:
		ret = kd3_peer_send(p, (const uint8_t *)msg, strlen(msg), 0, &w);
		break;
	case ACT_REKEY:
		ret = kd3_peer_rekey(p, 0, &w);
		break;
	default:
		ret = kd3_peer_close(p, KD3_CLOSE_NORMAL, "done", &w);
		break;
	}
	if (ret == KD3_OK)
		ret = keep(f, &w);
	if (ret == KD3_OK && a != ACT_START)
		ret = deliver(f, step, who == FW_I ? FW_R : FW_I, KD3_SRC_PEER);
	return ret;
}

static int fw_step(fw_world *f, int step)
{
	switch (step) {
	case 1:
		return act(f, step, FW_I, ACT_START);
	case 2:
		return deliver(f, step, FW_R, KD3_SRC_PEER);
	case 3:
		return kdc_step(f, step);
	case 4:
		return deliver(f, step, FW_R, KD3_SRC_KDC);
	case 5:
		return deliver(f, step, FW_I, KD3_SRC_PEER);
	case 6:
		return deliver(f, step, FW_R, KD3_SRC_PEER);
	case 7:
		return act(f, step, FW_R, ACT_SEND);
	case 8:
		return act(f, step, FW_I, ACT_SEND);
	case 9:
		return act(f, step, FW_R, ACT_REKEY);
	case 10:
		return act(f, step, FW_I, ACT_REKEY);
	case 11:
		return act(f, step, FW_I, ACT_CLOSE);
	case 12:
		return act(f, step, FW_R, ACT_CLOSE);
	default:
		return KD3_E_USAGE;
	}
}

int fw_run_to(fw_world *f, int stop)
{
	for (int step = 1; step <= stop; step++) {
		int ret = fw_step(f, step);
		if (ret != KD3_OK)
			return ret;
	}
	return KD3_OK;
}
