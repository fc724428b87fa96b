/* sessload: full kd3 sessions against a live responder and KDC on 127.0.0.1, with the
 * initiator in this process (the library's peer state machine), and the loopback
 * round trips they are compared with.
 *
 *   --mode=handshake  T threads, each opening sessions one after another: connect, M1,
 *                     M4 (the responder asked the KDC meanwhile), FINISHED sent ("open"
 *                     latency), then CLOSE and the responder's CLOSE back, which proves
 *                     it verified FINISHED ("verified" latency). Sessions per second.
 *   --mode=idle       opens N sessions, keeps them idle, prints one JSON line, waits for
 *                     stdin to close (at most --hold seconds), then closes them.
 *   --mode=rtt        loopback round trips of 100 bytes through an in-process echo
 *                     server: TCP (the floor of a handshake is about three of these)
 *                     and UDP.
 *   --mode=x25519     what forward-secret mode adds to each side of a handshake, alone:
 *                     a key pair (random private key, public key) and one shared
 *                     secret, --rounds times on one core.
 * --forward-secret: handshake and idle sessions ask for forward-secret mode (X25519).
 * One JSON object on stdout per run. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_peer.h"
#include "crypto.h"
#include "err.h"

#define PRINCIPALS_MAX 1024
#define THREADS_MAX    64
#define RTT_MSG        100

typedef struct opts {
	const char *mode;
	struct sockaddr_in responder;
	const char *keys;
	const char *peer_name;
	long threads, sessions, rounds;
	double seconds, hold;
	uint8_t suite;
	int forward_secret;
} opts;

typedef struct hs_shared {
	const opts *o;
	b_principal *pr;
	size_t npr;
	atomic_long issued;
	uint64_t deadline_ns;
} hs_shared;

typedef struct hs_worker {
	hs_shared *sh;
	int index;
	pthread_t tid;
	b_lat open_lat, verified_lat;
	long ok, failed;
	const char *why;
} hs_worker;

static void *hs_main(void *arg)
{
	hs_worker *w = arg;
	hs_shared *sh = w->sh;
	kd3_crypto crypto;
	bp_conn *c = calloc(1, sizeof(*c));
	char pers[32];

	snprintf(pers, sizeof(pers), "sessload %d", w->index);
	if (!c || kd3_crypto_init(&crypto, pers, 1) != KD3_OK) {
		w->failed++;
		w->why = "cannot set up";
		free(c);
		return NULL;
	}
	for (;;) {
		long k = atomic_fetch_add(&sh->issued, 1);
		if (k >= sh->o->sessions || b_now_ns() >= sh->deadline_ns)
			break;
		const b_principal *self = &sh->pr[(size_t)k % sh->npr];
		const char *why = NULL;
		uint64_t t0 = b_now_ns();
		c->fd = -1;
		int ret = bp_open(c, &crypto, &sh->o->responder, self, sh->o->peer_name,
		                  sh->o->suite, sh->o->forward_secret, &why);
		if (ret == 0)
			ret = bp_close(c, &why);
		uint64_t t1 = b_now_ns();
		uint64_t established = c->established_ns;
		bp_free(c);
		if (ret != 0) {
			w->failed++;
			w->why = why;
			break; /* a failing session ends the thread: no error loop */
		}
		b_lat_add(&w->open_lat, established - t0);
		b_lat_add(&w->verified_lat, t1 - t0);
		w->ok++;
	}
	kd3_crypto_free(&crypto);
	free(c);
	return NULL;
}

static void merge(b_lat *all, const b_lat *part)
{
	for (size_t k = 0; k < part->n; k++)
		b_lat_add(all, part->ns[k]);
}

