/* kd3 record layer: docs/PROTOCOL.md, "Records".
 *
 * Two directions, each with its own traffic secret, key, IV and sequence number.
 * Sequence numbers are strict (exactly the next one, no window, no resync) and the
 * record header and seq are the AEAD's associated data, so a replayed, dropped,
 * reordered, reflected or altered record fails. KEY_UPDATE moves a direction to
 * next(ts) and restarts its seq at 0; the old secret is wiped. */
#ifndef KD3_CHANNEL_H
#define KD3_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypto.h"
#include "wire.h"

typedef struct kd3_direction {
	kd3_aead aead;
	uint8_t ts[KD3_KEY_LEN];
	uint8_t iv[KD3_IV_LEN];
	uint64_t seq;         /* next seq to send, or to expect */
	uint64_t key_records; /* records under the current key */
	uint64_t key_bytes;   /* payload bytes under the current key */
	uint64_t records;     /* all records this session */
	uint64_t bytes;       /* all payload bytes this session */
	uint32_t generation;  /* key generation: 0, then +1 per KEY_UPDATE */
	uint8_t closed;       /* CLOSE sent (tx) or received (rx) */
	uint8_t broken;       /* a failure: this direction never seals or opens again */
} kd3_direction;

typedef struct kd3_channel {
	kd3_crypto *crypto;
	uint8_t suite;
	uint8_t ready;
	kd3_direction tx;
	kd3_direction rx;
	uint64_t rekey_records; /* tx policy: update after this many records (>= 1) */
	uint64_t rekey_bytes;   /* and after this many payload bytes (0: no byte limit) */
} kd3_channel;

int kd3_channel_init(kd3_channel *ch, kd3_crypto *c, uint8_t suite,
                     const uint8_t tx_ts[KD3_KEY_LEN], const uint8_t rx_ts[KD3_KEY_LEN]);
/* Wipes every secret. Safe on a zeroed or half-built channel. */
void kd3_channel_free(kd3_channel *ch);

/* 1 when the tx policy asks for a KEY_UPDATE before the next record. */
int kd3_channel_rekey_due(const kd3_channel *ch);

/* Seals one record (a whole RECORD frame) into w. Sealing a KEY_UPDATE moves tx to
 * the next key; sealing a CLOSE closes tx. */
int kd3_channel_seal(kd3_channel *ch, uint8_t inner, const uint8_t *payload, size_t len,
                     kd3_writer *w);

/* Opens one whole RECORD frame in place. On success *inner and *payload describe the
 * plaintext (payload points into frame). KEY_UPDATE and CLOSE are applied to rx. */
int kd3_channel_open(kd3_channel *ch, uint8_t *frame, size_t len, uint8_t *inner,
                     kd3_view *payload);

#endif
