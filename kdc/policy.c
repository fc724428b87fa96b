/* kdc policy: an ordered rule list, first match wins, then the default. */
#include "policy.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "msg.h"

#define RULE_QUOTE_MAX 64 /* how much of a bad entry an error message repeats */

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* One side of a rule: "*", a valid principal name, or a valid name followed by '*'. */
static int side_parse(const char *s, size_t n, char out[KD3_NAME_MAX + 2])
{
	while (n > 0 && is_blank(*s)) {
		s++;
		n--;
	}
	while (n > 0 && is_blank(s[n - 1]))
		n--;
	int any = n == 1 && s[0] == '*';
	size_t stem = n > 1 && s[n - 1] == '*' ? n - 1 : n;
	if (!any && !kd3_name_valid((const uint8_t *)s, stem))
		return KD3_E_CONFIG;
	memcpy(out, s, n);
	out[n] = '\0';
	return KD3_OK;
}

/* "INITIATOR->RESPONDER", blanks around either side allowed. */
static int pair_parse(const char *text, size_t len, kdc_rule *rule)
{
	const char *arrow = memmem(text, len, "->", 2);
	if (!arrow)
		return KD3_E_CONFIG;
	if (side_parse(text, (size_t)(arrow - text), rule->initiator) != KD3_OK)
		return KD3_E_CONFIG;
	return side_parse(arrow + 2, len - (size_t)(arrow + 2 - text), rule->responder);
}

int kdc_policy_init(kdc_policy *p, const kd3_conf_list *deny, uint32_t lifetime, char *err,
                    size_t err_len)
{
	memset(p, 0, sizeof(*p));
	p->lifetime = lifetime;
	p->default_allow = 1;
	for (size_t i = 0; i < deny->n && i < KD3_CONF_LIST_MAX; i++) {
		kdc_rule *r = &p->rule[p->nrules];
		if (pair_parse(deny->item[i], strlen(deny->item[i]), r) != KD3_OK) {
			snprintf(err, err_len,
			         "deny: '%.*s' is not INITIATOR->RESPONDER (names or '*')",
			         RULE_QUOTE_MAX, deny->item[i]);
			return KD3_E_CONFIG;
		}
		snprintf(r->label, sizeof(r->label), "deny[%zu]", i + 1);
		p->nrules++;
	}
	return KD3_OK;
}

/* "suites=chacha20-poly1305+aes-256-gcm" ('+': a comma would split the list item). */
static int suites_parse(const char *v, uint8_t *out, char *why, size_t len)
{
	char name[32];
	*out = 0;
	while (*v) {
		size_t n = strcspn(v, "+");
		uint8_t suite;
		if (n == 0 || n >= sizeof(name)) {
			snprintf(why, len, "suites: an empty or unknown suite name");
			return KD3_E_CONFIG;
		}
		memcpy(name, v, n);
		name[n] = '\0';
		if (kd3_suite_parse(name, &suite) != KD3_OK) {
			snprintf(why, len, "suites: unknown suite '%s'", name);
			return KD3_E_CONFIG;
		}
		*out |= (uint8_t)(1u << suite);
		v += n + (v[n] == '+');
	}
	if (!*out) {
		snprintf(why, len, "suites: no suite named");
		return KD3_E_CONFIG;
	}
	return KD3_OK;
}

static int lifetime_parse(const char *v, uint32_t *out, char *why, size_t len)
{
	uint64_t n = 0;
	const char *p = v;
	for (; *p >= '0' && *p <= '9' && n <= 604800; p++)
		n = n * 10 + (uint64_t)(*p - '0');
	if (p == v || *p || n < 1 || n > 604800) {
		snprintf(why, len, "lifetime: '%.16s' is not a number of seconds in 1..604800", v);
		return KD3_E_CONFIG;
	}
	*out = (uint32_t)n;
	return KD3_OK;
}

/* One "key=value" word after the pair. */
static int option_parse(const char *word, kdc_rule *r, char *why, size_t len)
{
	if (strncmp(word, "lifetime=", 9) == 0)
		return lifetime_parse(word + 9, &r->lifetime, why, len);
	if (strncmp(word, "suites=", 7) == 0)
		return suites_parse(word + 7, &r->suites, why, len);
	if (strcmp(word, "fs=required") == 0 || strcmp(word, "fs=optional") == 0) {
		r->require_fs = word[3] == 'r';
		return KD3_OK;
	}
	snprintf(why, len, "unknown option '%.32s' (lifetime=S, fs=required|optional, suites=A+B)",
	         word);
	return KD3_E_CONFIG;
}

