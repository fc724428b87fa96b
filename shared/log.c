#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LOG_MSG_MAX 1024 /* a message; escaped for JSON it may grow six-fold */

/* syslog severities (RFC 5424) and the daemon facility. */
#define SYSLOG_ERR      3
#define SYSLOG_INFO     6
#define SYSLOG_DEBUG    7
#define SYSLOG_FACILITY (3 << 3)

static const char *log_program = "kd3";
static int log_verbose;
static atomic_int log_json;
static atomic_int log_time;
static atomic_int log_sink;
static atomic_int syslog_fd = -1;
static struct sockaddr_un syslog_addr;

void kd3_log_set_program(const char *name)
{
	log_program = name;
}

void kd3_log_set_verbose(int verbose)
{
	log_verbose = verbose;
}

void kd3_log_set_format(int json, int time)
{
	atomic_store(&log_json, json != 0);
	atomic_store(&log_time, time != 0);
}

void kd3_log_set_sink(kd3_log_sink sink)
{
	atomic_store(&log_sink, atomic_load(&syslog_fd) >= 0 ? (int)sink : KD3_LOG_TO_STDERR);
}

int kd3_log_open_syslog(const char *path, char *err, size_t err_len)
{
	if (atomic_load(&syslog_fd) >= 0)
		return 0;
	if (strlen(path) >= sizeof(syslog_addr.sun_path)) {
		snprintf(err, err_len, "syslog socket %.64s...: path is too long", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, err_len, "cannot open a socket for syslog: %s", strerror(errno));
		return -1;
	}
	memset(&syslog_addr, 0, sizeof(syslog_addr));
	syslog_addr.sun_family = AF_UNIX;
	memcpy(syslog_addr.sun_path, path, strlen(path) + 1);
	if (connect(fd, (const struct sockaddr *)&syslog_addr, sizeof(syslog_addr)) != 0) {
		snprintf(err, err_len, "syslog socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	atomic_store(&syslog_fd, fd);
	return 0;
}

int kd3_log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev = 0, ino = 0;
	struct stat st;
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's algorithm). */
static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400) + (*m <= 2);
}

void kd3_log_utc(uint64_t realtime_us, char out[32])
{
	uint64_t s = realtime_us / 1000000u;
	unsigned ms = (unsigned)(realtime_us / 1000u % 1000u);
	unsigned sod = (unsigned)(s % 86400u);
	int y;
	unsigned mo, d;
	char full[80]; /* what the compiler allows the fields to need */
	civil_from_days((int64_t)(s / 86400u), &y, &mo, &d);
	snprintf(full, sizeof(full), "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", y, mo, d, sod / 3600,
	         sod / 60 % 60, sod % 60, ms);
	snprintf(out, 32, "%.31s", full);
}

static void utc_now(char out[32])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	kd3_log_utc((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u, out);
}

void kd3_log_json_str(char *out, size_t cap, size_t *at, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = *at;
	if (cap < 3 || i > cap - 3) /* room for "" and the NUL */
		return;
	out[i++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[7];
		size_t n = 0;
		if (c == '"' || c == '\\') {
			esc[n++] = '\\';
			esc[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
		} else {
			esc[n++] = (char)c;
		}
		if (i + n + 2 > cap) /* the closing quote and the NUL must fit */
			break;
		memcpy(out + i, esc, n);
		i += n;
	}
	out[i++] = '"';
	out[i] = '\0';
	*at = i;
}

/* Appends text (already safe) without overflowing; out stays NUL-terminated. */
static void append(char *out, size_t cap, size_t *at, const char *text)
{
	size_t n = strlen(text);
	if (*at >= cap - 1)
		return;
	if (n > cap - 1 - *at)
		n = cap - 1 - *at;
	memcpy(out + *at, text, n);
	*at += n;
	out[*at] = '\0';
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere to report it */
		p += w;
		n -= (size_t)w;
	}
}

/* One datagram; a restarted syslog daemon needs a new connect. 0 when it went. */
static int syslog_send(int fd, const char *p, size_t n)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n)
			return 0;
		if (errno != ECONNREFUSED && errno != ENOTCONN)
			return -1;
		if (connect(fd, (const struct sockaddr *)&syslog_addr, sizeof(syslog_addr)) != 0)
			return -1;
	}
	return -1;
}

