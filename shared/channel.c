#include "channel.h"

#include <string.h>

#include "err.h"
#include "msg.h"
#include "schedule.h"

/* Key the direction from its current traffic secret: key(ts), iv(ts). Nothing of
 * the direction changes unless every step succeeded. */
static int direction_install(kd3_channel *ch, kd3_direction *d)
{
	uint8_t key[KD3_KEY_LEN], iv[KD3_IV_LEN];
	int ret = kd3_traffic_key_iv(ch->crypto, d->ts, key, iv);
	if (ret == KD3_OK)
		ret = kd3_aead_setkey(&d->aead, key);
	if (ret == KD3_OK) {
		memcpy(d->iv, iv, sizeof(iv));
		d->seq = 0;
		d->key_records = 0;
		d->key_bytes = 0;
	}
	kd3_wipe(key, sizeof(key));
	kd3_wipe(iv, sizeof(iv));
	return ret;
}

/* KEY_UPDATE: ts = next(ts) (the old secret is overwritten), seq restarts at 0. */
static int direction_update(kd3_channel *ch, kd3_direction *d)
{
	int ret = kd3_traffic_next(ch->crypto, d->ts);
	if (ret != KD3_OK)
		return ret;
	d->generation++;
	return direction_install(ch, d);
}

/* Any failure of the record layer is final for its direction: a direction whose
 * keys or counters may be out of step never seals or opens again. (The other
 * direction still works, so a party can send a CLOSE naming an input failure.) */
static int broken(kd3_direction *d, int err)
{
	d->broken = 1;
	return err;
}

static int direction_init(kd3_channel *ch, kd3_direction *d, const uint8_t ts[KD3_KEY_LEN])
{
	int ret = kd3_aead_init(&d->aead, ch->suite);
	if (ret != KD3_OK)
		return ret;
	memcpy(d->ts, ts, KD3_KEY_LEN);
	return direction_install(ch, d);
}

int kd3_channel_init(kd3_channel *ch, kd3_crypto *c, uint8_t suite,
                     const uint8_t tx_ts[KD3_KEY_LEN], const uint8_t rx_ts[KD3_KEY_LEN])
{
	int ret;

	memset(ch, 0, sizeof(*ch));
	ch->crypto = c;
	ch->suite = suite;
	ch->rekey_records = KD3_REKEY_RECORDS_DEFAULT;
	if ((ret = direction_init(ch, &ch->tx, tx_ts)) != KD3_OK ||
	    (ret = direction_init(ch, &ch->rx, rx_ts)) != KD3_OK) {
		kd3_channel_free(ch);
		return ret;
	}
	ch->ready = 1;
	return KD3_OK;
}

void kd3_channel_free(kd3_channel *ch)
{
	kd3_aead_free(&ch->tx.aead);
	kd3_aead_free(&ch->rx.aead);
	kd3_wipe(ch, sizeof(*ch));
}

int kd3_channel_rekey_due(const kd3_channel *ch)
{
	const kd3_direction *tx = &ch->tx;
	/* Leave room under the hard limit for the KEY_UPDATE record itself. */
	return tx->key_records >= ch->rekey_records ||
	       (ch->rekey_bytes && tx->key_bytes >= ch->rekey_bytes) ||
	       tx->key_records >= KD3_RECORDS_PER_KEY_MAX - 1;
}

/* nonce = iv XOR (0^4 || seq) */
static void record_nonce(const kd3_direction *d, uint64_t seq, uint8_t nonce[KD3_IV_LEN])
{
	uint8_t s[KD3_SEQ_LEN];
	kd3_put_u64(s, seq);
	memcpy(nonce, d->iv, KD3_IV_LEN);
	for (size_t i = 0; i < KD3_SEQ_LEN; i++)
		nonce[KD3_IV_LEN - KD3_SEQ_LEN + i] ^= s[i];
}

