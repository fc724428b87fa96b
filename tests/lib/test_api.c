/* libkd3's public API, with nothing but <kd3/kd3.h> and the library (this program is
 * built from the public header alone, and once more against the installed copy by
 * tests/lib/test_installed.py).
 *
 *   - the documented test vectors (docs/PROTOCOL.md, "Test vectors") come out byte for
 *     byte when two sessions and the document's KDC answer run in memory, every suite
 *     and mode, fed whole or a byte at a time;
 *   - each misuse gets its own error (KD3_E_ARG, KD3_E_STATE, KD3_E_NO_SPACE,
 *     KD3_E_TOO_BIG, KD3_E_AGAIN), never a crash;
 *   - a tampered record fails the session; key files are checked;
 *   - sessions on several threads at once do not disturb each other (no global state).
 *
 * usage: test_api PROTOCOL.md */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <kd3/kd3.h>

static const char *protocol_md;

/* ---- the vectors, read from the document ---------------------------------------- */

#define FIELD_MAX 4096

typedef struct vec {
	uint8_t k_i[32], k_r[32], n_i[32], n_r[32], e_i[32], e_r[32];
	uint8_t m1[FIELD_MAX], m2[FIELD_MAX], m3[FIELD_MAX], m4[FIELD_MAX], fin[FIELD_MAX];
	uint8_t data_ir[FIELD_MAX], data_ri[FIELD_MAX];
	size_t m1_len, m2_len, m3_len, m4_len, fin_len, data_ir_len, data_ri_len;
} vec;

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	while (s[0] && s[1] && n < cap) {
		unsigned v;
		if (s[0] == ' ' || s[0] == '\n') {
			s++;
			continue;
		}
		if (sscanf(s, "%2x", &v) != 1)
			break;
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

/* "NAME = hex" in the inputs block. */
static void input(const char *doc, const char *name, uint8_t out[32])
{
	const char *p = strstr(doc, name);
	assert_non_null(p);
	p = strchr(p, '=');
	assert_int_equal(unhex(p + 2, out, 32), 32);
}

/* "TITLE (N bytes)" then indented hex lines, inside section. */
static size_t block(const char *section, const char *title, uint8_t *out)
{
	const char *p = strstr(section, title);
	assert_non_null(p);
	size_t want = strtoul(strchr(p, '(') + 1, NULL, 10);
	p = strchr(p, '\n') + 1;
	char hex[2 * FIELD_MAX + 1] = "";
	size_t h = 0;
	while (strncmp(p, "    ", 4) == 0) {
		const char *end = strchr(p, '\n');
		for (const char *q = p + 4; q < end && h < sizeof(hex) - 1; q++)
			hex[h++] = *q;
		p = end + 1;
	}
	hex[h] = '\0';
	assert_int_equal(unhex(hex, out, FIELD_MAX), want);
	return want;
}

static void load_vec(vec *v, int suite, int fs)
{
	char *doc = slurp(protocol_md);
	char head[128];
	snprintf(head, sizeof(head), "### Suite 0x%02x (%s), forward secrecy %s", suite,
	         suite == 1 ? "aes-256-gcm" : "chacha20-poly1305", fs ? "on" : "off");
	const char *sec = strstr(doc, head);
	assert_non_null(sec);
	input(doc, "K_I        =", v->k_i);
	input(doc, "K_R        =", v->k_r);
	input(doc, "n_i        =", v->n_i);
	input(doc, "n_r        =", v->n_r);
	input(doc, "e_i (priv) =", v->e_i);
	input(doc, "e_r (priv) =", v->e_r);
	v->m1_len = block(sec, "M1 I->R", v->m1);
	v->m2_len = block(sec, "M2 R->KDC", v->m2);
	v->m3_len = block(sec, "M3 KDC->R", v->m3);
	v->m4_len = block(sec, "M4 R->I", v->m4);
	v->fin_len = block(sec, "FINISHED I->R", v->fin);
	v->data_ir_len = block(sec, "DATA I->R", v->data_ir);
	v->data_ri_len = block(sec, "DATA R->I", v->data_ri);
	free(doc);
}

/* ---- the parties ------------------------------------------------------------------ */

typedef struct fixed_rng {
	uint8_t bytes[64];
	size_t len, off;
} fixed_rng;

static int fixed_rng_fn(void *ctx, uint8_t *out, size_t len)
{
	fixed_rng *r = ctx;
	if (r->len - r->off < len)
		return KD3_E_RNG;
	memcpy(out, r->bytes + r->off, len);
	r->off += len;
	return KD3_OK;
}

typedef struct pair {
	vec v;
	kd3_key *ka, *kb;
	kd3_session *i, *r;
	fixed_rng ri, rr;
} pair;

static void pair_new(pair *p, int suite, int fs)
{
	memset(p, 0, sizeof(*p));
	load_vec(&p->v, suite, fs);
	assert_int_equal(kd3_key_new(&p->ka, "alice", 1, p->v.k_i), KD3_OK);
	assert_int_equal(kd3_key_new(&p->kb, "bob", 2, p->v.k_r), KD3_OK);
	assert_int_equal(kd3_session_new_initiator(&p->i, p->ka, "bob"), KD3_OK);
	assert_int_equal(kd3_session_new_responder(&p->r, p->kb), KD3_OK);
	memcpy(p->ri.bytes, p->v.n_i, 32);
	memcpy(p->ri.bytes + 32, p->v.e_i, 32);
	memcpy(p->rr.bytes, p->v.n_r, 32);
	memcpy(p->rr.bytes + 32, p->v.e_r, 32);
	p->ri.len = p->rr.len = fs ? 64 : 32;
	assert_int_equal(kd3_session_set_rng(p->i, fixed_rng_fn, &p->ri), KD3_OK);
	assert_int_equal(kd3_session_set_rng(p->r, fixed_rng_fn, &p->rr), KD3_OK);
	assert_int_equal(kd3_session_set_suite(p->i, (kd3_suite)suite), KD3_OK);
	assert_int_equal(kd3_session_set_forward_secret(p->i, fs), KD3_OK);
	assert_int_equal(kd3_session_set_forward_secret(p->r, fs), KD3_OK);
}

static void pair_free(pair *p)
{
	kd3_session_free(p->i);
	kd3_session_free(p->r);
	kd3_key_free(p->ka);
	kd3_key_free(p->kb);
}

/* All of s's output, which must be exactly want. */
static void expect_output(kd3_session *s, const uint8_t *want, size_t want_len)
{
	uint8_t out[40000];
	size_t len = 0;
	assert_int_equal(kd3_session_output_pending(s), want_len);
	assert_int_equal(kd3_session_output(s, out, sizeof(out), &len), KD3_OK);
	assert_int_equal(len, want_len);
	assert_memory_equal(out, want, want_len);
	assert_int_equal(kd3_session_output_pending(s), 0);
}

/* bytes into s, whole or one at a time. */
static int feed(kd3_session *s, const uint8_t *in, size_t len, int bytewise)
{
	size_t step = bytewise ? 1 : len;
	for (size_t off = 0; off < len; off += step) {
		size_t used = 0;
		int ret = kd3_session_receive(s, in + off, step, &used, 1000);
		if (ret != KD3_OK)
			return ret;
		assert_int_equal(used, step);
	}
	return KD3_OK;
}

static void expect_message(kd3_session *s, const char *text)
{
	uint8_t buf[64];
	size_t len = 0;
	assert_int_equal(kd3_session_read(s, buf, sizeof(buf), &len), KD3_OK);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(buf, text, len);
	assert_int_equal(kd3_session_read(s, buf, sizeof(buf), &len), KD3_E_AGAIN);
}

/* The whole exchange of one vector section: every byte as documented. */
static void run_vectors(int suite, int fs, int bytewise)
{
	pair p;
	uint8_t req[4096];
	size_t len = 0;

	pair_new(&p, suite, fs);
	assert_int_equal(kd3_session_start(p.i, 1000), KD3_OK);
	expect_output(p.i, p.v.m1, p.v.m1_len);
	assert_int_equal(kd3_session_kdc_request(p.r, req, sizeof(req), &len), KD3_E_AGAIN);
	assert_int_equal(feed(p.r, p.v.m1, p.v.m1_len, bytewise), KD3_OK);
	assert_int_equal(kd3_session_kdc_request(p.r, req, sizeof(req), &len), KD3_OK);
	assert_int_equal(len, p.v.m2_len);
	assert_memory_equal(req, p.v.m2, len);
	assert_int_equal(kd3_session_kdc_reply(p.r, p.v.m3, p.v.m3_len, 1000), KD3_OK);
	expect_output(p.r, p.v.m4, p.v.m4_len);
	assert_int_equal(kd3_session_state(p.r), KD3_STATE_HANDSHAKE);

	assert_int_equal(feed(p.i, p.v.m4, p.v.m4_len, bytewise), KD3_OK);
	assert_int_equal(kd3_session_state(p.i), KD3_STATE_ESTABLISHED);
	assert_string_equal(kd3_session_peer(p.i), "bob");
	assert_int_equal(kd3_session_suite(p.i), suite);
	assert_int_equal(kd3_session_forward_secret(p.i), fs);
	expect_output(p.i, p.v.fin, p.v.fin_len);
	assert_int_equal(feed(p.r, p.v.fin, p.v.fin_len, bytewise), KD3_OK);
	assert_int_equal(kd3_session_state(p.r), KD3_STATE_ESTABLISHED);
	assert_string_equal(kd3_session_peer(p.r), "alice");

	assert_int_equal(kd3_session_write(p.i, (const uint8_t *)"hello bob", 9, 1000), KD3_OK);
	expect_output(p.i, p.v.data_ir, p.v.data_ir_len);
	assert_int_equal(feed(p.r, p.v.data_ir, p.v.data_ir_len, bytewise), KD3_OK);
	expect_message(p.r, "hello bob");
	assert_int_equal(kd3_session_write(p.r, (const uint8_t *)"hello alice", 11, 1000), KD3_OK);
	expect_output(p.r, p.v.data_ri, p.v.data_ri_len);
	assert_int_equal(feed(p.i, p.v.data_ri, p.v.data_ri_len, bytewise), KD3_OK);
	expect_message(p.i, "hello alice");

	/* Close: I's CLOSE, R reads KD3_E_CLOSED, R's CLOSE, both CLOSED. */
	uint8_t wire[4096], buf[16];
	assert_int_equal(kd3_session_close(p.i), KD3_OK);
	assert_int_equal(kd3_session_output(p.i, wire, sizeof(wire), &len), KD3_OK);
	assert_int_equal(feed(p.r, wire, len, bytewise), KD3_OK);
	assert_int_equal(kd3_session_read(p.r, buf, sizeof(buf), &len), KD3_E_CLOSED);
	assert_int_equal(kd3_session_close(p.r), KD3_OK);
	assert_int_equal(kd3_session_state(p.r), KD3_STATE_CLOSED);
	assert_int_equal(kd3_session_output(p.r, wire, sizeof(wire), &len), KD3_OK);
	assert_int_equal(feed(p.i, wire, len, bytewise), KD3_OK);
	assert_int_equal(kd3_session_state(p.i), KD3_STATE_CLOSED);
	assert_int_equal(kd3_session_eof(p.i), KD3_OK);
	assert_int_equal(kd3_session_eof(p.r), KD3_OK);
	assert_int_equal(kd3_session_error(p.i), KD3_OK);
	pair_free(&p);
}

static void test_vectors(void **state)
{
	(void)state;
	for (int suite = 1; suite <= 2; suite++)
		for (int fs = 0; fs <= 1; fs++)
			for (int bytewise = 0; bytewise <= 1; bytewise++)
				run_vectors(suite, fs, bytewise);
}

/* Two sessions established from the vectors, output taken. */
static void establish(pair *p)
{
	assert_int_equal(kd3_session_start(p->i, 1000), KD3_OK);
	expect_output(p->i, p->v.m1, p->v.m1_len);
	assert_int_equal(feed(p->r, p->v.m1, p->v.m1_len, 0), KD3_OK);
	assert_int_equal(kd3_session_kdc_reply(p->r, p->v.m3, p->v.m3_len, 1000), KD3_OK);
	expect_output(p->r, p->v.m4, p->v.m4_len);
	assert_int_equal(feed(p->i, p->v.m4, p->v.m4_len, 0), KD3_OK);
	expect_output(p->i, p->v.fin, p->v.fin_len);
	assert_int_equal(feed(p->r, p->v.fin, p->v.fin_len, 0), KD3_OK);
}

static void established(pair *p)
{
	pair_new(p, 2, 0);
	establish(p);
}

/* ---- misuse ----------------------------------------------------------------------- */

static void test_arguments(void **state)
{
	static const uint8_t secret[32] = {1};
	kd3_key *k = NULL;
	kd3_session *s = NULL;
	size_t len = 0;
	uint8_t buf[8];

	(void)state;
	assert_int_equal(kd3_key_new(NULL, "a", 1, secret), KD3_E_ARG);
	assert_int_equal(kd3_key_new(&k, NULL, 1, secret), KD3_E_ARG);
	assert_int_equal(kd3_key_new(&k, "", 1, secret), KD3_E_ARG);
	assert_int_equal(kd3_key_new(&k, "a", 0, secret), KD3_E_ARG);
	assert_int_equal(kd3_key_new(&k, "a", 1, NULL), KD3_E_ARG);
	assert_null(k);
	assert_int_equal(kd3_key_new(&k, "alice", 1, secret), KD3_OK);
	assert_int_equal(kd3_key_add(k, 1, secret), KD3_E_EXISTS);
	for (uint32_t kvno = 2; kvno <= 8; kvno++)
		assert_int_equal(kd3_key_add(k, kvno, secret), KD3_OK);
	assert_int_equal(kd3_key_add(k, 9, secret), KD3_E_NO_SPACE);
	assert_int_equal(kd3_key_add(NULL, 9, secret), KD3_E_ARG);
	assert_string_equal(kd3_key_principal(k), "alice");
	assert_null(kd3_key_principal(NULL));

	assert_int_equal(kd3_session_new_initiator(&s, k, "alice"), KD3_E_SAME_PRINCIPAL);
	assert_int_equal(kd3_session_new_initiator(&s, k, ""), KD3_E_ARG);
	assert_int_equal(kd3_session_new_initiator(&s, NULL, "bob"), KD3_E_ARG);
	assert_int_equal(kd3_session_new_initiator(NULL, k, "bob"), KD3_E_ARG);
	assert_int_equal(kd3_session_new_responder(&s, NULL), KD3_E_ARG);
	assert_null(s);
	assert_int_equal(kd3_session_new_initiator(&s, k, "bob"), KD3_OK);
	kd3_key_free(k); /* the session keeps its own copy */
	assert_int_equal(kd3_session_set_suite(s, (kd3_suite)7), KD3_E_ARG);
	assert_int_equal(kd3_session_set_rekey(s, 0, 0, 0), KD3_E_ARG);
	assert_int_equal(kd3_session_set_rng(s, NULL, NULL), KD3_E_ARG);
	assert_int_equal(kd3_session_receive(s, buf, 1, &len, 0), KD3_E_STATE); /* start first */
	assert_int_equal(kd3_session_write(s, buf, 1, 0), KD3_E_STATE);
	assert_int_equal(kd3_session_kdc_request(s, buf, sizeof(buf), &len), KD3_E_STATE);
	assert_int_equal(kd3_session_kdc_reply(s, buf, 1, 0), KD3_E_STATE);
	assert_int_equal(kd3_session_start(s, 0), KD3_OK);
	assert_int_equal(kd3_session_start(s, 0), KD3_E_STATE);
	assert_int_equal(kd3_session_set_suite(s, KD3_AES_256_GCM), KD3_E_STATE);
	assert_int_equal(kd3_session_set_forward_secret(s, 1), KD3_E_STATE);
	assert_int_equal(kd3_session_receive(s, NULL, 1, &len, 0), KD3_E_ARG);
	assert_int_equal(kd3_session_receive(s, buf, 1, NULL, 0), KD3_E_ARG);
	assert_int_equal(kd3_session_output(s, NULL, 1, &len), KD3_E_ARG);
	assert_int_equal(kd3_session_read(s, buf, sizeof(buf), &len), KD3_E_AGAIN);
	assert_int_equal(kd3_session_rekey(s, 0), KD3_E_STATE);
	assert_null(kd3_session_peer(s));
	assert_int_equal(kd3_session_state(s), KD3_STATE_HANDSHAKE);
	kd3_session_free(s);

	/* NULL objects everywhere. */
	assert_int_equal(kd3_session_start(NULL, 0), KD3_E_ARG);
	assert_int_equal(kd3_session_close(NULL), KD3_E_ARG);
	assert_int_equal(kd3_session_eof(NULL), KD3_E_ARG);
	assert_int_equal(kd3_session_output_pending(NULL), 0);
	assert_int_equal(kd3_session_state(NULL), KD3_STATE_FAILED);
	assert_string_equal(kd3_session_error_text(NULL), "");
	assert_int_equal(kd3_conn_send(NULL, buf, 1), KD3_E_ARG);
	assert_int_equal(kd3_conn_recv(NULL, buf, 1, &len, 0), KD3_E_ARG);
	assert_int_equal(kd3_conn_close(NULL), KD3_E_ARG);
	assert_int_equal(kd3_conn_fd(NULL), -1);
	assert_int_equal(kd3_server_port(NULL), -1);
	kd3_session_free(NULL);
	kd3_key_free(NULL);
	kd3_conn_free(NULL);
	kd3_server_free(NULL);
	assert_non_null(strstr(kd3_strerror(KD3_E_STATE), "state"));
	assert_string_equal(kd3_strerror(12345), "unknown error");
	assert_non_null(kd3_version());
}

static void test_buffers(void **state)
{
	static uint8_t big[KD3_MESSAGE_MAX + 1], wire[4 * 16500], msg[KD3_MESSAGE_MAX];
	pair p;
	uint8_t small[4];
	size_t len = 0, off = 0, used = 0, got = 0;
	int writes = 0, reads = 0, ret;

	(void)state;
	established(&p);
	memset(big, 'x', sizeof(big));
	assert_int_equal(kd3_session_write(p.i, big, sizeof(big), 1000), KD3_E_TOO_BIG);
	/* Output not taken: writes stop with KD3_E_AGAIN, never beyond the buffer. */
	while ((ret = kd3_session_write(p.i, big, KD3_MESSAGE_MAX, 1000)) == KD3_OK)
		writes++;
	assert_int_equal(ret, KD3_E_AGAIN);
	assert_true(writes >= 1 && writes <= 2);
	assert_int_equal(kd3_session_output(p.i, wire, sizeof(wire), &len), KD3_OK);
	assert_int_equal(kd3_session_write(p.i, big, KD3_MESSAGE_MAX, 1000), KD3_OK);
	writes++;
	size_t more = 0;
	assert_int_equal(kd3_session_output(p.i, wire + len, sizeof(wire) - len, &more), KD3_OK);
	len += more;
	/* The receiver takes bytes up to each message, which stays until a read large
	 * enough for it. */
	while (off < len) {
		assert_int_equal(kd3_session_receive(p.r, wire + off, len - off, &used, 1000),
		                 KD3_OK);
		off += used;
		if (kd3_session_read(p.r, small, sizeof(small), &got) == KD3_E_NO_SPACE) {
			assert_int_equal(kd3_session_read(p.r, msg, sizeof(msg), &got), KD3_OK);
			assert_int_equal(got, KD3_MESSAGE_MAX);
			reads++;
		}
	}
	while (kd3_session_read(p.r, msg, sizeof(msg), &got) == KD3_OK)
		reads++;
	assert_int_equal(reads, writes);
	pair_free(&p);
}

static void test_tampered_record(void **state)
{
	pair p;
	uint8_t wire[4096];
	size_t len = 0;

	(void)state;
	established(&p);
	assert_int_equal(kd3_session_write(p.i, (const uint8_t *)"pay 10", 6, 1000), KD3_OK);
	kd3_session_output(p.i, wire, sizeof(wire), &len);
	wire[len - 20] ^= 0x01;
	assert_int_equal(feed(p.r, wire, len, 0), KD3_E_RECORD_AUTH);
	assert_int_equal(kd3_session_state(p.r), KD3_STATE_FAILED);
	assert_int_equal(kd3_session_error(p.r), KD3_E_RECORD_AUTH);
	assert_true(strlen(kd3_session_error_text(p.r)) > 0);
	assert_true(kd3_session_output_pending(p.r) > 0); /* a CLOSE telling why */
	assert_int_equal(kd3_session_write(p.r, wire, 1, 1000), KD3_E_RECORD_AUTH);
	/* The peer's stream cut with no CLOSE: truncated. */
	assert_int_equal(kd3_session_eof(p.i), KD3_E_TRUNCATED);
	pair_free(&p);
}

static void test_garbage_and_expiry(void **state)
{
	pair p;
	uint8_t junk[64];
	size_t used = 0;

	(void)state;
	pair_new(&p, 2, 0);
	memset(junk, 0xee, sizeof(junk));
	assert_int_not_equal(kd3_session_receive(p.r, junk, sizeof(junk), &used, 0), KD3_OK);
	assert_int_equal(kd3_session_state(p.r), KD3_STATE_FAILED);
	assert_true(kd3_session_output_pending(p.r) > 0); /* an ERROR for the initiator */
	pair_free(&p);

	/* After the key's lifetime (3600 s in the vectors) nothing is sent with it. */
	established(&p);
	assert_int_equal(kd3_session_write(p.i, junk, 1, 1000 + 3600 * 1000), KD3_E_EXPIRED);
	assert_int_equal(kd3_session_state(p.i), KD3_STATE_FAILED);
	pair_free(&p);
}

static void test_key_files(void **state)
{
	char dir[] = "/tmp/kd3-api-XXXXXX", path[64], err[256];
	kd3_key *k = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/alice.key", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "principal = alice\nkey = 3:%s\n",
	        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
	fclose(f);
	chmod(path, 0644);
	assert_int_equal(kd3_key_load(&k, path, err, sizeof(err)), KD3_E_KEYFILE_PERMS);
	assert_non_null(strstr(err, path));
	assert_null(k);
	chmod(path, 0600);
	assert_int_equal(kd3_key_load(&k, path, err, sizeof(err)), KD3_OK);
	assert_string_equal(kd3_key_principal(k), "alice");
	assert_int_equal(kd3_key_add(k, 3, (const uint8_t *)"0123456789abcdef0123456789abcdef"),
	                 KD3_E_EXISTS);
	kd3_key_free(k);
	assert_int_not_equal(kd3_key_load(&k, "/nonexistent/key", err, sizeof(err)), KD3_OK);
	assert_true(strlen(err) > 0);
	unlink(path);
	rmdir(dir);
}

/* ---- what the other side said ----------------------------------------------------- */

/* The words of an error line after "refused: ", up to " (": found in the frame that
 * carried them, byte for byte (not wiped or consumed before they were read). */
static void expect_words_from(const char *text, const uint8_t *frame, size_t len)
{
	const char *p = strstr(text, "refused: ");
	assert_non_null(p);
	p += strlen("refused: ");
	const char *end = strstr(p, " (");
	assert_non_null(end);
	assert_true(end - p >= 8);
	size_t n = (size_t)(end - p);
	int found = 0;
	for (size_t off = 0; !found && off + n <= len; off++)
		found = memcmp(frame + off, p, n) == 0;
	assert_true(found);
}

static void test_error_texts(void **state)
{
	pair p;
	kd3_key *kc = NULL;
	kd3_session *carol = NULL, *r2 = NULL;
	uint8_t error[4096];
	size_t error_len = 0;

	(void)state;
	/* An M1 for bob reaches carol: she refuses with an ERROR naming why. */
	pair_new(&p, 2, 0);
	assert_int_equal(kd3_key_new(&kc, "carol", 1, p.v.k_r), KD3_OK);
	assert_int_equal(kd3_session_new_responder(&carol, kc), KD3_OK);
	assert_int_equal(feed(carol, p.v.m1, p.v.m1_len, 0), KD3_E_UNKNOWN_PRINCIPAL);
	assert_int_equal(kd3_session_output(carol, error, sizeof(error), &error_len), KD3_OK);
	assert_true(error_len > 0);

	/* The initiator's error line carries carol's words. */
	assert_int_equal(kd3_session_start(p.i, 1000), KD3_OK);
	expect_output(p.i, p.v.m1, p.v.m1_len);
	assert_int_equal(feed(p.i, error, error_len, 0), KD3_E_PEER_ERROR);
	assert_int_equal(kd3_session_error(p.i), KD3_E_PEER_ERROR);
	assert_non_null(strstr(kd3_session_error_text(p.i), "the responder refused"));
	expect_words_from(kd3_session_error_text(p.i), error, error_len);

	/* The same frame as the KDC's answer: the responder names the KDC and its words. */
	assert_int_equal(kd3_session_new_responder(&r2, p.kb), KD3_OK);
	assert_int_equal(feed(r2, p.v.m1, p.v.m1_len, 0), KD3_OK);
	assert_int_equal(kd3_session_kdc_reply(r2, error, error_len, 1000), KD3_E_PEER_ERROR);
	assert_non_null(strstr(kd3_session_error_text(r2), "the KDC refused"));
	expect_words_from(kd3_session_error_text(r2), error, error_len);
	assert_int_equal(kd3_session_kdc_reply(r2, p.v.m3, p.v.m3_len, 1000), KD3_E_PEER_ERROR);
	kd3_session_free(r2);
	kd3_session_free(carol);
	kd3_key_free(kc);
	pair_free(&p);
}

/* A CLOSE for another reason than a normal end: the session is over, and says why. */
static void test_peer_close_reason(void **state)
{
	pair p;
	uint8_t wire[4096], buf[16];
	size_t len = 0;

	(void)state;
	established(&p);
	assert_int_equal(kd3_session_write(p.i, buf, 1, 1000 + 3600 * 1000), KD3_E_EXPIRED);
	assert_int_equal(kd3_session_output(p.i, wire, sizeof(wire), &len), KD3_OK);
	assert_int_equal(feed(p.r, wire, len, 0), KD3_OK);
	assert_int_equal(kd3_session_read(p.r, buf, sizeof(buf), &len), KD3_E_PEER_ERROR);
	assert_int_equal(kd3_session_error(p.r), KD3_E_PEER_ERROR);
	assert_non_null(strstr(kd3_session_error_text(p.r), "the initiator closed the session"));
	assert_non_null(strstr(kd3_session_error_text(p.r), "session key lifetime expired"));
	pair_free(&p);

	/* A normal end leaves no error. */
	established(&p);
	assert_int_equal(kd3_session_close(p.i), KD3_OK);
	assert_int_equal(kd3_session_output(p.i, wire, sizeof(wire), &len), KD3_OK);
	assert_int_equal(feed(p.r, wire, len, 0), KD3_OK);
	assert_int_equal(kd3_session_read(p.r, buf, sizeof(buf), &len), KD3_E_CLOSED);
	assert_int_equal(kd3_session_error(p.r), KD3_OK);
	assert_string_equal(kd3_session_error_text(p.r), "");
	pair_free(&p);
}

/* The caller's RNG fails with a code of its own: the session says KD3_E_RNG. */
static int odd_rng(void *ctx, uint8_t *out, size_t len)
{
	(void)ctx;
	(void)out;
	(void)len;
	return 42;
}

static void test_rng_failure(void **state)
{
	static const uint8_t secret[32] = {7};
	kd3_key *k = NULL;
	kd3_session *s = NULL;

	(void)state;
	assert_int_equal(kd3_key_new(&k, "alice", 1, secret), KD3_OK);
	assert_int_equal(kd3_session_new_initiator(&s, k, "bob"), KD3_OK);
	assert_int_equal(kd3_session_set_rng(s, odd_rng, NULL), KD3_OK);
	assert_int_equal(kd3_session_start(s, 0), KD3_E_RNG);
	assert_int_equal(kd3_session_error(s), KD3_E_RNG);
	assert_int_equal(kd3_session_output_pending(s), 0);
	kd3_session_free(s);
	kd3_key_free(k);
}

/* ---- the observer ----------------------------------------------------------------- */

#define NOTES_MAX 24

typedef struct seen {
	int kind, sent, kdc, inner;
	long generation;
	unsigned code;
	size_t len;
	uint8_t bytes[FIELD_MAX];
	char text[64], peer[16];
	int suite, fs;
	uint32_t kvno, lifetime;
	uint8_t th[32], sk[32], tx_secret[32], rx_secret[32];
	int has_sk, has_tx, has_rx, has_bytes;
} seen;

typedef struct notes {
	seen n[NOTES_MAX];
	size_t count;
} notes;

static void record_note(void *ctx, const kd3_note *note)
{
	notes *log = ctx;
	if (log->count == NOTES_MAX)
		return;
	seen *e = &log->n[log->count++];
	memset(e, 0, sizeof(*e));
	e->kind = note->kind, e->sent = note->sent, e->kdc = note->kdc;
	e->inner = note->inner, e->generation = note->generation, e->code = note->code;
	e->len = note->len < FIELD_MAX ? note->len : FIELD_MAX;
	if ((e->has_bytes = note->bytes != NULL))
		memcpy(e->bytes, note->bytes, e->len);
	if (note->text)
		snprintf(e->text, sizeof(e->text), "%s", note->text);
	if (note->peer)
		snprintf(e->peer, sizeof(e->peer), "%s", note->peer);
	e->suite = note->suite, e->fs = note->forward_secret;
	e->kvno = note->kvno, e->lifetime = note->lifetime_s;
	if (note->th)
		memcpy(e->th, note->th, 32);
	if ((e->has_sk = note->sk != NULL))
		memcpy(e->sk, note->sk, 32);
	if ((e->has_tx = note->tx_secret != NULL))
		memcpy(e->tx_secret, note->tx_secret, 32);
	if ((e->has_rx = note->rx_secret != NULL))
		memcpy(e->rx_secret, note->rx_secret, 32);
}

/* Note i of log: its kind, direction, KDC flag, inner type and generation. */
static const seen *expect_note(const notes *log, size_t i, int kind, int sent, int kdc, int inner,
                               long generation)
{
	assert_true(i < log->count);
	const seen *e = &log->n[i];
	assert_int_equal(e->kind, kind);
	assert_int_equal(e->sent, sent);
	assert_int_equal(e->kdc, kdc);
	assert_int_equal(e->inner, inner);
	assert_int_equal(e->generation, generation);
	return e;
}

static void expect_bytes(const seen *e, const uint8_t *want, size_t len)
{
	assert_int_equal(e->len, len);
	assert_memory_equal(e->bytes, want, len);
}

/* Every frame and step of the vectors' exchange, as both observers saw it; with the
 * keys revealed, the documented TH, SK and traffic secrets. */
static void test_observer(void **state)
{
	pair p;
	notes ni = {0}, nr = {0};
	uint8_t req[4096], wire[4096], th[32], sk[32], ts_i2r[32], buf[16];
	size_t len = 0;

	(void)state;
	pair_new(&p, 2, 0);
	assert_int_equal(kd3_session_set_reveal_keys(p.i, 1), KD3_E_STATE); /* no observer */
	kd3_stats none;
	assert_int_equal(kd3_session_stats(p.i, &none), KD3_E_STATE);
	assert_int_equal(kd3_session_set_observer(p.i, record_note, &ni), KD3_OK);
	assert_int_equal(kd3_session_set_reveal_keys(p.i, 1), KD3_OK);
	assert_int_equal(kd3_session_set_observer(p.r, record_note, &nr), KD3_OK);
	assert_int_equal(kd3_session_start(p.i, 1000), KD3_OK);
	assert_int_equal(kd3_session_set_observer(p.i, NULL, NULL), KD3_E_STATE);
	expect_output(p.i, p.v.m1, p.v.m1_len);
	assert_int_equal(feed(p.r, p.v.m1, p.v.m1_len, 1), KD3_OK);
	assert_int_equal(kd3_session_kdc_request(p.r, req, sizeof(req), &len), KD3_OK);
	assert_int_equal(kd3_session_kdc_reply(p.r, p.v.m3, p.v.m3_len, 1000), KD3_OK);
	expect_output(p.r, p.v.m4, p.v.m4_len);
	assert_int_equal(feed(p.i, p.v.m4, p.v.m4_len, 0), KD3_OK);
	expect_output(p.i, p.v.fin, p.v.fin_len);
	assert_int_equal(feed(p.r, p.v.fin, p.v.fin_len, 0), KD3_OK);
	assert_int_equal(kd3_session_write(p.i, (const uint8_t *)"hello bob", 9, 1000), KD3_OK);
	expect_output(p.i, p.v.data_ir, p.v.data_ir_len);
	assert_int_equal(feed(p.r, p.v.data_ir, p.v.data_ir_len, 0), KD3_OK);
	expect_message(p.r, "hello bob");
	kd3_stats st;
	assert_int_equal(kd3_session_stats(p.i, &st), KD3_OK);
	assert_int_equal(st.sent_records, 2);    /* FINISHED, DATA */
	assert_int_equal(st.sent_bytes, 32 + 9); /* FINISHED carries confirm_i */
	assert_int_equal(st.lifetime_s, 3600);
	assert_int_equal(st.expires_ms, 1000 + 3600 * 1000);
	assert_int_equal(kd3_session_rekey(p.i, 1000), KD3_OK);
	assert_int_equal(kd3_session_stats(p.i, &st), KD3_OK);
	assert_int_equal(st.sent_generation, 1);
	assert_int_equal(st.sent_key_records, 0);
	assert_int_equal(kd3_session_close(p.i), KD3_OK);
	assert_int_equal(kd3_session_stats(p.i, &st), KD3_OK);
	assert_true(st.sent_closed && !st.received_closed);
	assert_int_equal(kd3_session_output(p.i, wire, sizeof(wire), &len), KD3_OK);
	assert_int_equal(feed(p.r, wire, len, 0), KD3_OK);
	assert_int_equal(kd3_session_read(p.r, buf, sizeof(buf), &len), KD3_E_CLOSED);

	/* The initiator: M1 out, M4 in, established, FINISHED and DATA out, then a key
	 * update and the CLOSE under the new key. */
	expect_bytes(expect_note(&ni, 0, KD3_NOTE_FRAME, 1, 0, -1, -1), p.v.m1, p.v.m1_len);
	expect_bytes(expect_note(&ni, 1, KD3_NOTE_FRAME, 0, 0, -1, -1), p.v.m4, p.v.m4_len);
	const seen *e = expect_note(&ni, 2, KD3_NOTE_ESTABLISHED, 0, 0, -1, 0);
	char *doc = slurp(protocol_md);
	const char *sec = strstr(doc, "### Suite 0x02 (chacha20-poly1305), forward secrecy off");
	input(sec, "TH         =", th);
	input(sec, "SK         =", sk);
	input(sec, "ts_i2r     =", ts_i2r);
	free(doc);
	assert_string_equal(e->peer, "bob");
	assert_int_equal(e->suite, KD3_CHACHA20_POLY1305);
	assert_int_equal(e->fs, 0);
	assert_int_equal(e->kvno, 1);
	assert_int_equal(e->lifetime, 3600);
	assert_memory_equal(e->th, th, 32);
	assert_true(e->has_sk && e->has_tx && e->has_rx);
	assert_memory_equal(e->sk, sk, 32);
	assert_memory_equal(e->tx_secret, ts_i2r, 32);
	expect_bytes(expect_note(&ni, 3, KD3_NOTE_FRAME, 1, 0, KD3_INNER_FINISHED, 0), p.v.fin,
	             p.v.fin_len);
	expect_bytes(expect_note(&ni, 4, KD3_NOTE_FRAME, 1, 0, KD3_INNER_DATA, 0), p.v.data_ir,
	             p.v.data_ir_len);
	expect_note(&ni, 5, KD3_NOTE_FRAME, 1, 0, KD3_INNER_KEY_UPDATE, 0);
	assert_true(expect_note(&ni, 6, KD3_NOTE_KEY_UPDATE, 1, 0, -1, 1)->has_tx);
	expect_note(&ni, 7, KD3_NOTE_FRAME, 1, 0, KD3_INNER_CLOSE, 1);
	e = expect_note(&ni, 8, KD3_NOTE_CLOSE, 1, 0, -1, -1);
	assert_int_equal(e->code, 0);
	assert_string_equal(e->text, "bye");
	assert_int_equal(ni.count, 9);

	/* The responder: M1 in, M2 to the KDC, M3 from it, M4 out, FINISHED in, DATA in
	 * (as it came: the sealed bytes), the key update, the CLOSE. No secrets. */
	expect_bytes(expect_note(&nr, 0, KD3_NOTE_FRAME, 0, 0, -1, -1), p.v.m1, p.v.m1_len);
	expect_bytes(expect_note(&nr, 1, KD3_NOTE_FRAME, 1, 1, -1, -1), p.v.m2, p.v.m2_len);
	expect_bytes(expect_note(&nr, 2, KD3_NOTE_FRAME, 0, 1, -1, -1), p.v.m3, p.v.m3_len);
	expect_bytes(expect_note(&nr, 3, KD3_NOTE_FRAME, 1, 0, -1, -1), p.v.m4, p.v.m4_len);
	expect_bytes(expect_note(&nr, 4, KD3_NOTE_FRAME, 0, 0, KD3_INNER_FINISHED, 0), p.v.fin,
	             p.v.fin_len);
	e = expect_note(&nr, 5, KD3_NOTE_ESTABLISHED, 0, 0, -1, 0);
	assert_string_equal(e->peer, "alice");
	assert_int_equal(e->kvno, 2);
	assert_false(e->has_sk || e->has_tx || e->has_rx);
	expect_bytes(expect_note(&nr, 6, KD3_NOTE_FRAME, 0, 0, KD3_INNER_DATA, 0), p.v.data_ir,
	             p.v.data_ir_len);
	expect_note(&nr, 7, KD3_NOTE_FRAME, 0, 0, KD3_INNER_KEY_UPDATE, 0);
	assert_false(expect_note(&nr, 8, KD3_NOTE_KEY_UPDATE, 0, 0, -1, 1)->has_rx);
	expect_note(&nr, 9, KD3_NOTE_FRAME, 0, 0, KD3_INNER_CLOSE, 1);
	e = expect_note(&nr, 10, KD3_NOTE_CLOSE, 0, 0, -1, -1);
	assert_string_equal(e->text, "bye");
	assert_int_equal(nr.count, 11);
	pair_free(&p);
}

/* What is not the KDC's answer to this exchange is refused and changes nothing. */
static void test_kdc_strays(void **state)
{
	pair p;
	uint8_t junk[64], m3[FIELD_MAX];

	(void)state;
	pair_new(&p, 2, 0);
	assert_int_equal(kd3_session_start(p.i, 1000), KD3_OK);
	expect_output(p.i, p.v.m1, p.v.m1_len);
	assert_int_equal(feed(p.r, p.v.m1, p.v.m1_len, 0), KD3_OK);
	memset(junk, 0x7f, sizeof(junk));
	assert_int_equal(kd3_session_kdc_reply(p.r, junk, sizeof(junk), 1000), KD3_E_UNEXPECTED);
	assert_int_equal(kd3_session_kdc_reply(p.r, p.v.m3, p.v.m3_len - 1, 1000),
	                 KD3_E_UNEXPECTED); /* cut short */
	memcpy(m3, p.v.m3, p.v.m3_len);
	m3[4] ^= 0x01; /* n_r, the body's first field: an answer to another exchange */
	assert_int_equal(kd3_session_kdc_reply(p.r, m3, p.v.m3_len, 1000), KD3_E_UNEXPECTED);
	assert_int_equal(kd3_session_kdc_reply(p.r, junk, 0, 1000), KD3_E_UNEXPECTED);
	assert_int_equal(kd3_session_state(p.r), KD3_STATE_HANDSHAKE);
	assert_int_equal(kd3_session_error(p.r), KD3_OK);
	assert_int_equal(kd3_session_output_pending(p.r), 0);
	/* The real answer still makes the documented M4. */
	assert_int_equal(kd3_session_kdc_reply(p.r, p.v.m3, p.v.m3_len, 1000), KD3_OK);
	expect_output(p.r, p.v.m4, p.v.m4_len);
	pair_free(&p);
}

/* A responder's own settings: the suites it takes, and why it refused an M1 in words
 * that name the setting; the name M1 claims, kept past the failure. */
static void test_responder_settings(void **state)
{
	pair p;
	kd3_session *strict = NULL;

	(void)state;
	pair_new(&p, 2, 0); /* the M1 asks for ChaCha20-Poly1305 */
	assert_int_equal(kd3_session_set_suites(p.i, KD3_SUITE_BIT(KD3_AES_256_GCM)), KD3_E_STATE);
	assert_int_equal(kd3_session_set_suites(p.r, 0), KD3_E_ARG);
	assert_int_equal(kd3_session_set_suites(p.r, KD3_SUITE_BIT(7)), KD3_E_ARG);
	assert_int_equal(kd3_session_set_suites(NULL, 1), KD3_E_ARG);
	assert_int_equal(kd3_session_set_suites(p.r, KD3_SUITE_BIT(KD3_AES_256_GCM)), KD3_OK);
	assert_null(kd3_session_peer_claim(p.r));
	assert_int_equal(feed(p.r, p.v.m1, p.v.m1_len, 0), KD3_E_UNSUPPORTED);
	assert_string_equal(kd3_session_error_text(p.r),
	                    "suite chacha20-poly1305 is not allowed here");
	assert_string_equal(kd3_session_peer_claim(p.r), "alice");
	assert_null(kd3_session_peer(p.r)); /* a claim, never established */
	assert_int_equal(kd3_session_set_suites(p.r, 2), KD3_E_STATE);

	/* Forward secrecy required, an M1 without it. */
	assert_int_equal(kd3_session_new_responder(&strict, p.kb), KD3_OK);
	assert_int_equal(kd3_session_set_forward_secret(strict, 1), KD3_OK);
	assert_int_equal(feed(strict, p.v.m1, p.v.m1_len, 0), KD3_E_POLICY_DENIED);
	assert_string_equal(kd3_session_error_text(strict),
	                    "the initiator did not ask for forward-secret mode");
	assert_string_equal(kd3_session_peer_claim(strict), "alice");
	kd3_session_free(strict);
	assert_null(kd3_session_peer_claim(p.i)); /* an initiator claims nothing of its peer */
	pair_free(&p);

	/* Both suites allowed (the default) take the same M1. */
	pair_new(&p, 1, 0);
	assert_int_equal(kd3_session_set_suites(p.r, KD3_SUITE_BIT(KD3_AES_256_GCM) |
	                                                 KD3_SUITE_BIT(KD3_CHACHA20_POLY1305)),
	                 KD3_OK);
	assert_int_equal(feed(p.r, p.v.m1, p.v.m1_len, 0), KD3_OK);
	pair_free(&p);
}

/* What a KDC answer is, asked before it is given: nothing changes. */
static void test_kdc_check(void **state)
{
	pair p;
	kd3_key *kc = NULL;
	kd3_session *carol = NULL;
	uint8_t junk[64], error[4096], big[5000];
	size_t error_len = 0;
	unsigned code = 99;

	(void)state;
	pair_new(&p, 2, 0);
	/* An ERROR to have: carol refuses an M1 that is not for her. */
	assert_int_equal(kd3_key_new(&kc, "carol", 1, p.v.k_r), KD3_OK);
	assert_int_equal(kd3_session_new_responder(&carol, kc), KD3_OK);
	assert_int_equal(feed(carol, p.v.m1, p.v.m1_len, 0), KD3_E_UNKNOWN_PRINCIPAL);
	assert_string_equal(kd3_session_error_text(carol),
	                    "M1 is for responder 'bob', we are 'carol'");
	assert_int_equal(kd3_session_output(carol, error, sizeof(error), &error_len), KD3_OK);

	assert_int_equal(kd3_session_kdc_check(p.r, p.v.m3, p.v.m3_len, &code), KD3_E_STATE);
	assert_int_equal(feed(p.r, p.v.m1, p.v.m1_len, 0), KD3_OK);
	memset(junk, 0x7f, sizeof(junk));
	assert_int_equal(kd3_session_kdc_check(p.r, junk, sizeof(junk), &code), KD3_E_UNEXPECTED);
	assert_int_equal(code, 0);
	assert_int_equal(kd3_session_kdc_check(p.r, big, sizeof(big), NULL), KD3_E_TOO_BIG);
	assert_int_equal(kd3_session_kdc_check(p.r, NULL, 1, NULL), KD3_E_ARG);
	assert_int_equal(kd3_session_kdc_check(p.r, error, error_len, &code), KD3_E_PEER_ERROR);
	assert_int_equal(code, KD3_E_UNKNOWN_PRINCIPAL);
	assert_int_equal(kd3_session_kdc_check(p.r, p.v.m3, p.v.m3_len, &code), KD3_OK);
	assert_int_equal(code, 0);
	assert_int_equal(kd3_session_state(p.r), KD3_STATE_HANDSHAKE);
	assert_int_equal(kd3_session_output_pending(p.r), 0);
	/* Checked, the ERROR still ends nothing; the M3 then makes the documented M4. */
	assert_int_equal(kd3_session_kdc_reply(p.r, p.v.m3, p.v.m3_len, 1000), KD3_OK);
	expect_output(p.r, p.v.m4, p.v.m4_len);
	assert_int_equal(kd3_session_kdc_check(p.r, p.v.m3, p.v.m3_len, NULL), KD3_E_STATE);
	kd3_session_free(carol);
	kd3_key_free(kc);
	pair_free(&p);
}

/* Our direction closed with a reason: a CLOSE with it once established, an ERROR with
 * it during the handshake; either way the peer's error text carries our words. */
static void test_close_reason(void **state)
{
	pair p;
	notes ni = {0};
	uint8_t wire[4096], buf[16];
	size_t len = 0;

	(void)state;
	pair_new(&p, 2, 0);
	assert_int_equal(kd3_session_set_observer(p.i, record_note, &ni), KD3_OK);
	assert_int_equal(kd3_session_start(p.i, 1000), KD3_OK);
	expect_output(p.i, p.v.m1, p.v.m1_len);
	assert_int_equal(feed(p.r, p.v.m1, p.v.m1_len, 0), KD3_OK);
	assert_int_equal(kd3_session_close_reason(p.r, -1, NULL), KD3_E_ARG);
	assert_int_equal(kd3_session_close_reason(p.r, 70000, NULL), KD3_E_ARG);
	assert_int_equal(kd3_session_close_reason(p.r, KD3_E_BUSY, "responder stopping"), KD3_OK);
	assert_int_equal(kd3_session_output(p.r, wire, sizeof(wire), &len), KD3_OK);
	assert_int_equal(wire[1], 0x7f); /* an ERROR frame: no channel yet */
	assert_int_equal(feed(p.i, wire, len, 0), KD3_E_PEER_ERROR);
	assert_non_null(strstr(kd3_session_error_text(p.i), "responder stopping"));
	const seen *e = &ni.n[ni.count - 1];
	assert_int_equal(e->kind, KD3_NOTE_ERROR);
	assert_int_equal(e->code, KD3_E_BUSY);
	assert_string_equal(e->text, "responder stopping");
	pair_free(&p);

	established(&p);
	assert_int_equal(kd3_session_close_reason(p.r, KD3_E_INTERNAL, "cannot\ndeliver"), KD3_OK);
	assert_int_equal(kd3_session_write(p.r, buf, 1, 1000), KD3_E_CLOSED);
	assert_int_equal(kd3_session_output(p.r, wire, sizeof(wire), &len), KD3_OK);
	assert_int_equal(feed(p.i, wire, len, 0), KD3_OK);
	assert_int_equal(kd3_session_read(p.i, buf, sizeof(buf), &len), KD3_E_PEER_ERROR);
	assert_non_null(strstr(kd3_session_error_text(p.i), "cannot?deliver")); /* printable */
	pair_free(&p);

	/* Code KD3_OK is a normal end. */
	established(&p);
	assert_int_equal(kd3_session_close_reason(p.i, KD3_OK, NULL), KD3_OK);
	assert_int_equal(kd3_session_output(p.i, wire, sizeof(wire), &len), KD3_OK);
	assert_int_equal(feed(p.r, wire, len, 0), KD3_OK);
	assert_int_equal(kd3_session_read(p.r, buf, sizeof(buf), &len), KD3_E_CLOSED);
	assert_int_equal(kd3_session_error(p.r), KD3_OK);
	pair_free(&p);
}

/* Notes without the bytes of frames received: no copy is kept, the rest is told. */
static void test_observe_bytes(void **state)
{
	pair p;
	notes nr = {0};

	(void)state;
	pair_new(&p, 2, 0);
	assert_int_equal(kd3_session_set_observe_bytes(p.r, 0), KD3_OK);
	assert_int_equal(kd3_session_set_observer(p.r, record_note, &nr), KD3_OK);
	establish(&p);
	assert_int_equal(kd3_session_set_observe_bytes(p.r, 1), KD3_E_STATE);
	assert_int_equal(kd3_session_state(p.r), KD3_STATE_ESTABLISHED);
	size_t in = 0, out = 0;
	for (size_t i = 0; i < nr.count; i++) {
		const seen *e = &nr.n[i];
		if (e->kind != KD3_NOTE_FRAME)
			continue;
		if (e->sent) {
			assert_true(e->has_bytes);
			out++;
		} else {
			assert_false(e->has_bytes);
			assert_true(e->len > 0);
			in++;
		}
	}
	assert_int_equal(in, 3);  /* M1, M3 (from the KDC), FINISHED */
	assert_int_equal(out, 2); /* M2 (to the KDC), M4 */
	const seen *fin = NULL;
	for (size_t i = 0; i < nr.count; i++)
		if (nr.n[i].kind == KD3_NOTE_FRAME && !nr.n[i].sent && nr.n[i].inner != -1)
			fin = &nr.n[i];
	assert_non_null(fin);
	assert_int_equal(fin->inner, KD3_INNER_FINISHED);
	assert_int_equal(fin->len, p.v.fin_len);
	pair_free(&p);
}

/* A message and the CLOSE behind it in one piece of input: the CLOSE is handled (and
 * noted) only after the message was read, so a program tells them in that order. */
static void test_close_after_message(void **state)
{
	pair p;
	notes nr = {0};
	uint8_t wire[4096], buf[16];
	size_t len = 0, more = 0;

	(void)state;
	established(&p);
	assert_int_equal(kd3_session_set_observer(p.r, record_note, &nr), KD3_E_STATE);
	pair_free(&p);

	pair_new(&p, 2, 0);
	assert_int_equal(kd3_session_set_observer(p.r, record_note, &nr), KD3_OK);
	assert_int_equal(kd3_session_start(p.i, 1000), KD3_OK);
	expect_output(p.i, p.v.m1, p.v.m1_len);
	assert_int_equal(feed(p.r, p.v.m1, p.v.m1_len, 0), KD3_OK);
	assert_int_equal(kd3_session_kdc_reply(p.r, p.v.m3, p.v.m3_len, 1000), KD3_OK);
	expect_output(p.r, p.v.m4, p.v.m4_len);
	assert_int_equal(feed(p.i, p.v.m4, p.v.m4_len, 0), KD3_OK);
	expect_output(p.i, p.v.fin, p.v.fin_len);
	assert_int_equal(feed(p.r, p.v.fin, p.v.fin_len, 0), KD3_OK);
	assert_int_equal(kd3_session_write(p.i, (const uint8_t *)"last", 4, 1000), KD3_OK);
	assert_int_equal(kd3_session_output(p.i, wire, sizeof(wire), &len), KD3_OK);
	assert_int_equal(kd3_session_close(p.i), KD3_OK);
	assert_int_equal(kd3_session_output(p.i, wire + len, sizeof(wire) - len, &more), KD3_OK);
	assert_int_equal(feed(p.r, wire, len + more, 0), KD3_OK);
	size_t before = nr.count;
	assert_int_equal(kd3_session_read(p.r, buf, sizeof(buf), &len), KD3_OK);
	assert_int_equal(len, 4);
	assert_int_equal(nr.count, before); /* nothing of the CLOSE yet */
	assert_int_equal(kd3_session_read(p.r, buf, sizeof(buf), &len), KD3_E_CLOSED);
	assert_true(nr.count == before + 2); /* its frame, then the CLOSE */
	assert_int_equal(nr.n[nr.count - 1].kind, KD3_NOTE_CLOSE);
	pair_free(&p);
}

/* ---- the server's settings ---------------------------------------------------------- */

static void test_server_kdc_list(void **state)
{
	static const uint8_t secret[32] = {9};
	kd3_key *k = NULL;
	kd3_server *srv = NULL;
	char err[256];

	(void)state;
	assert_int_equal(kd3_key_new(&k, "bob", 1, secret), KD3_OK);
	assert_int_equal(kd3_server_new(&srv, k, "127.0.0.1:0", "127.0.0.1:7088, [::1]:7088 ", NULL,
	                                err, sizeof(err)),
	                 KD3_OK);
	assert_true(kd3_server_port(srv) > 0);
	kd3_server_free(srv);
	assert_int_equal(kd3_server_new(&srv, k, "127.0.0.1:0", "127.0.0.1:7088,,127.0.0.2", NULL,
	                                err, sizeof(err)),
	                 KD3_E_ARG);
	assert_null(srv);
	assert_non_null(strstr(err, "empty item"));
	assert_int_equal(kd3_server_new(&srv, k, "127.0.0.1:0", "", NULL, err, sizeof(err)),
	                 KD3_E_ARG);
	assert_int_equal(
	    kd3_server_new(&srv, k, "127.0.0.1:0", "kdc example:88", NULL, err, sizeof(err)),
	    KD3_E_ARG);
	assert_non_null(strstr(err, "kdc example:88"));
	const char *nine = "127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1,"
	                   "127.0.0.1,127.0.0.1,127.0.0.1";
	assert_int_equal(kd3_server_new(&srv, k, "127.0.0.1:0", nine, NULL, err, sizeof(err)),
	                 KD3_E_ARG);
	assert_non_null(strstr(err, "more than 8"));
	kd3_key_free(k);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Names: from a hosts file of the test's own, and a DNS server that never answers, so
 * nothing reaches the machine's resolver. */
static void test_names(void **state)
{
	static const uint8_t secret[32] = {9};
	char dir[] = "/tmp/kd3-api-names-XXXXXX", hosts[64], dns[32], err[256];
	kd3_key *k = NULL;
	kd3_server *srv = NULL;
	kd3_conn *c = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(hosts, sizeof(hosts), "%s/hosts", dir);
	FILE *f = fopen(hosts, "w");
	assert_non_null(f);
	fputs("127.0.0.3 kd3-api-kdc.test\n127.0.0.4 kd3-api-kdc.test\n", f);
	fclose(f);
	int silent = socket(AF_INET, SOCK_DGRAM, 0); /* bound, never read: no answer */
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	assert_int_equal(bind(silent, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(silent, (struct sockaddr *)&sa, &len), 0);
	snprintf(dns, sizeof(dns), "127.0.0.1:%u", ntohs(sa.sin_port));
	setenv("CARES_HOSTS", hosts, 1);
	setenv("KD3_DNS_SERVER", dns, 1);

	assert_int_equal(kd3_key_new(&k, "bob", 1, secret), KD3_OK);
	/* Both addresses of the name join the list; localhost listens on 127.0.0.1. */
	assert_int_equal(
	    kd3_server_new(&srv, k, "localhost:0", "kd3-api-kdc.test:7088", NULL, err, sizeof(err)),
	    KD3_OK);
	assert_true(kd3_server_port(srv) > 0);
	kd3_server_free(srv);
	/* A name nobody knows: the silent server makes it a timeout, within the bound. */
	kd3_options o = {.timeout_ms = 600};
	uint64_t t0 = now_ms();
	assert_int_equal(
	    kd3_server_new(&srv, k, "127.0.0.1:0", "nosuch.test", &o, err, sizeof(err)),
	    KD3_E_TIMEOUT);
	assert_true(now_ms() - t0 < 1600);
	assert_non_null(strstr(err, "nosuch.test"));
	assert_int_equal(kd3_connect(&c, k, "alice", "nosuch.test:7089", &o, err, sizeof(err)),
	                 KD3_E_TIMEOUT);
	assert_null(c);
	assert_non_null(strstr(err, "nosuch.test"));
	/* A name whose addresses take no connection: each refused, one line. */
	assert_int_equal(kd3_connect(&c, k, "alice", "kd3-api-kdc.test:1", &o, err, sizeof(err)),
	                 KD3_E_IO);
	assert_non_null(strstr(err, "kd3-api-kdc.test:1"));
	kd3_key_free(k);
	unsetenv("CARES_HOSTS");
	unsetenv("KD3_DNS_SERVER");
	close(silent);
	unlink(hosts);
	rmdir(dir);
}

/* ---- threads ---------------------------------------------------------------------- */

#define THREADS        4
#define THREAD_ROUNDS  25
#define THREAD_MESSAGE 1000

/* src's output into dst; KD3_OK or the first error. No cmocka here: its asserts
 * jump, and a thread may not jump into another's stack. */
static int move_bytes(kd3_session *src, kd3_session *dst)
{
	uint8_t wire[4096];
	size_t len = 0, used = 0;
	int ret = kd3_session_output(src, wire, sizeof(wire), &len);
	for (size_t off = 0; ret == KD3_OK && off < len; off += used)
		ret = kd3_session_receive(dst, wire + off, len - off, &used, 1000);
	return ret;
}

/* A whole exchange (the vectors' fixed nonces, so that the document's M3 answers it)
 * and a hundred messages between two sessions; non-zero on any failure. */
static int thread_pair(const vec *v)
{
	kd3_key *ka = NULL, *kb = NULL;
	kd3_session *i = NULL, *r = NULL;
	fixed_rng ri = {.len = 32}, rr = {.len = 32};
	uint8_t msg[THREAD_MESSAGE], got[THREAD_MESSAGE];
	size_t len = 0;
	int bad = 0;

	memcpy(ri.bytes, v->n_i, 32);
	memcpy(rr.bytes, v->n_r, 32);
	bad |= kd3_key_new(&ka, "alice", 1, v->k_i) != KD3_OK;
	bad |= kd3_key_new(&kb, "bob", 2, v->k_r) != KD3_OK;
	bad |= kd3_session_new_initiator(&i, ka, "bob") != KD3_OK;
	bad |= kd3_session_new_responder(&r, kb) != KD3_OK;
	if (bad)
		goto out;
	kd3_session_set_rng(i, fixed_rng_fn, &ri);
	kd3_session_set_rng(r, fixed_rng_fn, &rr);
	bad |= kd3_session_start(i, 1000) != KD3_OK;
	bad |= move_bytes(i, r) != KD3_OK;
	bad |= kd3_session_kdc_reply(r, v->m3, v->m3_len, 1000) != KD3_OK;
	bad |= move_bytes(r, i) != KD3_OK;
	bad |= move_bytes(i, r) != KD3_OK;
	bad |= kd3_session_state(r) != KD3_STATE_ESTABLISHED;
	for (int m = 0; !bad && m < 100; m++) {
		memset(msg, m, sizeof(msg));
		bad |= kd3_session_write(i, msg, sizeof(msg), 1000) != KD3_OK;
		bad |= move_bytes(i, r) != KD3_OK;
		bad |= kd3_session_read(r, got, sizeof(got), &len) != KD3_OK;
		bad |= len != sizeof(msg) || memcmp(got, msg, len) != 0;
	}
out:
	kd3_session_free(i);
	kd3_session_free(r);
	kd3_key_free(ka);
	kd3_key_free(kb);
	return bad;
}

static void *thread_main(void *arg)
{
	const vec *v = arg;
	intptr_t failures = 0;
	for (int round = 0; round < THREAD_ROUNDS; round++)
		failures += thread_pair(v);
	return (void *)failures;
}

static void test_threads(void **state)
{
	static vec v;
	pthread_t t[THREADS];

	(void)state;
	load_vec(&v, 2, 0);
	for (int n = 0; n < THREADS; n++)
		assert_int_equal(pthread_create(&t[n], NULL, thread_main, &v), 0);
	for (int n = 0; n < THREADS; n++) {
		void *failures = NULL;
		assert_int_equal(pthread_join(t[n], &failures), 0);
		assert_int_equal((intptr_t)failures, 0);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PROTOCOL.md\n", argv[0]);
		return 2;
	}
	protocol_md = argv[1];
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_arguments),
	    cmocka_unit_test(test_buffers),
	    cmocka_unit_test(test_tampered_record),
	    cmocka_unit_test(test_garbage_and_expiry),
	    cmocka_unit_test(test_key_files),
	    cmocka_unit_test(test_error_texts),
	    cmocka_unit_test(test_peer_close_reason),
	    cmocka_unit_test(test_rng_failure),
	    cmocka_unit_test(test_observer),
	    cmocka_unit_test(test_server_kdc_list),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_kdc_strays),
	    cmocka_unit_test(test_close_after_message),
	    cmocka_unit_test(test_responder_settings),
	    cmocka_unit_test(test_kdc_check),
	    cmocka_unit_test(test_close_reason),
	    cmocka_unit_test(test_observe_bytes),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
