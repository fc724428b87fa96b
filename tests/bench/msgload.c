/* msgload: bytes per second through a live kd3 session, and the references measured
 * in the same run. Messages of --size bytes (printable, no newline, so that a
 * responder --exec cat echoes each as one line).
 *
 *   --mode=aead          the raw AEAD of the suite (Mbed TLS through shared/crypto.c, the
 *                        calls the record layer makes): seal, open, and seal+open of one
 *                        message, with the 12 bytes of associated data a record has.
 *   --mode=tcp-oneway    plain loopback TCP, this process to a thread that reads it all.
 *   --mode=tcp-echo      plain loopback TCP through an echo thread, both ways at once.
 *   --mode=session-oneway  a session to a responder without --exec (its stdout read by
 *                        someone fast): N messages, then CLOSE; the clock stops at the
 *                        responder's CLOSE, which comes after it opened every record.
 *   --mode=session-echo  a session to a responder --exec cat: messages both ways at once,
 *                        at most --window in flight; every echo is checked byte for byte.
 * One JSON object on stdout: mb_s is payload megabytes (1e6) per second in each
 * direction. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_peer.h"
#include "err.h"
#include "net.h"

#define DRAIN_NS (5000ull * 1000u * 1000u) /* after the deadline, messages in flight get this */

typedef struct opts {
	const char *mode;
	struct sockaddr_in responder;
	const char *keyfile;
	const char *peer_name;
	size_t size;
	long count, window;
	double seconds;
	uint8_t suite;
} opts;

static void fill_message(uint8_t *p, size_t n, unsigned salt)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (uint8_t)('a' + (k + salt) % 26);
}

static void print_result(const opts *o, const char *mode, double elapsed, long messages,
                         double direction_factor)
{
	double bytes = (double)messages * (double)o->size;
	b_json_begin();
	b_json_str("tool", "msgload");
	b_json_str("mode", mode);
	b_json_int("size", (long long)o->size);
	b_json_int("messages", messages);
	b_json_num("seconds", elapsed);
	b_json_num("mb_s", elapsed > 0 ? bytes / elapsed / 1e6 : 0);
	b_json_num("mb_s_total", elapsed > 0 ? direction_factor * bytes / elapsed / 1e6 : 0);
	b_json_end();
}

/* One AEAD operation timed: 0 seal, 1 open (of one record sealed before), 2 both. */
static double aead_rate(const opts *o, kd3_aead *a, int op, uint8_t *pt, uint8_t *ct, uint8_t *back)
{
	uint8_t iv[KD3_IV_LEN], ad[12];
	memset(iv, 0x33, sizeof(iv));
	memset(ad, 0x10, sizeof(ad));
	if (kd3_aead_seal(a, iv, ad, sizeof(ad), pt, o->size, ct) != KD3_OK)
		b_die(1, "seal failed");
	uint64_t t0 = b_now_ns(), deadline = t0 + (uint64_t)(o->seconds / 3 * 1e9);
	long n = 0;
	for (; n < o->count && ((n & 15) || b_now_ns() < deadline); n++) {
		if (op != 1) {
			kd3_put_u64(iv + 4,
			            (uint64_t)n + 1); /* a new nonce per record, as seq does */
			if (kd3_aead_seal(a, iv, ad, sizeof(ad), pt, o->size, ct) != KD3_OK)
				b_die(1, "seal failed");
		}
		if (op != 0 &&
		    kd3_aead_open(a, iv, ad, sizeof(ad), ct, o->size + KD3_TAG_LEN, back) != KD3_OK)
			b_die(1, "open failed");
	}
	double elapsed = (double)(b_now_ns() - t0) / 1e9;
	if (op != 0 && memcmp(back, pt, o->size) != 0)
		b_die(1, "the opened message differs");
	return (double)n * (double)o->size / elapsed / 1e6;
}

