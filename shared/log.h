/* kd3 diagnostics: one line each, to stderr, prefixed with the program name.
 * Never pass a key or unbounded bytes from the wire (use kd3_log_safe_name).
 *
 * Every program starts with plain text lines on stderr. A server (kdc serve) may
 * instead prefix each line with the UTC time, write one JSON object per line, or send
 * each line as one datagram to the local syslog socket. Each line leaves in one
 * write(2) or send(2) from a stack buffer: lines from several threads never
 * interleave, and logging allocates nothing. The settings may change while other
 * threads log (SIGHUP).
 *
 * A thread that logs many lines in a burst (a KDC worker: a line per request) may
 * batch them: after kd3_log_batch_begin its stderr lines collect in a buffer of its own
 * and leave together, in one write of whole lines no longer than PIPE_BUF (so still
 * never interleaved with another thread's), when the buffer is full, at an error line,
 * and at kd3_log_flush, which the thread calls before it waits (a worker: before
 * epoll_wait), so a line is never held while the thread sleeps. Syslog lines are one
 * datagram each, never batched. */
#ifndef KD3_LOG_H
#define KD3_LOG_H

#include <stddef.h>
#include <stdint.h>

#define KD3_LOG_LINE_MAX  8192 /* one record, whatever the format */
#define KD3_LOG_BATCH_MAX 4096 /* a thread's batch: PIPE_BUF, one atomic write to a pipe */

typedef enum kd3_log_sink {
	KD3_LOG_TO_STDERR = 0,
	KD3_LOG_TO_SYSLOG = 1,
} kd3_log_sink;

void kd3_log_set_program(const char *name);
void kd3_log_set_verbose(int verbose);
void kd3_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kd3_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kd3_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Copies a name from the wire for display: at most 255 bytes, anything outside
 * printable ASCII becomes '?'. out must hold 256 bytes. */
void kd3_log_safe_name(const uint8_t *p, size_t len, char out[256]);

/* json: one JSON object per line ({"time":..,"program":..,"level":..,"msg":..}, or an
 * event's own members); time: prefix text lines with the UTC time (JSON lines always
 * carry it; syslog adds its own). */
void kd3_log_set_format(int json, int time);
/* Connects a datagram socket to the local syslog socket at path (usually /dev/log);
 * lines go there once kd3_log_set_sink(KD3_LOG_TO_SYSLOG). Facility daemon, tag the
 * program name and pid. Only the first call opens a socket (a later path is ignored:
 * the server would need a restart for another one). */
int kd3_log_open_syslog(const char *path, char *err, size_t err_len);
void kd3_log_set_sink(kd3_log_sink sink);
/* 1 when stderr is a journald stream ($JOURNAL_STREAM names fd 2's device and inode):
 * the journal stamps each line itself. */
int kd3_log_stderr_is_journal(void);

/* The calling thread batches its stderr lines from here on (see above). */
void kd3_log_batch_begin(void);
/* Writes what the calling thread's batch holds. */
void kd3_log_flush(void);
/* 1 when lines are JSON objects: an event's JSON members are needed only then. */
int kd3_log_json_on(void);

/* One event at level info: text is its line in the text format (after the program
 * name), json_members the members of its JSON object after time, program and level,
 * e.g. "\"event\":\"request\",\"us\":61". */
void kd3_log_event(const char *text, const char *json_members);
/* Appends s to out as a JSON string (quotes, escapes) at *at, never past cap - 1; a
 * string that does not fit is cut, still quoted. out stays NUL-terminated. */
void kd3_log_json_str(char *out, size_t cap, size_t *at, const char *s);
/* "2025-06-01T10:00:00.123Z" for a CLOCK_REALTIME time in microseconds; out[32].
 * Computed here: no time zone lock, no allocation. */
void kd3_log_utc(uint64_t realtime_us, char out[32]);

#endif
