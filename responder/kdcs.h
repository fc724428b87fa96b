/* responder: the KDC list. What the user wrote (--kdc, each an IP literal with an
 * optional port, a host name with one, or dns:DOMAIN for the realm's SRV records), and
 * the addresses that stands for now.
 *
 * The list is resolved once at start (a name that gives nothing stops the responder
 * with one line naming it). It is resolved again only in a thread of its own,
 * never in the loop: when one exchange found every address failing (a KDC may have
 * moved), at most once per RESP_KDCS_RETRY_MS, and when the smallest TTL of the SRV
 * records it used runs out. Each list is immutable once published and counted: a
 * session keeps the list it started with until it ends. An entry that does not resolve
 * in a refresh keeps what it gave last time. Each entry has its share of the list's
 * RESP_KDC_MAX places before any other fills the rest, so one name with many addresses
 * cannot push the entries after it out. Every lookup is bounded (RESP_KDCS_RESOLVE_MS)
 * and so is the whole list (RESP_KDCS_BUILD_MS); closing stops a running refresh at its
 * next lookup. What the entries resolved to is logged once, and again when it changes. */
#ifndef RESP_KDCS_H
#define RESP_KDCS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "kdcx.h"
#include "net.h"
#include "watch.h"

#define RESP_KDCS_RETRY_MS    2000  /* between two refreshes after failures */
#define RESP_KDCS_RESOLVE_MS  3000  /* the bound on one name or SRV lookup */
#define RESP_KDCS_BUILD_MS    10000 /* the bound on resolving the whole list */
#define RESP_KDCS_SRV_TARGETS 8     /* SRV targets used from each of _udp and _tcp */

typedef struct resp_kdc_list {
	unsigned refs; /* the server's hold, and one per session using it */
	size_t n;
	kd3_addr addr[RESP_KDC_MAX];
	uint32_t ttl_s; /* the smallest SRV TTL it was built from; 0: no SRV entry */
} resp_kdc_list;

/* What one entry gave the last time it resolved. */
typedef struct resp_kdc_entry {
	int ok;
	size_t n;
	kd3_addr addr[RESP_KDC_MAX];
	uint32_t ttl_s; /* dns: the smallest TTL of its SRV records; 0 otherwise */
} resp_kdc_entry;

typedef struct resp_kdcs {
	const kd3_conf_list *items; /* the entries as written (the options outlive us) */
	int dynamic;                /* some entry is a name or dns: */
	int epfd;
	struct resp_metrics *metrics;
	resp_kdc_list *cur;
	resp_kdc_entry *last;  /* per entry: what it gave last (the loop's) */
	resp_kdc_entry *fresh; /* per entry: what the running refresh finds (the thread's) */
	_Atomic int stop;      /* closing: the refresh gives up at its next lookup */
	char shown[1024];      /* what the named entries resolved to, last logged */
	resp_watch w;          /* RESP_W_RESOLVED: the refresh thread's pipe */
	int pipe_wr;
	pthread_t thread;
	int busy;                /* a refresh thread is running; fresh is its until joined */
	uint64_t refresh_at_ms;  /* SRV TTL: refresh then; 0: never for that reason */
	uint64_t retry_after_ms; /* no failure-driven refresh before this */
} resp_kdcs;

/* Checks one --kdc entry's form (no resolving): KD3_OK, or KD3_E_CONFIG with err. */
int resp_kdc_entry_check(const char *item, char *err, size_t err_len);

struct resp_metrics;
/* Resolves every entry (blocking, bounded); each address of each list published gets
 * its per-KDC series in metrics. KD3_OK, or an error logged naming the entry. */
int resp_kdcs_open(resp_kdcs *k, const kd3_conf_list *items, int epfd,
                   struct resp_metrics *metrics);
void resp_kdcs_close(resp_kdcs *k);

/* The current list, held for a session; give it back with resp_kdc_list_drop. */
resp_kdc_list *resp_kdcs_take(resp_kdcs *k);
void resp_kdc_list_drop(resp_kdc_list *l);

/* An exchange found no KDC answering: refresh the names, if any (and not too soon). */
void resp_kdcs_all_failed(resp_kdcs *k, uint64_t now);
/* The refresh thread's byte arrived: publish what it found. */
void resp_kdcs_on_event(resp_kdcs *k);
/* When the loop must call resp_kdcs_timer (0: not for us), and the call. */
uint64_t resp_kdcs_deadline(const resp_kdcs *k);
void resp_kdcs_timer(resp_kdcs *k, uint64_t now);

#endif
