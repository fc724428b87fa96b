#include "outlet.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

void resp_outlet_init(resp_outlet *o)
{
	memset(o, 0, sizeof(*o));
	resp_watch_init(&o->w, RESP_W_STDOUT, NULL);
	resp_outq_init(&o->q);
	resp_stdfd_init(&o->out, STDOUT_FILENO);
}

int resp_outlet_open(resp_outlet *o)
{
	resp_outlet_init(o);
	if (resp_stdfd_open(&o->out, STDOUT_FILENO) != KD3_OK) {
		kd3_log_error("stdout is not open for writing; messages will not be delivered");
		o->failed = 1;
		return KD3_E_IO;
	}
	o->w.fd = o->out.fd;
	return KD3_OK;
}

static void outlet_fail(resp_outlet *o, int epfd, int sys_err)
{
	kd3_log_error("cannot write to stdout: %s; %zu bytes of messages lost, and sessions "
	              "that receive more will be closed",
	              strerror(sys_err), resp_outq_pending(&o->q));
	o->failed = 1;
	resp_watch_forget(epfd, &o->w);
	resp_outq_free(&o->q);
}

void resp_outlet_flush(resp_outlet *o, int epfd)
{
	int sys_err = 0;

	if (o->failed)
		return;
	if (resp_outq_pending(&o->q) > 0 &&
	    resp_outq_flush(&o->q, o->out.fd, 0, &sys_err) != KD3_OK) {
		outlet_fail(o, epfd, sys_err);
		return;
	}
	uint32_t ev = resp_outq_pending(&o->q) > 0 ? EPOLLOUT : 0;
	if (resp_watch_set(epfd, &o->w, ev) != KD3_OK)
		outlet_fail(o, epfd, errno); /* EPERM: a file that said EAGAIN; cannot happen */
}

int resp_outlet_put(resp_outlet *o, int epfd, const uint8_t *p, size_t len)
{
	int ret;

	if (o->failed)
		return KD3_E_IO;
	if ((ret = resp_outq_append(&o->q, p, len)) != KD3_OK ||
	    (ret = resp_outq_append(&o->q, "\n", 1)) != KD3_OK)
		return ret;
	/* Only when nothing waits: otherwise EPOLLOUT is armed and the loop writes. */
	if (o->w.events == 0)
		resp_outlet_flush(o, epfd);
	return o->failed ? KD3_E_IO : KD3_OK;
}

size_t resp_outlet_pending(const resp_outlet *o)
{
	return resp_outq_pending(&o->q);
}

int resp_outlet_may_resume(const resp_outlet *o)
{
	return o->waiting && (o->failed || resp_outq_pending(&o->q) < RESP_OUTLET_LOW);
}

void resp_outlet_close(resp_outlet *o, int epfd)
{
	int sys_err = 0;

	resp_watch_forget(epfd, &o->w);
	if (!o->failed && o->out.fd >= 0 && resp_outq_pending(&o->q) > 0)
		(void)resp_outq_flush(&o->q, o->out.fd, 0, &sys_err);
	if (!o->failed && resp_outq_pending(&o->q) > 0)
		kd3_log_error("%zu bytes of messages were never written: nobody read stdout",
		              resp_outq_pending(&o->q));
	resp_outq_free(&o->q);
	resp_stdfd_close(&o->out);
}
