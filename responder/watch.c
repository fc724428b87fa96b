#include "watch.h"

#include <stddef.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "err.h"

void resp_watch_init(resp_watch *w, resp_watch_kind kind, void *owner)
{
	w->kind = kind;
	w->fd = -1;
	w->events = 0;
	w->owner = owner;
}

int resp_watch_set(int epfd, resp_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};
	int op;

	if (w->fd < 0 || events == w->events)
		return KD3_OK;
	if (events == 0)
		op = EPOLL_CTL_DEL;
	else if (w->events == 0)
		op = EPOLL_CTL_ADD;
	else
		op = EPOLL_CTL_MOD;
	if (epoll_ctl(epfd, op, w->fd, &ev) != 0)
		return KD3_E_IO;
	w->events = events;
	return KD3_OK;
}

void resp_watch_forget(int epfd, resp_watch *w)
{
	if (w->fd >= 0 && w->events != 0)
		epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->events = 0;
	w->fd = -1;
}

void resp_watch_close(int epfd, resp_watch *w)
{
	int fd = w->fd;
	resp_watch_forget(epfd, w);
	if (fd >= 0)
		close(fd);
}
