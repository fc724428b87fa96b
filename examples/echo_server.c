/* echo_server: a kd3 responder that sends every message back. It asks the KDCs for
 * each session's key and serves one session at a time. A libkd3 example
 * (docs/LIBRARY.md).
 *
 *   echo_server KEYFILE LISTEN KDCS [SESSIONS]   e.g. echo.key 127.0.0.1:0 127.0.0.1:7088
 *
 * It prints "listening on port N", then serves SESSIONS sessions (default: forever).
 * Build: cc echo_server.c $(pkg-config --cflags --libs kd3) -o echo_server */
#include <stdio.h>
#include <stdlib.h>

#include <kd3/kd3.h>

/* Echoes until the initiator closes; KD3_OK when both sides closed cleanly. */
static int echo(kd3_conn *conn)
{
	static char msg[KD3_MESSAGE_MAX];
	size_t len = 0;
	int ret;

	while ((ret = kd3_conn_recv(conn, msg, sizeof(msg), &len, 60000)) == KD3_OK)
		if ((ret = kd3_conn_send(conn, msg, len)) != KD3_OK)
			return ret;
	return ret == KD3_E_CLOSED ? kd3_conn_close(conn) : ret;
}

int main(int argc, char **argv)
{
	char err[512];
	kd3_key *key = NULL;
	kd3_server *srv = NULL;
	int ret;

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: %s KEYFILE LISTEN KDCS [SESSIONS]\n", argv[0]);
		return 2;
	}
	long sessions = argc == 5 ? strtol(argv[4], NULL, 10) : -1;
	if ((ret = kd3_key_load(&key, argv[1], err, sizeof(err))) != KD3_OK) {
		fprintf(stderr, "echo_server: %s\n", err);
		return 2;
	}
	kd3_options opts = {.timeout_ms = 5000};
	ret = kd3_server_new(&srv, key, argv[2], argv[3], &opts, err, sizeof(err));
	kd3_key_free(key);
	if (ret != KD3_OK) {
		fprintf(stderr, "echo_server: %s\n", err);
		return 2;
	}
	printf("listening on port %d\n", kd3_server_port(srv));
	fflush(stdout);
	for (long served = 0; sessions < 0 || served < sessions; served++) {
		kd3_conn *conn = NULL;
		ret = kd3_server_accept(srv, &conn, -1, err, sizeof(err));
		if (ret != KD3_OK) {
			fprintf(stderr, "echo_server: %s\n", err);
			continue;
		}
		fprintf(stderr, "echo_server: session with %s\n", kd3_conn_peer(conn));
		if ((ret = echo(conn)) != KD3_OK)
			fprintf(stderr, "echo_server: %s\n", kd3_conn_error_text(conn));
		kd3_conn_free(conn);
	}
	kd3_server_free(srv);
	return 0;
}
