/* responder: what every session shares with the server (read-only after start,
 * except the trace scratch buffer). */
#ifndef RESP_CTX_H
#define RESP_CTX_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "wire.h"

/* After a session ends: how long we try to flush our last frames, and then how long
 * we wait for the peer's EOF before closing (closing with unread bytes would send a
 * reset that can destroy our last frames in flight). */
#define RESP_DRAIN_MS  2000
#define RESP_LINGER_MS 2000

struct resp_outlet;
struct resp_metrics;
struct resp_kdcs;

/* What each session's kd3_session is set up with (include/kd3/kd3.h). */
typedef struct resp_settings {
	const struct kd3_key *key; /* our long-term key versions */
	unsigned suites;           /* KD3_SUITE_BIT of each suite we accept */
	int require_fs;
	uint64_t rekey_records, rekey_bytes, rekey_seconds;
	int reveal_keys; /* secrets into the transcript */
} resp_settings;

typedef struct resp_ctx {
	int epfd;
	const resp_settings *set;
	const char *self;           /* our principal */
	struct resp_kdcs *kdcs;     /* the KDC list (kdcs.h): each session takes the current one */
	const char *exec_cmd;       /* NULL: default mode (stdout/stdin) */
	struct resp_outlet *outlet; /* default mode: stdout (outlet.h) */
	uint32_t handshake_ms;
	uint32_t kdc_timeout_ms;
	int json;                          /* --json: events on stdout (report.h) */
	uint64_t start_us;                 /* kd3_now_us at start: the events' t_us */
	struct kd3_transcript *transcript; /* --transcript, or NULL */
	struct resp_metrics *metrics;      /* always counted; shown with --metrics */
	uint8_t msg[KD3_PAYLOAD_MAX];      /* one message read from a session, delivered at once */
} resp_ctx;

#endif