/* RECORD body = seq u64 | AEAD-Seal(key(ts), iv XOR seq, header || seq, inner || payload) */
int kd3_channel_seal(kd3_channel *ch, uint8_t inner, const uint8_t *payload, size_t len,
                     kd3_writer *w)
{
	kd3_direction *tx = &ch->tx;
	uint8_t nonce[KD3_IV_LEN];
	int ret;

	if (!ch->ready || tx->broken)
		return KD3_E_UNEXPECTED;
	if (tx->closed)
		return KD3_E_CLOSED;
	if (len > KD3_PAYLOAD_MAX)
		return KD3_E_TOO_BIG;
	if (tx->key_records >= KD3_RECORDS_PER_KEY_MAX)
		return KD3_E_INTERNAL; /* the caller skipped a due key update */

	size_t body_len = KD3_SEQ_LEN + 1 + len + KD3_TAG_LEN;
	uint8_t *rec = kd3_wr_reserve(w, KD3_HDR_LEN + body_len);
	if (!rec)
		return w->err;
	rec[0] = KD3_VERSION;
	rec[1] = KD3_T_RECORD;
	kd3_put_u16(rec + 2, (uint16_t)body_len);
	kd3_put_u64(rec + KD3_HDR_LEN, tx->seq);
	uint8_t *pt = rec + KD3_HDR_LEN + KD3_SEQ_LEN;
	pt[0] = inner;
	if (len)
		memmove(pt + 1, payload, len);
	record_nonce(tx, tx->seq, nonce);
	ret = kd3_aead_seal(&tx->aead, nonce, rec, KD3_HDR_LEN + KD3_SEQ_LEN, pt, 1 + len, pt);
	kd3_wipe(nonce, sizeof(nonce)); /* iv XOR seq: for seq 0, the IV itself */
	if (ret != KD3_OK) {
		kd3_wipe(rec, KD3_HDR_LEN + body_len);
		return broken(tx, ret);
	}
	tx->seq++;
	tx->key_records++;
	tx->records++;
	tx->key_bytes += len;
	tx->bytes += len;
	if (inner == KD3_R_KEY_UPDATE && (ret = direction_update(ch, tx)) != KD3_OK)
		return broken(tx, ret);
	if (inner == KD3_R_CLOSE)
		tx->closed = 1;
	return KD3_OK;
}

int kd3_channel_open(kd3_channel *ch, uint8_t *frame, size_t len, uint8_t *inner, kd3_view *payload)
{
	kd3_direction *rx = &ch->rx;
	kd3_frame f;
	kd3_record rec;
	uint8_t nonce[KD3_IV_LEN];
	int ret;

	if (!ch->ready || rx->broken)
		return KD3_E_UNEXPECTED;
	if ((ret = kd3_frame_decode(frame, len, &f)) != KD3_OK)
		return broken(rx, ret);
	if (f.type != KD3_T_RECORD)
		return broken(rx, KD3_E_UNEXPECTED);
	if ((ret = kd3_record_decode(frame, f.body.p, f.body.len, &rec)) != KD3_OK)
		return broken(rx, ret);
	if (rx->closed)
		return KD3_E_CLOSED; /* nothing may follow the peer's CLOSE */
	/* Strict order: exactly the next seq, and never past the per-key limit. */
	if (rec.seq != rx->seq || rec.seq >= KD3_RECORDS_PER_KEY_MAX)
		return broken(rx, KD3_E_RECORD_SEQ);
	record_nonce(rx, rec.seq, nonce);
	uint8_t *pt = frame + KD3_HDR_LEN + KD3_SEQ_LEN;
	ret =
	    kd3_aead_open(&rx->aead, nonce, rec.ad.p, rec.ad.len, rec.sealed.p, rec.sealed.len, pt);
	kd3_wipe(nonce, sizeof(nonce));
	if (ret != KD3_OK)
		return broken(rx, ret);

	size_t pt_len = rec.sealed.len - KD3_TAG_LEN;
	*inner = pt[0];
	payload->p = pt + 1;
	payload->len = pt_len - 1;
	rx->seq++;
	rx->key_records++;
	rx->records++;
	rx->key_bytes += payload->len;
	rx->bytes += payload->len;

	switch (*inner) {
	case KD3_R_FINISHED:
	case KD3_R_DATA:
		return KD3_OK;
	case KD3_R_KEY_UPDATE:
		if (payload->len != 0)
			return broken(rx, KD3_E_MALFORMED);
		ret = direction_update(ch, rx);
		return ret == KD3_OK ? KD3_OK : broken(rx, ret);
	case KD3_R_CLOSE:
		rx->closed = 1;
		return KD3_OK;
	default:
		return broken(rx, KD3_E_RECORD_TYPE);
	}
}