static int mode_handshake(const opts *o, b_principal *pr, size_t npr)
{
	hs_shared sh = {.o = o, .pr = pr, .npr = npr};
	hs_worker ws[THREADS_MAX];
	b_lat open_all, verified_all;

	memset(ws, 0, sizeof(ws));
	uint64_t t0 = b_now_ns();
	sh.deadline_ns = t0 + (uint64_t)(o->seconds * 1e9);
	for (long t = 0; t < o->threads; t++) {
		ws[t].sh = &sh;
		ws[t].index = (int)t;
		if (b_lat_init(&ws[t].open_lat, (size_t)o->sessions) ||
		    b_lat_init(&ws[t].verified_lat, (size_t)o->sessions))
			b_die(1, "out of memory");
		if (pthread_create(&ws[t].tid, NULL, hs_main, &ws[t]) != 0)
			b_die(1, "cannot start a thread");
	}
	for (long t = 0; t < o->threads; t++)
		pthread_join(ws[t].tid, NULL);
	double elapsed = (double)(b_now_ns() - t0) / 1e9;

	long ok = 0, failed = 0;
	const char *why = NULL;
	if (b_lat_init(&open_all, (size_t)o->sessions) ||
	    b_lat_init(&verified_all, (size_t)o->sessions))
		b_die(1, "out of memory");
	for (long t = 0; t < o->threads; t++) {
		ok += ws[t].ok;
		failed += ws[t].failed;
		if (!why)
			why = ws[t].why;
		merge(&open_all, &ws[t].open_lat);
		merge(&verified_all, &ws[t].verified_lat);
		b_lat_free(&ws[t].open_lat);
		b_lat_free(&ws[t].verified_lat);
	}
	b_lat_sort(&open_all);
	b_lat_sort(&verified_all);
	b_json_begin();
	b_json_str("tool", "sessload");
	b_json_str("mode", "handshake");
	b_json_int("forward_secret", o->forward_secret);
	b_json_int("threads", o->threads);
	b_json_int("sessions", ok);
	b_json_int("bad", failed);
	b_json_num("seconds", elapsed);
	b_json_num("sessions_per_s", elapsed > 0 ? (double)ok / elapsed : 0);
	b_json_num("open_p50_us", b_lat_pct_us(&open_all, 0.50));
	b_json_num("open_p99_us", b_lat_pct_us(&open_all, 0.99));
	b_json_num("verified_p50_us", b_lat_pct_us(&verified_all, 0.50));
	b_json_num("verified_p99_us", b_lat_pct_us(&verified_all, 0.99));
	b_json_end();
	if (failed)
		fprintf(stderr, "sessload: %ld sessions failed (%s)\n", failed, why ? why : "?");
	b_lat_free(&open_all);
	b_lat_free(&verified_all);
	return failed || ok == 0 ? 1 : 0;
}

/* Opens o->sessions sessions and holds them until stdin closes or o->hold passes. */
static int mode_idle(const opts *o, b_principal *pr, size_t npr)
{
	kd3_crypto crypto;
	bp_conn **conns = calloc((size_t)o->sessions, sizeof(*conns));
	long opened = 0;
	const char *why = NULL;

	b_raise_nofile(o->sessions + 64);
	if (!conns || kd3_crypto_init(&crypto, "sessload idle", 1) != KD3_OK)
		b_die(1, "cannot set up");
	for (long k = 0; k < o->sessions; k++) {
		conns[k] = calloc(1, sizeof(bp_conn));
		if (!conns[k])
			b_die(1, "out of memory");
		conns[k]->fd = -1;
		if (bp_open(conns[k], &crypto, &o->responder, &pr[(size_t)k % npr], o->peer_name,
		            o->suite, o->forward_secret, &why) != 0) {
			bp_free(conns[k]);
			free(conns[k]);
			conns[k] = NULL;
			break;
		}
		/* The session's own buffers here are not what is measured: drop them. */
		opened++;
	}
	b_json_begin();
	b_json_str("tool", "sessload");
	b_json_str("mode", "idle");
	b_json_int("opened", opened);
	b_json_end();
	if (opened < o->sessions)
		fprintf(stderr, "sessload: opened %ld of %ld sessions (%s)\n", opened, o->sessions,
		        why ? why : "?");
	struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
	uint64_t deadline = b_now_ns() + (uint64_t)(o->hold * 1e9);
	char sink[64];
	while (b_now_ns() < deadline) {
		if (poll(&p, 1, 100) > 0 && read(STDIN_FILENO, sink, sizeof(sink)) <= 0)
			break;
	}
	for (long k = 0; k < opened; k++) {
		bp_free(conns[k]); /* a close without CLOSE: the responder sees the stream end */
		free(conns[k]);
	}
	free(conns);
	kd3_crypto_free(&crypto);
	return opened == o->sessions ? 0 : 1;
}