static int mode_aead(const opts *o)
{
	kd3_aead a;
	kd3_crypto c;
	uint8_t key[KD3_KEY_LEN];
	uint8_t *pt = malloc(o->size), *ct = malloc(o->size + KD3_TAG_LEN), *back = malloc(o->size);

	if (!pt || !ct || !back || kd3_crypto_init(&c, "msgload aead", 1) != KD3_OK ||
	    kd3_crypto_rng(&c, key, sizeof(key)) || kd3_aead_init(&a, o->suite) != KD3_OK ||
	    kd3_aead_setkey(&a, key) != KD3_OK)
		b_die(1, "cannot set up the AEAD");
	fill_message(pt, o->size, 0);
	double seal = aead_rate(o, &a, 0, pt, ct, back);
	double open = aead_rate(o, &a, 1, pt, ct, back);
	double both = aead_rate(o, &a, 2, pt, ct, back);
	b_json_begin();
	b_json_str("tool", "msgload");
	b_json_str("mode", "aead");
	b_json_str("suite", kd3_suite_name(o->suite));
	b_json_int("size", (long long)o->size);
	b_json_num("seal_mb_s", seal);
	b_json_num("open_mb_s", open);
	b_json_num("seal_open_mb_s", both);
	b_json_end();
	kd3_aead_free(&a);
	kd3_crypto_free(&c);
	kd3_wipe(key, sizeof(key));
	free(pt);
	free(ct);
	free(back);
	return 0;
}

/* Plain TCP: a loopback listener and the thread on its other end. */
typedef struct tcp_peer {
	int listen_fd;
	int echo; /* 1: send back what arrives; 0: read it all, then one byte of ack */
	size_t size;
} tcp_peer;

static void *tcp_peer_main(void *arg)
{
	tcp_peer *t = arg;
	struct pollfd p = {.fd = t->listen_fd, .events = POLLIN};
	uint8_t *buf = malloc(65536);
	if (!buf || poll(&p, 1, BP_IO_TIMEOUT_MS) != 1) {
		free(buf);
		return NULL;
	}
	int fd = accept(t->listen_fd, NULL, NULL);
	if (fd < 0) {
		free(buf);
		return NULL;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {.tv_sec = BP_IO_TIMEOUT_MS / 1000};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		ssize_t r = recv(fd, buf, 65536, 0);
		if (r <= 0)
			break;
		if (t->echo && bp_send_all(fd, buf, (size_t)r) != 0)
			break;
	}
	if (!t->echo)
		(void)send(fd, "k", 1, MSG_NOSIGNAL);
	close(fd);
	free(buf);
	return NULL;
}

static int tcp_open_pair(tcp_peer *t, pthread_t *tid)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int one = 1;
	t->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (t->listen_fd < 0 || bind(t->listen_fd, (struct sockaddr *)&a, alen) ||
	    listen(t->listen_fd, 4) || getsockname(t->listen_fd, (struct sockaddr *)&a, &alen) ||
	    pthread_create(tid, NULL, tcp_peer_main, t) != 0)
		b_die(1, "cannot listen on 127.0.0.1: %s", strerror(errno));
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, alen) != 0)
		b_die(1, "cannot connect to the TCP thread: %s", strerror(errno));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int mode_tcp_oneway(const opts *o)
{
	tcp_peer t = {.echo = 0, .size = o->size};
	pthread_t tid;
	uint8_t *msg = malloc(o->size);
	if (!msg)
		b_die(1, "out of memory");
	fill_message(msg, o->size, 0);
	int fd = tcp_open_pair(&t, &tid);
	uint64_t t0 = b_now_ns(), deadline = t0 + (uint64_t)(o->seconds * 1e9);
	long n = 0;
	for (; n < o->count && ((n & 15) || b_now_ns() < deadline); n++)
		if (bp_send_all(fd, msg, o->size) != 0)
			b_die(1, "tcp: send failed");
	shutdown(fd, SHUT_WR);
	char ack;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, BP_IO_TIMEOUT_MS) != 1 || recv(fd, &ack, 1, 0) != 1)
		b_die(1, "tcp: the reader did not finish");
	double elapsed = (double)(b_now_ns() - t0) / 1e9;
	close(fd);
	pthread_join(tid, NULL);
	close(t.listen_fd);
	free(msg);
	print_result(o, "tcp-oneway", elapsed, n, 1);
	return 0;
}

/* Writes whole messages while fewer than window are unanswered, reads what comes
 * back; returns messages echoed. Every wait bounded. */
