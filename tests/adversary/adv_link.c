/* kd3adv: a relayed conversation (adv_link.h). */
#include "adv_link.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "wire.h"

struct adv_piece {
	adv_piece *next;
	uint64_t due_ms;
	size_t len, off;
	int cut_after; /* the link ends once this piece is out */
	int join;      /* held: goes before the next frame, in one piece with it */
	uint8_t data[];
};

static adv_piece *piece_new(const uint8_t *p, size_t len, uint64_t due_ms)
{
	adv_piece *pc = malloc(sizeof(*pc) + len);
	if (!pc)
		return NULL;
	memset(pc, 0, sizeof(*pc));
	memcpy(pc->data, p, len);
	pc->len = len;
	pc->due_ms = due_ms;
	return pc;
}

/* Queues a piece toward side t; it goes after those before it (a delay holds them too). */
static adv_piece *enqueue(adv_side *t, const uint8_t *p, size_t len, uint64_t due_ms)
{
	adv_piece *pc = piece_new(p, len, due_ms);
	if (!pc) {
		kd3_log_error("out of memory: a frame is lost");
		return NULL;
	}
	if (t->tail)
		t->tail->next = pc;
	else
		t->head = pc;
	t->tail = pc;
	t->queued += len;
	return pc;
}

static void side_init(adv_side *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->shared_fd = -1;
}

int adv_link_open_tcp(adv_link *l, int dir0, int fd0, int fd1)
{
	memset(l, 0, sizeof(*l));
	side_init(&l->s[0], fd0);
	side_init(&l->s[1], fd1);
	l->s[0].in = malloc(KD3_FRAME_MAX);
	l->s[1].in = malloc(KD3_FRAME_MAX);
	l->used = 1;
	l->transport = ADV_TCP;
	l->dir0 = dir0;
	if (!l->s[0].in || !l->s[1].in) {
		adv_link_close(l);
		return -1;
	}
	return 0;
}

void adv_link_open_udp(adv_link *l, int dir0, int fd0, const struct sockaddr_storage *addr,
                       socklen_t addr_len, int fd1)
{
	memset(l, 0, sizeof(*l));
	side_init(&l->s[0], -1);
	side_init(&l->s[1], fd1);
	l->s[0].shared_fd = fd0;
	l->s[0].addr = *addr;
	l->s[0].addr_len = addr_len;
	l->used = 1;
	l->transport = ADV_UDP;
	l->dir0 = dir0;
}

static void free_queue(adv_side *s)
{
	while (s->head) {
		adv_piece *next = s->head->next;
		free(s->head);
		s->head = next;
	}
	s->tail = NULL;
	s->queued = 0;
	free(s->held);
	s->held = NULL;
}

void adv_link_close(adv_link *l)
{
	for (int k = 0; k < 2; k++) {
		adv_side *s = &l->s[k];
		if (s->fd >= 0) {
			shutdown(s->fd, SHUT_RDWR);
			close(s->fd);
		}
		s->fd = -1;
		free_queue(s);
		free(s->in);
		s->in = NULL;
	}
	l->used = 0;
}

/* join: the held frame and this frame's first piece forward, as one piece (one send).
 * 1 when that piece was queued in its place. */
static int enqueue_joined(adv_side *to, adv_piece *held, const adv_plan *plan, int *first)
{
	for (int i = 0; i < plan->n; i++) {
		const adv_emit *e = &plan->emit[i];
		if (e->back)
			continue;
		uint8_t *both = malloc(held->len + e->len);
		if (!both) {
			kd3_log_error("out of memory: a frame is lost");
			return 0;
		}
		memcpy(both, held->data, held->len);
		memcpy(both + held->len, e->p, e->len);
		adv_piece *pc = enqueue(to, both, held->len + e->len, held->due_ms);
		free(both);
		if (pc)
			*first = i;
		return pc != NULL;
	}
	enqueue(to, held->data, held->len, held->due_ms); /* this frame is not forwarded */
	return 1;
}

/* Runs one frame from side k through the rules and queues what the plan sends. */
static void handle_frame(adv_ctx *ctx, adv_link *l, int k, const uint8_t *frame, size_t len,
                         uint64_t now)
{
	adv_side *from = &l->s[k], *to = &l->s[1 - k];
	int dir = k == 0 ? l->dir0 : adv_dir_back(l->dir0);
	adv_piece *last = NULL, *was_held = from->held;
	int joined = -1; /* the emit already queued with the held frame */
	adv_plan plan;

	if (adv_kind_of(frame, len) == ADV_K_RECORD)
		from->records++;
	adv_see(ctx, dir, l->transport, frame, len, from->records, &plan);
	from->held = NULL;
	if (was_held && was_held->join) { /* before this frame, in the same write */
		enqueue_joined(to, was_held, &plan, &joined);
		last = joined >= 0 ? to->tail : NULL;
		free(was_held);
		was_held = NULL;
	}
	for (int i = 0; i < plan.n; i++) {
		adv_emit *e = &plan.emit[i];
		if (i == joined)
			continue;
		adv_piece *pc = enqueue(e->back ? from : to, e->p, e->len, now + e->delay_ms);
		if (pc && !e->back)
			last = pc;
	}
	if (was_held) { /* "after the next frame": this one's pieces went first */
		enqueue(to, was_held->data, was_held->len, now);
		free(was_held);
	}
	if (plan.hold) {
		from->held = piece_new(frame, len, now);
		if (from->held)
			from->held->join = plan.join;
	}
	if (plan.cut && last)
		last->cut_after = 1;
	else if (plan.cut)
		adv_link_close(l);
}

