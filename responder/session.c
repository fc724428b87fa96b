#include "session_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "kdcs.h"
#include "report.h"
#include "log.h"
#include "trace.h"

/* Bytes read from one socket per event before the loop serves the others. */
#define SESSION_READ_BUDGET (256u * 1024u)

/* The session's protocol object, set up as the options say. */
static int session_start(resp_session *s)
{
	const resp_settings *set = s->ctx->set;
	int want_bytes = kd3_trace_enabled() || s->ctx->transcript;

	int ret = kd3_session_new_responder(&s->ks, set->key);
	if (ret == KD3_OK)
		ret = kd3_session_set_suites(s->ks, set->suites);
	if (ret == KD3_OK)
		ret = kd3_session_set_forward_secret(s->ks, set->require_fs);
	if (ret == KD3_OK)
		ret = kd3_session_set_rekey(s->ks, set->rekey_records, set->rekey_bytes,
		                            set->rekey_seconds * 1000u);
	/* The notes' frame bytes cost a 16 KiB copy per session: only for a trace or a
	 * transcript. */
	if (ret == KD3_OK)
		ret = kd3_session_set_observe_bytes(s->ks, want_bytes);
	if (ret == KD3_OK)
		ret = kd3_session_set_observer(s->ks, resp_note, s);
	if (ret == KD3_OK && set->reveal_keys)
		ret = kd3_session_set_reveal_keys(s->ks, 1);
	return ret;
}

resp_session *resp_session_new(resp_ctx *ctx, uint64_t id, int fd, const kd3_addr *from,
                               uint64_t now)
{
	resp_session *s = calloc(1, sizeof(*s));
	int ret;

	if (!s) {
		kd3_log_error("session %llu: out of memory", (unsigned long long)id);
		close(fd);
		return NULL;
	}
	s->ctx = ctx;
	s->id = id;
	s->opened_us = kd3_now_us();
	kd3_addr_format(from, s->addr, sizeof(s->addr));
	resp_watch_init(&s->sock, RESP_W_PEER, s);
	s->sock.fd = fd;
	resp_outq_init(&s->out);
	s->kdc_list = resp_kdcs_take(ctx->kdcs); /* kept until the session is freed */
	resp_kdcx_init(&s->kdc, id, s->kdc_list->addr, s->kdc_list->n, ctx->kdc_timeout_ms, s);
	s->kdc.metrics = ctx->metrics;
	if (ctx->exec_cmd && (s->child = malloc(sizeof(*s->child))) != NULL)
		resp_child_init(s->child, s);
	s->hs_deadline = now + ctx->handshake_ms;
	ret = ctx->exec_cmd && !s->child ? KD3_E_NOMEM : session_start(s);
	if (ret == KD3_OK)
		ret = resp_watch_set(ctx->epfd, &s->sock, EPOLLIN);
	if (ret != KD3_OK) {
		kd3_log_error("session %llu: cannot start: %s", (unsigned long long)id,
		              kd3_strerror(ret));
		s->ended_logged = 1;
		resp_session_free(s);
		return NULL;
	}
	kd3_log_info("session %llu accepted from %s", (unsigned long long)id, s->addr);
	return s;
}

void resp_session_free(resp_session *s)
{
	resp_watch_close(s->ctx->epfd, &s->sock);
	resp_kdcx_stop(&s->kdc, s->ctx->epfd);
	if (s->child) {
		resp_child_release(s->child, s->ctx->epfd, 1);
		kd3_wipe(s->child, sizeof(*s->child));
		free(s->child);
	}
	kd3_session_free(s->ks);
	resp_outq_free(&s->out);
	resp_kdc_list_drop(s->kdc_list);
	kd3_wipe(s, sizeof(*s));
	free(s);
}

int resp_session_dead(const resp_session *s)
{
	return s->phase == RESP_DEAD;
}

const char *resp_session_peer_name(const resp_session *s)
{
	return s->established ? s->peer_name : kd3_session_peer_claim(s->ks);
}

/* The one closed/failed line of a session. The initiator's name is only a claim until
 * the session is established (the KDC vouched for it and FINISHED verified): before,
 * the line says "claiming NAME", never "with NAME". */
static void session_log_end(resp_session *s, int err, const char *why)
{
	char head[48 + KD3_NAME_MAX];
	const char *name = resp_session_peer_name(s);
	unsigned long long id = (unsigned long long)s->id;

	if (s->ended_logged)
		return;
	s->ended_logged = 1;
	resp_report_end(s, err, why);
	resp_metrics_end(s->ctx->metrics, err);
	if (!name)
		snprintf(head, sizeof(head), "session %llu", id);
	else if (s->established)
		snprintf(head, sizeof(head), "session %llu with %s", id, name);
	else
		snprintf(head, sizeof(head), "session %llu (claiming %s)", id, name);
	if (err == KD3_OK)
		kd3_log_info("%s closed%s%s%s", head, why ? " (" : "", why ? why : "",
		             why ? ")" : "");
	else
		kd3_log_info("%s failed: %s", head, why ? why : kd3_strerror(err));
}

