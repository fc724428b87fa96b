#include "transcript.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "events.h"
#include "hex.h"
#include "log.h"
#include "msg.h"
#include "schedule.h"

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int kd3_transcript_on(const kd3_transcript *t)
{
	return t && t->f;
}

/* ---- building lines ----------------------------------------------------------------- */

/* Adds p[len] as lower-case hex under name; the temporary copy is wiped (keys). */
static int add_hex(cJSON *o, const char *name, const uint8_t *p, size_t len)
{
	char *s = malloc(2 * len + 1);

	if (!s)
		return 0;
	kd3_hex_encode(p, len, s);
	int ok = cJSON_AddStringToObject(o, name, s) != NULL;
	kd3_wipe(s, 2 * len + 1);
	free(s);
	return ok;
}

/* A name from the wire, made printable (kd3_log_safe_name). */
static int add_name(cJSON *o, const char *field, kd3_view v)
{
	char safe[256];
	kd3_log_safe_name(v.p, v.len, safe);
	return cJSON_AddStringToObject(o, field, safe) != NULL;
}

static cJSON *line_new(kd3_transcript *t, const char *kind, uint64_t session)
{
	cJSON *o = cJSON_CreateObject();
	if (o && (!cJSON_AddStringToObject(o, "kind", kind) ||
	          !cJSON_AddNumberToObject(o, "t_us", (double)(mono_us() - t->start_us)) ||
	          (session && !cJSON_AddNumberToObject(o, "session", (double)session)))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Writes o as one line and deletes it. ok == 0 (a field could not be added) drops it. */
static void line_write(kd3_transcript *t, cJSON *o, int ok)
{
	char *s = ok && o ? cJSON_PrintUnformatted(o) : NULL;

	cJSON_Delete(o);
	pthread_mutex_lock(&t->lock);
	if (!s && !t->write_errno) {
		t->write_errno = ENOMEM;
		kd3_log_error("transcript %s: out of memory; no more lines written", t->path);
	} else if (s && !t->write_errno) {
		errno = 0;
		if (fputs(s, t->f) == EOF || fputc('\n', t->f) == EOF || fflush(t->f) != 0) {
			t->write_errno = errno ? errno : EIO;
			kd3_log_error("transcript %s: %s; no more lines written", t->path,
			              strerror(t->write_errno));
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (s) {
		kd3_wipe(s, strlen(s)); /* a keys line holds keys */
		free(s);
	}
}

/* ---- opening and closing ------------------------------------------------------------ */

/* The file may hold keys (--reveal-keys): owner-only, never through a symlink, and
 * only a regular file (not a FIFO someone else reads). */
static int open_private(const char *path, char *err, size_t cap)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);

	if (fd < 0) {
		snprintf(err, cap, "transcript %s: %s", path,
		         errno == ELOOP ? "is a symbolic link (refused)" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, cap, "transcript %s: not a regular file (refused)", path);
		goto fail;
	}
	if (fchmod(fd, 0600) != 0 || ftruncate(fd, 0) != 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
		snprintf(err, cap, "transcript %s: %s", path, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static void utc_now(char out[32])
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int kd3_transcript_open(kd3_transcript *t, const char *path, const char *program, int reveal_keys,
                        char *err, size_t cap)
{
	char when[32];
	int fd;

	memset(t, 0, sizeof(*t));
	kd3_json_hooks_init();
	if ((fd = open_private(path, err, cap)) < 0)
		return KD3_E_IO;
	if (!(t->f = fdopen(fd, "w"))) {
		snprintf(err, cap, "transcript %s: %s", path, strerror(errno));
		close(fd);
		return KD3_E_IO;
	}
	setvbuf(t->f, NULL, _IONBF, 0); /* no stdio buffer keeps a keys line after it is written */
	pthread_mutex_init(&t->lock, NULL);
	snprintf(t->path, sizeof(t->path), "%s", path);
	t->reveal_keys = reveal_keys ? 1 : 0;
	t->start_us = mono_us();
	if (t->reveal_keys)
		kd3_log_info("WARNING: --reveal-keys: session keys are written to %s; anyone "
		             "who reads it can decrypt these sessions. For teaching and "
		             "cross-checking only.",
		             path);
	utc_now(when);
	cJSON *o = line_new(t, "start", 0);
	int ok = o && cJSON_AddStringToObject(o, "program", program) &&
	         cJSON_AddStringToObject(o, "version", KD3_VERSION_STRING) &&
	         cJSON_AddNumberToObject(o, "format", KD3_TRANSCRIPT_FORMAT) &&
	         cJSON_AddStringToObject(o, "time", when) &&
	         cJSON_AddBoolToObject(o, "reveal_keys", t->reveal_keys);
	line_write(t, o, ok);
	if (t->write_errno) {
		snprintf(err, cap, "transcript %s: %s", path, strerror(t->write_errno));
		fclose(t->f);
		t->f = NULL;
		pthread_mutex_destroy(&t->lock);
		return KD3_E_IO;
	}
	return KD3_OK;
}

void kd3_transcript_close(kd3_transcript *t, int exit_code)
{
	if (!kd3_transcript_on(t))
		return;
	cJSON *o = line_new(t, "end", 0);
	line_write(t, o, o && cJSON_AddNumberToObject(o, "exit_code", exit_code));
	fclose(t->f);
	t->f = NULL;
	pthread_mutex_destroy(&t->lock);
}

/* ---- frames ------------------------------------------------------------------------- */

static int add_m1_fields(cJSON *o, const kd3_m1 *m)
{
	return cJSON_AddNumberToObject(o, "suite", m->suite) &&
	       cJSON_AddStringToObject(o, "suite_name", kd3_suite_name(m->suite)) &&
	       cJSON_AddNumberToObject(o, "flags", m->flags) && add_name(o, "id_i", m->id_i) &&
	       add_name(o, "id_r", m->id_r) && add_hex(o, "n_i", m->n_i, KD3_NONCE_LEN) &&
	       cJSON_AddNumberToObject(o, "kvno_i", m->kvno_i) &&
	       (!m->e_i || add_hex(o, "e_i", m->e_i, KD3_DH_LEN)) &&
	       add_hex(o, "auth_i", m->auth_i, KD3_MAC_LEN);
}

static int add_m2_fields(cJSON *o, const kd3_m2 *m)
{
	cJSON *m1 = cJSON_AddObjectToObject(o, "m1");
	return m1 && add_m1_fields(m1, &m->m1) && add_hex(o, "n_r", m->n_r, KD3_NONCE_LEN) &&
	       cJSON_AddNumberToObject(o, "kvno_r", m->kvno_r) &&
	       (!m->e_r || add_hex(o, "e_r", m->e_r, KD3_DH_LEN)) &&
	       add_hex(o, "auth_r", m->auth_r, KD3_MAC_LEN);
}

static int add_m3_fields(cJSON *o, const kd3_m3 *m)
{
	return add_hex(o, "n_r", m->n_r, KD3_NONCE_LEN) &&
	       cJSON_AddNumberToObject(o, "lifetime", m->lifetime) &&
	       add_hex(o, "blob_r", m->blob_r, KD3_BLOB_LEN) &&
	       add_hex(o, "blob_i", m->blob_i, KD3_BLOB_LEN);
}

static int add_m4_fields(cJSON *o, const kd3_m4 *m)
{
	return add_hex(o, "n_r", m->n_r, KD3_NONCE_LEN) &&
	       cJSON_AddNumberToObject(o, "kvno_r", m->kvno_r) &&
	       (!m->e_r || add_hex(o, "e_r", m->e_r, KD3_DH_LEN)) &&
	       cJSON_AddNumberToObject(o, "lifetime", m->lifetime) &&
	       add_hex(o, "blob_i", m->blob_i, KD3_BLOB_LEN) &&
	       add_hex(o, "confirm_r", m->confirm_r, KD3_MAC_LEN);
}

static int add_error_fields(cJSON *o, const kd3_error_msg *m)
{
	return cJSON_AddNumberToObject(o, "code", m->code) &&
	       cJSON_AddStringToObject(o, "code_name", kd3_err_wire_name(m->code)) &&
	       add_name(o, "text", m->text);
}

/* A record: its header fields; the inner type and key generation as the caller knows
 * them (the frame itself shows neither: both are under the AEAD). */
static int add_record_fields(cJSON *o, const kd3_record *m, const kd3_tframe *fr)
{
	return cJSON_AddNumberToObject(o, "seq", (double)m->seq) &&
	       cJSON_AddNumberToObject(o, "sealed_size", (double)m->sealed.len) &&
	       cJSON_AddNumberToObject(o, "payload_size",
	                               (double)(m->sealed.len - 1 - KD3_TAG_LEN)) &&
	       (fr->inner < 0 ||
	        cJSON_AddStringToObject(o, "inner", kd3_inner_name((uint8_t)fr->inner))) &&
	       (fr->generation < 0 ||
	        cJSON_AddNumberToObject(o, "key_generation", (double)fr->generation));
}

/* The decoded fields of a frame under "fields"; 0 with *malformed set when the body
 * does not decode. */
static int add_fields(cJSON *o, const kd3_frame *f, const kd3_tframe *fr, int *malformed)
{
	cJSON *fields = cJSON_AddObjectToObject(o, "fields");
	kd3_m1 m1;
	kd3_m2 m2;
	kd3_m3 m3;
	kd3_m4 m4;
	kd3_error_msg em;
	kd3_record rec;
	int ok = 0;

	if (!fields)
		return 0;
	*malformed = 1;
	if (f->type == KD3_T_M1 && kd3_m1_decode(f->body.p, f->body.len, &m1) == KD3_OK)
		*malformed = 0, ok = add_m1_fields(fields, &m1);
	else if (f->type == KD3_T_M2 && kd3_m2_decode(f->body.p, f->body.len, &m2) == KD3_OK)
		*malformed = 0, ok = add_m2_fields(fields, &m2);
	else if (f->type == KD3_T_M3 && kd3_m3_decode(f->body.p, f->body.len, &m3) == KD3_OK)
		*malformed = 0, ok = add_m3_fields(fields, &m3);
	else if (f->type == KD3_T_M4 &&
	         kd3_m4_decode(f->body.p, f->body.len, fr->fs, &m4) == KD3_OK)
		*malformed = 0, ok = add_m4_fields(fields, &m4);
	else if (f->type == KD3_T_ERROR && kd3_error_decode(f->body.p, f->body.len, &em) == KD3_OK)
		*malformed = 0, ok = add_error_fields(fields, &em);
	else if (f->type == KD3_T_RECORD &&
	         kd3_record_decode(fr->p, f->body.p, f->body.len, &rec) == KD3_OK)
		*malformed = 0, ok = add_record_fields(fields, &rec, fr);
	if (*malformed)
		cJSON_DeleteItemFromObject(o, "fields");
	return *malformed ? 1 : ok;
}

void kd3_transcript_frame(kd3_transcript *t, const kd3_tframe *fr)
{
	kd3_frame f;
	int malformed = 1;

	if (!kd3_transcript_on(t))
		return;
	cJSON *o = line_new(t, "frame", fr->session);
	int decoded = fr->p && kd3_frame_decode(fr->p, fr->len, &f) == KD3_OK;
	int ok = o && cJSON_AddStringToObject(o, "dir", fr->dir) &&
	         (!fr->address || cJSON_AddStringToObject(o, "address", fr->address)) &&
	         (!fr->transport || cJSON_AddStringToObject(o, "transport", fr->transport)) &&
	         cJSON_AddStringToObject(o, "type", decoded ? kd3_type_name(f.type) : "?") &&
	         cJSON_AddNumberToObject(o, "size", (double)fr->len) &&
	         add_hex(o, "hex", fr->p, fr->p ? fr->len : 0) &&
	         (!decoded || add_fields(o, &f, fr, &malformed)) &&
	         (!malformed || cJSON_AddTrueToObject(o, "malformed"));
	line_write(t, o, ok);
}

void kd3_transcript_frames_out(kd3_transcript *t, uint64_t session, const char *dir,
                               const uint8_t *p, size_t len, int fs, int last_inner,
                               uint32_t tx_generation)
{
	size_t off = 0;
	long updates = 0;

	if (!kd3_transcript_on(t))
		return;
	/* Each KEY_UPDATE record moved the sending key on by one after it was sealed: the
	 * first record went out under tx_generation minus the number of KEY_UPDATEs. */
	while (off < len) {
		long n = kd3_frame_size(p + off, len - off);
		if (n <= 0 || (size_t)n > len - off)
			break;
		int last = off + (size_t)n == len;
		if (p[off + 1] == KD3_T_RECORD &&
		    (last ? last_inner == KD3_R_KEY_UPDATE : last_inner >= 0))
			updates++;
		off += (size_t)n;
	}
	long generation = (long)tx_generation - updates;
	for (off = 0; off < len;) {
		long n = kd3_frame_size(p + off, len - off);
		kd3_tframe fr = {.session = session, .dir = dir, .p = p + off, .fs = fs};
		if (n <= 0 || (size_t)n > len - off) {
			fr.len = len - off, fr.inner = -1, fr.generation = -1;
			kd3_transcript_frame(t, &fr);
			return;
		}
		int last = off + (size_t)n == len;
		int record = p[off + 1] == KD3_T_RECORD;
		fr.len = (size_t)n;
		fr.inner =
		    !record ? -1 : (last ? last_inner : (last_inner >= 0 ? KD3_R_KEY_UPDATE : -1));
		fr.generation = record ? generation : -1;
		kd3_transcript_frame(t, &fr);
		if (record && fr.inner == KD3_R_KEY_UPDATE)
			generation++;
		off += (size_t)n;
	}
}

/* ---- sessions and keys -------------------------------------------------------------- */

/* One direction's key: traffic secret, the AEAD key and IV derived from it. */
static void keys_line(kd3_transcript *t, uint64_t session, const kd3_tkeys *k)
{
	cJSON *o = line_new(t, "keys", session);
	int ok = o && k->ts && k->key && k->iv &&
	         cJSON_AddStringToObject(o, "direction", k->direction) &&
	         cJSON_AddNumberToObject(o, "generation", k->generation) &&
	         add_hex(o, "traffic_secret", k->ts, KD3_KEY_LEN) &&
	         add_hex(o, "key", k->key, KD3_KEY_LEN) && add_hex(o, "iv", k->iv, KD3_IV_LEN);
	line_write(t, o, ok);
}

void kd3_transcript_session(kd3_transcript *t, uint64_t session, const kd3_tsession *ts)
{
	if (!kd3_transcript_on(t))
		return;
	cJSON *o = line_new(t, "session", session);
	int ok = o && cJSON_AddStringToObject(o, "role", ts->role) &&
	         cJSON_AddStringToObject(o, "self", ts->self) &&
	         cJSON_AddStringToObject(o, "peer", ts->peer) &&
	         (!ts->address || cJSON_AddStringToObject(o, "address", ts->address)) &&
	         cJSON_AddStringToObject(o, "suite", ts->suite) &&
	         cJSON_AddBoolToObject(o, "forward_secrecy", ts->fs) &&
	         cJSON_AddNumberToObject(o, "kvno", ts->kvno) &&
	         cJSON_AddNumberToObject(o, "lifetime_s", ts->lifetime_s) &&
	         add_hex(o, "th", ts->th, KD3_HASH_LEN) &&
	         cJSON_AddNumberToObject(o, "rekey_after_messages", (double)ts->rekey_records) &&
	         cJSON_AddNumberToObject(o, "rekey_after_bytes", (double)ts->rekey_bytes) &&
	         cJSON_AddNumberToObject(o, "rekey_after_seconds", (double)ts->rekey_seconds);
	line_write(t, o, ok);
	if (!t->reveal_keys)
		return;
	if (ts->sk) {
		o = line_new(t, "keys", session);
		ok = o && add_hex(o, "sk", ts->sk, KD3_KEY_LEN) &&
		     (!ts->dh || add_hex(o, "x25519_shared", ts->dh, KD3_DH_LEN));
		line_write(t, o, ok);
	}
	keys_line(t, session, &ts->tx);
	keys_line(t, session, &ts->rx);
}

void kd3_transcript_key_update_keys(kd3_transcript *t, uint64_t session, const kd3_tkeys *k)
{
	if (!kd3_transcript_on(t))
		return;
	cJSON *o = line_new(t, "key_update", session);
	line_write(t, o,
	           o && cJSON_AddStringToObject(o, "direction", k->direction) &&
	               cJSON_AddNumberToObject(o, "generation", k->generation));
	if (t->reveal_keys)
		keys_line(t, session, k);
}

/* ---- from a kd3_peer (the responder) ------------------------------------------------ */

typedef struct peer_keys {
	kd3_tkeys k;
	uint8_t key[KD3_KEY_LEN], iv[KD3_IV_LEN];
} peer_keys;

static void peer_keys_of(kd3_peer *p, const char *direction, peer_keys *out)
{
	const kd3_direction *d = strcmp(direction, "sent") == 0 ? &p->ch.tx : &p->ch.rx;
	int ok = kd3_traffic_key_iv(p->crypto, d->ts, out->key, out->iv) == KD3_OK;

	out->k = (kd3_tkeys){.direction = direction,
	                     .generation = d->generation,
	                     .ts = d->ts,
	                     .key = ok ? out->key : NULL,
	                     .iv = ok ? out->iv : NULL};
}

void kd3_transcript_established(kd3_transcript *t, uint64_t session, kd3_peer *p,
                                const char *address)
{
	char peer[256];
	peer_keys tx, rx;

	if (!kd3_transcript_on(t))
		return;
	kd3_log_safe_name((const uint8_t *)p->peer_id, strlen(p->peer_id), peer);
	peer_keys_of(p, "sent", &tx);
	peer_keys_of(p, "received", &rx);
	kd3_tsession ts = {
	    .role = p->cfg.role == KD3_ROLE_INITIATOR ? "initiator" : "responder",
	    .self = p->cfg.self,
	    .peer = peer,
	    .address = address,
	    .suite = kd3_suite_name(p->suite),
	    .fs = p->fs,
	    .kvno = p->kvno_used,
	    .lifetime_s = p->lifetime,
	    .th = p->th,
	    .rekey_records = p->cfg.rekey_records,
	    .rekey_bytes = p->cfg.rekey_bytes,
	    .rekey_seconds = p->cfg.rekey_ms / 1000u,
	    .sk = p->revealed.have ? p->revealed.sk : NULL,
	    .dh = p->revealed.have && p->revealed.have_dh ? p->revealed.dh : NULL,
	    .tx = tx.k,
	    .rx = rx.k,
	};
	kd3_transcript_session(t, session, &ts);
	kd3_wipe(&tx, sizeof(tx));
	kd3_wipe(&rx, sizeof(rx));
	kd3_peer_forget_revealed(p);
}

void kd3_transcript_key_update(kd3_transcript *t, uint64_t session, kd3_peer *p,
                               const char *direction)
{
	peer_keys k;

	if (!kd3_transcript_on(t))
		return;
	peer_keys_of(p, direction, &k);
	kd3_transcript_key_update_keys(t, session, &k.k);
	kd3_wipe(&k, sizeof(k));
}

void kd3_transcript_close_event(kd3_transcript *t, uint64_t session, const char *by,
                                unsigned reason, const char *text)
{
	if (!kd3_transcript_on(t))
		return;
	cJSON *o = line_new(t, "close", session);
	line_write(t, o,
	           o && cJSON_AddStringToObject(o, "by", by) &&
	               cJSON_AddNumberToObject(o, "reason", reason) &&
	               cJSON_AddStringToObject(o, "text", text ? text : ""));
}

void kd3_transcript_error(kd3_transcript *t, uint64_t session, const char *code, const char *text)
{
	if (!kd3_transcript_on(t))
		return;
	cJSON *o = line_new(t, "error", session);
	line_write(t, o,
	           o && cJSON_AddStringToObject(o, "code", code) &&
	               cJSON_AddStringToObject(o, "message", text ? text : ""));
}

void kd3_transcript_kdc(kd3_transcript *t, uint64_t request, const char *outcome, const uint8_t *th,
                        const uint8_t *sk)
{
	if (!kd3_transcript_on(t))
		return;
	cJSON *o = line_new(t, "kdc", request);
	line_write(t, o,
	           o && cJSON_AddStringToObject(o, "outcome", outcome) &&
	               (!th || add_hex(o, "th", th, KD3_HASH_LEN)) &&
	               (!sk || !t->reveal_keys || add_hex(o, "sk", sk, KD3_KEY_LEN)));
}
