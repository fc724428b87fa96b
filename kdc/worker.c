/* kdc worker: setup (everything allocated here, once), the epoll loop, draining, and
 * teardown. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define KDC_EPOLL_EVENTS      64
#define KDC_DRAIN_UDP_BATCHES 8 /* of KDC_UDP_BATCH datagrams */

static int watch(kdc_worker *w, int fd, uint64_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN};
	ev.data.u64 = tag;
	return epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? KD3_OK : KD3_E_IO;
}

static int worker_alloc(kdc_worker *w, const kd3_kdc_config *kcfg, char *err, size_t len)
{
	/* No DRBG: a worker draws no randomness (SK is derived from the realm secret). */
	if (kd3_crypto_init(&w->crypto, "kd3 kdc worker", 0) != KD3_OK) {
		snprintf(err, len, "worker %u: cannot set up crypto", w->id);
		return KD3_E_CRYPTO;
	}
	w->crypto_ready = 1;
	w->kdc = calloc(1, sizeof(*w->kdc));
	w->udp = calloc(1, sizeof(*w->udp));
	/* Pages of an unused connection's buffer are never touched, so a large cap costs
	 * address space, not memory. */
	w->conns = calloc(w->cfg->max_conns, sizeof(*w->conns));
	if (!w->kdc || !w->udp || !w->conns) {
		snprintf(err, len, "worker %u: out of memory", w->id);
		return KD3_E_NOMEM;
	}
	kd3_kdc_init(w->kdc, &w->crypto, kdc_table_lookup, NULL, kcfg);
	w->kdc->policy = kdc_request_policy;
	w->kdc->policy_ctx = w;
	kdc_worker_adopt(w, kdc_rcu_current(w->cfg->rcu));
	for (size_t i = w->cfg->max_conns; i-- > 0;) {
		w->conns[i].fd = -1;
		w->conns[i].next = w->free_list;
		w->free_list = &w->conns[i];
	}
	return KD3_OK;
}

static int worker_fds(kdc_worker *w, const kd3_addr *addr, char *err, size_t len)
{
	int ret = kdc_socket_udp(addr, &w->udp_fd, err, len);
	if (ret == KD3_OK)
		ret = kdc_socket_tcp(addr, &w->tcp_fd, err, len);
	if (ret != KD3_OK)
		return ret;
	w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->stop_fd < 0 || w->epfd < 0 || watch(w, w->stop_fd, KDC_TAG_STOP) != KD3_OK ||
	    watch(w, w->udp_fd, KDC_TAG_UDP) != KD3_OK ||
	    watch(w, w->tcp_fd, KDC_TAG_LISTEN) != KD3_OK) {
		snprintf(err, len, "worker %u: cannot set up epoll: %s", w->id, strerror(errno));
		return KD3_E_IO;
	}
	return KD3_OK;
}

void kdc_worker_adopt(kdc_worker *w, const kdc_snapshot *snap)
{
	const kdc_live_cfg *c = &snap->cfg;
	/* By generation, not address: a new snapshot may reuse a freed one's memory. */
	if (w->snap == snap && w->snap_generation == snap->generation)
		return;
	w->snap = snap;
	w->snap_generation = snap->generation;
	w->kdc->lookup_ctx = (void *)&snap->table;
	w->kdc->cfg.suites_allowed = c->suites;
	w->kdc->cfg.require_fs = c->require_fs;
	w->kdc->cfg.lifetime = c->lifetime;
	w->kdc->cfg.cache_window_ms = c->cache_window_ms;
	/* A cached M3 was issued under the old table and settings (a principal since
	 * disabled, a pair since denied): none is handed out again. */
	kd3_wipe(w->kdc->cache, sizeof(w->kdc->cache));
}

int kdc_worker_init(kdc_worker *w, unsigned id, const kdc_serve_cfg *cfg, const kd3_addr *addr,
                    const kd3_kdc_config *kcfg, char *err, size_t err_len)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->cfg = cfg;
	w->epfd = w->udp_fd = w->tcp_fd = w->stop_fd = w->spare_fd = -1;
	atomic_init(&w->stop_mode, KDC_RUN);
	atomic_init(&w->done, 0);
	int ret = worker_alloc(w, kcfg, err, err_len);
	if (ret == KD3_OK)
		ret = worker_fds(w, addr, err, err_len);
	if (ret != KD3_OK)
		kdc_worker_free(w);
	return ret;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* SIGTERM: answer what the UDP socket holds, stop taking anything new, close idle
 * connections; the loop ends once the rest have finished or the deadline passes. */
