/* kd3 diagnostics: one line each, to stderr, prefixed with the program name.
 * Never pass a key or unbounded bytes from the wire (use kd3_log_safe_name). */
#ifndef KD3_LOG_H
#define KD3_LOG_H

#include <stddef.h>
#include <stdint.h>

void kd3_log_set_program(const char *name);
void kd3_log_set_verbose(int verbose);
void kd3_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kd3_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kd3_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Copies a name from the wire for display: at most 255 bytes, anything outside
 * printable ASCII becomes '?'. out must hold 256 bytes. */
void kd3_log_safe_name(const uint8_t *p, size_t len, char out[256]);

#endif
