/* kd3adv: parsing and matching scenario rules (grammar in adv_rule.h). */
#include "adv_rule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adv_field.h"
#include "wire.h"

#define MAX_TOKENS 6

typedef struct action_word {
	const char *word;
	int action;
	int nargs;    /* words after the action word */
	int optional; /* the last of them may be left out */
} action_word;

static const action_word actions[] = {
    {"record", ADV_A_PASS, 0, 0},
    {"pass", ADV_A_PASS, 0, 0},
    {"drop", ADV_A_DROP, 0, 0},
    {"delay", ADV_A_DELAY, 1, 0},
    {"duplicate", ADV_A_DUPLICATE, 1, 1},
    {"reorder", ADV_A_REORDER, 0, 0},
    {"join", ADV_A_JOIN, 0, 0},
    {"replay", ADV_A_REPLAY, 1, 0},
    {"replace", ADV_A_REPLACE, 1, 0},
    {"answer", ADV_A_ANSWER, 1, 0},
    {"reflect", ADV_A_REFLECT, 0, 0},
    {"inject", ADV_A_INJECT, 1, 0},
    {"truncate", ADV_A_TRUNCATE, 1, 0},
    {"cut", ADV_A_CUT, 0, 0},
    {"extend", ADV_A_EXTEND, 1, 0},
    {"flip", ADV_A_FLIP_BIT, 1, 0},
    {"set", ADV_A_SET, 1, 0},
    {"swap", ADV_A_SWAP, 2, 0},
    {"splice", ADV_A_SPLICE, 2, 0},
};

uint8_t adv_kind_type(int kind)
{
	static const uint8_t types[ADV_NKINDS] = {
	    [ADV_K_M1] = KD3_T_M1,           [ADV_K_M2] = KD3_T_M2,
	    [ADV_K_M3] = KD3_T_M3,           [ADV_K_M4] = KD3_T_M4,
	    [ADV_K_RECORD] = KD3_T_RECORD,   [ADV_K_ERROR] = KD3_T_ERROR,
	    [ADV_K_FINISHED] = KD3_T_RECORD, [ADV_K_KEY_UPDATE] = KD3_T_RECORD,
	};
	return kind >= 0 && kind < ADV_NKINDS ? types[kind] : 0;
}

/* A whole decimal number in [min, max]. */
static int parse_long(const char *s, long min, long max, long *v)
{
	char *end;
	long n = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || n < min || n > max)
		return -1;
	*v = n;
	return 0;
}

/* "I->R" or "R->KDC/udp" */
static int parse_where(const char *tok, adv_rule *r)
{
	const char *slash = strchr(tok, '/');
	size_t n = slash ? (size_t)(slash - tok) : strlen(tok);
	r->dir = adv_dir_parse(tok, n);
	r->transport = ADV_ANY_TRANSPORT;
	if (slash && strcmp(slash + 1, "tcp") == 0)
		r->transport = ADV_TCP;
	else if (slash && strcmp(slash + 1, "udp") == 0)
		r->transport = ADV_UDP;
	else if (slash)
		return -1;
	return r->dir < 0 ? -1 : 0;
}

/* "M1", "M2#2", "RECORD#3+" into kind, index, from_on. */
static int parse_match(const char *tok, int *kind, unsigned *index, int *from_on, int need_index)
{
	const char *hash = strchr(tok, '#');
	long n = 0;
	char num[16];

	*kind = adv_kind_parse(tok, hash ? (size_t)(hash - tok) : strlen(tok));
	*index = 0;
	*from_on = 0;
	if (*kind < 0 || (need_index && !hash))
		return -1;
	if (!hash)
		return 0;
	size_t len = strlen(hash + 1);
	if (len == 0 || len >= sizeof(num))
		return -1;
	memcpy(num, hash + 1, len + 1);
	if (num[len - 1] == '+' && !need_index) {
		*from_on = 1;
		num[len - 1] = '\0';
	}
	if (parse_long(num, 1, 1000000, &n) != 0)
		return -1;
	*index = (unsigned)n;
	return 0;
}

