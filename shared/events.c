#include "events.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <mbedtls/base64.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "err.h"

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void kd3_events_init(kd3_events *e, FILE *out, kd3_events_mode mode)
{
	e->out = out;
	e->mode = mode;
	e->start_us = mono_us();
	e->fn = NULL;
	e->fn_ctx = NULL;
}

void kd3_events_init_callback(kd3_events *e, kd3_events_fn fn, void *ctx)
{
	kd3_events_init(e, NULL, KD3_EVENTS_CALLBACK);
	e->fn = fn;
	e->fn_ctx = ctx;
}

/* ---- names and encodings ------------------------------------------------------------ */

const char *kd3_events_err_name(int err)
{
	static const char *const protocol[] = {
	    "UNEXPECTED", "SAME_PRINCIPAL", "BLOB_AUTH",   "CONFIRM",   "NONCE",
	    "RECORD_SEQ", "RECORD_AUTH",    "RECORD_TYPE", "TRUNCATED", "PEER_ERROR",
	    "EXPIRED",    "CLOSED",         "TOO_BIG",     "WEAK_KEY",
	};
	static const char *const local[] = {
	    "NO_SPACE",      "CRYPTO", "RNG",   "NOMEM",  "IO",        "CONFIG", "KEYFILE",
	    "KEYFILE_PERMS", "DB",     "USAGE", "EXISTS", "NOT_FOUND", "NO_KDC",
	};
	const size_t nprotocol = sizeof(protocol) / sizeof(protocol[0]);
	const size_t nlocal = sizeof(local) / sizeof(local[0]);

	if (err == KD3_OK)
		return "OK";
	if (kd3_err_is_wire(err))
		return kd3_err_wire_name(err);
	if (err >= KD3_E_UNEXPECTED && (size_t)(err - KD3_E_UNEXPECTED) < nprotocol)
		return protocol[err - KD3_E_UNEXPECTED];
	if (err >= KD3_E_NO_SPACE && (size_t)(err - KD3_E_NO_SPACE) < nlocal)
		return local[err - KD3_E_NO_SPACE];
	return "UNKNOWN";
}

/* Length of the UTF-8 sequence starting at p[0..left), 0 when it is not valid. */
static size_t utf8_seq(const uint8_t *p, size_t left)
{
	uint8_t c = p[0];
	size_t n;
	uint32_t min, cp;

	if (c < 0x80)
		return c ? 1 : 0; /* NUL: not representable in a C string */
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2, min = 0x80, cp = c & 0x1fu;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3, min = 0x800, cp = c & 0x0fu;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4, min = 0x10000, cp = c & 0x07u;
	} else {
		return 0;
	}
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int kd3_events_utf8_ok(const uint8_t *p, size_t len)
{
	size_t off = 0;

	while (off < len) {
		size_t n = utf8_seq(p + off, len - off);
		if (n == 0)
			return 0;
		off += n;
	}
	return 1;
}