/* The end of side k's stream: a frame cut short goes on as it is, a held one is let go. */
static void handle_eof(adv_link *l, int k, uint64_t now)
{
	adv_side *from = &l->s[k], *to = &l->s[1 - k];
	from->eof = 1;
	if (from->in_len) {
		kd3_log_info("%s: the stream ended inside a frame; its %zu bytes go on",
		             adv_dir_name(k == 0 ? l->dir0 : adv_dir_back(l->dir0)), from->in_len);
		enqueue(to, from->in, from->in_len, now);
		from->in_len = 0;
	}
	if (from->held) {
		enqueue(to, from->held->data, from->held->len, now);
		free(from->held);
		from->held = NULL;
	}
}

/* Every whole frame at the front of side k's buffer. */
static void take_frames(adv_ctx *ctx, adv_link *l, int k, uint64_t now)
{
	adv_side *s = &l->s[k];
	while (l->used && s->in_len > 0) {
		long size = s->raw ? -1 : kd3_frame_size(s->in, s->in_len);
		if (size < 0 && !s->raw) {
			s->raw = 1;
			kd3_log_info("%s: not a kd3 frame header; the rest of the stream goes on "
			             "unparsed",
			             adv_dir_name(k == 0 ? l->dir0 : adv_dir_back(l->dir0)));
		}
		if (size == 0 || (size > 0 && (size_t)size > s->in_len))
			return; /* more bytes needed */
		size_t n = size < 0 ? s->in_len : (size_t)size;
		handle_frame(ctx, l, k, s->in, n, now);
		if (!l->used)
			return;
		memmove(s->in, s->in + n, s->in_len - n);
		s->in_len -= n;
	}
}

void adv_link_read(adv_ctx *ctx, adv_link *l, int k, uint64_t now)
{
	adv_side *s = &l->s[k];
	if (s->in_len >= KD3_FRAME_MAX)
		return; /* cannot happen: a whole frame is always taken out at once */
	ssize_t n = recv(s->fd, s->in + s->in_len, KD3_FRAME_MAX - s->in_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	l->last_ms = now;
	if (n < 0) {
		adv_link_close(l); /* reset: the other side sees its connection end too */
		return;
	}
	if (n == 0) {
		handle_eof(l, k, now);
		return;
	}
	s->in_len += (size_t)n;
	take_frames(ctx, l, k, now);
}

void adv_link_datagram(adv_ctx *ctx, adv_link *l, int k, const uint8_t *p, size_t len, uint64_t now)
{
	l->last_ms = now;
	handle_frame(ctx, l, k, p, len, now);
}

/* Sends side t's due pieces. 0, or -1 when the link ended. */
static int flush_side(adv_link *l, int t, uint64_t now)
{
	adv_side *s = &l->s[t];
	while (s->head && s->head->due_ms <= now) {
		adv_piece *pc = s->head;
		ssize_t n;
		if (l->transport == ADV_UDP && t == 0)
			n = sendto(s->shared_fd, pc->data, pc->len, 0, (struct sockaddr *)&s->addr,
			           s->addr_len);
		else if (l->transport == ADV_UDP)
			n = send(s->fd, pc->data, pc->len, 0);
		else
			n = send(s->fd, pc->data + pc->off, pc->len - pc->off, MSG_NOSIGNAL);
		if (n < 0 && l->transport == ADV_TCP) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 0;
			adv_link_close(l);
			return -1;
		}
		pc->off += n < 0 ? pc->len : (size_t)n; /* a datagram that failed is gone */
		if (pc->off < pc->len)
			return 0;
		int cut = pc->cut_after;
		s->head = pc->next;
		if (!s->head)
			s->tail = NULL;
		s->queued -= pc->len;
		free(pc);
		if (cut) {
			adv_link_close(l);
			return -1;
		}
	}
	return 0;
}

void adv_link_flush(adv_link *l, uint64_t now)
{
	for (int t = 0; t < 2 && l->used; t++) {
		adv_side *s = &l->s[t], *from = &l->s[1 - t];
		if (flush_side(l, t, now) != 0)
			return;
		if (l->transport == ADV_TCP && from->eof && !s->head && !s->shut) {
			shutdown(s->fd, SHUT_WR);
			s->shut = 1;
		}
	}
	if (l->used && l->transport == ADV_TCP && l->s[0].shut && l->s[1].shut)
		adv_link_close(l);
}

short adv_link_events(const adv_link *l, int k, uint64_t now, uint64_t *next_due)
{
	const adv_side *s = &l->s[k], *other = &l->s[1 - k];
	short ev = 0;
	if (!s->eof && other->queued < ADV_QUEUE_MAX)
		ev |= POLLIN;
	if (s->head) {
		if (s->head->due_ms <= now)
			ev |= POLLOUT;
		else if (s->head->due_ms < *next_due)
			*next_due = s->head->due_ms;
	}
	return ev;
}