/* Builds one record in out: the prefix the sink and format want, then the body. */
static size_t format_record(char *out, size_t cap, int to_syslog, int severity, const char *level,
                            const char *msg, const char *json_members)
{
	char when[32];
	size_t at = 0;
	out[0] = '\0';
	if (to_syslog) {
		char pri[96];
		snprintf(pri, sizeof(pri), "<%d>%s[%ld]: ", SYSLOG_FACILITY | severity, log_program,
		         (long)getpid());
		append(out, cap, &at, pri);
	}
	if (atomic_load(&log_json)) {
		utc_now(when);
		append(out, cap, &at, "{\"time\":\"");
		append(out, cap, &at, when);
		append(out, cap, &at, "\",\"program\":");
		kd3_log_json_str(out, cap, &at, log_program);
		append(out, cap, &at, ",\"level\":\"");
		append(out, cap, &at, level[0] ? level : "info");
		append(out, cap, &at, "\",");
		if (json_members && json_members[0]) {
			append(out, cap, &at, json_members);
		} else {
			append(out, cap, &at, "\"msg\":");
			kd3_log_json_str(out, cap - 1, &at, msg); /* room for the brace */
		}
		if (at < cap - 1)
			out[at++] = '}';
		out[at] = '\0';
		return at;
	}
	if (!to_syslog && atomic_load(&log_time)) {
		utc_now(when);
		append(out, cap, &at, when);
		append(out, cap, &at, " ");
	}
	if (!to_syslog) {
		append(out, cap, &at, log_program);
		append(out, cap, &at, ": ");
	}
	if (level[0] && strcmp(level, "info") != 0) {
		append(out, cap, &at, level);
		append(out, cap, &at, ": ");
	}
	append(out, cap, &at, msg);
	return at;
}

/* A thread's batch of whole lines for stderr (kd3_log_batch_begin). */
static _Thread_local struct log_batch {
	int on;
	size_t len;
	char buf[KD3_LOG_BATCH_MAX];
} batch;

void kd3_log_batch_begin(void)
{
	batch.on = 1;
}

void kd3_log_flush(void)
{
	if (batch.len)
		write_all(2, batch.buf, batch.len);
	batch.len = 0;
}

/* One line for stderr: into the thread's batch when it has one and the line fits,
 * else in its own write. */
static void stderr_line(const char *line, size_t n)
{
	if (!batch.on || n > sizeof(batch.buf)) {
		kd3_log_flush(); /* the lines before it go first */
		write_all(2, line, n);
		return;
	}
	if (n > sizeof(batch.buf) - batch.len)
		kd3_log_flush();
	memcpy(batch.buf + batch.len, line, n);
	batch.len += n;
}

static void emit(int severity, const char *level, const char *msg, const char *json_members)
{
	char line[KD3_LOG_LINE_MAX];
	int fd = atomic_load(&syslog_fd);
	int to_syslog = atomic_load(&log_sink) == KD3_LOG_TO_SYSLOG && fd >= 0;
	size_t n =
	    format_record(line, sizeof(line) - 1, to_syslog, severity, level, msg, json_members);
	if (to_syslog && syslog_send(fd, line, n) == 0)
		return;
	if (to_syslog) /* syslog is gone: the line goes to stderr rather than nowhere */
		n = format_record(line, sizeof(line) - 1, 0, severity, level, msg, json_members);
	line[n++] = '\n';
	stderr_line(line, n);
	if (severity <= SYSLOG_ERR) /* errors leave at once, with the lines batched before them */
		kd3_log_flush();
}

int kd3_log_json_on(void)
{
	return atomic_load(&log_json);
}

static void log_line(int severity, const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void log_line(int severity, const char *level, const char *fmt, va_list ap)
{
	char msg[LOG_MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	emit(severity, level, msg, NULL);
}

void kd3_log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line(SYSLOG_ERR, "error", fmt, ap);
	va_end(ap);
}

void kd3_log_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line(SYSLOG_INFO, "", fmt, ap);
	va_end(ap);
}

void kd3_log_debug(const char *fmt, ...)
{
	if (!log_verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_line(SYSLOG_DEBUG, "debug", fmt, ap);
	va_end(ap);
}

void kd3_log_event(const char *text, const char *json_members)
{
	emit(SYSLOG_INFO, "", text, json_members);
}

void kd3_log_safe_name(const uint8_t *p, size_t len, char out[256])
{
	size_t n = len > 255 ? 255 : len;
	for (size_t i = 0; i < n; i++)
		out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	out[n] = '\0';
}
