/* kdc request: one frame through the sans-I/O handler, with its trace and log line.
 * The log line names the peer, both principals (made printable), both kvnos, the
 * outcome and the handling time; never a key. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "events.h"
#include "log.h"
#include "schedule.h"
#include "trace.h"
#include "transcript.h"
#include "worker.h"

static void safe_name(const uint8_t *p, size_t len, char out[256])
{
	if (!p || len == 0) {
		snprintf(out, 256, "-");
		return;
	}
	kd3_log_safe_name(p, len, out);
}

static const char *outcome_name(int err)
{
	if (err == KD3_OK)
		return "OK";
	return kd3_err_is_wire(err) ? kd3_err_wire_name(err) : kd3_strerror(err);
}

static void request_log(const char *transport, const kd3_addr *peer, const kd3_kdc_result *res,
                        uint64_t us)
{
	char addr[64], id_i[256], id_r[256];

	kd3_addr_format(peer, addr, sizeof(addr));
	safe_name(res->id_i, res->id_i_len, id_i);
	safe_name(res->id_r, res->id_r_len, id_r);
	kd3_log_info("%s %s %s -> %s kvno %u/%u %s%s%s%s%s%s %lluus", transport, addr, id_i, id_r,
	             (unsigned)res->kvno_i, (unsigned)res->kvno_r, outcome_name(res->err),
	             res->detail ? " (" : "", res->detail ? res->detail : "",
	             res->detail ? ")" : "", res->from_cache ? " cached" : "",
	             res->reply ? "" : " no-reply", (unsigned long long)us);
}

/* --transcript: the request, its verdict (with SK under --reveal-keys), the reply. */
static void request_transcript(kdc_worker *w, const char *transport, const kd3_addr *peer,
                               const uint8_t *in, size_t in_len, const uint8_t *out, size_t out_len,
                               const kd3_kdc_result *res)
{
	static atomic_uint_fast64_t requests;
	kd3_transcript *t = w->cfg->transcript;
	uint64_t n = atomic_fetch_add(&requests, 1) + 1;
	uint8_t sk[KD3_KEY_LEN];
	int have_sk = 0;
	char addr[64];

	kd3_addr_format(peer, addr, sizeof(addr));
	kd3_tframe fr = {.session = n,
	                 .dir = "R->KDC",
	                 .p = in,
	                 .len = in_len,
	                 .inner = -1,
	                 .generation = -1,
	                 .address = addr,
	                 .transport = transport};
	kd3_transcript_frame(t, &fr);
	if (t->reveal_keys && res->err == KD3_OK && res->have_th)
		have_sk =
		    kd3_derive_sk(&w->crypto, w->kdc->cfg.realm_secret, res->th, sk) == KD3_OK;
	kd3_transcript_kdc(t, n, kd3_events_err_name(res->err), res->have_th ? res->th : NULL,
	                   have_sk ? sk : NULL);
	kd3_wipe(sk, sizeof(sk));
	if (out_len > 0) {
		fr.dir = "KDC->R", fr.p = out, fr.len = out_len;
		kd3_transcript_frame(t, &fr);
	}
}

int kdc_request(kdc_worker *w, const char *transport, const kd3_addr *peer, const uint8_t *in,
                size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
	kd3_kdc_result res;

	if (kd3_trace_enabled())
		kd3_trace_frame("R->KDC", in, in_len, 0, -1);
	uint64_t start = kd3_now_us();
	kd3_kdc_handle(w->kdc, in, in_len, start / 1000, out, out_cap, out_len, &res);
	uint64_t took = kd3_now_us() - start;
	int send = res.reply && *out_len > 0;
	if (send && kd3_trace_enabled())
		kd3_trace_frame("KDC->R", out, *out_len, 0, -1);
	if (w->cfg->log_requests)
		request_log(transport, peer, &res, took);
	if (kd3_transcript_on(w->cfg->transcript))
		request_transcript(w, transport, peer, in, in_len, out, send ? *out_len : 0, &res);
	return send;
}

void kdc_request_refused(kdc_worker *w, const char *transport, const kd3_addr *peer,
                         const char *why, int replied)
{
	char addr[64];
	if (!w->cfg->log_requests)
		return;
	kd3_addr_format(peer, addr, sizeof(addr));
	kd3_log_info("%s %s - -> - kvno 0/0 MALFORMED (%s)%s", transport, addr, why,
	             replied ? "" : " no-reply");
}
