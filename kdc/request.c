/* kdc request: one frame through the per-source rate limit, the lockout check, the
 * sans-I/O handler (whose policy hook is kdc_request_policy), the lockout count, its
 * trace and log line, and for an M3 both principals' last use (kdc/usage.h). The log
 * line names the peer, both principals (made printable), both kvnos, the outcome and
 * the handling time; never a key. Nothing here allocates or touches the disk: the log
 * line is built on the stack and joins the worker's batch of lines (shared/log.h),
 * written before the worker next waits. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "events.h"
#include "log.h"
#include "msg.h"
#include "schedule.h"
#include "trace.h"
#include "transcript.h"
#include "worker.h"

#define BUSY_LINES_PER_SECOND 10 /* rate-limited requests logged one by one, per worker */
#define DETAIL_MAX            160

/* What the request says about itself, read before the handler runs (the handler reads
 * it again: decoding costs far less than the checks that follow). */
struct early {
	int parsed; /* an M2 that decodes */
	kd3_m2 m2;
};

static void early_parse(const uint8_t *in, size_t in_len, struct early *e)
{
	kd3_frame f;
	memset(e, 0, sizeof(*e));
	e->parsed = kd3_frame_decode(in, in_len, &f) == KD3_OK && f.type == KD3_T_M2 &&
	            kd3_m2_decode(f.body.p, f.body.len, &e->m2) == KD3_OK;
}

/* The handler answers only an M2 at least as long as the shortest one whose length
 * field is right (kdc_core.h): refusals made here follow the same rule. */
static int worth_an_answer(const uint8_t *in, size_t in_len)
{
	return in_len >= KD3_M2_FRAME_MIN && in[1] == KD3_T_M2 &&
	       kd3_get_u16(in + 2) == in_len - KD3_HDR_LEN;
}

/* An ERROR never longer than the request it answers; 0 when none may be sent. */
static size_t refusal_encode(int code, const char *text, const uint8_t *in, size_t in_len,
                             uint8_t *out, size_t out_cap)
{
	kd3_writer w;
	char cut[128];
	if (!worth_an_answer(in, in_len))
		return 0;
	size_t room = in_len - (KD3_HDR_LEN + 2 + 1);
	snprintf(cut, sizeof(cut) < room + 1 ? sizeof(cut) : room + 1, "%s", text);
	kd3_wr_init(&w, out, out_cap);
	return kd3_error_encode(&w, (uint16_t)code, cut) == KD3_OK ? w.len : 0;
}

/* A result for a request refused before the handler, for the same log line. */
static void refusal_result(const struct early *e, int code, const char *detail, size_t reply_len,
                           kd3_kdc_result *res)
{
	memset(res, 0, sizeof(*res));
	res->err = code;
	res->detail = detail;
	res->reply = reply_len > 0;
	if (!e->parsed)
		return;
	res->id_i = e->m2.m1.id_i.p;
	res->id_i_len = e->m2.m1.id_i.len;
	res->id_r = e->m2.m1.id_r.p;
	res->id_r_len = e->m2.m1.id_r.len;
	res->kvno_i = e->m2.m1.kvno_i;
	res->kvno_r = e->m2.kvno_r;
}

/* ---- the log line ------------------------------------------------------------------ */

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

/* The failed check: the handler's, or the policy hook's reason and rule. */
static void request_detail(const kdc_worker *w, const kd3_kdc_result *res, char out[DETAIL_MAX])
{
	const kdc_verdict *v = &w->rq.verdict;
	out[0] = '\0';
	if (res->err == KD3_E_POLICY_DENIED && w->rq.hook_ran && v->err != KD3_OK)
		snprintf(out, DETAIL_MAX, "%s: %s", v->why, v->rule ? v->rule->label : "default");
	else if (res->detail)
		snprintf(out, DETAIL_MAX, "%s", res->detail);
}

/* A JSON object's members, built on the stack; never past its end. */
struct jbuf {
	char p[2048];
	size_t at;
};