/* p[len] as a NUL-terminated string (text) or standard base64 (binary); free() it. */
static char *payload_string(const uint8_t *p, size_t len, int as_text)
{
	size_t olen = 0;
	size_t cap = as_text ? len + 1 : 4 * ((len + 2) / 3) + 1;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	if (as_text) {
		if (len)
			memcpy(s, p, len);
		s[len] = '\0';
		return s;
	}
	if (mbedtls_base64_encode((unsigned char *)s, cap, &olen, p, len) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* ---- JSON --------------------------------------------------------------------------- */

static const char *kind_name(kd3_event_kind k)
{
	switch (k) {
	case KD3_EVT_HANDSHAKE:
		return "handshake";
	case KD3_EVT_ESTABLISHED:
		return "established";
	case KD3_EVT_MESSAGE:
		return "message";
	case KD3_EVT_KEY_UPDATE:
		return "key_update";
	case KD3_EVT_CLOSE:
		return "close";
	case KD3_EVT_ERROR:
		return "error";
	}
	return "unknown";
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* A message: its size, and a received payload as text or base64. */
static int add_message(cJSON *o, const kd3_event *ev)
{
	int ok = cJSON_AddStringToObject(o, "direction", str_or_empty(ev->direction)) &&
	         cJSON_AddNumberToObject(o, "size", (double)ev->size);
	if (!ok || !ev->data)
		return ok;
	int text = kd3_events_utf8_ok(ev->data, ev->size);
	char *s = payload_string(ev->data, ev->size, text);
	if (!s)
		return 0;
	ok = cJSON_AddStringToObject(o, text ? "data" : "data_base64", s) != NULL;
	kd3_wipe(s, strlen(s)); /* a plaintext copy; cJSON holds its own until the line is out */
	free(s);
	return ok;
}

static int add_fields(cJSON *o, const kd3_event *ev)
{
	switch (ev->kind) {
	case KD3_EVT_HANDSHAKE:
		return cJSON_AddStringToObject(o, "step", str_or_empty(ev->step)) != NULL;
	case KD3_EVT_ESTABLISHED:
		return cJSON_AddStringToObject(o, "peer", str_or_empty(ev->peer)) &&
		       cJSON_AddStringToObject(o, "suite", str_or_empty(ev->suite)) &&
		       cJSON_AddBoolToObject(o, "forward_secrecy", ev->forward_secrecy) &&
		       cJSON_AddNumberToObject(o, "lifetime_s", ev->lifetime_s);
	case KD3_EVT_MESSAGE:
		return add_message(o, ev);
	case KD3_EVT_KEY_UPDATE:
		return cJSON_AddStringToObject(o, "direction", str_or_empty(ev->direction)) &&
		       cJSON_AddNumberToObject(o, "generation", ev->generation);
	case KD3_EVT_CLOSE:
		return cJSON_AddStringToObject(o, "by", str_or_empty(ev->by)) &&
		       cJSON_AddNumberToObject(o, "reason", ev->reason) &&
		       cJSON_AddStringToObject(o, "text", str_or_empty(ev->text));
	case KD3_EVT_ERROR:
		return cJSON_AddStringToObject(o, "code", str_or_empty(ev->code)) &&
		       cJSON_AddStringToObject(o, "message", str_or_empty(ev->text)) &&
		       (ev->exit_code < 0 || cJSON_AddNumberToObject(o, "exit", ev->exit_code));
	}
	return 0;
}

/* cJSON copies every string it is given (a received plaintext too) and frees the
 * copies in cJSON_Delete: make those frees wipe first. */
static void wiping_free(void *p)
{
	if (p)
		kd3_wipe(p, malloc_usable_size(p));
	free(p);
}

static void json_hooks_install(void)
{
	cJSON_Hooks hooks = {.malloc_fn = malloc, .free_fn = wiping_free};
	cJSON_InitHooks(&hooks);
}

void kd3_json_hooks_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, json_hooks_install);
}

char *kd3_event_json(const kd3_event *ev, uint64_t t_us)
{
	char *line = NULL;
	kd3_json_hooks_init();
	cJSON *o = cJSON_CreateObject();

	if (o && cJSON_AddStringToObject(o, "event", kind_name(ev->kind)) &&
	    cJSON_AddNumberToObject(o, "t_us", (double)t_us) &&
	    (!ev->session || cJSON_AddNumberToObject(o, "session", (double)ev->session)) &&
	    add_fields(o, ev))
		line = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return line;
}

/* ---- emitting ----------------------------------------------------------------------- */

static int write_line(FILE *out, const void *p, size_t len)
{
	errno = 0;
	if ((len && fwrite(p, 1, len, out) != len) || fputc('\n', out) == EOF || fflush(out) != 0) {
		if (!errno)
			errno = EIO;
		return KD3_E_IO;
	}
	return KD3_OK;
}

int kd3_events_emit(kd3_events *e, const kd3_event *ev)
{
	if (e->mode == KD3_EVENTS_CALLBACK)
		return e->fn(e->fn_ctx, ev, mono_us() - e->start_us);
	if (e->mode == KD3_EVENTS_PLAIN) {
		if (ev->kind != KD3_EVT_MESSAGE || !ev->data)
			return KD3_OK; /* plain output is the received messages only */
		return write_line(e->out, ev->data, ev->size);
	}
	char *line = kd3_event_json(ev, mono_us() - e->start_us);
	if (!line)
		return KD3_E_NOMEM;
	size_t len = strlen(line);
	int ret = write_line(e->out, line, len);
	kd3_wipe(line, len); /* it may hold a received plaintext */
	free(line);
	return ret;
}