static int parse_hex(const char *hex, adv_rule *r)
{
	long n = adv_hex_decode(hex, strlen(hex), r->bytes, sizeof(r->bytes));
	if (n <= 0)
		return -1;
	r->bytes_len = (size_t)n;
	return 0;
}

/* "[earlier:][DIR:]KIND#N" or "hex:HEX" */
static int parse_src(const char *tok, adv_rule *r)
{
	adv_src *s = &r->src;
	memset(s, 0, sizeof(*s));
	if (strncmp(tok, "hex:", 4) == 0) {
		s->is_hex = 1;
		return parse_hex(tok + 4, r);
	}
	if (strncmp(tok, "earlier:", 8) == 0) {
		s->earlier = 1;
		tok += 8;
	}
	s->dir = r->dir;
	const char *colon = strchr(tok, ':');
	if (colon) {
		s->dir = adv_dir_parse(tok, (size_t)(colon - tok));
		tok = colon + 1;
	}
	int from_on;
	if (s->dir < 0 || parse_match(tok, &s->kind, &s->index, &from_on, 1) != 0)
		return -1;
	return 0;
}

/* A field name the rule's frames have (and, for a splice, its source's too). */
static int check_field(const adv_rule *r, const char *field, char *err, size_t err_len)
{
	uint8_t type = adv_kind_type(r->kind);
	if (strlen(field) >= ADV_FIELD_NAME_MAX || !type || !adv_field_known(type, field)) {
		snprintf(err, err_len, "%s frames have no field '%s'", adv_kind_name(r->kind),
		         field);
		return -1;
	}
	if (r->action == ADV_A_SPLICE && !r->src.is_hex &&
	    !adv_field_known(adv_kind_type(r->src.kind), field)) {
		snprintf(err, err_len, "%s frames have no field '%s' to splice from",
		         adv_kind_name(r->src.kind), field);
		return -1;
	}
	return 0;
}

/* splice's "f1,f2,...": each a field of both frames. */
static int check_field_list(const adv_rule *r, char *err, size_t err_len)
{
	char list[ADV_FIELD_NAME_MAX], *save = NULL;
	int n = 0;
	memcpy(list, r->field, sizeof(list));
	for (char *f = strtok_r(list, ",", &save); f; f = strtok_r(NULL, ",", &save), n++)
		if (check_field(r, f, err, err_len) != 0)
			return -1;
	return n > 0 ? 0 : -1;
}

/* flip BIT or flip FIELD[:BIT] */
static int parse_flip(const char *arg, adv_rule *r, char *err, size_t err_len)
{
	if (parse_long(arg, -8l * ADV_DGRAM_MAX, 8l * ADV_DGRAM_MAX, &r->num) == 0)
		return 0;
	const char *colon = strchr(arg, ':');
	size_t n = colon ? (size_t)(colon - arg) : strlen(arg);
	r->action = ADV_A_FLIP_FIELD;
	r->num = -1;
	if (n >= sizeof(r->field) || (colon && parse_long(colon + 1, 0, 8 * 65536, &r->num)))
		return -1;
	memcpy(r->field, arg, n);
	r->field[n] = '\0';
	return check_field(r, r->field, err, err_len);
}

/* set FIELD=VALUE */
static int parse_set(const char *arg, adv_rule *r, char *err, size_t err_len)
{
	const char *eq = strchr(arg, '=');
	if (!eq || (size_t)(eq - arg) >= sizeof(r->field))
		return -1;
	memcpy(r->field, arg, (size_t)(eq - arg));
	r->field[eq - arg] = '\0';
	snprintf(r->value, sizeof(r->value), "%s", eq + 1);
	return check_field(r, r->field, err, err_len);
}

