/* KDC request handler: every answer it can give, and the lookaside cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "harness.h"
#include "msg.h"

struct fixture {
	h_world w;
	h_frame m2; /* an honest M2 from a recorded run */
	uint8_t out[KD3_FRAME_MAX];
	size_t out_len;
	kd3_kdc_result res;
};

static int setup_fs(void **state, uint8_t fs)
{
	struct fixture *f = calloc(1, sizeof(*f));
	h_inputs in;
	h_inputs_default(&in, KD3_SUITE_CHACHAPOLY, fs);
	assert_int_equal(h_world_init(&f->w, &in), KD3_OK);
	assert_int_equal(h_handshake(&f->w), KD3_OK);
	f->m2 = f->w.frames[1];
	assert_string_equal(f->m2.dir, "R->KDC");
	/* A fresh KDC with fresh SK bytes and an empty cache for each test. */
	kd3_kdc_config cfg = f->w.kdc.cfg;
	kd3_lookup_fn lookup = f->w.kdc.lookup;
	kd3_kdc_free(&f->w.kdc);
	kd3_kdc_init(&f->w.kdc, &f->w.crypto, lookup, &f->w, &cfg);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_fs(state, 0);
}

static int setup_with_fs(void **state)
{
	return setup_fs(state, 1);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	h_world_free(&f->w);
	free(f);
	return 0;
}

static int handle(struct fixture *f, const uint8_t *in, size_t len, uint64_t now_ms)
{
	return kd3_kdc_handle(&f->w.kdc, in, len, now_ms, f->out, sizeof(f->out), &f->out_len,
	                      &f->res);
}

/* The ERROR the KDC sent: its code, and that the result says the same. */
static uint16_t error_code(struct fixture *f)
{
	kd3_frame fr;
	kd3_error_msg e;
	assert_int_equal(kd3_frame_decode(f->out, f->out_len, &fr), KD3_OK);
	assert_int_equal(fr.type, KD3_T_ERROR);
	assert_int_equal(kd3_error_decode(fr.body.p, fr.body.len, &e), KD3_OK);
	assert_int_equal(e.code, f->res.err);
	assert_true(f->res.reply);
	return e.code;
}

static void test_honest_m2_gets_m3(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_OK);
	assert_int_equal(f->out[1], KD3_T_M3);
	assert_memory_equal(f->out, f->w.frames[2].bytes, f->w.frames[2].len);
	assert_int_equal(f->res.kvno_i, 1);
	assert_int_equal(f->res.kvno_r, 2);
	assert_int_equal(f->res.from_cache, 0);
}

/* An identical M2 inside the window comes from the cache. */
static void test_retransmit_hits_cache(void **state)
{
	struct fixture *f = *state;
	uint8_t first[KD3_FRAME_MAX];
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 1000), KD3_OK);
	assert_int_equal(f->res.from_cache, 0);
	memcpy(first, f->out, f->out_len);
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 2500), KD3_OK);
	assert_int_equal(f->res.from_cache, 1);
	assert_memory_equal(first, f->out, f->out_len);
}

/* After the window (or at another worker, or another KDC of the realm) the same M2
 * is processed afresh and still gets the byte-identical M3: SK is a function of TH,
 * so no blob key ever seals two different keys. */
static void test_reprocessed_m2_same_m3(void **state)
{
	struct fixture *f = *state;
	uint8_t first[KD3_FRAME_MAX];
	size_t first_len;
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 1000), KD3_OK);
	memcpy(first, f->out, f->out_len);
	first_len = f->out_len;
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 1000 + 2001), KD3_OK);
	assert_int_equal(f->res.from_cache, 0);
	assert_int_equal(f->out_len, first_len);
	assert_memory_equal(first, f->out, first_len);
	/* Another realm secret: another SK (and so the secret really is used). */
	f->w.kdc.cfg.realm_secret[0] ^= 1;
	assert_int_equal(
	    kd3_hmac_key_init(&f->w.kdc.realm_key, f->w.kdc.cfg.realm_secret, KD3_KEY_LEN), KD3_OK);
	memset(f->w.kdc.cache, 0, sizeof(f->w.kdc.cache));
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 5000), KD3_OK);
	assert_memory_not_equal(first + KD3_HDR_LEN + 36, f->out + KD3_HDR_LEN + 36, 48);
}

