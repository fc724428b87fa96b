/* kdc policy: which initiators may reach which responders, and for how long.
 *
 * kdc.conf `deny = INITIATOR->RESPONDER` entries ('*' matches any name) refuse a pair;
 * everything else is allowed, with the session key lifetime from `lifetime`. Parsed once
 * at start; read-only after, shared by every worker. */
#ifndef KDC_POLICY_H
#define KDC_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "kdc_core.h"
#include "wire.h"

typedef struct kdc_deny_rule {
	char initiator[KD3_NAME_MAX + 1]; /* "*" for any */
	char responder[KD3_NAME_MAX + 1];
} kdc_deny_rule;

typedef struct kdc_policy {
	kdc_deny_rule deny[KD3_CONF_LIST_MAX];
	size_t ndeny;
	uint32_t lifetime; /* seconds */
} kdc_policy;

/* err gets "deny: 'x' ..." for an entry that is not INITIATOR->RESPONDER. */
int kdc_policy_init(kdc_policy *p, const kd3_conf_list *deny, uint32_t lifetime, char *err,
                    size_t err_len);

/* kd3_policy_fn over a kdc_policy (ctx). */
int kdc_policy_check(void *ctx, const kd3_principal *i, const kd3_principal *r, uint32_t *lifetime);

#endif
