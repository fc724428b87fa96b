/* kd3 names as text (resolve.h): "host:port", "[v6]:port", a bare host, split apart and
 * checked strictly, so that nothing odd reaches the resolver or a log line. */
#include "resolve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

#define LABEL_MAX 63
/* Longer than any valid form ("[" v6 "]:" port, or a 253-byte name ":" port): refused
 * before anything is copied. */
#define TEXT_MAX  (KD3_HOST_MAX + 8)
#define SHOWN_MAX 80 /* bytes of the text quoted in an error line */

/* text as it goes into an error line: at most SHOWN_MAX bytes, every byte that is not
 * printable ASCII as '?', so that err stays one line whatever the input holds. */
static const char *shown(const char *text, char out[SHOWN_MAX + 4])
{
	size_t n = 0;
	for (; text[n] && n < SHOWN_MAX; n++) {
		unsigned char c = (unsigned char)text[n];
		out[n] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (text[n]) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

/* One error line, "'TEXT': what"; any part of the text in what went through shown(). */
__attribute__((format(printf, 4, 5))) static int refuse(const char *text, char *err, size_t err_len,
                                                        const char *fmt, ...)
{
	char text_shown[SHOWN_MAX + 4], what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (err && err_len)
		snprintf(err, err_len, "'%s': %s", shown(text, text_shown), what);
	return KD3_E_CONFIG;
}

/* Decimal digits only, 1..65535 (0 too when allow_port0): no sign, no space, no wrap. */
static int parse_port(const char *s, int allow_port0, uint16_t *port)
{
	unsigned long v = 0;
	size_t n = 0;
	for (; s[n] >= '0' && s[n] <= '9'; n++) {
		v = v * 10 + (unsigned long)(s[n] - '0');
		if (v > 65535)
			return KD3_E_CONFIG;
	}
	if (n == 0 || s[n] != '\0' || (v == 0 && !allow_port0))
		return KD3_E_CONFIG;
	*port = (uint16_t)v;
	return KD3_OK;
}

static int is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.';
}

static int all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* A host name: labels of 1-63 name characters, not starting or ending with '-', at
 * most KD3_HOST_MAX bytes (a trailing dot included), one trailing dot allowed; the last
 * label not all digits (RFC 1123 2.1: "999.1.1.1" or "127.1" is a mistyped address,
 * never a name). */
static int check_name(const char *text, const char *host, char *err, size_t err_len)
{
	size_t len = strlen(host);
	if (len > KD3_HOST_MAX)
		return refuse(text, err, err_len, "host name longer than 253 bytes");
	for (size_t i = 0; i < len; i++) {
		if (!is_name_char(host[i])) {
			char bad[2] = {host[i], '\0'}, bad_shown[SHOWN_MAX + 4];
			return refuse(text, err, err_len,
			              "'%s' is not allowed in a host name (letters, digits, '-', "
			              "'_' and '.')",
			              shown(bad, bad_shown));
		}
	}
	size_t end = (len > 0 && host[len - 1] == '.') ? len - 1 : len;
	size_t start = 0, last_start = 0;
	while (start <= end) {
		const char *dot = memchr(host + start, '.', end - start);
		size_t label_len = dot ? (size_t)(dot - host) - start : end - start;
		if (label_len == 0)
			return refuse(text, err, err_len, "empty label in the host name");
		if (label_len > LABEL_MAX)
			return refuse(text, err, err_len, "a label longer than 63 bytes");
		if (host[start] == '-' || host[start + label_len - 1] == '-')
			return refuse(text, err, err_len, "a label starts or ends with '-'");
		last_start = start;
		start += label_len + 1;
	}
	if (all_digits(host + last_start, end - last_start))
		return refuse(text, err, err_len,
		              "neither an IPv4 address nor a host name (its last label is all "
		              "digits)");
	return KD3_OK;
}

static void set_host(kd3_hostport *hp, const char *host, size_t len, int literal)
{
	memcpy(hp->host, host, len);
	hp->host[len] = '\0';
	hp->literal = literal;
}

/* "[v6]" or "[v6]:port". */
static int parse_bracketed(const char *text, uint16_t default_port, int allow_port0,
                           kd3_hostport *hp, char *err, size_t err_len)
{
	char inside[INET6_ADDRSTRLEN + 1], part[SHOWN_MAX + 4];
	struct in6_addr a6;
	const char *close = strchr(text, ']');
	if (!close)
		return refuse(text, err, err_len, "missing ']' after an IPv6 address");
	size_t len = (size_t)(close - text - 1);
	if (len == 0)
		return refuse(text, err, err_len, "empty host");
	if (len >= sizeof(inside))
		return refuse(text, err, err_len, "too long for an IPv6 address in brackets");
	memcpy(inside, text + 1, len);
	inside[len] = '\0';
	if (inet_pton(AF_INET6, inside, &a6) != 1)
		return refuse(text, err, err_len,
		              "'%s' in brackets is not an IPv6 address (brackets are only for "
		              "IPv6)",
		              shown(inside, part));
	hp->port = default_port;
	if (close[1] == ':') {
		if (parse_port(close + 2, allow_port0, &hp->port) != KD3_OK)
			return refuse(text, err, err_len,
			              allow_port0 ? "port '%s' is not a number 0-65535"
			                          : "port '%s' is not a number 1-65535",
			              shown(close + 2, part));
	} else if (close[1] != '\0') {
		return refuse(text, err, err_len, "unexpected '%s' after ']'",
		              shown(close + 1, part));
	}
	set_host(hp, inside, len, 1);
	return KD3_OK;
}

/* "::1": two colons or more, and no brackets, is an IPv6 address with no port. */
static int parse_bare_v6(const char *text, uint16_t default_port, kd3_hostport *hp, char *err,
                         size_t err_len)
{
	struct in6_addr a6;
	size_t len = strlen(text);
	if (len >= INET6_ADDRSTRLEN || inet_pton(AF_INET6, text, &a6) != 1)
		return refuse(text, err, err_len,
		              "not an IPv6 address (with a port, write [IPv6]:port)");
	hp->port = default_port;
	set_host(hp, text, len, 1);
	return KD3_OK;
}

/* "host", "host:port": an IPv4 address or a host name. */
static int parse_host_port(const char *text, uint16_t default_port, int allow_port0,
                           kd3_hostport *hp, char *err, size_t err_len)
{
	char host[TEXT_MAX + 1], part[SHOWN_MAX + 4];
	struct in_addr a4;
	const char *colon = strchr(text, ':');
	size_t len = colon ? (size_t)(colon - text) : strlen(text);

	if (len == 0)
		return refuse(text, err, err_len, "empty host");
	memcpy(host, text, len);
	host[len] = '\0';
	hp->port = default_port;
	if (colon && parse_port(colon + 1, allow_port0, &hp->port) != KD3_OK)
		return refuse(text, err, err_len,
		              allow_port0 ? "port '%s' is not a number 0-65535"
		                          : "port '%s' is not a number 1-65535",
		              shown(colon + 1, part));
	if (inet_pton(AF_INET, host, &a4) == 1) {
		set_host(hp, host, len, 1);
		return KD3_OK;
	}
	int ret = check_name(text, host, err, err_len);
	if (ret != KD3_OK)
		return ret;
	set_host(hp, host, len, 0);
	return KD3_OK;
}

int kd3_hostport_parse(const char *text, uint16_t default_port, int allow_port0, kd3_hostport *hp,
                       char *err, size_t err_len)
{
	kd3_hostport parsed;
	int ret;

	memset(hp, 0, sizeof(*hp));
	memset(&parsed, 0, sizeof(parsed));
	if (err && err_len)
		err[0] = '\0';
	if (!text || !*text)
		return refuse(text ? text : "", err, err_len, "empty host");
	if (strlen(text) > TEXT_MAX)
		return refuse(text, err, err_len, "too long for a host and port");
	const char *colon = strchr(text, ':');
	if (text[0] == '[')
		ret = parse_bracketed(text, default_port, allow_port0, &parsed, err, err_len);
	else if (colon && strchr(colon + 1, ':'))
		ret = parse_bare_v6(text, default_port, &parsed, err, err_len);
	else
		ret = parse_host_port(text, default_port, allow_port0, &parsed, err, err_len);
	if (ret == KD3_OK)
		*hp = parsed; /* all or nothing: a failure leaves hp zeroed */
	return ret;
}

size_t kd3_addrs_keep_family(kd3_addr *addrs, size_t n, int family)
{
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		if (addrs[i].ss.ss_family == family)
			addrs[kept++] = addrs[i];
	return kept;
}
