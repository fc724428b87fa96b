/* kd3: the one error enum used by every module.
 *
 * Values 1..9 are the wire codes of the ERROR message (docs/PROTOCOL.md, "ERROR"),
 * so a failure found while parsing a request maps to its answer without a table.
 * Everything >= 64 is local: it never goes on the wire as such. */
#ifndef KD3_ERR_H
#define KD3_ERR_H

#include <kd3/error.h>

/* The wire name of a code 1..9 ("BAD_AUTH"), or "?" for others. */
const char *kd3_err_wire_name(int err);

/* 1 when err is one of the nine codes that may be sent in an ERROR message. */
int kd3_err_is_wire(int err);

#endif