static int mode_tcp_echo(const opts *o)
{
	tcp_peer t = {.echo = 1, .size = o->size};
	pthread_t tid;
	uint8_t *msg = malloc(o->size), *back = malloc(65536);
	if (!msg || !back)
		b_die(1, "out of memory");
	fill_message(msg, o->size, 0);
	int fd = tcp_open_pair(&t, &tid);
	uint64_t t0 = b_now_ns(), deadline = t0 + (uint64_t)(o->seconds * 1e9);
	long sent = 0;
	uint64_t bytes_back = 0;
	while (bytes_back < (uint64_t)sent * o->size ||
	       (sent < o->count && b_now_ns() < deadline)) {
		if (sent < o->count && b_now_ns() < deadline &&
		    (uint64_t)sent * o->size - bytes_back < (uint64_t)o->window * o->size) {
			if (bp_send_all(fd, msg, o->size) != 0)
				b_die(1, "tcp echo: send failed");
			sent++;
			continue;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, BP_IO_TIMEOUT_MS) != 1)
			b_die(1, "tcp echo: nothing came back in time");
		ssize_t r = recv(fd, back, 65536, 0);
		if (r <= 0)
			b_die(1, "tcp echo: the echo thread went away");
		bytes_back += (uint64_t)r;
	}
	double elapsed = (double)(b_now_ns() - t0) / 1e9;
	close(fd);
	pthread_join(tid, NULL);
	close(t.listen_fd);
	free(msg);
	free(back);
	print_result(o, "tcp-echo", elapsed, sent, 2);
	return 0;
}

static bp_conn *session_open(const opts *o, kd3_crypto *c)
{
	b_principal self;
	const char *why = "?";
	bp_conn *conn = calloc(1, sizeof(*conn));
	if (!conn || kd3_crypto_init(c, "msgload", 1) != KD3_OK)
		b_die(1, "cannot set up");
	if (b_principal_load(c, o->keyfile, &self) != 0)
		exit(2);
	conn->fd = -1;
	if (bp_open(conn, c, &o->responder, &self, o->peer_name, o->suite, 0, &why) != 0)
		b_die(1, "session: %s", why);
	kd3_wipe(&self, sizeof(self));
	return conn;
}

/* Seals one DATA record of msg and sends it. */
static void session_send(bp_conn *conn, const uint8_t *msg, size_t len)
{
	if (kd3_peer_send(&conn->peer, msg, len, kd3_now_ms(), &conn->tx_w) != KD3_OK ||
	    bp_send_all(conn->fd, conn->tx, conn->tx_w.len) != 0)
		b_die(1, "session: cannot send a message");
	kd3_wr_init(&conn->tx_w, conn->tx, sizeof(conn->tx));
}

static int mode_session_oneway(const opts *o)
{
	kd3_crypto c;
	const char *why = "?";
	uint8_t *msg = malloc(o->size);
	if (!msg)
		b_die(1, "out of memory");
	fill_message(msg, o->size, 0);
	bp_conn *conn = session_open(o, &c);
	uint64_t t0 = b_now_ns(), deadline = t0 + (uint64_t)(o->seconds * 1e9);
	long n = 0;
	for (; n < o->count && ((n & 15) || b_now_ns() < deadline); n++)
		session_send(conn, msg, o->size);
	if (bp_close(conn, &why) != 0)
		b_die(1, "session: %s", why);
	double elapsed = (double)(b_now_ns() - t0) / 1e9;
	bp_free(conn);
	free(conn);
	kd3_crypto_free(&c);
	free(msg);
	print_result(o, "session-oneway", elapsed, n, 1);
	return 0;
}

/* The next DATA from the responder (other records, such as a KEY_UPDATE, are taken in
 * passing); it must be the message sent. */
static void session_expect_echo(bp_conn *conn, const uint8_t *msg, size_t len)
{
	for (int k = 0; k < 16; k++) {
		uint8_t *frame;
		size_t flen;
		const char *why = "?";
		kd3_peer_out out;
		if (bp_next_frame(conn, BP_IO_TIMEOUT_MS, &frame, &flen, &why) != 0)
			b_die(1, "session echo: %s", why);
		memset(&out, 0, sizeof(out));
		out.to_peer = &conn->tx_w;
		if (kd3_peer_input(&conn->peer, KD3_SRC_PEER, frame, flen, kd3_now_ms(), &out) !=
		    KD3_OK)
			b_die(1, "session echo: a record from the responder did not open");
		if (!(out.events & KD3_EV_DATA))
			continue;
		if (out.data.len != len || memcmp(out.data.p, msg, len) != 0)
			b_die(
			    1,
			    "session echo: the echo differs from the message (%zu bytes, want %zu)",
			    out.data.len, len);
		return;
	}
	b_die(1, "session echo: no DATA among 16 records");
}

