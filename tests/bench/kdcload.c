/* kdcload: closed-loop load on a kd3 KDC over UDP or TCP, 127.0.0.1 only.
 *
 * It holds the keys of the principals named in a list of key files and precomputes,
 * before the clock starts, one valid M2 per request for pairs of them, each with fresh
 * random nonces (so the KDC's lookaside cache never answers one). N slots each keep
 * one request outstanding: UDP slots have a socket each (so SO_REUSEPORT spreads them
 * over the KDC's workers), TCP slots a persistent connection each, or with tcp-new a
 * new connection per request. After the run every reply is checked: an M3 whose
 * blob_r and blob_i open under the responder's and the initiator's keys to the same
 * SK. A reply that does not check out fails the run (exit 1), so a wrong answer never
 * counts as speed. Prints one JSON object: requests/s, latency p50/p99/p99.9 and the
 * KDC process's CPU microseconds per request (from /proc/PID/stat). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"
#include "err.h"
#include "msg.h"
#include "net.h"

#define PRINCIPALS_MAX 4096
#define SLOTS_MAX      1024
#define REPLY_KEEP     (KD3_HDR_LEN + KD3_M3_BODY_LEN) /* an M3 frame; an ERROR is cut */
#define RX_CAP         (KD3_HDR_LEN + KD3_ERROR_BODY_MAX + KD3_HDR_LEN + KD3_M3_BODY_LEN)
#define UDP_LOST_NS    (1000u * 1000u * 1000u)   /* a datagram unanswered this long is lost */
#define TCP_STALL_NS   (3000ull * 1000u * 1000u) /* a TCP reply this late fails the run */
#define DRAIN_NS       (2000ull * 1000u * 1000u) /* after the deadline, in-flight gets this */

enum proto { P_UDP, P_TCP, P_TCP_NEW };

/* One precomputed request and, once answered, its reply. */
typedef struct req {
	uint32_t off; /* the M2 frame in the arena */
	uint16_t len;
	uint16_t reply_len; /* bytes kept of the reply; 0 while unanswered */
	uint16_t ini, resp; /* principal indexes */
	uint8_t reply_type;
} req;

typedef struct slot {
	int fd;
	long cur; /* request in flight, or -1 */
	uint64_t sent_ns;
	uint8_t rx[RX_CAP];
	size_t rx_len;
} slot;

typedef struct load {
	enum proto proto;
	struct sockaddr_in kdc;
	uint8_t suite;
	b_principal *pr;
	size_t npr;
	req *reqs;
	size_t nreqs;
	uint8_t *arena;
	uint8_t *replies; /* REPLY_KEEP bytes per request */
	slot *slots;
	size_t nslots;
	int ep;
	/* Per phase. */
	size_t next, end;
	int issuing;
	size_t inflight, answered, lost, stray;
	b_lat *lat; /* NULL in the warm-up */
	uint64_t last_reply_ns;
} load;

static const char *proto_name(enum proto p)
{
	return p == P_UDP ? "udp" : p == P_TCP ? "tcp" : "tcp-new";
}

