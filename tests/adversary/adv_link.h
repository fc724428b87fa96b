/* kd3adv: one relayed conversation, a TCP connection pair or a UDP flow, both ways.
 *
 * Side 0 is the party that called (the initiator, or the responder asking the KDC),
 * side 1 the one called. Bytes read from a side are cut into kd3 frames (a TCP stream
 * with kd3_frame_size; a datagram is one frame), each frame goes through adv_see, and
 * the plan's pieces are queued toward the sides they go to, each not before its time.
 * The end of a TCP stream is passed on as a half-close once everything before it has
 * gone; the link ends when both ways have ended, on an error, or when a plan cuts it. */
#ifndef KD3ADV_LINK_H
#define KD3ADV_LINK_H

#include <stdint.h>
#include <sys/socket.h>

#include "adv_act.h"

#define ADV_QUEUE_MAX (1u << 20) /* bytes queued toward a side before we stop reading */

typedef struct adv_piece adv_piece;

typedef struct adv_side {
	int fd;                       /* -1 once closed */
	int shared_fd;                /* UDP side 0: the listening socket, not ours to close */
	struct sockaddr_storage addr; /* UDP side 0: where the responder is */
	socklen_t addr_len;
	uint8_t *in; /* TCP: bytes of a frame not yet whole (KD3_FRAME_MAX) */
	size_t in_len;
	int raw;                /* not a kd3 stream: bytes pass in chunks, as OTHER */
	int eof;                /* its stream ended */
	int shut;               /* we passed that end on to the other side */
	unsigned records;       /* records read from it */
	adv_piece *head, *tail; /* to send to this side */
	size_t queued;
	adv_piece *held; /* reorder, join: a frame from this side waiting for the next */
} adv_side;

typedef struct adv_link {
	int used;
	int transport; /* ADV_TCP or ADV_UDP */
	int dir0;      /* direction of frames from side 0: ADV_I2R or ADV_R2KDC */
	adv_side s[2];
	uint64_t last_ms; /* last activity, for UDP flow expiry */
} adv_link;

/* TCP: takes both sockets (non-blocking). 0, or -1 (out of memory; both closed). */
int adv_link_open_tcp(adv_link *l, int dir0, int fd0, int fd1);
/* UDP: side 0 is addr reached through the shared socket fd0; fd1 is ours. */
void adv_link_open_udp(adv_link *l, int dir0, int fd0, const struct sockaddr_storage *addr,
                       socklen_t addr_len, int fd1);
/* Reads what side k has (TCP) and handles every whole frame. */
void adv_link_read(adv_ctx *ctx, adv_link *l, int k, uint64_t now);
/* One datagram from side k. */
void adv_link_datagram(adv_ctx *ctx, adv_link *l, int k, const uint8_t *p, size_t len,
                       uint64_t now);
/* Sends what is due; passes ends of stream on; ends the link when both ways are done. */
void adv_link_flush(adv_link *l, uint64_t now);
/* Poll events wanted for side k's socket, and when its next piece falls due. */
short adv_link_events(const adv_link *l, int k, uint64_t now, uint64_t *next_due);
void adv_link_close(adv_link *l);

#endif
