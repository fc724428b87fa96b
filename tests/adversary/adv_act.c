/* kd3adv: from a frame and the rules to a plan (adv_act.h). */
#include "adv_act.h"

#include <string.h>

#include "adv_field.h"
#include "buf.h"
#include "err.h"
#include "log.h"
#include "wire.h"

#define DETAIL_MAX 300

static void emit(adv_plan *p, int back, const uint8_t *bytes, size_t len, unsigned delay_ms)
{
	if (p->n < (int)(sizeof(p->emit) / sizeof(p->emit[0])))
		p->emit[p->n++] = (adv_emit){back, bytes, len, delay_ms};
}

/* The tape entry or the bytes a rule's SRC names; NULL with why in err. */
static const uint8_t *find_src(adv_ctx *ctx, const adv_rule *r, size_t *len, char *err,
                               size_t err_len)
{
	char name[96];
	if (r->src.is_hex) {
		*len = r->bytes_len;
		return r->bytes;
	}
	const adv_tape *tape = r->src.earlier ? &ctx->earlier : &ctx->live;
	const adv_tape_entry *e = adv_tape_find(tape, r->src.dir, r->src.kind, r->src.index);
	if (!e) {
		adv_src_format(r, name, sizeof(name));
		snprintf(err, err_len, "%s is not on the %s tape", name,
		         r->src.earlier ? "--load" : "live");
		return NULL;
	}
	*len = e->len;
	return e->bytes;
}

/* Each field of a comma-separated list copied from src. */
static int splice_fields(adv_msg *m, const adv_msg *src, const char *fields, char *err,
                         size_t err_len)
{
	char list[ADV_FIELD_NAME_MAX], *save = NULL;
	snprintf(list, sizeof(list), "%s", fields);
	for (char *f = strtok_r(list, ",", &save); f; f = strtok_r(NULL, ",", &save))
		if (adv_field_copy(m, src, f, err, err_len) != 0)
			return -1;
	return 0;
}

/* A field edit (flip FIELD, set, swap, splice): decode, change, encode into ctx->edit. */
static int edit_fields(adv_ctx *ctx, const adv_rule *r, const uint8_t *frame, size_t len,
                       size_t *out_len, char *err, size_t err_len)
{
	static adv_msg m, src;
	const uint8_t *s;
	size_t s_len;
	int ret;

	if ((ret = adv_msg_decode(frame, len, &m)) != KD3_OK) {
		snprintf(err, err_len, "the frame does not decode (%s)", kd3_strerror(ret));
		return -1;
	}
	switch (r->action) {
	case ADV_A_FLIP_FIELD:
		ret = adv_field_flip(&m, r->field, r->num, err, err_len);
		break;
	case ADV_A_SET:
		ret = adv_field_set(&m, r->field, r->value, err, err_len);
		break;
	case ADV_A_SWAP:
		ret = adv_field_swap(&m, r->field, r->field2, err, err_len);
		break;
	default: /* ADV_A_SPLICE */
		if (!(s = find_src(ctx, r, &s_len, err, err_len)))
			return -1;
		if (adv_msg_decode(s, s_len, &src) != KD3_OK) {
			snprintf(err, err_len, "the source frame does not decode");
			return -1;
		}
		ret = splice_fields(&m, &src, r->field, err, err_len);
	}
	if (ret != 0)
		return -1;
	if (adv_msg_encode(&m, ctx->edit, sizeof(ctx->edit), out_len) != KD3_OK) {
		snprintf(err, err_len, "the edited frame does not encode (a field too long)");
		return -1;
	}
	return 0;
}

/* Byte edits: extend and flip BIT, on a copy in ctx->edit. */
static int edit_bytes(adv_ctx *ctx, const adv_rule *r, const uint8_t *frame, size_t len,
                      size_t *out_len, char *err, size_t err_len)
{
	memcpy(ctx->edit, frame, len);
	if (r->action == ADV_A_EXTEND) {
		size_t body = len >= KD3_HDR_LEN ? len - KD3_HDR_LEN + (size_t)r->num : 0x10000;
		if (body > 0xFFFF) {
			snprintf(err, err_len, "no room: a body is at most 65535 bytes");
			return -1;
		}
		memset(ctx->edit + len, 0, (size_t)r->num);
		kd3_put_u16(ctx->edit + 2, (uint16_t)body);
		*out_len = len + (size_t)r->num;
		return 0;
	}
	long bit = r->num < 0 ? (long)(8 * len) + r->num : r->num;
	if (bit < 0 || (size_t)bit >= 8 * len) {
		snprintf(err, err_len, "the frame has %zu bits: no bit %ld", 8 * len, r->num);
		return -1;
	}
	ctx->edit[bit / 8] ^= (uint8_t)(0x80u >> (bit % 8));
	*out_len = len;
	return 0;
}