/* Same TH but another auth_r is not the same request: it is verified (and fails). */
static void test_cache_needs_same_auth_r(void **state)
{
	struct fixture *f = *state;
	h_frame bad = f->m2;
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_OK);
	bad.bytes[bad.len - 1] ^= 1;
	assert_int_equal(handle(f, bad.bytes, bad.len, 1), KD3_E_BAD_AUTH);
	assert_int_equal(f->res.from_cache, 0);
	assert_int_equal(error_code(f), KD3_E_BAD_AUTH);
}

static void test_garbage_gets_no_reply(void **state)
{
	struct fixture *f = *state;
	static const uint8_t junk[] = {0x47, 0x45, 0x54, 0x20, 0x2f};
	assert_int_not_equal(handle(f, junk, sizeof(junk), 0), KD3_OK);
	assert_int_equal(f->res.reply, 0);
	assert_int_equal(f->out_len, 0);
	assert_int_not_equal(handle(f, junk, 2, 0), KD3_OK);
	assert_int_equal(f->res.reply, 0);
	/* A header whose length disagrees with the datagram is not answered either. */
	assert_int_not_equal(handle(f, f->m2.bytes, f->m2.len - 1, 0), KD3_OK);
	assert_int_equal(f->res.reply, 0);
}

/* No ERROR, M3 or other frame is ever answered: two KDCs (or a KDC and a spoofed
 * victim) cannot be made to answer each other forever. */
static void test_only_m2_is_answered(void **state)
{
	struct fixture *f = *state;
	static const uint8_t error_frame[] = {0x01, 0x7f, 0x00, 0x03, 0x00, 0x01, 0x00};
	assert_int_not_equal(handle(f, error_frame, sizeof(error_frame), 0), KD3_OK);
	assert_int_equal(f->res.reply, 0);
	const h_frame *m1 = &f->w.frames[0], *m3 = &f->w.frames[2];
	assert_int_not_equal(handle(f, m1->bytes, m1->len, 0), KD3_OK);
	assert_int_equal(f->res.reply, 0);
	assert_int_not_equal(handle(f, m3->bytes, m3->len, 0), KD3_OK);
	assert_int_equal(f->res.reply, 0);
}

/* A short M2 is not answered at all, and no answer is longer than its request. */
static void test_no_amplification(void **state)
{
	struct fixture *f = *state;
	uint8_t tiny[KD3_M2_FRAME_MIN] = {0x01, KD3_T_M2};
	kd3_put_u16(tiny + 2, KD3_M2_FRAME_MIN - 1 - KD3_HDR_LEN);
	assert_int_not_equal(handle(f, tiny, KD3_M2_FRAME_MIN - 1, 0), KD3_OK);
	assert_int_equal(f->res.reply, 0);
	kd3_put_u16(tiny + 2, KD3_M2_FRAME_MIN - KD3_HDR_LEN);
	tiny[0] = 9; /* another version: UNSUPPORTED, within the request's size */
	assert_int_equal(handle(f, tiny, KD3_M2_FRAME_MIN, 0), KD3_E_UNSUPPORTED);
	assert_true(f->res.reply);
	assert_true(f->out_len <= KD3_M2_FRAME_MIN);
	tiny[0] = 1; /* zeros: malformed */
	assert_int_equal(handle(f, tiny, KD3_M2_FRAME_MIN, 0), KD3_E_MALFORMED);
	assert_true(f->out_len <= KD3_M2_FRAME_MIN);
}

static void test_wrong_version_unsupported(void **state)
{
	struct fixture *f = *state;
	h_frame m = f->m2;
	m.bytes[0] = 2;
	assert_int_equal(handle(f, m.bytes, m.len, 0), KD3_E_UNSUPPORTED);
	assert_int_equal(error_code(f), KD3_E_UNSUPPORTED);
}

static void test_truncated_body_malformed(void **state)
{
	struct fixture *f = *state;
	h_frame m = f->m2;
	/* Shorten the body by one byte and fix the header: a well-framed, bad M2. */
	m.len -= 1;
	kd3_put_u16(m.bytes + 2, (uint16_t)(m.len - KD3_HDR_LEN));
	assert_int_equal(handle(f, m.bytes, m.len, 0), KD3_E_MALFORMED);
	assert_int_equal(error_code(f), KD3_E_MALFORMED);
}

/* Offsets inside the honest M2 frame (alice/bob, no FS). */
#define M2_M1_AT     (KD3_HDR_LEN + 2)
#define M1_SUITE_AT  (M2_M1_AT + 0)
#define M1_FLAGS_AT  (M2_M1_AT + 1)
#define M1_ID_I_AT   (M2_M1_AT + 3)              /* "alice" */
#define M1_KVNO_I_AT (M2_M1_AT + 2 + 6 + 4 + 32) /* after suite, flags, ids, n_i */

