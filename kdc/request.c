/* kdc request: one frame through the sans-I/O handler, with its trace and log line.
 * The log line names the peer, both principals (made printable), both kvnos, the
 * outcome and the handling time; never a key. */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "trace.h"
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