static void j_raw(struct jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void j_raw(struct jbuf *j, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(j->p + j->at, sizeof(j->p) - j->at, fmt, ap);
	va_end(ap);
	if (n > 0)
		j->at = j->at + (size_t)n < sizeof(j->p) ? j->at + (size_t)n : sizeof(j->p) - 1;
}

/* ,"name":"value" (escaped), or ,"name":null */
static void j_str(struct jbuf *j, const char *name, const char *value)
{
	j_raw(j, ",\"%s\":", name);
	if (value)
		kd3_log_json_str(j->p, sizeof(j->p), &j->at, value);
	else
		j_raw(j, "null");
}

/* The parts of a request's log line, printable already. */
struct line_parts {
	const char *transport;
	char addr[64], id_i[256], id_r[256], detail[DETAIL_MAX];
};

static void request_log_json(const struct line_parts *l, const kd3_kdc_result *res, uint64_t us,
                             struct jbuf *j)
{
	j->at = 0;
	j_raw(j, "\"event\":\"request\"");
	j_str(j, "transport", l->transport);
	j_str(j, "peer", l->addr);
	j_str(j, "id_i", res->id_i ? l->id_i : NULL);
	j_str(j, "id_r", res->id_r ? l->id_r : NULL);
	j_raw(j, ",\"kvno_i\":%u,\"kvno_r\":%u", (unsigned)res->kvno_i, (unsigned)res->kvno_r);
	j_str(j, "outcome", outcome_name(res->err));
	j_raw(j, ",\"code\":%d", res->err);
	j_str(j, "detail", l->detail[0] ? l->detail : NULL);
	j_raw(j, ",\"cached\":%s,\"replied\":%s,\"us\":%llu", res->from_cache ? "true" : "false",
	      res->reply ? "true" : "false", (unsigned long long)us);
}

static void request_log(const kdc_worker *w, const char *transport, const kd3_addr *peer,
                        const kd3_kdc_result *res, uint64_t us)
{
	struct line_parts l;
	struct jbuf json;
	char text[1024];

	l.transport = transport;
	kd3_addr_format(peer, l.addr, sizeof(l.addr));
	safe_name(res->id_i, res->id_i_len, l.id_i);
	safe_name(res->id_r, res->id_r_len, l.id_r);
	request_detail(w, res, l.detail);
	snprintf(text, sizeof(text), "%s %s %s -> %s kvno %u/%u %s%s%s%s%s%s %lluus", transport,
	         l.addr, l.id_i, l.id_r, (unsigned)res->kvno_i, (unsigned)res->kvno_r,
	         outcome_name(res->err), l.detail[0] ? " (" : "", l.detail, l.detail[0] ? ")" : "",
	         res->from_cache ? " cached" : "", res->reply ? "" : " no-reply",
	         (unsigned long long)us);
	json.p[0] = '\0';
	if (kd3_log_json_on()) /* the members cost as much again as the text */
		request_log_json(&l, res, us, &json);
	kd3_log_event(text, json.p);
}

/* Rate-limited refusals could flood the log: a few a second one by one, the rest
 * counted in one line. */
static int busy_log_allowed(kdc_worker *w, uint64_t now_ms)
{
	uint64_t second = now_ms / 1000u;
	if (second != w->busy_log_second) {
		if (w->busy_unlogged)
			kd3_log_info(
			    "worker %u: %u more requests over the rate limit answered BUSY, "
			    "not logged one by one",
			    w->id, w->busy_unlogged);
		w->busy_log_second = second;
		w->busy_logged = w->busy_unlogged = 0;
	}
	if (w->busy_logged < BUSY_LINES_PER_SECOND) {
		w->busy_logged++;
		return 1;
	}
	w->busy_unlogged++;
	return 0;
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

/* ---- lockout ------------------------------------------------------------------------ */

/* The first bytes of the request's transcript hash: the same M2 has the same tag. */
static uint64_t request_tag(const struct early *e)
{
	uint8_t th[KD3_HASH_LEN];
	uint64_t tag = 0;
	kd3_iov prefix = {e->m2.body.p, e->m2.signed_len};
	if (kd3_transcript_hash(&prefix, 1, th) == KD3_OK)
		memcpy(&tag, th, sizeof(tag));
	return tag;
}

static int name_refused(kdc_lockout *l, const kd3_view *name, int locked, uint64_t tag)
{
	return locked && !kdc_lockout_failed_last(l, name->p, name->len, tag);
}

/* A request naming a locked principal is refused before any check, so that a locked
 * principal's key cannot be tested, except the very M2 that failed last (a UDP
 * retransmit, or the responder confirming the ERROR over TCP): it can only fail the
 * same way again, which tells nothing new. */
static int principal_locked(kdc_worker *w, const struct early *e, uint64_t now_ms)
{
	kdc_lockout *l = w->cfg->lockout;
	const kd3_m1 *m1 = &e->m2.m1;
	if (!w->snap->cfg.lockout.failures || !e->parsed)
		return 0;
	int li = kdc_lockout_locked(l, m1->id_i.p, m1->id_i.len, now_ms);
	int lr = kdc_lockout_locked(l, m1->id_r.p, m1->id_r.len, now_ms);
	if (!li && !lr)
		return 0;
	uint64_t tag = request_tag(e);
	return name_refused(l, &m1->id_i, li, tag) || name_refused(l, &m1->id_r, lr, tag);
}

/* After the handler: a BAD_AUTH counts against the principal whose authenticator
 * failed (kdc_core checks the initiator's first and says which in its detail); a key
 * issued clears both principals' failures. */
static void lockout_account(kdc_worker *w, const kd3_kdc_result *res, uint64_t now_ms)
{
	const kdc_lockout_cfg *cfg = &w->snap->cfg.lockout;
	kdc_lockout *l = w->cfg->lockout;
	if (!cfg->failures || !res->id_i || !res->id_r)
		return;
	if (res->err == KD3_OK && !res->from_cache) {
		kdc_lockout_success(l, res->id_i, res->id_i_len);
		kdc_lockout_success(l, res->id_r, res->id_r_len);
		return;
	}
	if (res->err != KD3_E_BAD_AUTH)
		return;
	int responder = res->detail && strncmp(res->detail, "responder", 9) == 0;
	const uint8_t *name = responder ? res->id_r : res->id_i;
	size_t len = responder ? res->id_r_len : res->id_i_len;
	char shown[256];
	uint64_t tag = 0;
	if (res->have_th)
		memcpy(&tag, res->th, sizeof(tag));
	int locked = kdc_lockout_failure(l, cfg, name, len, tag, now_ms);
	if (locked == 0)
		return;
	if (locked > 0)
		kd3_count(&w->metrics.lockouts, 1);
	kd3_log_safe_name(name, len, shown);
	if (locked > 0)
		kd3_log_info("principal %s locked out for %llu s after %u failed authentications "
		             "within %llu s ('kdc unlock %s' ends it)",
		             shown, (unsigned long long)(cfg->lock_ms / 1000),
		             (unsigned)cfg->failures, (unsigned long long)(cfg->window_ms / 1000),
		             shown);
	else
		kd3_log_error("lockout: no room to count a failure of %s (lockout table full "
		              "around its slot)",
		              shown);
}

/* ---- the request ------------------------------------------------------------------- */

int kdc_request_policy(void *ctx, const kd3_principal *i, const kd3_principal *r,
                       uint32_t *lifetime)
{
	kdc_worker *w = ctx;
	kdc_policy_decide(&w->snap->cfg.policy, i, r, &w->rq.req, &w->rq.verdict);
	w->rq.hook_ran = 1;
	w->rq.pi = i;
	w->rq.pr = r;
	if (w->rq.verdict.err == KD3_OK)
		*lifetime = w->rq.verdict.lifetime;
	return w->rq.verdict.err;
}

/* An M3 went out: both principals were used now. The handler hands its principals to
 * the policy hook, which keeps them; an M3 from the lookaside cache had no hook, and its
 * two principals are looked up again (a retransmit: rare). */
static void usage_note(kdc_worker *w, const kd3_kdc_result *res)
{
	const kdc_snapshot *s = w->snap;
	const kd3_principal *pi = w->rq.pi, *pr = w->rq.pr;
	if (res->from_cache) {
		pi = w->kdc->lookup(w->kdc->lookup_ctx, res->id_i, res->id_i_len);
		pr = w->kdc->lookup(w->kdc->lookup_ctx, res->id_r, res->id_r_len);
	}
	int64_t now = (int64_t)time(NULL);
	kdc_usage_note(&s->usage, &s->table, pi, now);
	kdc_usage_note(&s->usage, &s->table, pr, now);
}

/* A refusal made here (rate limit, lockout): its ERROR if one may be sent, its log
 * line (rate-limited ones thinned out). */
static int request_refuse(kdc_worker *w, const char *transport, const kd3_addr *peer,
                          const struct early *e, int code, const char *text, const uint8_t *in,
                          size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len,
                          uint64_t start_us)
{
	kd3_kdc_result res;
	*out_len = refusal_encode(code, text, in, in_len, out, out_cap);
	refusal_result(e, code, text, *out_len, &res);
	if (*out_len > 0 && kd3_trace_enabled())
		kd3_trace_frame("KDC->R", out, *out_len, 0, -1);
	int logged = code != KD3_E_BUSY || busy_log_allowed(w, start_us / 1000);
	uint64_t took = kd3_now_us() - start_us;
	kd3_count(code == KD3_E_BUSY ? &w->metrics.rate_limited : &w->metrics.lockout_refused, 1);
	kdc_metrics_request(&w->metrics, transport, code, *out_len > 0, 0, took);
	if (w->snap->cfg.log_requests && logged)
		request_log(w, transport, peer, &res, took);
	if (kd3_transcript_on(w->cfg->transcript))
		request_transcript(w, transport, peer, in, in_len, out, *out_len, &res);
	return *out_len > 0;
}

int kdc_request(kdc_worker *w, const char *transport, const kd3_addr *peer, const uint8_t *in,
                size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
	const kdc_live_cfg *cfg = &w->snap->cfg;
	kd3_kdc_result res;
	struct early e;

	if (kd3_trace_enabled())
		kd3_trace_frame("R->KDC", in, in_len, 0, -1);
	uint64_t start = kd3_now_us();
	early_parse(in, in_len, &e);
	if (cfg->rate_limit && !kdc_ratelimit_take(w->cfg->ratelimit, peer, cfg->rate_limit,
	                                           cfg->rate_burst, start / 1000))
		return request_refuse(w, transport, peer, &e, KD3_E_BUSY,
		                      "too many requests from this address; try again later", in,
		                      in_len, out, out_cap, out_len, start);
	if (principal_locked(w, &e, start / 1000))
		return request_refuse(w, transport, peer, &e, KD3_E_POLICY_DENIED,
		                      "temporarily locked out", in, in_len, out, out_cap, out_len,
		                      start);
	memset(&w->rq, 0, sizeof(w->rq));
	w->rq.req.suite = e.m2.m1.suite;
	w->rq.req.flags = e.m2.m1.flags;
	kd3_kdc_handle(w->kdc, in, in_len, start / 1000, out, out_cap, out_len, &res);
	if (res.err == KD3_OK)
		usage_note(w, &res);
	lockout_account(w, &res, start / 1000);
	uint64_t took = kd3_now_us() - start;
	int send = res.reply && *out_len > 0;
	kdc_metrics_request(&w->metrics, transport, res.err, send, res.from_cache, took);
	if (send && kd3_trace_enabled())
		kd3_trace_frame("KDC->R", out, *out_len, 0, -1);
	if (cfg->log_requests)
		request_log(w, transport, peer, &res, took);
	if (kd3_transcript_on(w->cfg->transcript))
		request_transcript(w, transport, peer, in, in_len, out, send ? *out_len : 0, &res);
	return send;
}

void kdc_request_refused(kdc_worker *w, const char *transport, const kd3_addr *peer,
                         const char *why, int replied)
{
	kd3_kdc_result res;
	kdc_metrics_request(&w->metrics, transport, KD3_E_MALFORMED, replied, 0, 0);
	if (!w->snap || !w->snap->cfg.log_requests)
		return;
	memset(&res, 0, sizeof(res));
	res.err = KD3_E_MALFORMED;
	res.detail = why;
	res.reply = replied;
	memset(&w->rq, 0, sizeof(w->rq));
	request_log(w, transport, peer, &res, 0);
}