/* Stops everything but the socket. */
static void session_release(resp_session *s)
{
	resp_kdcx_stop(&s->kdc, s->ctx->epfd);
	if (s->has_child)
		resp_child_release(s->child, s->ctx->epfd, 1);
	s->hs_deadline = s->close_deadline = 0;
	if (s->child)
		s->child->reap_deadline = s->child->out_deadline = 0;
}

void resp_session_finish(resp_session *s, int err, const char *why, uint64_t now)
{
	if (s->phase != RESP_ACTIVE)
		return;
	session_log_end(s, err, why);
	session_release(s);
	s->phase = RESP_DRAINING;
	s->end_deadline = now + RESP_DRAIN_MS;
}

static void session_close_now(resp_session *s)
{
	session_release(s);
	resp_watch_close(s->ctx->epfd, &s->sock);
	s->phase = RESP_DEAD;
}

void resp_session_drop(resp_session *s, int err, const char *why)
{
	if (s->phase == RESP_DEAD)
		return;
	session_log_end(s, err, why);
	session_close_now(s);
}

/* ---- the socket --------------------------------------------------------------- */

static void session_read(resp_session *s, uint64_t now)
{
	size_t budget = SESSION_READ_BUDGET;
	char why[128];

	while (s->phase == RESP_ACTIVE && !s->in_paused && !s->peer_eof && budget > 0) {
		if (s->in_off < s->in_len) { /* bytes the session did not take yet come first */
			resp_proto_frames(s, now);
			if (s->in_off < s->in_len)
				return; /* it holds a message for a reader that is behind */
			continue;
		}
		ssize_t n = recv(s->sock.fd, s->in, sizeof(s->in), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			snprintf(why, sizeof(why), "%s (%s)", kd3_strerror(KD3_E_TRUNCATED),
			         strerror(errno));
			resp_session_drop(s, KD3_E_TRUNCATED, why);
			return;
		}
		if (n == 0) {
			resp_proto_eof(s, now);
			return;
		}
		s->in_off = 0;
		s->in_len = (size_t)n;
		s->got_bytes = 1;
		budget -= (size_t)n < budget ? (size_t)n : budget;
		resp_proto_frames(s, now);
	}
}

/* Over and flushed: read and discard until the peer's EOF (bounded by the deadline). */
static void session_linger_read(resp_session *s)
{
	uint8_t scratch[4096];
	for (size_t budget = SESSION_READ_BUDGET; budget > 0; budget -= sizeof(scratch)) {
		ssize_t n = recv(s->sock.fd, scratch, sizeof(scratch), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			session_close_now(s);
			return;
		}
		if ((size_t)n < sizeof(scratch))
			return;
	}
}

static void session_sock_event(resp_session *s, uint32_t events, uint64_t now)
{
	if (events & EPOLLOUT)
		resp_out_flush(s);
	if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	if (s->phase == RESP_ACTIVE && s->peer_eof) { /* only ERR/HUP are asked for */
		resp_session_drop(s, KD3_E_TRUNCATED, "the initiator's connection was reset");
		return;
	}
	if (s->phase == RESP_LINGER)
		session_linger_read(s);
	else if (s->phase == RESP_ACTIVE)
		session_read(s, now);
}

void resp_session_sync(resp_session *s, uint64_t now)
{
	uint32_t ev = 0;

	/* Flush first: the child's stdout is read again only once the queue is short. */
	if (s->phase != RESP_DEAD)
		resp_out_flush(s);
	if (s->phase != RESP_DEAD && s->has_child) {
		resp_exec_sync(s, now);
		if (s->phase != RESP_DEAD)
			resp_out_flush(s);
	}
	if (s->phase == RESP_DRAINING && resp_outq_pending(&s->out) == 0) {
		if (s->peer_eof) {
			session_close_now(s);
			return;
		}
		shutdown(s->sock.fd, SHUT_WR); /* our FIN after our last frame */
		s->phase = RESP_LINGER;
		s->end_deadline = now + RESP_LINGER_MS;
	}
	switch (s->phase) {
	case RESP_ACTIVE:
		if (!s->in_paused && !s->peer_eof)
			ev |= EPOLLIN;
		/* After the peer's EOF (--exec, the command still runs): no more to read, but
		 * stay in the set to learn of a reset (ERR/HUP come unasked, only then). */
		if (s->peer_eof)
			ev |= EPOLLERR | EPOLLHUP;
		if (resp_outq_pending(&s->out))
			ev |= EPOLLOUT;
		break;
	case RESP_DRAINING:
		ev = EPOLLOUT;
		break;
	case RESP_LINGER:
		ev = EPOLLIN;
		break;
	case RESP_DEAD:
		return;
	}
	if (resp_watch_set(s->ctx->epfd, &s->sock, ev) != KD3_OK)
		resp_session_drop(s, KD3_E_IO, "epoll_ctl failed");
}

