/* responder: one exchange with the KDC (M2 out, M3 or ERROR back), without blocking.
 *
 * Per KDC in the list, in order: UDP on a connected socket (so only that KDC's
 * replies reach it), sending the SAME M2 bytes up to RESP_KDC_UDP_TRIES times, the
 * first wait base_ms and doubling; then one TCP attempt bounded by
 * RESP_KDC_TCP_TIMEOUT_MS; then the next KDC. A UDP "port unreachable" skips the
 * remaining UDP tries. The exchange only moves bytes: the session checks each reply
 * (n_r must be the open one) and calls resp_kdcx_reject for one it will not take.
 *
 * An ERROR is not authenticated, and over UDP anyone who can send us a datagram with
 * the KDC's address can forge one. So an ERROR that came over UDP is not taken at
 * once: resp_kdcx_confirm sends the same M2 over TCP to the same KDC (an off-path
 * attacker cannot answer inside a TCP connection). Its reply decides (an M3 goes on,
 * an ERROR is taken); when TCP fails the UDP ERROR is returned after all (unconfirmed
 * set), since the KDC may well be unreachable over TCP.
 *
 * KDC health, remembered across sessions (per address, for the process's life): a KDC
 * that failed an exchange (no answer over UDP and TCP, refused, closed) is put in
 * backoff, RESP_KDC_BACKOFF_MIN_MS doubling with each further failure up to
 * RESP_KDC_BACKOFF_MAX_MS. An exchange tries the KDCs not in backoff first, in list
 * order, then those in backoff (so a dead KDC costs one session a timeout, not every
 * session); a KDC whose backoff ran out is first in line again, and one answer (an M3
 * or an ERROR) clears its record. */
#ifndef RESP_KDCX_H
#define RESP_KDCX_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "watch.h"
#include "wire.h"

#define RESP_KDC_UDP_TRIES      3
#define RESP_KDC_TCP_TIMEOUT_MS 2000
#define RESP_KDC_MAX            16 /* KDCs an exchange tries; more in the list are left out */
#define RESP_KDC_BACKOFF_MIN_MS 1000
#define RESP_KDC_BACKOFF_MAX_MS 60000
/* The largest reply: an ERROR (an M3 is smaller). */
#define RESP_KDC_REPLY_MAX (KD3_HDR_LEN + KD3_ERROR_BODY_MAX)

/* Results of the resp_kdcx_* steps. */
#define RESP_KDCX_PENDING 0 /* waiting (the watch or the deadline) */
#define RESP_KDCX_REPLY   1 /* reply[reply_len] holds one whole frame from the KDC */
#define RESP_KDCX_FAILED  2 /* every KDC in the list failed */

typedef enum resp_kdcx_state {
	RESP_KX_IDLE,
	RESP_KX_UDP,
	RESP_KX_TCP_CONNECT,
	RESP_KX_TCP_IO,
} resp_kdcx_state;

typedef struct resp_kdcx {
	resp_kdcx_state state;
	uint64_t sid; /* session id, for log lines */
	int fs;       /* for traces */
	const kd3_addr *kdcs;
	size_t nkdcs;
	size_t idx;                  /* the KDC being tried (into kdcs) */
	uint8_t order[RESP_KDC_MAX]; /* this exchange's order: healthy first */
	size_t norder;
	size_t pos; /* into order */
	uint32_t base_ms;
	uint32_t wait_ms;
	unsigned udp_tries;
	uint64_t deadline;   /* next retransmit or give-up time; 0 when idle */
	uint64_t started_ms; /* of the whole exchange */
	resp_watch w;

	uint8_t m2[KD3_HDR_LEN + KD3_M2_BODY_MAX]; /* the state machine writes M2 here */
	size_t m2_len;
	size_t tcp_sent;
	uint8_t reply[RESP_KDC_REPLY_MAX];
	size_t reply_len; /* RESP_KDCX_REPLY */
	size_t tcp_got;

	int confirming;  /* an ERROR came over UDP; asking the same KDC over TCP */
	int unconfirmed; /* the reply is that UDP ERROR: TCP could not confirm it */
	uint8_t udp_error[RESP_KDC_REPLY_MAX];
	size_t udp_error_len;
	char confirm_failed[96];      /* why TCP could not confirm (unconfirmed) */
	struct resp_metrics *metrics; /* failovers counted per KDC; NULL: none */
} resp_kdcx;

void resp_kdcx_init(resp_kdcx *x, uint64_t sid, const kd3_addr *kdcs, size_t nkdcs,
                    uint32_t base_ms, void *owner);
/* Sends m2[m2_len] to the first KDC. */
int resp_kdcx_start(resp_kdcx *x, int epfd, uint64_t now);
int resp_kdcx_on_io(resp_kdcx *x, int epfd, uint32_t events, uint64_t now);
int resp_kdcx_on_timer(resp_kdcx *x, int epfd, uint64_t now);
/* The reply just returned is not one we take: over UDP keep waiting, over TCP move
 * to the next KDC. */
int resp_kdcx_reject(resp_kdcx *x, int epfd, uint64_t now);
/* 1 while the exchange talks UDP: the reply just returned came in a datagram. */
int resp_kdcx_over_udp(const resp_kdcx *x);
/* The reply just returned is an ERROR that came over UDP: ask the same KDC over TCP.
 * PENDING, or REPLY with the UDP ERROR back in reply[] (unconfirmed) when TCP
 * cannot even start. */
int resp_kdcx_confirm(resp_kdcx *x, int epfd, uint64_t now);
/* Closes the socket; the exchange is over. */
void resp_kdcx_stop(resp_kdcx *x, int epfd);
/* Address of the KDC being tried, for log lines. */
void resp_kdcx_peer(const resp_kdcx *x, char *out, size_t len);

#endif
