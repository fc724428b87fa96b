/* kd3adv: the listening sockets and the loop. Two relays, each optional:
 *   --tcp LISTEN=UPSTREAM: initiators connect to LISTEN (TCP); each connection is
 *     relayed to the responder at UPSTREAM (I->R, R->I);
 *   --kdc LISTEN=UPSTREAM: the responder's KDC requests to LISTEN, over UDP and TCP on
 *     the same port, relayed to the KDC at UPSTREAM over the same transport (R->KDC,
 *     KDC->R); each UDP source address is a flow with its own socket to the KDC.
 * Addresses are IPv4 literals on loopback (127.0.0.0/8); LISTEN's port may be 0. */
#ifndef KD3ADV_RELAY_H
#define KD3ADV_RELAY_H

#include <netinet/in.h>
#include <signal.h>

#include "adv_link.h"

#define ADV_MAX_TCP_LINKS 64
#define ADV_MAX_UDP_FLOWS 64
#define ADV_UDP_IDLE_MS   30000

typedef struct adv_relay {
	int tcp_fd; /* --tcp listener, -1 without */
	struct sockaddr_in tcp_up;
	int kdc_udp_fd, kdc_tcp_fd; /* --kdc listeners, -1 without */
	struct sockaddr_in kdc_up;
	adv_link tcp[ADV_MAX_TCP_LINKS]; /* both relays' TCP connections */
	adv_link udp[ADV_MAX_UDP_FLOWS];
} adv_relay;

/* "127.0.0.1:7089" into out; port 0 allowed when listening. 0 or -1. */
int adv_parse_loopback(const char *text, int listening, struct sockaddr_in *out);
void adv_relay_init(adv_relay *r);
/* Binds and listens; logs where. 0, or -1 with an error logged. */
int adv_relay_tcp(adv_relay *r, const struct sockaddr_in *listen_at, const struct sockaddr_in *up);
int adv_relay_kdc(adv_relay *r, const struct sockaddr_in *listen_at, const struct sockaddr_in *up);
/* Relays until *stop, or deadline_ms (monotonic). *disarm is copied to ctx->disarmed. */
void adv_relay_run(adv_relay *r, adv_ctx *ctx, uint64_t deadline_ms, volatile sig_atomic_t *stop,
                   volatile sig_atomic_t *disarm);
void adv_relay_close(adv_relay *r);

#endif
