/* kdc policy: deny rules and the session key lifetime. */
#include "policy.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "msg.h"

/* One side of a rule: "*" or a valid principal name. */
static int side_parse(const char *s, size_t n, char out[KD3_NAME_MAX + 1])
{
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (!(n == 1 && s[0] == '*') && !kd3_name_valid((const uint8_t *)s, n))
		return KD3_E_CONFIG;
	memcpy(out, s, n);
	out[n] = '\0';
	return KD3_OK;
}

static int rule_parse(const char *text, kdc_deny_rule *rule)
{
	const char *arrow = strstr(text, "->");
	if (!arrow)
		return KD3_E_CONFIG;
	if (side_parse(text, (size_t)(arrow - text), rule->initiator) != KD3_OK)
		return KD3_E_CONFIG;
	return side_parse(arrow + 2, strlen(arrow + 2), rule->responder);
}

int kdc_policy_init(kdc_policy *p, const kd3_conf_list *deny, uint32_t lifetime, char *err,
                    size_t err_len)
{
	memset(p, 0, sizeof(*p));
	p->lifetime = lifetime;
	for (size_t i = 0; i < deny->n && i < KD3_CONF_LIST_MAX; i++) {
		if (rule_parse(deny->item[i], &p->deny[i]) != KD3_OK) {
			snprintf(err, err_len,
			         "deny: '%.64s' is not INITIATOR->RESPONDER (names or '*')",
			         deny->item[i]);
			return KD3_E_CONFIG;
		}
		p->ndeny++;
	}
	return KD3_OK;
}

static int side_matches(const char *rule, const kd3_principal *p)
{
	return (rule[0] == '*' && rule[1] == '\0') || strcmp(rule, p->name) == 0;
}

int kdc_policy_check(void *ctx, const kd3_principal *i, const kd3_principal *r, uint32_t *lifetime)
{
	const kdc_policy *p = ctx;
	for (size_t k = 0; k < p->ndeny; k++)
		if (side_matches(p->deny[k].initiator, i) && side_matches(p->deny[k].responder, r))
			return KD3_E_POLICY_DENIED;
	*lifetime = p->lifetime;
	return KD3_OK;
}