typedef struct echo_server {
	int listen_fd, udp_fd;
	long rounds;
} echo_server;

/* Echoes rounds messages of RTT_MSG bytes on one accepted connection, and as many
 * datagrams; every wait bounded. */
static void *echo_main(void *arg)
{
	echo_server *e = arg;
	uint8_t buf[RTT_MSG];
	struct pollfd p = {.fd = e->listen_fd, .events = POLLIN};
	if (poll(&p, 1, BP_IO_TIMEOUT_MS) != 1)
		return NULL;
	int fd = accept(e->listen_fd, NULL, NULL);
	if (fd < 0)
		return NULL;
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {.tv_sec = BP_IO_TIMEOUT_MS / 1000};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(e->udp_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (long k = 0; k < e->rounds; k++) {
		size_t got = 0;
		while (got < RTT_MSG) {
			ssize_t r = recv(fd, buf + got, RTT_MSG - got, 0);
			if (r <= 0)
				goto tcp_done;
			got += (size_t)r;
		}
		if (send(fd, buf, RTT_MSG, MSG_NOSIGNAL) != RTT_MSG)
			break;
	}
tcp_done:
	close(fd);
	for (long k = 0; k < e->rounds; k++) {
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		ssize_t r =
		    recvfrom(e->udp_fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
		if (r <= 0)
			break;
		(void)sendto(e->udp_fd, buf, (size_t)r, 0, (struct sockaddr *)&from, flen);
	}
	return NULL;
}

static int mode_rtt(const opts *o)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	echo_server e = {.rounds = o->rounds};
	uint8_t msg[RTT_MSG];
	b_lat tcp, udp;
	pthread_t tid;
	int one = 1;

	memset(msg, 'r', sizeof(msg));
	e.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	e.udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (e.listen_fd < 0 || e.udp_fd < 0 || bind(e.listen_fd, (struct sockaddr *)&a, alen) ||
	    listen(e.listen_fd, 4) || getsockname(e.listen_fd, (struct sockaddr *)&a, &alen))
		b_die(1, "cannot listen on 127.0.0.1: %s", strerror(errno));
	struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t ualen = sizeof(ua);
	if (bind(e.udp_fd, (struct sockaddr *)&ua, ualen) ||
	    getsockname(e.udp_fd, (struct sockaddr *)&ua, &ualen))
		b_die(1, "cannot bind a UDP socket on 127.0.0.1: %s", strerror(errno));
	if (b_lat_init(&tcp, (size_t)o->rounds) || b_lat_init(&udp, (size_t)o->rounds) ||
	    pthread_create(&tid, NULL, echo_main, &e) != 0)
		b_die(1, "cannot set up");

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, alen) != 0)
		b_die(1, "cannot connect to the echo server: %s", strerror(errno));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {.tv_sec = BP_IO_TIMEOUT_MS / 1000};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (long k = 0; k < o->rounds; k++) {
		uint8_t back[RTT_MSG];
		size_t got = 0;
		uint64_t t0 = b_now_ns();
		if (send(fd, msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg))
			b_die(1, "tcp echo: send failed");
		while (got < RTT_MSG) {
			ssize_t r = recv(fd, back + got, RTT_MSG - got, 0);
			if (r <= 0)
				b_die(1, "tcp echo: no answer");
			got += (size_t)r;
		}
		b_lat_add(&tcp, b_now_ns() - t0);
	}
	close(fd);

	int ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ufd < 0 || connect(ufd, (struct sockaddr *)&ua, ualen) != 0)
		b_die(1, "cannot reach the UDP echo: %s", strerror(errno));
	(void)setsockopt(ufd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (long k = 0; k < o->rounds; k++) {
		uint8_t back[RTT_MSG];
		uint64_t t0 = b_now_ns();
		if (send(ufd, msg, sizeof(msg), 0) != (ssize_t)sizeof(msg) ||
		    recv(ufd, back, sizeof(back), 0) != (ssize_t)sizeof(back))
			b_die(1, "udp echo: no answer");
		b_lat_add(&udp, b_now_ns() - t0);
	}
	close(ufd);
	pthread_join(tid, NULL);
	close(e.listen_fd);
	close(e.udp_fd);

	b_lat_sort(&tcp);
	b_lat_sort(&udp);
	b_json_begin();
	b_json_str("tool", "sessload");
	b_json_str("mode", "rtt");
	b_json_int("rounds", o->rounds);
	b_json_num("tcp_p50_us", b_lat_pct_us(&tcp, 0.50));
	b_json_num("tcp_p99_us", b_lat_pct_us(&tcp, 0.99));
	b_json_num("udp_p50_us", b_lat_pct_us(&udp, 0.50));
	b_json_num("udp_p99_us", b_lat_pct_us(&udp, 0.99));
	b_json_end();
	b_lat_free(&tcp);
	b_lat_free(&udp);
	return 0;
}

