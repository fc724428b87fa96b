/* An in-process kd3 initiator for the benchmarks: the library's state machine
 * (peer.h) over a blocking loopback TCP socket, every wait bounded by poll. Used by
 * sessload (handshakes, idle sessions) and msgload (messages through a session). */
#ifndef KD3_BENCH_PEER_H
#define KD3_BENCH_PEER_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_util.h"
#include "peer.h"
#include "wire.h"

#define BP_IO_TIMEOUT_MS 5000

typedef struct bp_conn {
	int fd;
	kd3_peer peer;
	uint8_t rx[2 * KD3_FRAME_MAX];
	size_t rx_len;
	size_t rx_frame; /* size of the frame at rx[0] handed out last, consumed next time */
	uint8_t tx[2 * KD3_FRAME_MAX];
	kd3_writer tx_w;
	uint64_t established_ns; /* FINISHED sent */
} bp_conn;

/* Connects to a responder and runs the exchange up to and including FINISHED sent,
 * as initiator self towards responder peer_name, in forward-secret mode (X25519) when
 * forward_secret is set. 0, or -1 with why set. */
int bp_open(bp_conn *c, kd3_crypto *crypto, const struct sockaddr_in *responder,
            const b_principal *self, const char *peer_name, uint8_t suite, int forward_secret,
            const char **why);
/* Sends our CLOSE and waits (bounded) for the responder's: proof that it verified our
 * FINISHED and every record before it. 0, or -1 with why set. */
int bp_close(bp_conn *c, const char **why);
/* Frees the peer (wiping its secrets) and closes the socket. */
void bp_free(bp_conn *c);

/* Sends every byte of p (poll-bounded). 0 or -1. */
int bp_send_all(int fd, const uint8_t *p, size_t n);
/* The next whole frame into frame and len (valid until the next call), waiting at most
 * timeout_ms. 0, or -1 with why set. */
int bp_next_frame(bp_conn *c, int timeout_ms, uint8_t **frame, size_t *len, const char **why);
/* Like bp_next_frame, but returns 1 at once when no whole frame is buffered and
 * nothing can be read without waiting. */
int bp_try_frame(bp_conn *c, uint8_t **frame, size_t *len, const char **why);

#endif