static void worker_drain_start(kdc_worker *w)
{
	w->draining = 1;
	w->drain_deadline_ms = kd3_now_ms() + w->cfg->drain_ms;
	if (w->udp_fd >= 0) {
		/* What arrived before the signal (bounded: a flood must not hold the drain). */
		for (int i = 0; i < KDC_DRAIN_UDP_BATCHES; i++)
			kdc_udp_ready(w);
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->udp_fd, NULL);
		close_fd(&w->udp_fd);
	}
	if (w->tcp_fd >= 0) {
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->tcp_fd, NULL);
		close_fd(&w->tcp_fd);
	}
	w->listen_resume_ms = 0;
	kdc_tcp_close_idle(w);
}

static void worker_on_stop_fd(kdc_worker *w)
{
	uint64_t count;
	if (read(w->stop_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		kd3_log_error("worker %u: cannot read its stop counter: %s", w->id,
		              strerror(errno));
	int mode = atomic_load(&w->stop_mode);
	if (mode == KDC_STOP)
		w->stopping = 1;
	else if (mode == KDC_DRAIN && !w->draining)
		worker_drain_start(w);
}

static void worker_dispatch(kdc_worker *w, uint64_t tag)
{
	if (tag == KDC_TAG_STOP)
		worker_on_stop_fd(w);
	else if (tag == KDC_TAG_UDP)
		kdc_udp_ready(w);
	else if (tag == KDC_TAG_LISTEN)
		kdc_tcp_accept(w);
	else if (tag >= KDC_TAG_CONN && tag - KDC_TAG_CONN < w->cfg->max_conns)
		kdc_tcp_readable(w, &w->conns[tag - KDC_TAG_CONN]);
}

static void *worker_main(void *arg)
{
	kdc_worker *w = arg;
	struct epoll_event ev[KDC_EPOLL_EVENTS];
	int timeout = -1;

	kd3_log_batch_begin(); /* a line per request: written together, before each wait */
	while (!w->stopping) {
		/* Holds no snapshot while it blocks: a reload never waits for an idle worker. */
		kdc_rcu_leave(w->cfg->rcu, w->id);
		kd3_log_flush();
		int n = epoll_wait(w->epfd, ev, KDC_EPOLL_EVENTS, timeout);
		kdc_worker_adopt(w, kdc_rcu_enter(w->cfg->rcu, w->id));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kd3_log_error("worker %u: epoll_wait failed: %s", w->id, strerror(errno));
			w->failed = 1;
			kill(getpid(), SIGTERM); /* the main thread shuts everything down */
			break;
		}
		for (int i = 0; i < n && !w->stopping; i++)
			worker_dispatch(w, ev[i].data.u64);
		uint64_t now = kd3_now_ms();
		timeout = kdc_tcp_expire(w, now);
		if (w->draining && (w->active == 0 || now >= w->drain_deadline_ms))
			w->stopping = 1;
	}
	kdc_rcu_leave(w->cfg->rcu, w->id);
	/* Requests already read were answered in the loop above. */
	kdc_tcp_close_all(w);
	kd3_log_flush();
	atomic_store(&w->done, 1);
	return NULL;
}

int kdc_worker_start(kdc_worker *w)
{
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return KD3_E_IO;
	w->started = 1;
	return KD3_OK;
}

static void worker_signal(kdc_worker *w, int mode)
{
	uint64_t one = 1;
	atomic_store(&w->stop_mode, mode);
	if (w->stop_fd >= 0 && write(w->stop_fd, &one, sizeof(one)) < 0)
		kd3_log_error("worker %u: cannot signal stop: %s", w->id, strerror(errno));
}

void kdc_worker_stop(kdc_worker *w)
{
	worker_signal(w, KDC_STOP);
}

void kdc_worker_drain(kdc_worker *w)
{
	worker_signal(w, KDC_DRAIN);
}

void kdc_worker_free(kdc_worker *w)
{
	if (w->started)
		pthread_join(w->thread, NULL);
	w->started = 0;
	if (w->conns) {
		kdc_tcp_close_all(w);
		free(w->conns);
	}
	close_fd(&w->epfd);
	close_fd(&w->udp_fd);
	close_fd(&w->tcp_fd);
	close_fd(&w->stop_fd);
	close_fd(&w->spare_fd);
	if (w->kdc) {
		kd3_kdc_free(w->kdc);
		free(w->kdc);
	}
	if (w->udp) {
		kd3_wipe(w->udp, sizeof(*w->udp));
		free(w->udp);
	}
	if (w->crypto_ready)
		kd3_crypto_free(&w->crypto);
	w->conns = NULL;
	w->kdc = NULL;
	w->udp = NULL;
	w->crypto_ready = 0;
}