static void test_suite_not_allowed(void **state)
{
	struct fixture *f = *state;
	f->w.kdc.cfg.suites_allowed = 1u << KD3_SUITE_AES256GCM;
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_E_UNSUPPORTED);
	assert_int_equal(error_code(f), KD3_E_UNSUPPORTED);
}

static void test_unknown_suite_unsupported(void **state)
{
	struct fixture *f = *state;
	h_frame m = f->m2;
	m.bytes[M1_SUITE_AT] = 0x7e;
	assert_int_equal(handle(f, m.bytes, m.len, 0), KD3_E_UNSUPPORTED);
	assert_int_equal(error_code(f), KD3_E_UNSUPPORTED);
}

static void test_unknown_flag_unsupported(void **state)
{
	struct fixture *f = *state;
	h_frame m = f->m2;
	m.bytes[M1_FLAGS_AT] |= 0x80;
	assert_int_equal(handle(f, m.bytes, m.len, 0), KD3_E_UNSUPPORTED);
	assert_int_equal(error_code(f), KD3_E_UNSUPPORTED);
}

/* A suite "downgrade" that the KDC allows still fails: the suite is under auth_i. */
static void test_suite_downgrade_bad_auth(void **state)
{
	struct fixture *f = *state;
	h_frame m = f->m2;
	m.bytes[M1_SUITE_AT] = KD3_SUITE_AES256GCM;
	assert_int_equal(handle(f, m.bytes, m.len, 0), KD3_E_BAD_AUTH);
	assert_int_equal(error_code(f), KD3_E_BAD_AUTH);
	assert_string_equal(f->res.detail, "initiator authenticator did not verify");
}

static void test_require_fs_denied(void **state)
{
	struct fixture *f = *state;
	f->w.kdc.cfg.require_fs = 1;
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_E_POLICY_DENIED);
	assert_int_equal(error_code(f), KD3_E_POLICY_DENIED);
}

static void test_unknown_initiator(void **state)
{
	struct fixture *f = *state;
	h_frame m = f->m2;
	memcpy(m.bytes + M1_ID_I_AT, "carol", 5);
	assert_int_equal(handle(f, m.bytes, m.len, 0), KD3_E_UNKNOWN_PRINCIPAL);
	assert_int_equal(error_code(f), KD3_E_UNKNOWN_PRINCIPAL);
	assert_string_equal(f->res.detail, "unknown initiator principal");
}

static void test_unknown_responder(void **state)
{
	struct fixture *f = *state;
	snprintf(f->w.principal_names[1], sizeof(f->w.principal_names[1]), "bab");
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_E_UNKNOWN_PRINCIPAL);
	assert_string_equal(f->res.detail, "unknown responder principal");
}

static void test_disabled_principal(void **state)
{
	struct fixture *f = *state;
	f->w.principals[0].enabled = 0;
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_E_POLICY_DENIED);
	assert_int_equal(error_code(f), KD3_E_POLICY_DENIED);
}

static void test_kvno_unknown(void **state)
{
	struct fixture *f = *state;
	h_frame m = f->m2;
	m.bytes[M1_KVNO_I_AT + 3] = 9;
	assert_int_equal(handle(f, m.bytes, m.len, 0), KD3_E_KVNO_UNKNOWN);
	assert_int_equal(error_code(f), KD3_E_KVNO_UNKNOWN);
	f->w.principals[1].keys[0].kvno = 7;
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_E_KVNO_UNKNOWN);
	assert_string_equal(f->res.detail, "responder key version is not live");
}

static void test_wrong_keys_bad_auth(void **state)
{
	struct fixture *f = *state;
	f->w.principals[0].keys[0].sub.auth[0] ^= 1;
	assert_int_equal(kd3_subkeys_rekey(&f->w.principals[0].keys[0].sub), KD3_OK);
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_E_BAD_AUTH);
	assert_string_equal(f->res.detail, "initiator authenticator did not verify");
	f->w.principals[0].keys[0].sub.auth[0] ^= 1;
	assert_int_equal(kd3_subkeys_rekey(&f->w.principals[0].keys[0].sub), KD3_OK);
	f->w.principals[1].keys[0].sub.auth[31] ^= 0x80;
	assert_int_equal(kd3_subkeys_rekey(&f->w.principals[1].keys[0].sub), KD3_OK);
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_E_BAD_AUTH);
	assert_string_equal(f->res.detail, "responder authenticator did not verify");
}