/* M1 then M2 for initiator i and responder r, fresh nonces, into the arena. */
static int build_request(load *L, kd3_crypto *c, size_t k, size_t i, size_t r, size_t *arena_off)
{
	uint8_t m1[KD3_HDR_LEN + KD3_M1_BODY_MAX], n_i[KD3_NONCE_LEN], n_r[KD3_NONCE_LEN];
	uint8_t auth[KD3_MAC_LEN];
	kd3_writer w;
	size_t start;
	const b_principal *pi = &L->pr[i], *pr = &L->pr[r];

	if (kd3_crypto_rng(c, n_i, sizeof(n_i)) || kd3_crypto_rng(c, n_r, sizeof(n_r)))
		return -1;
	kd3_wr_init(&w, m1, sizeof(m1));
	kd3_frame_begin(&w, KD3_T_M1, &start);
	kd3_m1_encode_signed(
	    &w, L->suite, 0, (kd3_view){(const uint8_t *)pi->name, strlen(pi->name)},
	    (kd3_view){(const uint8_t *)pr->name, strlen(pr->name)}, n_i, pi->kvno, NULL);
	size_t signed_len = w.len - KD3_HDR_LEN;
	if (w.err || kd3_authenticator(c, pi->sub.auth, KD3_LABEL_M1, m1 + KD3_HDR_LEN, signed_len,
	                               auth) != KD3_OK)
		return -1;
	kd3_wr_bytes(&w, auth, sizeof(auth));
	if (kd3_frame_end(&w, start) != KD3_OK)
		return -1;
	kd3_view m1_body = {m1 + KD3_HDR_LEN, w.len - KD3_HDR_LEN};

	uint8_t *out = L->arena + *arena_off;
	kd3_wr_init(&w, out, KD3_HDR_LEN + KD3_M2_BODY_MAX);
	kd3_frame_begin(&w, KD3_T_M2, &start);
	kd3_m2_encode_signed(&w, m1_body, n_r, pr->kvno, NULL);
	signed_len = w.len - KD3_HDR_LEN;
	if (w.err || kd3_authenticator(c, pr->sub.auth, KD3_LABEL_M2, out + KD3_HDR_LEN, signed_len,
	                               auth) != KD3_OK)
		return -1;
	kd3_wr_bytes(&w, auth, sizeof(auth));
	if (kd3_frame_end(&w, start) != KD3_OK)
		return -1;
	L->reqs[k] = (req){.off = (uint32_t)*arena_off,
	                   .len = (uint16_t)w.len,
	                   .ini = (uint16_t)i,
	                   .resp = (uint16_t)r};
	*arena_off += w.len;
	return 0;
}

/* Pair k: initiators in turn, each with every other principal as responder in turn. */
static void pair_of(size_t k, size_t n, size_t *i, size_t *r)
{
	*i = k % n;
	*r = (*i + 1 + (k / n) % (n - 1)) % n;
}

static void build_all(load *L, kd3_crypto *c)
{
	size_t arena_off = 0;
	L->reqs = calloc(L->nreqs, sizeof(*L->reqs));
	L->replies = calloc(L->nreqs, REPLY_KEEP);
	/* Every M2 of names up to 64 bytes fits in 320 bytes; the exact need is checked. */
	size_t per = 2 * 64 + 200;
	for (size_t k = 0; k < L->npr; k++)
		if (strlen(L->pr[k].name) > 64)
			per = KD3_HDR_LEN + KD3_M2_BODY_MAX;
	L->arena = malloc(L->nreqs * per);
	if (!L->reqs || !L->replies || !L->arena)
		b_die(1, "out of memory for %zu requests", L->nreqs);
	for (size_t k = 0; k < L->nreqs; k++) {
		size_t i, r;
		pair_of(k, L->npr, &i, &r);
		if (build_request(L, c, k, i, r, &arena_off) != 0)
			b_die(1, "cannot build request %zu", k);
	}
}

static int tcp_connect(const struct sockaddr_in *sa)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* Loopback connects complete at once or fail (refused): no wait to bound here. */
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
		close(fd);
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (kd3_set_nonblock(fd) != KD3_OK) {
		close(fd);
		return -1;
	}
	return fd;
}

static void watch(load *L, slot *s)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
	if (epoll_ctl(L->ep, EPOLL_CTL_ADD, s->fd, &ev) != 0)
		b_die(1, "epoll_ctl: %s", strerror(errno));
}

static void slots_open(load *L)
{
	L->ep = epoll_create1(EPOLL_CLOEXEC);
	if (L->ep < 0)
		b_die(1, "epoll_create1: %s", strerror(errno));
	for (size_t k = 0; k < L->nslots; k++) {
		slot *s = &L->slots[k];
		s->cur = -1;
		s->fd = -1;
		if (L->proto == P_TCP_NEW)
			continue;
		if (L->proto == P_TCP) {
			s->fd = tcp_connect(&L->kdc);
		} else {
			s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (s->fd >= 0 &&
			    connect(s->fd, (const struct sockaddr *)&L->kdc, sizeof(L->kdc)) != 0) {
				close(s->fd);
				s->fd = -1;
			}
		}
		if (s->fd < 0)
			b_die(1, "cannot reach the KDC over %s: %s", proto_name(L->proto),
			      strerror(errno));
		watch(L, s);
	}
}

