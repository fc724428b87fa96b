/* initiator options: one table (shared/conf.h) read from --config FILE, section
 * [initiator], and overridden by the command line. */
#ifndef KD3_INITIATOR_OPTIONS_H
#define KD3_INITIATOR_OPTIONS_H

#include <stdint.h>

#include "conf.h"

typedef struct ini_settings {
	char connect[KD3_CONF_STR_MAX]; /* responder address, IP literal[:port] */
	char keyfile[KD3_CONF_STR_MAX]; /* our long-term keys */
	char name[KD3_CONF_STR_MAX];    /* our principal; "" = the one in the key file */
	char peer[KD3_CONF_STR_MAX];    /* the responder principal to reach */
	uint8_t suite;
	int forward_secret;
	uint64_t rekey_messages;
	uint64_t rekey_bytes;   /* 0: no byte limit */
	uint64_t rekey_seconds; /* 0: no time limit */
	uint64_t timeout_s;     /* connect + handshake, and each stalled write */
	int trace;
	int batch;                         /* scripted mode even on a terminal */
	int json;                          /* stdout: one JSON object per event (shared/events.h) */
	char transcript[KD3_CONF_STR_MAX]; /* "" = none (shared/transcript.h) */
	int reveal_keys;                   /* session keys into the transcript */
	kd3_conf_list quit_words;          /* chat: lines that close the session; none = /quit */
} ini_settings;

/* KD3_OK with *done = 0: run. KD3_OK with *done = 1: --help or --version printed.
 * KD3_E_USAGE / KD3_E_CONFIG: an error was printed. */
int ini_options_parse(int argc, char **argv, ini_settings *s, int *done);

#endif
