/* responder options: one table (shared/conf.h) read from --config FILE, section
 * [responder], then overridden by the command line (getopt_long over the same
 * table), so a file key and a long option always mean the same thing. */
#ifndef RESP_OPTS_H
#define RESP_OPTS_H

#include <stdint.h>

#include "conf.h"
#include "net.h"

#define RESP_LISTEN_DEFAULT         "127.0.0.1:7089"
#define RESP_KDC_DEFAULT            "127.0.0.1:7088"
#define RESP_MAX_SESSIONS_DEFAULT   1024
#define RESP_HANDSHAKE_S_DEFAULT    10
#define RESP_KDC_TIMEOUT_MS_DEFAULT 200
#define RESP_LISTEN_MAX             8      /* addresses of one --listen name that are bound */
#define RESP_KDC_DNS_PREFIX         "dns:" /* --kdc dns:DOMAIN: SRV discovery */

typedef struct resp_opts {
	/* responder.conf keys and their long options. */
	char listen[KD3_CONF_STR_MAX];
	kd3_conf_list kdc; /* tried in order */
	char keyfile[KD3_CONF_STR_MAX];
	char name[KD3_CONF_STR_MAX]; /* "" = the key file's principal */
	uint8_t suites;              /* bit (1 << suite) */
	int require_fs;
	uint64_t rekey_messages;
	uint64_t rekey_bytes;   /* 0: no byte limit */
	uint64_t rekey_seconds; /* 0: no time limit */
	char exec_cmd[KD3_CONF_STR_MAX];
	uint64_t max_sessions;
	uint64_t handshake_timeout_s;
	uint64_t kdc_timeout_ms; /* first UDP retransmit; doubles each try */
	int trace;
	int json;                          /* stdout: JSON events (responder/report.h) */
	char transcript[KD3_CONF_STR_MAX]; /* "" = none */
	char metrics[KD3_CONF_STR_MAX];    /* "" = none; PORT or IP:PORT */
	int reveal_keys;

	/* Command line only. */
	char config[KD3_CONF_STR_MAX];

	/* Parsed from the above by resp_opts_parse. */
	kd3_addr listen_addrs[RESP_LISTEN_MAX]; /* every address of --listen */
	size_t nlisten;
	kd3_addr metrics_addr; /* with metrics */
	/* --kdc entries are checked here and resolved by responder/kdcs.c. */
} resp_opts;

/* KD3_OK with *done = 0: run. KD3_OK with *done = 1: --help or --version printed.
 * KD3_E_USAGE / KD3_E_CONFIG: a one-line error was printed. */
int resp_opts_parse(int argc, char **argv, resp_opts *o, int *done);

#endif