static int mode_session_echo(const opts *o)
{
	kd3_crypto c;
	const char *why = "?";
	uint8_t *msg = malloc(o->size);
	if (!msg)
		b_die(1, "out of memory");
	fill_message(msg, o->size, 0);
	bp_conn *conn = session_open(o, &c);
	/* One echo before the clock: the responder has started the command by then. */
	session_send(conn, msg, o->size);
	session_expect_echo(conn, msg, o->size);
	uint64_t t0 = b_now_ns(), deadline = t0 + (uint64_t)(o->seconds * 1e9);
	long sent = 0, back = 0;
	while (back < sent || (sent < o->count && b_now_ns() < deadline)) {
		if (sent < o->count && sent - back < o->window && b_now_ns() < deadline) {
			session_send(conn, msg, o->size);
			sent++;
			continue;
		}
		session_expect_echo(conn, msg, o->size);
		back++;
	}
	double elapsed = (double)(b_now_ns() - t0) / 1e9;
	if (bp_close(conn, &why) != 0)
		b_die(1, "session: %s", why);
	bp_free(conn);
	free(conn);
	kd3_crypto_free(&c);
	free(msg);
	print_result(o, "session-echo", elapsed, back, 2);
	return 0;
}

static void usage(void)
{
	fputs("usage: msgload --mode=MODE --size=BYTES [options]\n"
	      "  MODE: aead, tcp-oneway, tcp-echo, session-oneway, session-echo\n"
	      "  --connect=127.0.0.1:PORT  the responder (session modes)\n"
	      "  --keyfile=PATH            the initiator's key file (session modes)\n"
	      "  --peer=NAME               the responder's principal (session modes)\n"
	      "  --count=N                 messages at most (1000000)\n"
	      "  --seconds=S               time at most (2)\n"
	      "  --window=N                echo modes: messages in flight at most (64 KiB worth)\n"
	      "  --suite=chacha20-poly1305|aes-256-gcm\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {{"mode", required_argument, 0, 'm'},
	                                      {"connect", required_argument, 0, 'c'},
	                                      {"keyfile", required_argument, 0, 'K'},
	                                      {"peer", required_argument, 0, 'p'},
	                                      {"size", required_argument, 0, 'z'},
	                                      {"count", required_argument, 0, 'n'},
	                                      {"seconds", required_argument, 0, 's'},
	                                      {"window", required_argument, 0, 'w'},
	                                      {"suite", required_argument, 0, 'S'},
	                                      {"help", no_argument, 0, 'h'},
	                                      {0, 0, 0, 0}};
	opts o = {.count = 1000000, .seconds = 2, .suite = KD3_SUITE_CHACHAPOLY};
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
			o.keyfile = optarg;
			break;
		case 'p':
			o.peer_name = optarg;
			break;
		case 'z':
			o.size = (size_t)b_arg_long("--size", optarg, 1, KD3_PAYLOAD_MAX);
			break;
		case 'n':
			o.count = b_arg_long("--count", optarg, 1, 100000000);
			break;
		case 's':
			o.seconds = b_arg_double("--seconds", optarg, 0.05, 600);
			break;
		case 'w':
			o.window = b_arg_long("--window", optarg, 1, 100000);
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
	if (!o.mode || !o.size || optind != argc)
		usage();
	if (o.window == 0)
		o.window = o.size >= 65536 / 2 ? 2 : (long)(65536 / o.size);
	if (strcmp(o.mode, "aead") == 0)
		return mode_aead(&o);
	if (strcmp(o.mode, "tcp-oneway") == 0)
		return mode_tcp_oneway(&o);
	if (strcmp(o.mode, "tcp-echo") == 0)
		return mode_tcp_echo(&o);
	if (!connect_to || !o.keyfile || !o.peer_name)
		usage();
	if (b_parse_loopback(connect_to, &o.responder) != 0)
		return 2;
	if (strcmp(o.mode, "session-oneway") == 0)
		return mode_session_oneway(&o);
	if (strcmp(o.mode, "session-echo") == 0)
		return mode_session_echo(&o);
	b_die(2, "--mode: '%s' is not a mode msgload knows", o.mode);
}