void resp_session_on_event(resp_session *s, resp_watch *w, uint32_t events, uint64_t now)
{
	if (s->phase == RESP_DEAD || w->fd < 0)
		return; /* a stale event for a descriptor closed earlier in this batch */
	switch (w->kind) {
	case RESP_W_PEER:
		session_sock_event(s, events, now);
		break;
	case RESP_W_KDC:
		if (s->phase == RESP_ACTIVE)
			resp_proto_kdc_result(
			    s, resp_kdcx_on_io(&s->kdc, s->ctx->epfd, events, now), now);
		break;
	case RESP_W_CHILD_IN:
	case RESP_W_CHILD_OUT:
		resp_exec_on_event(s, w, now);
		break;
	default:
		break;
	}
	resp_session_sync(s, now);
}

/* ---- deadlines ------------------------------------------------------------------ */

static uint64_t earliest(uint64_t d, uint64_t t)
{
	return t && (!d || t < d) ? t : d;
}

uint64_t resp_session_deadline(const resp_session *s)
{
	uint64_t d = 0;

	switch (s->phase) {
	case RESP_DEAD:
		return 0;
	case RESP_DRAINING:
	case RESP_LINGER:
		return s->end_deadline;
	case RESP_ACTIVE:
		break;
	}
	d = earliest(d, s->hs_deadline);
	d = earliest(d, s->close_deadline);
	d = earliest(d, s->kdc.deadline);
	if (s->child) {
		d = earliest(d, s->child->reap_deadline);
		d = earliest(d, s->child->out_deadline);
	}
	if (s->established && kd3_session_state(s->ks) == KD3_STATE_ESTABLISHED)
		d = earliest(d, s->expires_ms);
	return d;
}

static void session_handshake_timeout(resp_session *s, uint64_t now)
{
	char why[96];
	/* The step it waited for, in the state machine's words (docs/PROTOCOL.md). */
	const char *step = !s->kdc_asked                      ? "WAIT_M1"
	                   : s->kdc_asked && !s->kdc_answered ? "WAIT_M3"
	                                                      : "WAIT_FINISHED";
	snprintf(why, sizeof(why), "handshake timed out (in %s)", step);
	resp_out_close(s, KD3_E_TIMEOUT, "handshake timed out", now);
	resp_session_finish(s, KD3_E_TIMEOUT, why, now);
}

void resp_session_on_timer(resp_session *s, uint64_t now)
{
	if (s->phase == RESP_DEAD)
		return;
	if (s->phase != RESP_ACTIVE) {
		if (now >= s->end_deadline)
			session_close_now(s); /* the peer neither read nor closed in time */
		return;
	}
	if (s->hs_deadline && now >= s->hs_deadline)
		session_handshake_timeout(s, now);
	if (s->phase == RESP_ACTIVE && s->close_deadline && now >= s->close_deadline)
		resp_session_finish(s, KD3_E_TIMEOUT, "the initiator did not answer our CLOSE",
		                    now);
	if (s->phase == RESP_ACTIVE && s->kdc.deadline && now >= s->kdc.deadline)
		resp_proto_kdc_result(s, resp_kdcx_on_timer(&s->kdc, s->ctx->epfd, now), now);
	if (s->phase == RESP_ACTIVE && s->established && s->expires_ms && now >= s->expires_ms)
		resp_proto_tick(s, now);
	if (s->phase == RESP_ACTIVE && s->has_child)
		resp_exec_on_timer(s, now);
	resp_session_sync(s, now);
}

/* ---- the server's requests -------------------------------------------------------- */

void resp_session_resume(resp_session *s, uint64_t now)
{
	if (s->phase != RESP_ACTIVE || !s->in_paused || s->ctx->exec_cmd)
		return;
	s->in_paused = 0;
	resp_proto_frames(s, now); /* the frames already read come first */
	resp_session_sync(s, now);
}

void resp_session_stop(resp_session *s, uint64_t now)
{
	if (s->phase != RESP_ACTIVE)
		return;
	if (kd3_session_state(s->ks) == KD3_STATE_ESTABLISHED)
		resp_out_close(s, KD3_CLOSE_NORMAL, "responder stopping", now);
	else
		resp_out_close(s, KD3_E_BUSY, "responder stopping", now);
	resp_session_finish(s, KD3_OK, "responder stopping", now);
	resp_session_sync(s, now);
}

void resp_session_abort(resp_session *s)
{
	if (s->phase != RESP_DEAD)
		session_close_now(s);
}

pid_t resp_session_live_child(const resp_session *s)
{
	return s->has_child && s->child->pid > 0 && !s->child->exited ? s->child->pid : 0;
}

/* ---- the server's list ------------------------------------------------------------ */

resp_session *resp_session_next(const resp_session *s)
{
	return s->next;
}

void resp_session_link(resp_session **head, resp_session *s)
{
	s->prev = NULL;
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
}

void resp_session_unlink(resp_session **head, resp_session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}
