/* kd3 small socket helpers over IP literal addresses ("127.0.0.1:7088", "[::1]:7088");
 * host names are resolved in resolve.h (and addrs.h), never here. */
#ifndef KD3_NET_H
#define KD3_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct kd3_addr {
	struct sockaddr_storage ss;
	socklen_t len;
} kd3_addr;

/* "IPv4:port", "[IPv6]:port", or a bare IP with default_port. */
int kd3_addr_parse(const char *text, uint16_t default_port, kd3_addr *a);
/* "127.0.0.1:7088" / "[::1]:7088" */
void kd3_addr_format(const kd3_addr *a, char *out, size_t out_len);
int kd3_set_nonblock(int fd);
/* Waits until fd is ready for events (POLLIN, POLLOUT), or the deadline passes
 * (KD3_E_TIMEOUT; kd3_now_ms clock). KD3_E_IO when poll fails. */
int kd3_wait_fd(int fd, short events, uint64_t deadline_ms);
/* A TCP connection to a (an IP literal address), non-blocking, TCP_NODELAY, within
 * timeout_ms. On KD3_E_IO *sys_err holds the errno (e.g. ECONNREFUSED); KD3_E_TIMEOUT
 * when no answer came. */
int kd3_tcp_connect(const kd3_addr *a, int timeout_ms, int *fd, int *sys_err);
/* Monotonic milliseconds and microseconds. */
uint64_t kd3_now_ms(void);
uint64_t kd3_now_us(void);

#endif
