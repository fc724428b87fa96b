/* kd3adv: scenario rules, one per --rule or per line of a --scenario file.
 *
 *   RULE   := WHERE MATCH ACTION
 *   WHERE  := DIR[/tcp|/udp]         DIR: I->R  R->I  R->KDC  KDC->R
 *   MATCH  := KIND[#N|#N+]           KIND: M1 M2 M3 M4 RECORD ERROR OTHER ANY, and the
 *                                    record guesses FINISHED, KEY_UPDATE (adv.h). #N: the
 *                                    N-th such frame in that direction in this run (1-based,
 *                                    counted as sent, before any rule); #N+: it and every
 *                                    later one; no #: every one.
 *   ACTION := record | pass          forward it unchanged (and say so)
 *           | drop                   forward nothing
 *           | delay MS               forward it after MS ms (later frames wait behind it)
 *           | duplicate [MS]         forward it twice (the copy MS ms later)
 *           | reorder                hold it; forward it right after the next frame
 *           | join                   hold it; forward it and the next frame in one write
 *                                    (the receiver reads both at once, as when a network
 *                                    coalesces segments)
 *           | replay SRC             forward it, then SRC
 *           | replace SRC            forward SRC instead
 *           | answer SRC             forward nothing; send SRC back to its sender
 *           | reflect                send it back to its sender instead
 *           | inject HEX             forward HEX, then it
 *           | truncate N             forward its first N bytes, then cut the connection
 *           | cut                    cut the connection (TCP: both ways; UDP: drop)
 *           | extend N               append N zero bytes to its body (length field fixed)
 *           | flip BIT               flip bit BIT of the frame (0: the top bit of its first
 *                                    byte; -1: the last bit)
 *           | flip FIELD[:BIT]       flip a bit of FIELD (default: one in its middle)
 *           | set FIELD=VALUE        numbers in decimal or 0x hex, byte fields in hex (or
 *                                    'zero'), names and text as written
 *           | swap FIELD FIELD       exchange two alike fields (blob_i blob_r, id_i id_r)
 *           | splice FIELD[,FIELD...] SRC  each FIELD taken from SRC
 *   SRC    := [earlier:][DIR:]KIND#N a frame of this run, or with earlier: of the --load
 *                                    recording; DIR defaults to the rule's
 *           | hex:HEX                these bytes
 *
 * The first rule that matches a frame decides; a frame no rule matches is forwarded. */
#ifndef KD3ADV_RULE_H
#define KD3ADV_RULE_H

#include <stddef.h>
#include <stdint.h>

#include "adv.h"

enum {
	ADV_A_PASS,
	ADV_A_DROP,
	ADV_A_DELAY,
	ADV_A_DUPLICATE,
	ADV_A_REORDER,
	ADV_A_JOIN,
	ADV_A_REPLAY,
	ADV_A_REPLACE,
	ADV_A_ANSWER,
	ADV_A_REFLECT,
	ADV_A_INJECT,
	ADV_A_TRUNCATE,
	ADV_A_CUT,
	ADV_A_EXTEND,
	ADV_A_FLIP_BIT,
	ADV_A_FLIP_FIELD,
	ADV_A_SET,
	ADV_A_SWAP,
	ADV_A_SPLICE,
};

#define ADV_FIELD_NAME_MAX 64 /* a field, or splice's comma-separated list */

typedef struct adv_src {
	int earlier; /* from the --load recording */
	int dir;
	int kind;
	unsigned index;
	int is_hex; /* the rule's bytes */
} adv_src;

typedef struct adv_rule {
	char text[ADV_RULE_MAX]; /* as written, for the log */
	int dir;
	int transport;
	int kind;
	unsigned index; /* 0: every frame of the kind */
	int from_on;    /* #N+ */
	int action;
	long num; /* delay ms, truncate and extend bytes, flip bit */
	char field[ADV_FIELD_NAME_MAX], field2[ADV_FIELD_NAME_MAX];
	char value[ADV_RULE_MAX];
	adv_src src;
	uint8_t bytes[ADV_INJECT_MAX]; /* inject, hex: */
	size_t bytes_len;
	unsigned fired;
} adv_rule;

/* 0, or -1 with one line of why in err. */
int adv_rule_parse(const char *text, adv_rule *r, char *err, size_t err_len);
/* 1 when the rule applies to a frame seen so. */
int adv_rule_matches(const adv_rule *r, const adv_seen *seen);
/* The KD3_T_* of frames of a kind, 0 for OTHER and ANY. */
uint8_t adv_kind_type(int kind);
/* "earlier:R->KDC:M2#1" or "hex", for the log. */
void adv_src_format(const adv_rule *r, char *out, size_t out_len);

#endif
