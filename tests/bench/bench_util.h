/* Shared pieces of the kd3 benchmarks (tests/bench): clocks, latency percentiles,
 * the CPU time of another process from /proc, key files, and one JSON object of
 * results on stdout per run, which tests/bench/bench.py reads. */
#ifndef KD3_BENCH_UTIL_H
#define KD3_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "crypto.h"
#include "schedule.h"
#include "wire.h"

/* Monotonic clock in nanoseconds. */
uint64_t b_now_ns(void);

/* Latency samples in nanoseconds, growing up to a fixed capacity. */
typedef struct b_lat {
	uint64_t *ns;
	size_t n, cap;
} b_lat;

int b_lat_init(b_lat *l, size_t cap);
void b_lat_add(b_lat *l, uint64_t ns);
/* Sorts the samples; then b_lat_pct gives the q-quantile (0..1) in microseconds. */
void b_lat_sort(b_lat *l);
double b_lat_pct_us(const b_lat *l, double q);
void b_lat_free(b_lat *l);

/* utime + stime of a whole process (all threads) in microseconds, from
 * /proc/PID/stat; -1 when it cannot be read. */
int64_t b_proc_cpu_us(pid_t pid);
/* VmRSS of a process in KiB, from /proc/PID/status; -1 when unknown. */
long b_proc_rss_kib(pid_t pid);
/* This process's own user + system time, microseconds. */
int64_t b_self_cpu_us(void);

/* One principal as the load generators hold it: its name and the subkeys of its
 * highest kvno (the long-term key itself is wiped once they are derived). */
typedef struct b_principal {
	char name[KD3_NAME_MAX + 1];
	uint32_t kvno;
	kd3_subkeys sub;
} b_principal;

/* Loads a key file; 0 or -1 with one line on stderr. */
int b_principal_load(kd3_crypto *c, const char *path, b_principal *p);
/* Loads every key file listed in list_path (one path per line, at most max). Returns
 * how many, or -1 with one line on stderr. */
long b_principals_load_list(kd3_crypto *c, const char *list_path, b_principal *out, size_t max);

/* Parses "127.0.0.1:PORT" (IPv4 loopback literals only: the benchmarks never reach
 * another host). 0 or -1 with one line on stderr. */
struct sockaddr_in;
int b_parse_loopback(const char *text, struct sockaddr_in *sa);

/* Strict number parsing for options: exits with a message on a bad value. */
long b_arg_long(const char *opt, const char *text, long min, long max);
double b_arg_double(const char *opt, const char *text, double min, double max);

/* Raises RLIMIT_NOFILE to at least want (best effort). */
void b_raise_nofile(long want);

/* One JSON object on stdout, written field by field: b_json_begin, then any number of
 * b_json_* fields, then b_json_end. */
void b_json_begin(void);
void b_json_str(const char *key, const char *value);
void b_json_num(const char *key, double value);
void b_json_int(const char *key, long long value);
void b_json_end(void);

/* Prints a message and exits with status 2 (usage) or 1 (runtime). */
void b_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#endif
