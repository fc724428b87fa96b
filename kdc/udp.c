/* kdc UDP: a batch of up to KDC_UDP_BATCH datagrams per recvmmsg, each handled on its
 * own, the replies sent back with one sendmmsg. One frame per datagram. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "err.h"
#include "log.h"
#include "worker.h"

static void udp_arm_rx(kdc_udp_batch *b)
{
	for (size_t i = 0; i < KDC_UDP_BATCH; i++) {
		b->rx_iov[i].iov_base = b->rx_buf[i];
		b->rx_iov[i].iov_len = sizeof(b->rx_buf[i]);
		memset(&b->rx[i].msg_hdr, 0, sizeof(b->rx[i].msg_hdr));
		b->rx[i].msg_hdr.msg_name = &b->rx_addr[i];
		b->rx[i].msg_hdr.msg_namelen = sizeof(b->rx_addr[i]);
		b->rx[i].msg_hdr.msg_iov = &b->rx_iov[i];
		b->rx[i].msg_hdr.msg_iovlen = 1;
		b->rx[i].msg_len = 0;
	}
}

/* Handles datagram i; queues its reply as tx[*ntx] when there is one. */
static void udp_handle_one(kdc_worker *w, size_t i, size_t *ntx)
{
	kdc_udp_batch *b = w->udp;
	struct msghdr *h = &b->rx[i].msg_hdr;
	kd3_addr peer;
	size_t out_len = 0;

	memset(&peer, 0, sizeof(peer));
	memcpy(&peer.ss, h->msg_name, h->msg_namelen <= sizeof(peer.ss) ? h->msg_namelen : 0);
	peer.len = h->msg_namelen;
	if (h->msg_flags & MSG_TRUNC) {
		kdc_request_refused(w, "udp", &peer, "datagram larger than any request", 0);
		return;
	}
	if (!kdc_request(w, "udp", &peer, b->rx_buf[i], b->rx[i].msg_len, b->tx_buf[*ntx],
	                 sizeof(b->tx_buf[*ntx]), &out_len))
		return;
	struct msghdr *t = &b->tx[*ntx].msg_hdr;
	memset(t, 0, sizeof(*t));
	b->tx_iov[*ntx].iov_base = b->tx_buf[*ntx];
	b->tx_iov[*ntx].iov_len = out_len;
	t->msg_name = h->msg_name;
	t->msg_namelen = h->msg_namelen;
	t->msg_iov = &b->tx_iov[*ntx];
	t->msg_iovlen = 1;
	(*ntx)++;
}

/* Sends what is queued; a reply that cannot go is dropped (R retransmits). */
static void udp_send(kdc_worker *w, size_t ntx)
{
	size_t done = 0;
	while (done < ntx) {
		int r =
		    sendmmsg(w->udp_fd, w->udp->tx + done, (unsigned)(ntx - done), MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			kd3_log_error("udp: send buffer full, %zu replies dropped", ntx - done);
			return;
		}
		if (r <= 0) {
			kd3_log_error("udp: a reply was not sent: %s", strerror(errno));
			done++; /* skip the one that failed */
			continue;
		}
		done += (size_t)r;
	}
}

void kdc_udp_ready(kdc_worker *w)
{
	size_t ntx = 0;
	int n;

	udp_arm_rx(w->udp);
	do
		n = recvmmsg(w->udp_fd, w->udp->rx, KDC_UDP_BATCH, MSG_DONTWAIT, NULL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			kd3_log_error("udp: receive failed: %s", strerror(errno));
		return;
	}
	for (size_t i = 0; i < (size_t)n; i++)
		udp_handle_one(w, i, &ntx);
	udp_send(w, ntx);
}
