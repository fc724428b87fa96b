/* kdc sockets: one UDP and one TCP socket per worker, all bound to the same address
 * with SO_REUSEPORT, so the kernel spreads datagrams and connections over workers. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "worker.h"

#define KDC_LISTEN_BACKLOG 1024
#define KDC_UDP_RCVBUF     (4 << 20)

static int sock_fail(const kd3_addr *addr, const char *what, int fd, char *err, size_t len)
{
	char a[64];
	int saved = errno;
	kd3_addr_format(addr, a, sizeof(a));
	snprintf(err, len, "cannot %s %s: %s", what, a, strerror(saved));
	if (fd >= 0)
		close(fd);
	return KD3_E_IO;
}

static int sock_new(const kd3_addr *addr, int type, int reuseport, int *out, char *err, size_t len)
{
	int one = 1;
	int fd = socket(addr->ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sock_fail(addr, "open a socket for", -1, err, len);
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		return sock_fail(addr, "set SO_REUSEPORT on", fd, err, len);
	if (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		return sock_fail(addr, "set SO_REUSEADDR on", fd, err, len);
	/* [::] serves IPv6 only: what was asked for, whatever the system default. */
	if (addr->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
		return sock_fail(addr, "set IPV6_V6ONLY on", fd, err, len);
	if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0)
		return sock_fail(addr, type == SOCK_DGRAM ? "bind UDP" : "bind TCP", fd, err, len);
	*out = fd;
	return KD3_OK;
}

/* SO_REUSEPORT would let us share a port with another kdc of the same user without a
 * word; a bind without it fails if anything holds the port, so try that first. */
int kdc_socket_probe(const kd3_addr *addr, char *err, size_t err_len)
{
	int fd = -1;
	int ret = sock_new(addr, SOCK_DGRAM, 0, &fd, err, err_len);
	if (ret != KD3_OK)
		return ret;
	close(fd);
	ret = sock_new(addr, SOCK_STREAM, 0, &fd, err, err_len);
	if (ret != KD3_OK)
		return ret;
	close(fd);
	return KD3_OK;
}

int kdc_socket_udp(const kd3_addr *addr, int *fd, char *err, size_t err_len)
{
	int size = KDC_UDP_RCVBUF;
	int ret = sock_new(addr, SOCK_DGRAM, 1, fd, err, err_len);
	if (ret == KD3_OK) /* best effort: room for bursts */
		(void)setsockopt(*fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	return ret;
}

int kdc_socket_tcp(const kd3_addr *addr, int *fd, char *err, size_t err_len)
{
	int ret = sock_new(addr, SOCK_STREAM, 1, fd, err, err_len);
	if (ret != KD3_OK)
		return ret;
	int one = 1; /* every accepted connection inherits it */
	if (setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
		ret = sock_fail(addr, "set TCP_NODELAY on", *fd, err, err_len);
		*fd = -1;
	} else if (listen(*fd, KDC_LISTEN_BACKLOG) != 0) {
		ret = sock_fail(addr, "listen on", *fd, err, err_len);
		*fd = -1;
	}
	return ret;
}
