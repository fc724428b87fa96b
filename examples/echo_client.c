/* echo_client: each line of standard input to a kd3 responder as one message, and
 * each answer printed as one line. A libkd3 example (docs/LIBRARY.md).
 *
 *   echo_client KEYFILE RESPONDER ADDRESS      e.g. alice.key echo 127.0.0.1:7089
 *
 * Build: cc echo_client.c $(pkg-config --cflags --libs kd3) -o echo_client */
#include <stdio.h>
#include <string.h>

#include <kd3/kd3.h>

int main(int argc, char **argv)
{
	char err[512], line[KD3_MESSAGE_MAX + 2], answer[KD3_MESSAGE_MAX];
	kd3_key *key = NULL;
	kd3_conn *conn = NULL;
	int ret;

	if (argc != 4) {
		fprintf(stderr, "usage: %s KEYFILE RESPONDER ADDRESS\n", argv[0]);
		return 2;
	}
	if ((ret = kd3_key_load(&key, argv[1], err, sizeof(err))) != KD3_OK) {
		fprintf(stderr, "echo_client: %s\n", err);
		return 2;
	}
	kd3_options opts = {.timeout_ms = 5000, .forward_secret = 1};
	ret = kd3_connect(&conn, key, argv[2], argv[3], &opts, err, sizeof(err));
	kd3_key_free(key);
	if (ret != KD3_OK) {
		fprintf(stderr, "echo_client: %s\n", err);
		return 1;
	}
	fprintf(stderr, "echo_client: session with %s\n", kd3_conn_peer(conn));
	while (ret == KD3_OK && fgets(line, sizeof(line), stdin)) {
		size_t len = strcspn(line, "\n"), got = 0;
		if ((ret = kd3_conn_send(conn, line, len)) == KD3_OK)
			ret = kd3_conn_recv(conn, answer, sizeof(answer), &got, -1);
		if (ret == KD3_OK)
			printf("%.*s\n", (int)got, answer);
	}
	if (ret == KD3_OK)
		ret = kd3_conn_close(conn);
	if (ret != KD3_OK)
		fprintf(stderr, "echo_client: %s\n", kd3_conn_error_text(conn));
	kd3_conn_free(conn);
	return ret == KD3_OK ? 0 : 1;
}
