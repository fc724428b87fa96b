/* kdc auth failures: one failed authentication (BAD_AUTH) as KDCs share it through a
 * database server (kdc/store/store.h), so that every KDC of a realm counts the
 * failures of all of them toward a lockout (kdc/lockout.h). */
#ifndef KDC_AUTHFAIL_H
#define KDC_AUTHFAIL_H

#include <stdint.h>

#include "wire.h"

typedef struct kdc_auth_failure {
	char name[KD3_NAME_MAX + 1];
	uint64_t tag;  /* the request (kdc_lockout_failure's tag) */
	int64_t at_ms; /* wall clock, Unix milliseconds */
} kdc_auth_failure;

typedef void (*kdc_auth_failure_fn)(void *ctx, const kdc_auth_failure *f);

#endif