/* One side's X25519 work in forward-secret mode, timed per round: a fresh private key
 * from the DRBG, its public key, and the shared secret with the other side's public key
 * (a fixed one: its cost does not depend on the value). */
static int mode_x25519(const opts *o)
{
	kd3_crypto crypto;
	uint8_t priv[KD3_DH_LEN], pub[KD3_DH_LEN], peer_priv[KD3_DH_LEN], peer_pub[KD3_DH_LEN];
	uint8_t shared[KD3_DH_LEN];
	b_lat lat;

	if (kd3_crypto_init(&crypto, "sessload x25519", 1) != KD3_OK ||
	    b_lat_init(&lat, (size_t)o->rounds) ||
	    kd3_crypto_rng(&crypto, peer_priv, sizeof(peer_priv)) != KD3_OK ||
	    kd3_x25519_public(peer_priv, peer_pub) != KD3_OK)
		b_die(1, "cannot set up");
	uint64_t start = b_now_ns();
	for (long k = 0; k < o->rounds; k++) {
		uint64_t t0 = b_now_ns();
		if (kd3_crypto_rng(&crypto, priv, sizeof(priv)) != KD3_OK ||
		    kd3_x25519_public(priv, pub) != KD3_OK ||
		    kd3_x25519_shared(priv, peer_pub, shared) != KD3_OK)
			b_die(1, "x25519 failed");
		b_lat_add(&lat, b_now_ns() - t0);
	}
	double elapsed = (double)(b_now_ns() - start) / 1e9;
	b_lat_sort(&lat);
	b_json_begin();
	b_json_str("tool", "sessload");
	b_json_str("mode", "x25519");
	b_json_int("rounds", o->rounds);
	b_json_num("mean_us", elapsed * 1e6 / (double)o->rounds);
	b_json_num("p50_us", b_lat_pct_us(&lat, 0.50));
	b_json_num("p99_us", b_lat_pct_us(&lat, 0.99));
	b_json_end();
	kd3_wipe(priv, sizeof(priv));
	kd3_wipe(peer_priv, sizeof(peer_priv));
	kd3_wipe(shared, sizeof(shared));
	b_lat_free(&lat);
	kd3_crypto_free(&crypto);
	return 0;
}

