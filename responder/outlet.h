/* responder, default mode: received messages to stdout without ever blocking.
 *
 * Each DATA payload and its '\n' go into one bounded queue shared by every session,
 * written to a non-blocking stdout (stdfd.h) as it takes them; while bytes are left
 * the loop waits for stdout to become writable (EPOLLOUT). Whoever reads our stdout
 * sets the pace: a session that delivers while the queue holds more than
 * RESP_OUTLET_HIGH stops reading its socket (so TCP slows its initiator down), and
 * while the queue holds more than RESP_OUTLET_FULL no session takes a record at all;
 * they read again once it is below RESP_OUTLET_LOW. Sessions that deliver nothing
 * (handshakes, CLOSEs) go on meanwhile, and so do signals. So the queue holds at most
 * RESP_OUTLET_FULL plus one message.
 *
 * The log (stderr) is written blocking, line by line: keep it drained. */
#ifndef RESP_OUTLET_H
#define RESP_OUTLET_H

#include <stddef.h>
#include <stdint.h>

#include "outq.h"
#include "stdfd.h"
#include "watch.h"

#define RESP_OUTLET_HIGH (256u * 1024u)
#define RESP_OUTLET_FULL RESP_OUTQ_LIMIT
#define RESP_OUTLET_LOW  (64u * 1024u)

typedef struct resp_outlet {
	resp_stdfd out;
	resp_watch w; /* out.fd in the loop (RESP_W_STDOUT) while bytes wait */
	resp_outq q;  /* plaintext: wiped as written */
	int failed;   /* stdout is gone (a write failed): nothing is delivered */
	int waiting;  /* some session stopped reading until the queue drains */
} resp_outlet;

/* Nothing open yet: resp_outlet_close does nothing. */
void resp_outlet_init(resp_outlet *o);
/* KD3_OK, or KD3_E_IO when stdout cannot be used (logged; deliveries then fail). */
int resp_outlet_open(resp_outlet *o);
/* A last write that does not wait; logs what was never written; wipes. */
void resp_outlet_close(resp_outlet *o, int epfd);

/* Queues one message and its '\n' and writes what stdout takes now. KD3_OK;
 * KD3_E_IO when stdout failed; KD3_E_NOMEM. */
int resp_outlet_put(resp_outlet *o, int epfd, const uint8_t *p, size_t len);
/* stdout is writable again: writes what it takes. */
void resp_outlet_flush(resp_outlet *o, int epfd);
size_t resp_outlet_pending(const resp_outlet *o);
/* The sessions that stopped reading may read again (below the low mark, or failed). */
int resp_outlet_may_resume(const resp_outlet *o);

#endif