static void test_same_principal(void **state)
{
	struct fixture *f = *state;
	h_frame m = f->m2;
	/* Rename bob to "alice" would change lengths; name the initiator "bob??": use a
	 * principal table where both names are equal instead. */
	memcpy(m.bytes + M1_ID_I_AT, "bob", 3);
	m.bytes[M1_ID_I_AT - 1] = 3; /* id_i length */
	/* Now the M1 is 2 bytes shorter than its blob16 says: rebuild lengths. */
	memmove(m.bytes + M1_ID_I_AT + 3, m.bytes + M1_ID_I_AT + 5, m.len - (M1_ID_I_AT + 5));
	m.len -= 2;
	kd3_put_u16(m.bytes + 2, (uint16_t)(m.len - KD3_HDR_LEN));
	kd3_put_u16(m.bytes + KD3_HDR_LEN, (uint16_t)(kd3_get_u16(m.bytes + KD3_HDR_LEN) - 2));
	assert_int_equal(handle(f, m.bytes, m.len, 0), KD3_E_MALFORMED);
	assert_string_equal(f->res.detail, "initiator and responder are the same principal");
}

static int deny_all(void *ctx, const kd3_principal *i, const kd3_principal *r, uint32_t *lifetime)
{
	(void)ctx;
	(void)i;
	(void)r;
	(void)lifetime;
	return KD3_E_POLICY_DENIED;
}

static int short_lifetime(void *ctx, const kd3_principal *i, const kd3_principal *r,
                          uint32_t *lifetime)
{
	(void)ctx;
	(void)i;
	(void)r;
	*lifetime = 60;
	return KD3_OK;
}

static void test_policy(void **state)
{
	struct fixture *f = *state;
	kd3_m3 m3;
	f->w.kdc.policy = deny_all;
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_E_POLICY_DENIED);
	assert_int_equal(error_code(f), KD3_E_POLICY_DENIED);
	f->w.kdc.policy = short_lifetime;
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_OK);
	assert_int_equal(kd3_m3_decode(f->out + KD3_HDR_LEN, f->out_len - KD3_HDR_LEN, &m3),
	                 KD3_OK);
	assert_int_equal(m3.lifetime, 60);
}

/* Every single-bit flip of an honest M2 is refused, and never answered with a key. */
static void test_every_bit_flip_refused(void **state)
{
	struct fixture *f = *state;
	for (size_t i = KD3_HDR_LEN; i < f->m2.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			h_frame m = f->m2;
			m.bytes[i] ^= (uint8_t)(1u << bit);
			f->w.kdc.cache[0].used = 0;
			memset(f->w.kdc.cache, 0, sizeof(f->w.kdc.cache));
			int ret = handle(f, m.bytes, m.len, 0);
			assert_int_not_equal(ret, KD3_OK);
			assert_true(f->out_len == 0 || f->out[1] == KD3_T_ERROR);
		}
	}
}

static void test_fs_m2(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_OK);
	assert_memory_equal(f->out, f->w.frames[2].bytes, f->w.frames[2].len);
	f->w.kdc.cfg.require_fs = 1;
	memset(f->w.kdc.cache, 0, sizeof(f->w.kdc.cache));
	assert_int_equal(handle(f, f->m2.bytes, f->m2.len, 0), KD3_OK);
}

/* A failure after every check passed is INTERNAL, and no key goes out. */
static void test_internal_failure(void **state)
{
	struct fixture *f = *state;
	/* Room for an ERROR but not for an M3. */
	assert_int_equal(
	    kd3_kdc_handle(&f->w.kdc, f->m2.bytes, f->m2.len, 0, f->out, 100, &f->out_len, &f->res),
	    KD3_E_INTERNAL);
	assert_int_equal(error_code(f), KD3_E_INTERNAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_honest_m2_gets_m3, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retransmit_hits_cache, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reprocessed_m2_same_m3, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_needs_same_auth_r, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage_gets_no_reply, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_only_m2_is_answered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_amplification, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_version_unsupported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated_body_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_suite_not_allowed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_suite_unsupported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_flag_unsupported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_suite_downgrade_bad_auth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_require_fs_denied, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_initiator, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_responder, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disabled_principal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kvno_unknown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_keys_bad_auth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_same_principal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_policy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_bit_flip_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fs_m2, setup_with_fs, teardown),
	    cmocka_unit_test_setup_teardown(test_internal_failure, setup, teardown),
	};
	return cmocka_run_group_tests_name("kdc_core", tests, NULL, NULL);
}
