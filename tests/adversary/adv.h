/* kd3adv: the man in the middle of kd3's adversary tests (tests/adversary/README.md).
 *
 * The vocabulary every part of it shares: directions, transports, the kinds a frame can
 * be matched as, and hex. A frame is always a whole kd3 frame as it went on the wire
 * (header included), or for a TCP stream that stopped being kd3, a run of raw bytes. */
#ifndef KD3ADV_H
#define KD3ADV_H

#include <stddef.h>
#include <stdint.h>

/* Who sent a frame to whom. The relays see exactly these four. */
enum { ADV_I2R, ADV_R2I, ADV_R2KDC, ADV_KDC2R, ADV_NDIRS };

/* A rule may name the transport a frame came over (R<->KDC is both). */
enum { ADV_ANY_TRANSPORT, ADV_TCP, ADV_UDP };

/* What a frame can be matched as: its type, ANY, and two guesses about a record's inner
 * type, which a man in the middle cannot read: FINISHED is the first I->R record of a
 * connection, KEY_UPDATE a record with an empty payload (29 bytes; an empty DATA looks
 * the same, so scenarios do not send empty lines). */
enum {
	ADV_K_M1,
	ADV_K_M2,
	ADV_K_M3,
	ADV_K_M4,
	ADV_K_RECORD,
	ADV_K_ERROR,
	ADV_K_OTHER, /* not a kd3 header */
	ADV_K_FINISHED,
	ADV_K_KEY_UPDATE,
	ADV_K_ANY,
	ADV_NKINDS
};

/* Bounds: every buffer and table of kd3adv is one of these. */
#define ADV_MAX_RULES    32
#define ADV_RULE_MAX     512                              /* characters of one rule */
#define ADV_INJECT_MAX   4096                             /* bytes of an inject / hex: source */
#define ADV_EXTEND_MAX   4096                             /* bytes an extend may add */
#define ADV_DELAY_MAX_MS 60000                            /* the longest delay */
#define ADV_DGRAM_MAX    65536                            /* largest UDP datagram read */
#define ADV_EDIT_MAX     (ADV_DGRAM_MAX + ADV_EXTEND_MAX) /* an edited frame */

/* A frame as seen: where it went, how, and its index (1-based) within each kind it
 * belongs to; 0 where it is not of that kind. */
typedef struct adv_seen {
	int dir;
	int transport;
	unsigned idx[ADV_NKINDS];
} adv_seen;

const char *adv_dir_name(int dir);
int adv_dir_parse(const char *s, size_t len); /* -1 when unknown */
int adv_dir_back(int dir);                    /* the reverse direction */
const char *adv_transport_name(int transport);
const char *adv_kind_name(int kind);
int adv_kind_parse(const char *s, size_t len); /* -1 when unknown */
/* The kind a frame has by its type byte (ADV_K_OTHER when it has no kd3 header). */
int adv_kind_of(const uint8_t *frame, size_t len);

/* Counts a frame into counters (per direction and kind, over the whole run) and fills
 * seen. conn_records: the number of records this connection has carried in this
 * direction, this one included (FINISHED is the first I->R one). */
void adv_classify(unsigned counters[ADV_NDIRS][ADV_NKINDS], int dir, int transport,
                  const uint8_t *frame, size_t len, unsigned conn_records, adv_seen *seen);

/* Hex: "0a1B" -> bytes. Returns the byte count, or -1 (odd length, not hex, > cap). */
long adv_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t cap);
/* Writes 2*len hex digits and a NUL to out (which holds 2*len+1). */
void adv_hex_encode(const uint8_t *p, size_t len, char *out);

#endif
