/* The metrics endpoint (shared/metrics_http.c on libmicrohttpd) and the exposition
 * text (shared/openmetrics.c). Input: the bytes a client sends, over a real TCP
 * connection to a server on 127.0.0.1, which then half-closes. The same bytes (up to
 * 200) are the value of a label in what the server renders.
 *
 * Invariants: the server answers within its bounds (a reply, or a close, never a hang
 * past KD3_METRICS_TIMEOUT_S plus a margin); whatever it sends starts with an HTTP/1.x
 * status line; a reply of 200 carries text in which every line is a comment or a sample
 * whose label value kd3_expo_escape made safe (no raw newline, every quote escaped,
 * unescaping gives back a prefix of the input). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "fuzz_util.h"
#include "metrics_http.h"
#include "openmetrics.h"

#define LABEL_INPUT_MAX 200
#define REPLY_MAX       (256 * 1024)
#define ANSWER_WAIT_MS  ((KD3_METRICS_TIMEOUT_S + 3) * 1000)

static kd3_metrics_http *server;
static pthread_mutex_t label_lock = PTHREAD_MUTEX_INITIALIZER;
static char label_in[LABEL_INPUT_MAX + 1]; /* the input as a C string, cut at a NUL */
static kd3_counter counter;
static kd3_histogram hist;

/* Unescapes out and checks it is a prefix of in: the escape lost or added nothing. */
static void check_escaped(const char *out, const char *in)
{
	size_t at = 0;
	for (const char *p = out; *p; p++) {
		char c = *p;
		FUZZ_CHECK(c != '\n' && c != '"');
		if (c == '\\') {
			p++;
			FUZZ_CHECK(*p == '\\' || *p == '"' || *p == 'n');
			c = *p == 'n' ? '\n' : *p;
		}
		FUZZ_CHECK(in[at] == c);
		at++;
	}
}

static void render(void *ctx, kd3_expo *e)
{
	char shown[2 * LABEL_INPUT_MAX + 1], labels[2 * LABEL_INPUT_MAX + 32];
	(void)ctx;
	pthread_mutex_lock(&label_lock);
	kd3_expo_escape(label_in, shown, sizeof(shown));
	check_escaped(shown, label_in);
	pthread_mutex_unlock(&label_lock);
	snprintf(labels, sizeof(labels), "input=\"%s\"", shown);
	kd3_count(&counter, 1);
	kd3_expo_family(e, "fuzz_scrapes", "counter", "Scrapes.");
	kd3_expo_counter(e, "fuzz_scrapes", labels, kd3_counter_get(&counter));
	kd3_hist_read h;
	memset(&h, 0, sizeof(h));
	kd3_hist_add_to(&hist, &h);
	kd3_expo_family(e, "fuzz_seconds", "histogram", "A histogram.");
	kd3_expo_histogram(e, "fuzz_seconds", labels, &h);
}

static void server_once(void)
{
	kd3_addr a = {.len = sizeof(struct sockaddr_in)};
	struct sockaddr_in *in = (struct sockaddr_in *)&a.ss;
	char err[256];
	if (server)
		return;
	in->sin_family = AF_INET; /* port 0: the kernel picks one */
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	FUZZ_CHECK(kd3_metrics_http_start(&server, &a, render, NULL, err, sizeof(err)) == KD3_OK);
	for (uint64_t us = 1; us <= 5000000; us *= 10) /* a few observations of each size */
		kd3_hist_observe(&hist, us);
}

static int connect_server(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)kd3_metrics_http_port(server)),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	/* Closed with a reset, not left in TIME_WAIT: thousands of connections a second would
	 * otherwise use up the ephemeral ports within seconds (CI's 15 s run did). */
	struct linger reset = {.l_onoff = 1, .l_linger = 0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)) == 0);
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

/* Sends what the server takes (it may close early: EPIPE/ECONNRESET end the send). */
static void send_input(int fd, const uint8_t *data, size_t size)
{
	for (size_t at = 0; at < size;) {
		ssize_t n = send(fd, data + at, size - at, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		at += (size_t)n;
	}
	(void)shutdown(fd, SHUT_WR);
}

/* Everything until the server closes; a server that neither answers nor closes in
 * time fails the run. */
static size_t read_reply(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	uint64_t deadline = kd3_now_ms() + ANSWER_WAIT_MS;
	for (;;) {
		uint64_t now = kd3_now_ms();
		FUZZ_CHECK(now < deadline);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)(deadline - now)) <= 0)
			continue;
		ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || got + (size_t)n >= cap - 1) {
			if (n > 0)
				got += (size_t)n;
			break;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	return got;
}

/* Each line of a 200's body (its Content-Length bytes: a pipelined request's answer
 * may follow): a comment, or NAME[{...}] VALUE. */
static void check_body(const char *headers, const char *body, size_t have)
{
	const char *cl = strstr(headers, "Content-Length: ");
	FUZZ_CHECK(cl != NULL && cl < body);
	size_t len = (size_t)strtoul(cl + 16, NULL, 10);
	FUZZ_CHECK(len <= have);
	for (const char *line = body; line < body + len;) {
		const char *nl = memchr(line, '\n', (size_t)(body + len - line));
		FUZZ_CHECK(nl != NULL);
		FUZZ_CHECK(line[0] == '#' || (line[0] >= 'a' && line[0] <= 'z'));
		line = nl + 1;
	}
}

/* head: the input holds a HEAD request somewhere, so a 200 may come without its body. */
static void check_reply(const char *reply, size_t len, int head)
{
	if (len == 0)
		return; /* closed without a word: allowed for garbage */
	FUZZ_CHECK(len >= 12 && strncmp(reply, "HTTP/1.", 7) == 0 && reply[8] == ' ');
	int status = atoi(reply + 9);
	FUZZ_CHECK(status >= 100 && status <= 599);
	const char *end = strstr(reply, "\r\n\r\n");
	const char *type = strstr(reply, "Content-Type: text/plain; version=0.0.4");
	if (status == 200 && end && type && type < end && !head)
		check_body(reply, end + 4, len - (size_t)(end + 4 - reply));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char reply[REPLY_MAX];
	size_t n = size < LABEL_INPUT_MAX ? size : LABEL_INPUT_MAX;

	server_once();
	pthread_mutex_lock(&label_lock);
	memcpy(label_in, data, n);
	label_in[n] = '\0';
	pthread_mutex_unlock(&label_lock);
	int fd = connect_server();
	send_input(fd, data, size);
	size_t got = read_reply(fd, reply, sizeof(reply));
	close(fd);
	check_reply(reply, got, memmem(data, size, "HEAD", 4) != NULL);
	return 0;
}
