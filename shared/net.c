#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

/* Decimal digits only, 1..65535: strtoul alone would take spaces, signs and wrap. */
static int parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t n = 0;
	for (; s[n] >= '0' && s[n] <= '9'; n++) {
		v = v * 10 + (unsigned long)(s[n] - '0');
		if (v > 65535)
			return KD3_E_CONFIG;
	}
	if (n == 0 || s[n] != '\0' || v == 0)
		return KD3_E_CONFIG;
	*port = (uint16_t)v;
	return KD3_OK;
}

static int fill_v4(const char *host, uint16_t port, kd3_addr *a)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		return KD3_E_CONFIG;
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	a->len = sizeof(*in);
	return KD3_OK;
}

static int fill_v6(const char *host, uint16_t port, kd3_addr *a)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
		return KD3_E_CONFIG;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	a->len = sizeof(*in6);
	return KD3_OK;
}

int kd3_addr_parse(const char *text, uint16_t default_port, kd3_addr *a)
{
	char host[64];
	uint16_t port = default_port;
	size_t n = strlen(text);

	memset(a, 0, sizeof(*a));
	if (n == 0 || n >= sizeof(host))
		return KD3_E_CONFIG;
	if (text[0] == '[') { /* [v6]:port or [v6] */
		const char *close = strchr(text, ']');
		if (!close || (size_t)(close - text - 1) >= sizeof(host))
			return KD3_E_CONFIG;
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = '\0';
		if (close[1] == ':' && parse_port(close + 2, &port))
			return KD3_E_CONFIG;
		if (close[1] != '\0' && close[1] != ':')
			return KD3_E_CONFIG;
		return fill_v6(host, port, a);
	}
	const char *colon = strchr(text, ':');
	if (colon && strchr(colon + 1, ':')) /* bare IPv6 literal, no port */
		return fill_v6(text, port, a);
	memcpy(host, text, n + 1);
	if (colon) {
		host[colon - text] = '\0';
		if (parse_port(colon + 1, &port))
			return KD3_E_CONFIG;
	}
	return fill_v4(host, port, a);
}

void kd3_addr_format(const kd3_addr *a, char *out, size_t out_len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(out, out_len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(out, out_len, "%s:%u", host, ntohs(in->sin_port));
	}
}

int kd3_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL, 0);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return KD3_E_IO;
	return KD3_OK;
}

uint64_t kd3_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t kd3_now_ms(void)
{
	return kd3_now_us() / 1000u;
}

/* ---- waiting and connecting ------------------------------------------------------------ */

int kd3_wait_fd(int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = kd3_now_ms();
		if (now >= deadline_ms)
			return KD3_E_TIMEOUT;
		uint64_t left = deadline_ms - now;
		struct pollfd pfd = {.fd = fd, .events = events};
		int n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return KD3_OK;
		if (n < 0 && errno != EINTR)
			return KD3_E_IO;
	}
}

int kd3_tcp_connect(const kd3_addr *a, int timeout_ms, int *fd_out, int *sys_err)
{
	int ret = KD3_E_IO;
	int soerr = 0;
	int one = 1;
	socklen_t soerr_len = sizeof(soerr);
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	*sys_err = 0;
	if (fd < 0) {
		*sys_err = errno;
		return KD3_E_IO;
	}
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0) {
		if (errno != EINPROGRESS && errno != EINTR) {
			*sys_err = errno;
			goto out;
		}
		ret = kd3_wait_fd(fd, POLLOUT, kd3_now_ms() + (uint64_t)timeout_ms);
		if (ret != KD3_OK)
			goto out;
		ret = KD3_E_IO;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &soerr_len) != 0 || soerr != 0) {
			*sys_err = soerr ? soerr : errno;
			goto out;
		}
	}
	/* Records are small and interactive: do not hold them back (Nagle). */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*fd_out = fd;
	return KD3_OK;
out:
	close(fd);
	return ret;
}
