/* kdc keys at rest: the master key context, sealing and opening one key. */
#include "seal.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "hex.h"
#include "msg.h"

static const char label_check[] = "kd3/1 kdc master check";
static const char label_seal[] = "kd3/1 kdc seal key";
static const char label_dump[] = "kd3/1 kdc dump mac key";
static const char label_key[] = "kd3/1 kdc sealed key";
static const char label_realm[] = "kd3/1 kdc sealed realm secret";

static int check_with(kd3_crypto *c, const uint8_t master[KD3_KEY_LEN], uint8_t check[KD3_HASH_LEN])
{
	kd3_iov part = {label_check, sizeof(label_check) - 1};
	return kd3_hmac(c, master, KD3_KEY_LEN, &part, 1, check);
}

int kdc_master_check(const uint8_t master[KD3_KEY_LEN], uint8_t check[KD3_HASH_LEN])
{
	kd3_crypto c;
	int ret = kd3_crypto_init(&c, "kd3 kdc master check", 0);
	if (ret == KD3_OK)
		ret = check_with(&c, master, check);
	kd3_crypto_free(&c);
	return ret;
}

void kdc_master_id_text(const uint8_t check[KD3_HASH_LEN], char out[KDC_MASTER_ID_TEXT])
{
	kd3_hex_encode(check, KDC_MASTER_ID_LEN, out);
}

static int expand(kd3_crypto *c, const uint8_t master[KD3_KEY_LEN], const char *label,
                  uint8_t out[KD3_KEY_LEN])
{
	kd3_iov info = {label, strlen(label)};
	return kd3_hkdf_expand(c, master, &info, 1, out, KD3_KEY_LEN);
}

int kdc_master_init(kdc_master *m, const uint8_t master[KD3_KEY_LEN], int can_seal)
{
	memset(m, 0, sizeof(*m));
	int ret = kd3_crypto_init(&m->c, "kd3 kdc master", can_seal);
	if (ret != KD3_OK)
		return ret;
	ret = check_with(&m->c, master, m->check);
	if (ret == KD3_OK)
		ret = expand(&m->c, master, label_seal, m->seal_key);
	if (ret == KD3_OK)
		ret = expand(&m->c, master, label_dump, m->dump_key);
	if (ret == KD3_OK)
		ret = kd3_aead_setkey(kd3_crypto_aead(&m->c, KD3_SUITE_CHACHAPOLY), m->seal_key);
	if (ret != KD3_OK) {
		kdc_master_free(m);
		return ret;
	}
	kdc_master_id_text(m->check, m->id);
	m->ready = 1;
	return KD3_OK;
}

int kdc_master_opener(kdc_master *dst, const kdc_master *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src->ready)
		return KD3_E_CRYPTO;
	int ret = kd3_crypto_init(&dst->c, "kd3 kdc key opener", 0);
	if (ret == KD3_OK)
		ret =
		    kd3_aead_setkey(kd3_crypto_aead(&dst->c, KD3_SUITE_CHACHAPOLY), src->seal_key);
	if (ret != KD3_OK) {
		kdc_master_free(dst);
		return ret;
	}
	memcpy(dst->check, src->check, sizeof(dst->check));
	memcpy(dst->id, src->id, sizeof(dst->id));
	dst->ready = 1;
	return KD3_OK;
}

void kdc_master_free(kdc_master *m)
{
	if (m->ready || m->c.initialized) /* kd3_crypto_free wipes the key schedules */
		kd3_crypto_free(&m->c);
	kd3_wipe(m, sizeof(*m));
}

/* The associated data of one blob: label || version || (kvno || name). */
static size_t seal_ad(const char *name, uint32_t kvno, uint8_t *ad)
{
	const char *label = name ? label_key : label_realm;
	size_t n = strlen(label);
	memcpy(ad, label, n);
	ad[n++] = KDC_SEAL_VERSION;
	if (!name)
		return n;
	ad[n++] = (uint8_t)(kvno >> 24);
	ad[n++] = (uint8_t)(kvno >> 16);
	ad[n++] = (uint8_t)(kvno >> 8);
	ad[n++] = (uint8_t)kvno;
	size_t name_len = strnlen(name, KD3_NAME_MAX);
	memcpy(ad + n, name, name_len);
	return n + name_len;
}

#define SEAL_AD_MAX (sizeof(label_realm) + 1 + 4 + KD3_NAME_MAX)

int kdc_master_seal(kdc_master *m, const char *name, uint32_t kvno, const uint8_t key[KD3_KEY_LEN],
                    uint8_t out[KDC_SEALED_LEN])
{
	uint8_t ad[SEAL_AD_MAX];
	if (!m->ready)
		return KD3_E_CRYPTO;
	size_t ad_len = seal_ad(name, kvno, ad);
	out[0] = KDC_SEAL_VERSION;
	/* A random 96-bit nonce per blob: far below the birthday bound for any realm. */
	int ret = kd3_crypto_rng(&m->c, out + 1, KD3_IV_LEN);
	if (ret == KD3_OK)
		ret = kd3_aead_seal(kd3_crypto_aead(&m->c, KD3_SUITE_CHACHAPOLY), out + 1, ad,
		                    ad_len, key, KD3_KEY_LEN, out + 1 + KD3_IV_LEN);
	if (ret != KD3_OK)
		kd3_wipe(out, KDC_SEALED_LEN);
	return ret;
}

int kdc_master_open(kdc_master *m, const char *name, uint32_t kvno,
                    const uint8_t in[KDC_SEALED_LEN], uint8_t key[KD3_KEY_LEN])
{
	uint8_t ad[SEAL_AD_MAX];
	if (!m->ready || in[0] != KDC_SEAL_VERSION) {
		kd3_wipe(key, KD3_KEY_LEN);
		return KD3_E_BLOB_AUTH;
	}
	size_t ad_len = seal_ad(name, kvno, ad);
	int ret = kd3_aead_open(kd3_crypto_aead(&m->c, KD3_SUITE_CHACHAPOLY), in + 1, ad, ad_len,
	                        in + 1 + KD3_IV_LEN, KD3_KEY_LEN + KD3_TAG_LEN, key);
	return ret == KD3_OK ? KD3_OK : KD3_E_BLOB_AUTH;
}

int kdc_master_open_failed(const kdc_master *m, const char *path, const char *name, uint32_t kvno,
                           char *err, size_t err_len)
{
	snprintf(err, err_len,
	         "%s: the key %s:%u does not open under master key %s (damaged, or moved from "
	         "another row)",
	         path, name, (unsigned)kvno, m->id);
	return KD3_E_BLOB_AUTH;
}

int kdc_master_dump_mac(kdc_master *m, const uint8_t digest[KD3_HASH_LEN], uint8_t mac[KD3_MAC_LEN])
{
	kd3_iov part = {digest, KD3_HASH_LEN};
	if (!m->ready)
		return KD3_E_CRYPTO;
	return kd3_hmac(&m->c, m->dump_key, KD3_KEY_LEN, &part, 1, mac);
}