static void slot_drop_conn(load *L, slot *s)
{
	epoll_ctl(L->ep, EPOLL_CTL_DEL, s->fd, NULL);
	close(s->fd);
	s->fd = -1;
}

/* Sends the next request on a free slot, when the phase still issues. */
static void issue(load *L, slot *s)
{
	if (!L->issuing || L->next >= L->end)
		return;
	size_t k = L->next++;
	const req *q = &L->reqs[k];
	if (L->proto == P_TCP_NEW) {
		s->fd = tcp_connect(&L->kdc);
		if (s->fd < 0)
			b_die(1, "tcp-new: cannot connect to the KDC: %s", strerror(errno));
		watch(L, s);
	}
	s->cur = (long)k;
	s->rx_len = 0;
	s->sent_ns = b_now_ns();
	ssize_t r;
	do
		r = send(s->fd, L->arena + q->off, q->len, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r != (ssize_t)q->len && L->proto != P_UDP)
		b_die(1, "%s: send failed: %s", proto_name(L->proto), strerror(errno));
	/* A UDP send that fails (ENOBUFS) shows up as a lost request. */
	L->inflight++;
}

static void complete(load *L, slot *s, const uint8_t *frame, size_t len, uint64_t now)
{
	req *q = &L->reqs[s->cur];
	q->reply_type = len >= 2 ? frame[1] : 0;
	q->reply_len = (uint16_t)(len < REPLY_KEEP ? len : REPLY_KEEP);
	memcpy(L->replies + (size_t)s->cur * REPLY_KEEP, frame, q->reply_len);
	if (L->lat)
		b_lat_add(L->lat, now - s->sent_ns);
	L->answered++;
	L->inflight--;
	L->last_reply_ns = now;
	s->cur = -1;
	if (L->proto == P_TCP_NEW)
		slot_drop_conn(L, s);
	issue(L, s);
}

/* n_r of the request in flight (the M3 echoes it): a late reply to a lost datagram
 * does not match and is not taken for the current one. */
static int reply_matches(const load *L, const slot *s, const uint8_t *frame, size_t len)
{
	if (len < KD3_HDR_LEN + KD3_NONCE_LEN || frame[1] != KD3_T_M3)
		return 1; /* an ERROR: checked (and failed) after the run */
	const req *q = &L->reqs[s->cur];
	kd3_frame f;
	kd3_m2 m2;
	if (kd3_frame_decode(L->arena + q->off, q->len, &f) != KD3_OK ||
	    kd3_m2_decode(f.body.p, f.body.len, &m2) != KD3_OK)
		return 0;
	return memcmp(frame + KD3_HDR_LEN, m2.n_r, KD3_NONCE_LEN) == 0;
}

static void udp_readable(load *L, slot *s)
{
	uint8_t buf[2048];
	for (;;) {
		ssize_t r = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return; /* EAGAIN, or ECONNREFUSED (shows up as loss) */
		}
		uint64_t now = b_now_ns();
		if (s->cur < 0 || !reply_matches(L, s, buf, (size_t)r)) {
			L->stray++;
			continue;
		}
		complete(L, s, buf, (size_t)r, now);
	}
}

static void tcp_readable(load *L, slot *s)
{
	for (;;) {
		ssize_t r = recv(s->fd, s->rx + s->rx_len, sizeof(s->rx) - s->rx_len, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0)
			b_die(1, "%s: the KDC closed the connection (%s)", proto_name(L->proto),
			      r == 0 ? "EOF" : strerror(errno));
		s->rx_len += (size_t)r;
		long size = kd3_frame_size(s->rx, s->rx_len);
		if (size < 0 || (size == 0 && s->rx_len == sizeof(s->rx)))
			b_die(1, "%s: the KDC sent bytes that are not a kd3 frame",
			      proto_name(L->proto));
		if (size > 0 && (size_t)size <= s->rx_len) {
			if (s->cur < 0)
				b_die(1, "%s: a reply nobody asked for", proto_name(L->proto));
			complete(L, s, s->rx, (size_t)size, b_now_ns());
			if (L->proto == P_TCP_NEW || s->fd < 0)
				return;
			s->rx_len = 0; /* one request in flight per connection: nothing follows */
		}
	}
}

