/* kd3 small socket helpers. Addresses are IP literals only ("127.0.0.1:7088",
 * "[::1]:7088"): nothing here resolves a host name. */
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
/* Monotonic milliseconds and microseconds. */
uint64_t kd3_now_ms(void);
uint64_t kd3_now_us(void);

#endif
