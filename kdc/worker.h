/* kdc worker: one thread with its own sockets (UDP and TCP, SO_REUSEPORT on the same
 * address), its own kd3_crypto (DRBG) and kd3_kdc (lookaside cache), and an epoll loop.
 * Everything a request needs is allocated here, once, before the thread starts: the
 * request path allocates nothing and touches no disk.
 *
 * Between two event batches the worker picks up the current snapshot (kdc/live.h:
 * principal table and live settings) and holds it until it blocks again; the lockout
 * and rate-limit tables are shared by every worker (atomics, kdc/lockout.h,
 * kdc/ratelimit.h). SIGTERM drains: the worker answers the datagrams already queued,
 * closes its listening and UDP sockets, closes idle connections, lets those with a
 * request under way finish it (until drain-timeout-ms at most), then stops. */
#ifndef KDC_WORKER_H
#define KDC_WORKER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <stdatomic.h>

#include "crypto.h"
#include "kdc_core.h"
#include "live.h"
#include "lockout.h"
#include "metrics.h"
#include "net.h"
#include "policy.h"
#include "ratelimit.h"
#include "stream.h"
#include "table.h"
#include "wire.h"

#define KDC_UDP_BATCH    32
#define KDC_UDP_BUF      2048 /* > the largest M2 frame; a longer datagram is refused */
#define KDC_REPLY_MAX    512  /* >= an M3 or an ERROR frame */
#define KDC_TCP_PAUSE_MS 100  /* out of descriptors: the listening socket rests this long */

/* epoll tags; connection i is KDC_TAG_CONN + i. */
#define KDC_TAG_STOP   0
#define KDC_TAG_UDP    1
#define KDC_TAG_LISTEN 2
#define KDC_TAG_CONN   16

/* Shared by every worker, fixed for the server's life. */
typedef struct kdc_serve_cfg {
	struct kd3_transcript *transcript; /* --transcript: every request, or NULL */
	uint64_t idle_ms;  /* a TCP connection must send a whole frame within this */
	size_t max_conns;  /* per worker */
	uint64_t drain_ms; /* SIGTERM: how long requests under way may take */
	kdc_rcu *rcu;      /* the current snapshot */
	kdc_lockout *lockout;
	kdc_ratelimit *ratelimit;
} kdc_serve_cfg;

/* kdc_worker.stop_mode */
#define KDC_RUN   0
#define KDC_DRAIN 1 /* finish what is under way, then stop */
#define KDC_STOP  2 /* stop now */

/* What the request path knows of the request being handled, for the policy hook. */
typedef struct kdc_request_ctx {
	kdc_policy_request req;
	kdc_verdict verdict; /* set when the hook ran */
	int hook_ran;
	const kd3_principal *pi, *pr; /* the hook's: both principals, found and verified */
} kdc_request_ctx;

typedef struct kdc_conn {
	int fd; /* -1 when free */
	uint64_t deadline_ms;
	struct kdc_conn *prev, *next; /* the active list (by deadline), or the free list */
	kd3_addr peer;
	kd3_stream in;
} kdc_conn;

typedef struct kdc_udp_batch {
	struct mmsghdr rx[KDC_UDP_BATCH];
	struct iovec rx_iov[KDC_UDP_BATCH];
	struct sockaddr_storage rx_addr[KDC_UDP_BATCH];
	uint8_t rx_buf[KDC_UDP_BATCH][KDC_UDP_BUF];
	struct mmsghdr tx[KDC_UDP_BATCH];
	struct iovec tx_iov[KDC_UDP_BATCH];
	uint8_t tx_buf[KDC_UDP_BATCH][KDC_REPLY_MAX];
} kdc_udp_batch;