/* Requests unanswered for too long: UDP ones are lost (the slot moves on); a stalled
 * TCP connection fails the run. */
static void check_stalls(load *L, uint64_t now)
{
	for (size_t k = 0; k < L->nslots; k++) {
		slot *s = &L->slots[k];
		if (s->cur < 0)
			continue;
		if (L->proto != P_UDP && now - s->sent_ns > TCP_STALL_NS)
			b_die(1, "%s: no reply within 3 s", proto_name(L->proto));
		if (L->proto == P_UDP && now - s->sent_ns > UDP_LOST_NS) {
			L->lost++;
			L->inflight--;
			s->cur = -1;
			issue(L, s);
		}
	}
}

/* Requests first..first+count, until they are answered or the deadline passes (then
 * in-flight requests get DRAIN_NS more). */
static void run_phase(load *L, size_t first, size_t count, double seconds, b_lat *lat)
{
	struct epoll_event evs[256];
	uint64_t start = b_now_ns(), deadline = start + (uint64_t)(seconds * 1e9);
	uint64_t last_check = start;

	L->next = first;
	L->end = first + count;
	L->issuing = 1;
	L->inflight = L->answered = L->lost = L->stray = 0;
	L->lat = lat;
	L->last_reply_ns = start;
	for (size_t k = 0; k < L->nslots; k++)
		issue(L, &L->slots[k]);
	while (L->inflight > 0) {
		int n = epoll_wait(L->ep, evs, 256, 50);
		if (n < 0 && errno != EINTR)
			b_die(1, "epoll_wait: %s", strerror(errno));
		for (int e = 0; e < n; e++) {
			slot *s = evs[e].data.ptr;
			if (L->proto == P_UDP)
				udp_readable(L, s);
			else
				tcp_readable(L, s);
		}
		uint64_t now = b_now_ns();
		if (L->issuing && now >= deadline)
			L->issuing = 0;
		if (!L->issuing && now >= deadline + DRAIN_NS)
			break;
		if (now - last_check > 50u * 1000u * 1000u) {
			check_stalls(L, now);
			last_check = now;
		}
	}
}

/* Both blobs open to the same SK: the KDC answered this very request correctly. */
static int verify(load *L, kd3_crypto *c, size_t k, const char **why)
{
	const req *q = &L->reqs[k];
	const uint8_t *reply = L->replies + k * REPLY_KEEP;
	kd3_frame f2, f3;
	kd3_m2 m2;
	kd3_m3 m3;
	uint8_t th[KD3_HASH_LEN], sk_r[KD3_KEY_LEN], sk_i[KD3_KEY_LEN];

	*why = "not an M3";
	if (q->reply_type != KD3_T_M3 || kd3_frame_decode(reply, q->reply_len, &f3) != KD3_OK ||
	    kd3_m3_decode(f3.body.p, f3.body.len, &m3) != KD3_OK)
		return -1;
	if (kd3_frame_decode(L->arena + q->off, q->len, &f2) != KD3_OK ||
	    kd3_m2_decode(f2.body.p, f2.body.len, &m2) != KD3_OK)
		return -1;
	*why = "n_r differs";
	if (memcmp(m3.n_r, m2.n_r, KD3_NONCE_LEN) != 0)
		return -1;
	kd3_iov prefix = {m2.body.p, m2.signed_len};
	*why = "blob_r or blob_i did not open";
	int ret = -1;
	if (kd3_transcript_hash(&prefix, 1, th) == KD3_OK &&
	    kd3_blob_open(c, m2.m1.suite, L->pr[q->resp].sub.wrap, KD3_ROLE_RESPONDER, th,
	                  m3.lifetime, m3.blob_r, sk_r) == KD3_OK &&
	    kd3_blob_open(c, m2.m1.suite, L->pr[q->ini].sub.wrap, KD3_ROLE_INITIATOR, th,
	                  m3.lifetime, m3.blob_i, sk_i) == KD3_OK) {
		*why = "the two blobs hold different keys";
		ret = kd3_ct_equal(sk_r, sk_i, KD3_KEY_LEN) ? 0 : -1;
	}
	kd3_wipe(sk_r, sizeof(sk_r));
	kd3_wipe(sk_i, sizeof(sk_i));
	return ret;
}

