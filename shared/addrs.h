/* kd3: an address as the user wrote it ("kdc.example.org:7088", "[::1]", "localhost")
 * turned into every address it names, with one error line that says which option and
 * which text: the one step --connect, --kdc and --listen share. */
#ifndef KD3_ADDRS_H
#define KD3_ADDRS_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"

#define KD3_ADDRS_PASSIVE 1 /* flags: for bind() */
#define KD3_ADDRS_PORT0   2 /* port 0 (a free port) is allowed */

/* Parses and resolves text (kd3_hostport_parse, then kd3_resolve within timeout_ms) into
 * at most max addresses (*n set). On failure err holds "what: ..." naming the text, and
 * the code is kd3_resolve's (KD3_E_CONFIG for a text that does not parse). */
int kd3_addrs_resolve(const char *what, const char *text, uint16_t default_port, int flags,
                      int timeout_ms, kd3_addr *out, size_t max, size_t *n, char *err,
                      size_t err_len);

/* "a, b, c" of addrs (kd3_addr_format each), cut to fit out. */
void kd3_addrs_format(const kd3_addr *addrs, size_t n, char *out, size_t out_len);

#endif
