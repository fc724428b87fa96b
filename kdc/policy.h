/* kdc policy: which initiators may reach which responders, with what.
 *
 * kdc.conf holds an ordered list of rules; the first whose pair matches decides:
 *
 *   deny = INITIATOR->RESPONDER                  (kd3 0.1: a deny rule, checked first)
 *   rule = allow|deny INITIATOR->RESPONDER [lifetime=S] [fs=required|optional]
 *                                           [suites=NAME+NAME]
 *   policy-default = allow|deny                  (pairs no rule matches; allow)
 *
 * A side is a principal name, a prefix ending in '*' ("host/" then "*"), or '*' for any. An
 * allow rule may give the pair its own session key lifetime, require forward-secret
 * mode, or narrow the suites (within those the KDC allows at all). Parsed off the
 * request path; read-only after, shared by every worker. */
#ifndef KDC_POLICY_H
#define KDC_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "kdc_core.h"
#include "wire.h"

#define KDC_RULES_MAX (2 * KD3_CONF_LIST_MAX) /* the deny entries, then the rules */

typedef struct kdc_rule {
	char initiator[KD3_NAME_MAX + 2]; /* a name, "prefix*" or "*" */
	char responder[KD3_NAME_MAX + 2];
	char label[16];     /* where it came from, for log lines: "deny[1]", "rule[2]" */
	uint8_t allow;      /* 0: deny */
	uint8_t require_fs; /* fs=required */
	uint8_t suites;     /* suites=: bit (1 << suite); 0: every suite the KDC allows */
	uint32_t lifetime;  /* lifetime=: seconds; 0: the default */
} kdc_rule;

typedef struct kdc_policy {
	kdc_rule rule[KDC_RULES_MAX];
	size_t nrules;
	uint8_t default_allow;
	uint32_t lifetime; /* seconds, for a pair whose rule names none */
} kdc_policy;

/* What a rule may look at besides the names; from the request's M1. */
typedef struct kdc_policy_request {
	uint8_t suite;
	uint8_t flags;
} kdc_policy_request;

typedef struct kdc_verdict {
	int err;              /* KD3_OK or KD3_E_POLICY_DENIED */
	uint32_t lifetime;    /* when allowed */
	const kdc_rule *rule; /* the rule that decided; NULL: policy-default */
	const char *why;      /* static text, for the log line when denied */
} kdc_verdict;

/* deny entries only, every other pair allowed (kd3 0.1's policy). err gets "deny: 'x'
 * ..." for an entry that is not INITIATOR->RESPONDER. */
int kdc_policy_init(kdc_policy *p, const kd3_conf_list *deny, uint32_t lifetime, char *err,
                    size_t err_len);
/* Appends the rule entries after the deny entries and sets the default ("allow" or
 * "deny"). err gets "rule: 'x': reason". */
int kdc_policy_add_rules(kdc_policy *p, const kd3_conf_list *rules, const char *default_action,
                         char *err, size_t err_len);

/* The first matching rule's decision for id_i -> id_r; q NULL: by names alone. */
void kdc_policy_decide(const kdc_policy *p, const kd3_principal *i, const kd3_principal *r,
                       const kdc_policy_request *q, kdc_verdict *v);

/* kd3_policy_fn over a kdc_policy (ctx), by names alone. */
int kdc_policy_check(void *ctx, const kd3_principal *i, const kd3_principal *r, uint32_t *lifetime);

#endif