static void load_free(load *L)
{
	for (size_t k = 0; k < L->nslots; k++)
		if (L->slots[k].fd >= 0)
			close(L->slots[k].fd);
	close(L->ep);
	kd3_wipe(L->pr, PRINCIPALS_MAX * sizeof(*L->pr));
	free(L->pr);
	free(L->slots);
	free(L->reqs);
	free(L->replies);
	free(L->arena);
}

static void usage(void)
{
	fputs("usage: kdcload --kdc=127.0.0.1:PORT --keys=LIST [options]\n"
	      "  --keys=LIST          file listing key files, one per line (2..4096 principals)\n"
	      "  --proto=udp|tcp|tcp-new  (udp); tcp keeps a connection per slot, tcp-new\n"
	      "                       connects anew for every request\n"
	      "  --outstanding=N      requests in flight at once, one per slot (1)\n"
	      "  --requests=N         measured requests at most (100000)\n"
	      "  --seconds=S          measured time at most (3)\n"
	      "  --warmup=N           requests before the clock starts (1000)\n"
	      "  --kdc-pid=PID        the KDC process, for CPU per request\n"
	      "  --suite=chacha20-poly1305|aes-256-gcm\n"
	      "  --no-verify          do not check the replies (against kdcfloor, which\n"
	      "                       answers without crypto: the kernel's floor)\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"kdc", required_argument, 0, 'k'},      {"keys", required_argument, 0, 'K'},
	    {"proto", required_argument, 0, 'p'},    {"outstanding", required_argument, 0, 'o'},
	    {"requests", required_argument, 0, 'n'}, {"seconds", required_argument, 0, 's'},
	    {"warmup", required_argument, 0, 'w'},   {"kdc-pid", required_argument, 0, 'P'},
	    {"suite", required_argument, 0, 'S'},    {"no-verify", no_argument, 0, 'N'},
	    {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
	load L;
	const char *kdc = NULL, *keys = NULL;
	long outstanding = 1, requests = 100000, warmup = 1000, kdc_pid = 0;
	int no_verify = 0;
	double seconds = 3.0;
	int ch;

	memset(&L, 0, sizeof(L));
	L.suite = KD3_SUITE_CHACHAPOLY;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			kdc = optarg;
			break;
		case 'K':
			keys = optarg;
			break;
		case 'p':
			if (strcmp(optarg, "udp") == 0)
				L.proto = P_UDP;
			else if (strcmp(optarg, "tcp") == 0)
				L.proto = P_TCP;
			else if (strcmp(optarg, "tcp-new") == 0)
				L.proto = P_TCP_NEW;
			else
				b_die(2, "--proto: '%s' is not udp, tcp or tcp-new", optarg);
			break;
		case 'o':
			outstanding = b_arg_long("--outstanding", optarg, 1, SLOTS_MAX);
			break;
		case 'n':
			requests = b_arg_long("--requests", optarg, 1, 5000000);
			break;
		case 's':
			seconds = b_arg_double("--seconds", optarg, 0.05, 600);
			break;
		case 'w':
			warmup = b_arg_long("--warmup", optarg, 0, 1000000);
			break;
		case 'N':
			no_verify = 1;
			break;
		case 'P':
			kdc_pid = b_arg_long("--kdc-pid", optarg, 1, 1 << 30);
			break;
		case 'S':
			if (strcmp(optarg, "chacha20-poly1305") == 0)
				L.suite = KD3_SUITE_CHACHAPOLY;
			else if (strcmp(optarg, "aes-256-gcm") == 0)
				L.suite = KD3_SUITE_AES256GCM;
			else
				b_die(2, "--suite: '%s' is not chacha20-poly1305 or aes-256-gcm",
				      optarg);
			break;
		default:
			usage();
		}
	}
	if (!kdc || !keys || optind != argc)
		usage();
	if (b_parse_loopback(kdc, &L.kdc) != 0)
		return 2;

	kd3_crypto c;
	if (kd3_crypto_init(&c, "kdcload", 1) != KD3_OK)
		b_die(1, "cannot set up the crypto");
	L.pr = calloc(PRINCIPALS_MAX, sizeof(*L.pr));
	if (!L.pr)
		b_die(1, "out of memory");
	long npr = b_principals_load_list(&c, keys, L.pr, PRINCIPALS_MAX);
	if (npr < 2)
		b_die(2, "%s: need at least two principals' key files", keys);
	L.npr = (size_t)npr;
	L.nreqs = (size_t)(warmup + requests);
	build_all(&L, &c);
	L.nslots = (size_t)outstanding;
	L.slots = calloc(L.nslots, sizeof(*L.slots));
	if (!L.slots)
		b_die(1, "out of memory");
	b_raise_nofile(outstanding + 64);
	slots_open(&L);

	if (warmup > 0)
		run_phase(&L, 0, (size_t)warmup, 10.0, NULL);
	size_t warm_answered = L.answered;

	b_lat lat;
	if (b_lat_init(&lat, (size_t)requests) != 0)
		b_die(1, "out of memory");
	int64_t kdc_cpu0 = kdc_pid ? b_proc_cpu_us((pid_t)kdc_pid) : -1;
	int64_t self_cpu0 = b_self_cpu_us();
	uint64_t t0 = b_now_ns();
	run_phase(&L, (size_t)warmup, (size_t)requests, seconds, &lat);
	uint64_t t1 = L.last_reply_ns > t0 ? L.last_reply_ns : b_now_ns();
	int64_t kdc_cpu1 = kdc_pid ? b_proc_cpu_us((pid_t)kdc_pid) : -1;
	int64_t self_cpu1 = b_self_cpu_us();

	/* Every reply of both phases is checked. */
	size_t bad = 0, checked = 0;
	const char *first_why = "";
	for (size_t k = 0; k < L.nreqs; k++) {
		const char *why;
		if (L.reqs[k].reply_len == 0 || no_verify)
			continue;
		checked++;
		if (verify(&L, &c, k, &why) != 0) {
			if (bad++ == 0)
				first_why = why;
		}
	}

	double elapsed = (double)(t1 - t0) / 1e9;
	b_lat_sort(&lat);
	b_json_begin();
	b_json_str("tool", "kdcload");
	b_json_str("proto", proto_name(L.proto));
	b_json_int("outstanding", outstanding);
	b_json_int("principals", (long long)L.npr);
	b_json_int("answered", (long long)L.answered);
	b_json_int("lost", (long long)L.lost);
	b_json_int("stray", (long long)L.stray);
	b_json_int("warmup_answered", (long long)warm_answered);
	b_json_int("checked", (long long)checked);
	b_json_int("bad", (long long)bad);
	b_json_int("verified", !no_verify);
	b_json_num("seconds", elapsed);
	b_json_num("rps", elapsed > 0 ? (double)L.answered / elapsed : 0);
	b_json_num("p50_us", b_lat_pct_us(&lat, 0.50));
	b_json_num("p99_us", b_lat_pct_us(&lat, 0.99));
	b_json_num("p999_us", b_lat_pct_us(&lat, 0.999));
	if (kdc_cpu0 >= 0 && kdc_cpu1 >= 0 && L.answered)
		b_json_num("server_cpu_us_per_req",
		           (double)(kdc_cpu1 - kdc_cpu0) / (double)L.answered);
	if (L.answered)
		b_json_num("client_cpu_us_per_req",
		           (double)(self_cpu1 - self_cpu0) / (double)L.answered);
	b_json_end();
	if (bad)
		fprintf(stderr, "kdcload: %zu of %zu replies wrong (first: %s)\n", bad, checked,
		        first_why);
	b_lat_free(&lat);
	load_free(&L);
	kd3_crypto_free(&c);
	return bad || L.answered == 0 ? 1 : 0;
}