static int parse_args(adv_rule *r, char **args, char *err, size_t err_len)
{
	switch (r->action) {
	case ADV_A_DELAY:
		return parse_long(args[0], 0, ADV_DELAY_MAX_MS, &r->num);
	case ADV_A_DUPLICATE:
		return args[0] ? parse_long(args[0], 0, ADV_DELAY_MAX_MS, &r->num) : 0;
	case ADV_A_TRUNCATE:
		return parse_long(args[0], 0, ADV_DGRAM_MAX, &r->num);
	case ADV_A_EXTEND:
		return parse_long(args[0], 1, ADV_EXTEND_MAX, &r->num);
	case ADV_A_REPLAY:
	case ADV_A_REPLACE:
	case ADV_A_ANSWER:
		return parse_src(args[0], r);
	case ADV_A_INJECT:
		return parse_hex(args[0], r);
	case ADV_A_FLIP_BIT:
		return parse_flip(args[0], r, err, err_len);
	case ADV_A_SET:
		return parse_set(args[0], r, err, err_len);
	case ADV_A_SWAP:
		snprintf(r->field, sizeof(r->field), "%s", args[0]);
		snprintf(r->field2, sizeof(r->field2), "%s", args[1]);
		return check_field(r, r->field, err, err_len) ||
		               check_field(r, r->field2, err, err_len)
		           ? -1
		           : 0;
	case ADV_A_SPLICE:
		snprintf(r->field, sizeof(r->field), "%s", args[0]);
		if (strlen(args[0]) >= sizeof(r->field) || parse_src(args[1], r) != 0)
			return -1;
		return check_field_list(r, err, err_len);
	default:
		return 0;
	}
}

static const action_word *find_action(const char *word)
{
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (strcmp(actions[i].word, word) == 0)
			return &actions[i];
	return NULL;
}

int adv_rule_parse(const char *text, adv_rule *r, char *err, size_t err_len)
{
	char copy[ADV_RULE_MAX], *tok[MAX_TOKENS + 2], *save = NULL;
	int n = 0;

	memset(r, 0, sizeof(*r));
	err[0] = '\0';
	if (strlen(text) >= sizeof(copy)) {
		snprintf(err, err_len, "rule longer than %d characters", ADV_RULE_MAX - 1);
		return -1;
	}
	snprintf(r->text, sizeof(r->text), "%s", text);
	memcpy(copy, text, strlen(text) + 1);
	for (char *t = strtok_r(copy, " \t", &save); t && n <= MAX_TOKENS;
	     t = strtok_r(NULL, " \t", &save))
		tok[n++] = t;
	tok[n] = NULL; /* an optional argument left out reads as NULL */
	const action_word *a = n >= 3 ? find_action(tok[2]) : NULL;
	int ok = n >= 3 && parse_where(tok[0], r) == 0 &&
	         parse_match(tok[1], &r->kind, &r->index, &r->from_on, 0) == 0 && a &&
	         (n == 3 + a->nargs || (a->optional && n == 2 + a->nargs));
	if (ok) {
		r->action = a->action;
		ok = parse_args(r, tok + 3, err, err_len) == 0;
	}
	if (!ok && err[0] == '\0')
		snprintf(err, err_len, "not a rule: '%.200s' (kd3adv --help shows the grammar)",
		         text);
	return ok ? 0 : -1;
}

int adv_rule_matches(const adv_rule *r, const adv_seen *seen)
{
	unsigned idx = seen->idx[r->kind];
	if (seen->dir != r->dir || idx == 0)
		return 0;
	if (r->transport != ADV_ANY_TRANSPORT && r->transport != seen->transport)
		return 0;
	if (r->index == 0)
		return 1;
	return r->from_on ? idx >= r->index : idx == r->index;
}

void adv_src_format(const adv_rule *r, char *out, size_t out_len)
{
	const adv_src *s = &r->src;
	if (s->is_hex)
		snprintf(out, out_len, "hex");
	else
		snprintf(out, out_len, "%s%s:%s#%u", s->earlier ? "earlier:" : "",
		         adv_dir_name(s->dir), adv_kind_name(s->kind), s->index);
}