/* What changed between the frame and its edit, for the log. */
static void describe_edit(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len, char *out,
                          size_t out_len)
{
	size_t changed = 0;
	if (a_len != b_len) {
		snprintf(out, out_len, "%zu -> %zu bytes", a_len, b_len);
		return;
	}
	for (size_t i = 0; i < a_len; i++)
		changed += a[i] != b[i];
	snprintf(out, out_len, "%zu bytes changed", changed);
}

/* An edit as the log says it: "set kvno_i=2", "splice blob_r from KDC->R:M3#1". */
static void describe_action(const adv_rule *r, char *out, size_t out_len)
{
	char name[96];
	switch (r->action) {
	case ADV_A_EXTEND:
		snprintf(out, out_len, "extended by %ld zero bytes", r->num);
		break;
	case ADV_A_FLIP_BIT:
		snprintf(out, out_len, "flipped bit %ld", r->num);
		break;
	case ADV_A_FLIP_FIELD:
		snprintf(out, out_len, "flipped a bit of %s", r->field);
		break;
	case ADV_A_SET:
		snprintf(out, out_len, "set %s=%.64s", r->field, r->value);
		break;
	case ADV_A_SWAP:
		snprintf(out, out_len, "swapped %s and %s", r->field, r->field2);
		break;
	default:
		adv_src_format(r, name, sizeof(name));
		snprintf(out, out_len, "spliced %s from %s", r->field, name);
	}
}

static int plan_edit(adv_ctx *ctx, const adv_rule *r, const uint8_t *frame, size_t len, adv_plan *p,
                     char *detail, char *err)
{
	size_t out_len = 0;
	char what[64];
	int byte_edit = r->action == ADV_A_EXTEND || r->action == ADV_A_FLIP_BIT;
	int ret = byte_edit ? edit_bytes(ctx, r, frame, len, &out_len, err, DETAIL_MAX)
	                    : edit_fields(ctx, r, frame, len, &out_len, err, DETAIL_MAX);
	if (ret != 0)
		return -1;
	emit(p, 0, ctx->edit, out_len, 0);
	describe_edit(frame, len, ctx->edit, out_len, what, sizeof(what));
	describe_action(r, detail, DETAIL_MAX);
	size_t used = strlen(detail);
	snprintf(detail + used, DETAIL_MAX - used, " (%s)", what);
	return 0;
}

/* Actions that send a frame of the tape, or the rule's bytes. */
static int plan_src(adv_ctx *ctx, const adv_rule *r, const uint8_t *frame, size_t len, adv_plan *p,
                    char *detail, char *err)
{
	size_t s_len;
	char name[96];
	const uint8_t *s = find_src(ctx, r, &s_len, err, DETAIL_MAX);
	if (!s)
		return -1;
	adv_src_format(r, name, sizeof(name));
	if (r->action == ADV_A_REPLAY) {
		emit(p, 0, frame, len, 0);
		emit(p, 0, s, s_len, 0);
		snprintf(detail, DETAIL_MAX, "forwarded, then replay %s (%zu bytes)", name, s_len);
	} else if (r->action == ADV_A_REPLACE) {
		emit(p, 0, s, s_len, 0);
		snprintf(detail, DETAIL_MAX, "replaced by %s (%zu bytes)", name, s_len);
	} else { /* ADV_A_ANSWER */
		emit(p, 1, s, s_len, 0);
		snprintf(detail, DETAIL_MAX, "dropped, answered with %s (%zu bytes) to its sender",
		         name, s_len);
	}
	return 0;
}