typedef struct kdc_worker {
	kdc_metrics metrics; /* first: its own cache lines (the struct is allocated aligned) */
	unsigned id;
	const kdc_serve_cfg *cfg;
	/* Connections leave the epoll set by close() alone (kdc/tcp.c): that holds only while
	 * no descriptor of the KDC is ever duplicated (dup, fork, SCM_RIGHTS). Adding one
	 * means adding EPOLL_CTL_DEL back to conn_close. */
	int epfd, udp_fd, tcp_fd, stop_fd;
	int spare_fd;              /* this worker's, given up to accept-and-close when out of
	                            * descriptors; -1 when another thread took the slot */
	uint64_t listen_resume_ms; /* 0, or when to watch tcp_fd again (out of descriptors) */
	uint64_t fd_log_next_ms;   /* out of descriptors: the next line no sooner than this */
	unsigned fd_unlogged;      /* connections refused since the last such line */
	kd3_crypto crypto;
	int crypto_ready;
	kd3_kdc *kdc;
	kdc_udp_batch *udp;
	kdc_conn *conns;
	kdc_conn *free_list;
	kdc_conn *active_head, *active_tail; /* oldest deadline first */
	size_t active;
	uint8_t tcp_out[KDC_REPLY_MAX];
	const kdc_snapshot *snap; /* the one in use (between rcu enter and leave) */
	uint64_t snap_generation;
	kdc_request_ctx rq;
	uint64_t busy_log_second; /* rate-limited requests: at most a few lines a second */
	unsigned busy_logged, busy_unlogged;
	pthread_t thread;
	int started;
	int stopping;
	int draining;
	uint64_t drain_deadline_ms;
	atomic_int stop_mode;
	atomic_int done; /* the thread left its loop */
	int failed;
} kdc_worker;

/* kcfg: the realm secret (copied into the worker's kd3_kdc); the live settings come
 * from cfg->rcu's snapshot. */
int kdc_worker_init(kdc_worker *w, unsigned id, const kdc_serve_cfg *cfg, const kd3_addr *addr,
                    const kd3_kdc_config *kcfg, char *err, size_t err_len);
int kdc_worker_start(kdc_worker *w);
/* Asks the thread to stop at once (safe from another thread). */
void kdc_worker_stop(kdc_worker *w);
/* Asks the thread to drain, then stop (safe from another thread). */
void kdc_worker_drain(kdc_worker *w);
/* Takes snap as the snapshot in use: table, policy, live settings (the request path
 * calls it between batches; tests call it directly). */
void kdc_worker_adopt(kdc_worker *w, const kdc_snapshot *snap);
/* Joins the thread if it runs, closes everything and wipes the worker's secrets. */
void kdc_worker_free(kdc_worker *w);

/* udp.c: one recvmmsg batch, answered with one sendmmsg. */
void kdc_udp_ready(kdc_worker *w);

/* tcp.c */
void kdc_tcp_accept(kdc_worker *w);
void kdc_tcp_readable(kdc_worker *w, kdc_conn *c);
/* Closes connections past their deadline; returns the epoll timeout to the next one. */
int kdc_tcp_expire(kdc_worker *w, uint64_t now_ms);
void kdc_tcp_close_all(kdc_worker *w);
/* Draining: closes every connection with no request under way (no bytes buffered). */
void kdc_tcp_close_idle(kdc_worker *w);

/* request.c: one frame through the rate limit, the lockout and kd3_kdc_handle, traced
 * and logged; an M3 notes both principals' last use (kdc/usage.h). 1: send out. */
int kdc_request(kdc_worker *w, const char *transport, const kd3_addr *peer, const uint8_t *in,
                size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len);
/* A log line for input that never reached the handler (oversized datagram, bad header). */
void kdc_request_refused(kdc_worker *w, const char *transport, const kd3_addr *peer,
                         const char *why, int replied);
/* kd3_policy_fn over a worker (ctx): the snapshot's rules with the request's suite and
 * flags. */
int kdc_request_policy(void *ctx, const kd3_principal *i, const kd3_principal *r,
                       uint32_t *lifetime);

/* sockets.c */
int kdc_socket_probe(const kd3_addr *addr, char *err, size_t err_len);
int kdc_socket_udp(const kd3_addr *addr, int *fd, char *err, size_t err_len);
int kdc_socket_tcp(const kd3_addr *addr, int *fd, char *err, size_t err_len);

#endif
