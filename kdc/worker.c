/* kdc worker: setup (everything allocated here, once), the epoll loop, and teardown. */
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

#define KDC_EPOLL_EVENTS 64

static int watch(kdc_worker *w, int fd, uint64_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN};
	ev.data.u64 = tag;
	return epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? KD3_OK : KD3_E_IO;
}

static int worker_alloc(kdc_worker *w, kdc_table *table, kdc_policy *policy,
                        const kd3_kdc_config *kcfg, char *err, size_t len)
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
	kd3_kdc_init(w->kdc, &w->crypto, kdc_table_lookup, table, kcfg);
	w->kdc->policy = kdc_policy_check;
	w->kdc->policy_ctx = policy;
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

int kdc_worker_init(kdc_worker *w, unsigned id, const kdc_serve_cfg *cfg, const kd3_addr *addr,
                    kdc_table *table, kdc_policy *policy, const kd3_kdc_config *kcfg, char *err,
                    size_t err_len)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->cfg = cfg;
	w->epfd = w->udp_fd = w->tcp_fd = w->stop_fd = w->spare_fd = -1;
	int ret = worker_alloc(w, table, policy, kcfg, err, err_len);
	if (ret == KD3_OK)
		ret = worker_fds(w, addr, err, err_len);
	if (ret != KD3_OK)
		kdc_worker_free(w);
	return ret;
}

static void worker_dispatch(kdc_worker *w, uint64_t tag)
{
	if (tag == KDC_TAG_STOP)
		w->stopping = 1;
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

	while (!w->stopping) {
		int n = epoll_wait(w->epfd, ev, KDC_EPOLL_EVENTS, timeout);
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
		timeout = kdc_tcp_expire(w, kd3_now_ms());
	}
	/* Stop accepting; requests already read were answered in the loop above. */
	kdc_tcp_close_all(w);
	return NULL;
}

int kdc_worker_start(kdc_worker *w)
{
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return KD3_E_IO;
	w->started = 1;
	return KD3_OK;
}

void kdc_worker_stop(kdc_worker *w)
{
	uint64_t one = 1;
	if (w->stop_fd >= 0 && write(w->stop_fd, &one, sizeof(one)) < 0)
		kd3_log_error("worker %u: cannot signal stop: %s", w->id, strerror(errno));
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
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