/* The plan of one rule for one frame; -1 with why in err. */
static int plan_rule(adv_ctx *ctx, const adv_rule *r, const adv_seen *seen, const uint8_t *frame,
                     size_t len, adv_plan *p, char *detail, char *err)
{
	switch (r->action) {
	case ADV_A_PASS:
		emit(p, 0, frame, len, 0);
		snprintf(detail, DETAIL_MAX, "recorded, forwarded unchanged");
		return 0;
	case ADV_A_DROP:
		snprintf(detail, DETAIL_MAX, "dropped");
		return 0;
	case ADV_A_DELAY:
		emit(p, 0, frame, len, (unsigned)r->num);
		snprintf(detail, DETAIL_MAX, "delayed %ld ms", r->num);
		return 0;
	case ADV_A_DUPLICATE:
		emit(p, 0, frame, len, 0);
		emit(p, 0, frame, len, (unsigned)r->num);
		if (r->num)
			snprintf(detail, DETAIL_MAX, "duplicated, the copy %ld ms later", r->num);
		else
			snprintf(detail, DETAIL_MAX, "duplicated");
		return 0;
	case ADV_A_REORDER:
		p->hold = 1;
		snprintf(detail, DETAIL_MAX, "held, to go after the next frame");
		return 0;
	case ADV_A_JOIN:
		p->hold = 1;
		p->join = seen->transport == ADV_TCP; /* datagrams stay apart: a reorder */
		snprintf(detail, DETAIL_MAX, "held, to go %s the next frame%s",
		         p->join ? "with" : "after", p->join ? " in one write" : "");
		return 0;
	case ADV_A_REFLECT:
		emit(p, 1, frame, len, 0);
		snprintf(detail, DETAIL_MAX, "reflected to its sender");
		return 0;
	case ADV_A_INJECT:
		emit(p, 0, r->bytes, r->bytes_len, 0);
		emit(p, 0, frame, len, 0);
		snprintf(detail, DETAIL_MAX, "%zu bytes injected before it", r->bytes_len);
		return 0;
	case ADV_A_TRUNCATE:
	case ADV_A_CUT: {
		size_t n = r->action == ADV_A_CUT ? 0 : (size_t)r->num < len ? (size_t)r->num : len;
		if (n)
			emit(p, 0, frame, n, 0);
		p->cut = seen->transport == ADV_TCP;
		snprintf(detail, DETAIL_MAX, "%zu of %zu bytes forwarded%s", n, len,
		         p->cut ? ", then the connection cut" : "");
		return 0;
	}
	case ADV_A_REPLAY:
	case ADV_A_REPLACE:
	case ADV_A_ANSWER:
		return plan_src(ctx, r, frame, len, p, detail, err);
	default:
		return plan_edit(ctx, r, frame, len, p, detail, err);
	}
}

static void apply(adv_ctx *ctx, int rule_no, adv_rule *r, const adv_seen *seen,
                  const uint8_t *frame, size_t len, adv_plan *plan)
{
	char detail[DETAIL_MAX] = "", err[DETAIL_MAX] = "";
	adv_plan p;

	memset(&p, 0, sizeof(p));
	r->fired++;
	ctx->actions++;
	int ret = plan_rule(ctx, r, seen, frame, len, &p, detail, err);
	const char *where = adv_dir_name(seen->dir), *kind = adv_kind_name(r->kind);
	if (ret != 0) {
		ctx->failures++;
		kd3_log_info("rule %d: %s/%s %s#%u: failed: %s; forwarded unchanged", rule_no,
		             where, adv_transport_name(seen->transport), kind, seen->idx[r->kind],
		             err);
		return; /* the plan stays: forward the frame */
	}
	kd3_log_info("rule %d: %s/%s %s#%u: %s%s", rule_no, where,
	             adv_transport_name(seen->transport), kind, seen->idx[r->kind], detail,
	             ctx->disarmed ? " [disarmed: forwarded unchanged]" : "");
	if (!ctx->disarmed)
		*plan = p;
}

/* Tape and --record file. */
static void keep(adv_ctx *ctx, const adv_seen *seen, const uint8_t *frame, size_t len)
{
	if (adv_tape_add(&ctx->live, seen, frame, len) != 0 && !ctx->tape_full_said) {
		ctx->tape_full_said = 1;
		kd3_log_info("the tape is full (%d frames or %u bytes): later frames cannot be "
		             "replayed",
		             ADV_TAPE_FRAMES, ADV_TAPE_BYTES);
	}
	if (ctx->record && adv_tape_write(ctx->record, seen, frame, len) != 0) {
		kd3_log_error("cannot write the recording; recording stops");
		fclose(ctx->record);
		ctx->record = NULL;
	}
}

void adv_see(adv_ctx *ctx, int dir, int transport, const uint8_t *frame, size_t len,
             unsigned conn_records, adv_plan *plan)
{
	adv_seen seen;

	adv_classify(ctx->counters, dir, transport, frame, len, conn_records, &seen);
	ctx->frames++;
	keep(ctx, &seen, frame, len);
	if (ctx->verbose) {
		int kind = adv_kind_of(frame, len);
		kd3_log_info("%s/%s %s#%u (%zu bytes)", adv_dir_name(dir),
		             adv_transport_name(transport), adv_kind_name(kind), seen.idx[kind],
		             len);
	}
	memset(plan, 0, sizeof(*plan));
	emit(plan, 0, frame, len, 0);
	for (int i = 0; i < ctx->nrules; i++)
		if (adv_rule_matches(&ctx->rules[i], &seen)) {
			apply(ctx, i + 1, &ctx->rules[i], &seen, frame, len, plan);
			return;
		}
}
