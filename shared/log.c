#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static const char *log_program = "kd3";
static int log_verbose;

void kd3_log_set_program(const char *name)
{
	log_program = name;
}

void kd3_log_set_verbose(int verbose)
{
	log_verbose = verbose;
}

static void log_line(const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void log_line(const char *level, const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	/* One write per line so lines from several threads do not interleave. */
	fprintf(stderr, "%s: %s%s\n", log_program, level, line);
}

void kd3_log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("error: ", fmt, ap);
	va_end(ap);
}

void kd3_log_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("", fmt, ap);
	va_end(ap);
}

void kd3_log_debug(const char *fmt, ...)
{
	if (!log_verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_line("debug: ", fmt, ap);
	va_end(ap);
}

void kd3_log_safe_name(const uint8_t *p, size_t len, char out[256])
{
	size_t n = len > 255 ? 255 : len;
	for (size_t i = 0; i < n; i++)
		out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	out[n] = '\0';
}