/* The options after the pair: blank-separated words. */
static int options_parse(const char *s, kdc_rule *r, char *why, size_t len)
{
	char word[KD3_CONF_STR_MAX];
	for (;;) {
		while (is_blank(*s))
			s++;
		size_t n = strcspn(s, " \t");
		if (n == 0)
			return KD3_OK;
		memcpy(word, s, n); /* n < KD3_CONF_STR_MAX: s is one list item */
		word[n] = '\0';
		int ret = option_parse(word, r, why, len);
		if (ret != KD3_OK)
			return ret;
		if (!r->allow) {
			snprintf(why, len, "a deny rule takes no options");
			return KD3_E_CONFIG;
		}
		s += n;
	}
}

/* "allow|deny PAIR [options]": the pair runs from the verb to the first blank after
 * the responder's first character. */
static int rule_parse(const char *text, kdc_rule *r, char *why, size_t len)
{
	const char *s = text;
	while (is_blank(*s))
		s++;
	size_t verb = strcspn(s, " \t");
	if (!((verb == 5 && strncmp(s, "allow", 5) == 0) ||
	      (verb == 4 && strncmp(s, "deny", 4) == 0))) {
		snprintf(why, len, "starts with neither 'allow' nor 'deny'");
		return KD3_E_CONFIG;
	}
	r->allow = verb == 5;
	s += verb;
	const char *arrow = strstr(s, "->");
	if (!arrow) {
		snprintf(why, len, "no INITIATOR->RESPONDER pair");
		return KD3_E_CONFIG;
	}
	const char *resp = arrow + 2;
	while (is_blank(*resp))
		resp++;
	const char *end = resp + strcspn(resp, " \t");
	if (pair_parse(s, (size_t)(end - s), r) != KD3_OK) {
		snprintf(why, len,
		         "the pair is not INITIATOR->RESPONDER (names, 'prefix*' or '*')");
		return KD3_E_CONFIG;
	}
	return options_parse(end, r, why, len);
}

int kdc_policy_add_rules(kdc_policy *p, const kd3_conf_list *rules, const char *default_action,
                         char *err, size_t err_len)
{
	char why[160];
	for (size_t i = 0; i < rules->n && i < KD3_CONF_LIST_MAX; i++) {
		kdc_rule *r = &p->rule[p->nrules];
		memset(r, 0, sizeof(*r));
		if (rule_parse(rules->item[i], r, why, sizeof(why)) != KD3_OK) {
			snprintf(err, err_len, "rule: '%.*s': %s", RULE_QUOTE_MAX, rules->item[i],
			         why);
			return KD3_E_CONFIG;
		}
		snprintf(r->label, sizeof(r->label), "rule[%zu]", i + 1);
		p->nrules++;
	}
	if (strcmp(default_action, "allow") != 0 && strcmp(default_action, "deny") != 0) {
		snprintf(err, err_len, "policy-default: '%.*s' is neither allow nor deny",
		         RULE_QUOTE_MAX, default_action);
		return KD3_E_CONFIG;
	}
	p->default_allow = default_action[0] == 'a';
	return KD3_OK;
}

static int side_matches(const char *rule, const kd3_principal *p)
{
	size_t n = strlen(rule);
	if (n == 1 && rule[0] == '*')
		return 1;
	if (n > 1 && rule[n - 1] == '*')
		return p->name_len >= n - 1 && memcmp(p->name, rule, n - 1) == 0;
	return n == p->name_len && memcmp(p->name, rule, n) == 0;
}

static void verdict_deny(kdc_verdict *v, const kdc_rule *r, const char *why)
{
	v->err = KD3_E_POLICY_DENIED;
	v->rule = r;
	v->why = why;
}

void kdc_policy_decide(const kdc_policy *p, const kd3_principal *i, const kd3_principal *r,
                       const kdc_policy_request *q, kdc_verdict *v)
{
	memset(v, 0, sizeof(*v));
	for (size_t k = 0; k < p->nrules; k++) {
		const kdc_rule *rule = &p->rule[k];
		if (!side_matches(rule->initiator, i) || !side_matches(rule->responder, r))
			continue;
		if (!rule->allow)
			return verdict_deny(v, rule, "a rule denies the pair");
		if (q && rule->require_fs && !(q->flags & KD3_FLAG_FS))
			return verdict_deny(v, rule,
			                    "the pair's rule requires forward-secret mode");
		if (q && rule->suites && !(rule->suites & (1u << q->suite)))
			return verdict_deny(v, rule, "the pair's rule does not allow the suite");
		v->rule = rule;
		v->lifetime = rule->lifetime ? rule->lifetime : p->lifetime;
		return;
	}
	if (!p->default_allow)
		return verdict_deny(v, NULL, "no rule allows the pair (policy-default = deny)");
	v->lifetime = p->lifetime;
}

int kdc_policy_check(void *ctx, const kd3_principal *i, const kd3_principal *r, uint32_t *lifetime)
{
	kdc_verdict v;
	kdc_policy_decide(ctx, i, r, NULL, &v);
	if (v.err == KD3_OK)
		*lifetime = v.lifetime;
	return v.err;
}
