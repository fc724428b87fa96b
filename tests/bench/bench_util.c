#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "keyfile.h"

uint64_t b_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int b_lat_init(b_lat *l, size_t cap)
{
	l->n = 0;
	l->cap = cap;
	l->ns = calloc(cap ? cap : 1, sizeof(*l->ns));
	return l->ns ? 0 : -1;
}

void b_lat_add(b_lat *l, uint64_t ns)
{
	if (l->n < l->cap)
		l->ns[l->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void b_lat_sort(b_lat *l)
{
	qsort(l->ns, l->n, sizeof(*l->ns), cmp_u64);
}

/* Nearest rank: the smallest sample with at least q of the samples at or below it. */
double b_lat_pct_us(const b_lat *l, double q)
{
	if (l->n == 0)
		return 0.0;
	size_t rank = (size_t)ceil(q * (double)l->n);
	if (rank < 1)
		rank = 1;
	if (rank > l->n)
		rank = l->n;
	return (double)l->ns[rank - 1] / 1000.0;
}

void b_lat_free(b_lat *l)
{
	free(l->ns);
	l->ns = NULL;
	l->n = l->cap = 0;
}

int64_t b_proc_cpu_us(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and ')': fields start after the last ')'. */
	const char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	unsigned long long utime = 0, stime = 0;
	/* Fields 3..13 are skipped; 14 and 15 are utime and stime in clock ticks. */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
	           &stime) != 2)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	if (hz <= 0)
		return -1;
	return (int64_t)((utime + stime) * 1000000ull / (unsigned long long)hz);
}

long b_proc_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int64_t b_self_cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
	       (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

int b_principal_load(kd3_crypto *c, const char *path, b_principal *p)
{
	kd3_keyfile kf;
	char err[512];
	if (kd3_keyfile_load(path, &kf, err, sizeof(err)) != KD3_OK) {
		fprintf(stderr, "bench: %s\n", err);
		return -1;
	}
	const kd3_keyfile_entry *e = kd3_keyfile_latest(&kf);
	int ret = -1;
	if (!e) {
		fprintf(stderr, "bench: %s: no key in the key file\n", path);
	} else if (kd3_derive_subkeys(c, e->key, &p->sub) != KD3_OK) {
		fprintf(stderr, "bench: %s: cannot derive subkeys\n", path);
	} else {
		snprintf(p->name, sizeof(p->name), "%s", kf.principal);
		p->kvno = e->kvno;
		ret = 0;
	}
	kd3_keyfile_wipe(&kf);
	return ret;
}

long b_principals_load_list(kd3_crypto *c, const char *list_path, b_principal *out, size_t max)
{
	char line[4096];
	size_t n = 0;
	FILE *f = fopen(list_path, "r");
	if (!f) {
		fprintf(stderr, "bench: %s: %s\n", list_path, strerror(errno));
		return -1;
	}
	while (n < max && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0')
			continue;
		if (b_principal_load(c, line, &out[n]) != 0) {
			fclose(f);
			return -1;
		}
		n++;
	}
	fclose(f);
	return (long)n;
}

int b_parse_loopback(const char *text, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	memset(sa, 0, sizeof(*sa));
	if (!colon || (size_t)(colon - text) >= sizeof(host)) {
		fprintf(stderr, "bench: '%s': want 127.x.y.z:PORT\n", text);
		return -1;
	}
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	char *end = NULL;
	long port = strtol(colon + 1, &end, 10);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1 || strncmp(host, "127.", 4) != 0 || !end ||
	    *end || port < 1 || port > 65535) {
		fprintf(stderr, "bench: '%s': want a loopback IP literal 127.x.y.z:PORT\n", text);
		return -1;
	}
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return 0;
}

long b_arg_long(const char *opt, const char *text, long min, long max)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || !end || *end || end == text || v < min || v > max)
		b_die(2, "%s: '%s' is not a number in %ld..%ld", opt, text, min, max);
	return v;
}

double b_arg_double(const char *opt, const char *text, double min, double max)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || !end || *end || end == text || !(v >= min && v <= max))
		b_die(2, "%s: '%s' is not a number in %g..%g", opt, text, min, max);
	return v;
}

void b_raise_nofile(long want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= (rlim_t)want)
		return;
	rl.rlim_cur = (rlim_t)want;
	if (rl.rlim_max < rl.rlim_cur)
		rl.rlim_max = rl.rlim_cur; /* allowed for root; otherwise the call fails */
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int json_fields;

void b_json_begin(void)
{
	json_fields = 0;
	fputc('{', stdout);
}

static void json_key(const char *key)
{
	printf("%s\"%s\": ", json_fields++ ? ", " : "", key);
}

void b_json_str(const char *key, const char *value)
{
	json_key(key);
	fputc('"', stdout);
	for (const char *p = value; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if ((unsigned char)*p < 0x20)
			printf("\\u%04x", (unsigned char)*p);
		else
			fputc(*p, stdout);
	}
	fputc('"', stdout);
}

void b_json_num(const char *key, double value)
{
	json_key(key);
	if (isfinite(value))
		printf("%.6g", value);
	else
		fputs("null", stdout);
}

void b_json_int(const char *key, long long value)
{
	json_key(key);
	printf("%lld", value);
}

void b_json_end(void)
{
	fputs("}\n", stdout);
	fflush(stdout);
}

void b_die(int status, const char *fmt, ...)
{
	va_list ap;
	fputs("bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}