static void usage(void)
{
	fputs("usage: sessload --mode=handshake|idle|rtt|x25519 [options]\n"
	      "  --connect=127.0.0.1:PORT  the responder (handshake, idle)\n"
	      "  --keys=LIST               initiators' key files, one path per line\n"
	      "  --peer=NAME               the responder's principal\n"
	      "  --threads=N               handshake: sessions opened at once (1)\n"
	      "  --sessions=N              sessions at most (2000)\n"
	      "  --seconds=S               handshake: time at most (3)\n"
	      "  --hold=S                  idle: hold the sessions at most this long (60)\n"
	      "  --rounds=N                rtt: round trips of each kind; x25519: key pairs\n"
	      "                            and shared secrets (5000)\n"
	      "  --forward-secret          handshake, idle: forward-secret mode (X25519)\n"
	      "  --suite=chacha20-poly1305|aes-256-gcm\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {{"mode", required_argument, 0, 'm'},
	                                      {"connect", required_argument, 0, 'c'},
	                                      {"keys", required_argument, 0, 'K'},
	                                      {"peer", required_argument, 0, 'p'},
	                                      {"threads", required_argument, 0, 't'},
	                                      {"sessions", required_argument, 0, 'n'},
	                                      {"seconds", required_argument, 0, 's'},
	                                      {"hold", required_argument, 0, 'H'},
	                                      {"rounds", required_argument, 0, 'r'},
	                                      {"suite", required_argument, 0, 'S'},
	                                      {"forward-secret", no_argument, 0, 'F'},
	                                      {"help", no_argument, 0, 'h'},
	                                      {0, 0, 0, 0}};
	opts o = {.threads = 1,
	          .sessions = 2000,
	          .rounds = 5000,
	          .seconds = 3,
	          .hold = 60,
	          .suite = KD3_SUITE_CHACHAPOLY};
	const char *connect_to = NULL;
	int ch;

	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'm':
			o.mode = optarg;
			break;
		case 'c':
			connect_to = optarg;
			break;
		case 'K':
			o.keys = optarg;
			break;
		case 'p':
			o.peer_name = optarg;
			break;
		case 't':
			o.threads = b_arg_long("--threads", optarg, 1, THREADS_MAX);
			break;
		case 'n':
			o.sessions = b_arg_long("--sessions", optarg, 1, 1000000);
			break;
		case 's':
			o.seconds = b_arg_double("--seconds", optarg, 0.05, 600);
			break;
		case 'H':
			o.hold = b_arg_double("--hold", optarg, 0.1, 600);
			break;
		case 'r':
			o.rounds = b_arg_long("--rounds", optarg, 1, 10000000);
			break;
		case 'F':
			o.forward_secret = 1;
			break;
		case 'S':
			if (strcmp(optarg, "chacha20-poly1305") == 0)
				o.suite = KD3_SUITE_CHACHAPOLY;
			else if (strcmp(optarg, "aes-256-gcm") == 0)
				o.suite = KD3_SUITE_AES256GCM;
			else
				b_die(2, "--suite: '%s' is not chacha20-poly1305 or aes-256-gcm",
				      optarg);
			break;
		default:
			usage();
		}
	}
	if (!o.mode || optind != argc)
		usage();
	if (strcmp(o.mode, "rtt") == 0)
		return mode_rtt(&o);
	if (strcmp(o.mode, "x25519") == 0)
		return mode_x25519(&o);
	if (!connect_to || !o.keys || !o.peer_name)
		usage();
	if (b_parse_loopback(connect_to, &o.responder) != 0)
		return 2;
	kd3_crypto crypto;
	b_principal *pr = calloc(PRINCIPALS_MAX, sizeof(*pr));
	if (!pr || kd3_crypto_init(&crypto, "sessload keys", 0) != KD3_OK)
		b_die(1, "cannot set up");
	long npr = b_principals_load_list(&crypto, o.keys, pr, PRINCIPALS_MAX);
	kd3_crypto_free(&crypto);
	if (npr < 1)
		b_die(2, "%s: no initiator key files", o.keys);
	int ret;
	if (strcmp(o.mode, "handshake") == 0)
		ret = mode_handshake(&o, pr, (size_t)npr);
	else if (strcmp(o.mode, "idle") == 0)
		ret = mode_idle(&o, pr, (size_t)npr);
	else
		b_die(2, "--mode: '%s' is not handshake, idle or rtt", o.mode);
	kd3_wipe(pr, PRINCIPALS_MAX * sizeof(*pr));
	free(pr);
	return ret;
}
