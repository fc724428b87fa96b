/* initiator chat (chat.h): the session's events as lines on the screen, and the lines
 * typed as messages or commands. The terminal itself is screen.c. */
#include "chat.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "screen.h"
#include "wire.h"

/* Keys handled per wake-up of the session loop, so that a long paste cannot keep
 * the socket waiting. */
#define CHAT_KEYS_PER_WAKE 512
/* A principal name as shown: printable ASCII, \xNN escapes included. */
#define CHAT_NAME_MAX (4 * KD3_NAME_MAX + 1)
#define CHAT_QUIT     "/quit"

static struct {
	const ini_settings *settings;
	char self[CHAT_NAME_MAX];
	char peer[CHAT_NAME_MAX];
	uint8_t line[KD3_PAYLOAD_MAX + 1]; /* the line being handled, and a NUL */
} chat;

/* ✓ and →, or ASCII on a terminal without UTF-8. */
static const char *mark_verified(void)
{
	return ini_screen_utf8() ? "\xe2\x9c\x93" : "ok";
}

static const char *mark_sent(void)
{
	return ini_screen_utf8() ? "\xe2\x86\x92" : "->";
}

/* ---- lines on the screen ----------------------------------------------------------- */

/* One "HH:MM:SS -- ..." line; everything in it is ours (names already made safe). */
static void __attribute__((format(printf, 1, 0))) put_vnotice(const char *fmt, va_list ap)
{
	char text[2 * CHAT_NAME_MAX + 256];

	vsnprintf(text, sizeof(text), fmt, ap);
	ini_screen_time();
	ini_screen_puts("-- ");
	ini_screen_puts(text);
	ini_screen_newline();
}

static void __attribute__((format(printf, 1, 2))) put_notice(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	put_vnotice(fmt, ap);
	va_end(ap);
}

/* A notice on its own, above the line being typed. */
static int __attribute__((format(printf, 1, 2))) notice(const char *fmt, ...)
{
	va_list ap;

	ini_screen_begin();
	va_start(ap, fmt);
	put_vnotice(fmt, ap);
	va_end(ap);
	return ini_screen_end();
}

/* "HH:MM:SS bob ✓ hello": a message, its text escaped for the terminal. */
static int show_message(const char *who, const char *mark, const uint8_t *p, size_t len)
{
	ini_screen_begin();
	ini_screen_time();
	ini_screen_printf("%s %s ", who, mark);
	ini_screen_text(p, len);
	ini_screen_newline();
	return ini_screen_end();
}

/* ---- events ------------------------------------------------------------------------ */

static int on_established(const kd3_event *ev)
{
	ini_screen_safe_name(ev->peer, chat.peer, sizeof(chat.peer));
	ini_screen_begin();
	put_notice("session with %s established: %s, forward secrecy %s, key lifetime %u s",
	           chat.peer, ev->suite, ev->forward_secrecy ? "on" : "off", ev->lifetime_s);
	put_notice("each line you type is a message to %s; /help lists the commands", chat.peer);
	return ini_screen_end();
}

static int on_close(const kd3_event *ev)
{
	const char *who = ev->by && strcmp(ev->by, "peer") == 0 ? chat.peer : chat.self;

	if (ev->reason == KD3_CLOSE_NORMAL)
		return notice("%s closed the session", who);
	ini_screen_begin();
	ini_screen_time();
	ini_screen_printf("-- %s closed the session: reason %u, ", who, ev->reason);
	if (ev->text)
		ini_screen_text((const uint8_t *)ev->text, strlen(ev->text));
	ini_screen_newline();
	return ini_screen_end();
}

static int on_event(void *ctx, const kd3_event *ev, uint64_t t_us)
{
	int received = ev->direction && strcmp(ev->direction, "received") == 0;

	(void)ctx;
	(void)t_us;
	switch (ev->kind) {
	case KD3_EVT_HANDSHAKE:
		if (ev->step && strcmp(ev->step, "M1 sent") == 0)
			return notice("connected; key exchange with %s", chat.peer);
		return KD3_OK;
	case KD3_EVT_ESTABLISHED:
		return on_established(ev);
	case KD3_EVT_MESSAGE: /* our own are shown by on_line, which has their text */
		return received ? show_message(chat.peer, mark_verified(), ev->data, ev->size)
		                : KD3_OK;
	case KD3_EVT_KEY_UPDATE:
		return notice("%s moved to key generation %u", received ? chat.peer : chat.self,
		              ev->generation);
	case KD3_EVT_CLOSE:
		return on_close(ev);
	case KD3_EVT_ERROR: /* main reports the failure on stderr, once the screen is gone */
		return KD3_OK;
	}
	return KD3_OK;
}

/* ---- commands ---------------------------------------------------------------------- */

static int word_is(const uint8_t *w, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(w, s, n) == 0;
}

static int is_quit_word(const uint8_t *w, size_t n)
{
	const kd3_conf_list *q = &chat.settings->quit_words;

	if (word_is(w, n, CHAT_QUIT))
		return 1;
	for (size_t i = 0; i < q->n; i++)
		if (word_is(w, n, q->item[i]))
			return 1;
	return 0;
}

static const char *or_off(uint64_t v)
{
	return v ? "" : " (off)";
}

static int show_status(const ini_sio *s)
{
	kd3_stats st;
	uint64_t now = kd3_now_ms();

	if (kd3_session_stats(s->session, &st) != KD3_OK)
		return notice("the session is over");
	uint64_t left_s = st.expires_ms > now ? (st.expires_ms - now) / 1000 : 0;
	ini_screen_begin();
	put_notice("session with %s: %s, forward secrecy %s", chat.peer,
	           kd3_suite_name((uint8_t)kd3_session_suite(s->session)),
	           kd3_session_forward_secret(s->session) ? "on" : "off");
	put_notice("sent:     %llu records, %llu bytes, key generation %u (%llu records under it)",
	           (unsigned long long)st.sent_records, (unsigned long long)st.sent_bytes,
	           st.sent_generation, (unsigned long long)st.sent_key_records);
	put_notice("received: %llu records, %llu bytes, key generation %u (%llu records under it)",
	           (unsigned long long)st.received_records, (unsigned long long)st.received_bytes,
	           st.received_generation, (unsigned long long)st.received_key_records);
	put_notice("key updates: rekey_after_messages = %llu, rekey_after_bytes = %llu%s, "
	           "rekey_after_seconds = %llu%s",
	           (unsigned long long)s->rekey_records, (unsigned long long)s->rekey_bytes,
	           or_off(s->rekey_bytes), (unsigned long long)s->rekey_seconds,
	           or_off(s->rekey_seconds));
	put_notice("key lifetime %u s, %llu s left", st.lifetime_s, (unsigned long long)left_s);
	return ini_screen_end();
}

static int show_help(void)
{
	const kd3_conf_list *q = &chat.settings->quit_words;

	ini_screen_begin();
	put_notice("/status   suite, records and bytes each way, key generations, time left");
	put_notice("/rekey    move our sending key to its next generation now (KEY_UPDATE)");
	put_notice("/help     this text");
	ini_screen_time();
	ini_screen_puts("-- /quit     close the session (CLOSE both ways); so do Ctrl-D on an "
	                "empty line");
	for (size_t i = 0; i < q->n; i++) {
		ini_screen_puts(i == 0 ? " and the lines: " : ", ");
		ini_screen_text((const uint8_t *)q->item[i], strlen(q->item[i]));
	}
	ini_screen_newline();
	put_notice("//text    sends \"/text\"; any other line starting with / is not sent");
	put_notice("each line is one message of at most %d bytes; Up/Down recall earlier lines "
	           "(in memory only, wiped at exit); Ctrl-C clears the line",
	           KD3_PAYLOAD_MAX);
	put_notice("%s: verified, every message shown passed authentication under the session key "
	           "(one that fails ends the session); control characters and invalid UTF-8 in "
	           "messages are shown as \\xNN",
	           mark_verified());
	return ini_screen_end();
}

static int unknown_command(const uint8_t *w, size_t n)
{
	ini_screen_begin();
	ini_screen_time();
	ini_screen_puts("-- unknown command ");
	ini_screen_text(w, n);
	ini_screen_puts(", not sent (/help lists the commands; //text sends /text)");
	ini_screen_newline();
	return ini_screen_end();
}

static int command(ini_sio *s, const uint8_t *w, size_t n)
{
	if (word_is(w, n, "/rekey"))
		return ini_sio_rekey(s); /* its key_update event shows it */
	if (word_is(w, n, "/status"))
		return show_status(s);
	if (word_is(w, n, "/help"))
		return show_help();
	return unknown_command(w, n);
}

/* ---- lines typed ------------------------------------------------------------------- */

static int is_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* The line typed (len bytes in chat.line): a quit word, a command, or a message. */
static int on_line(ini_sio *s, size_t len)
{
	const uint8_t *p = chat.line, *w = chat.line;
	size_t n = len;
	int ret;

	if (len > KD3_PAYLOAD_MAX)
		return notice("line of %zu bytes not sent: one message holds at most %d bytes", len,
		              KD3_PAYLOAD_MAX);
	if (len == 0)
		return KD3_OK;
	while (n > 0 && is_blank(w[0])) {
		w++;
		n--;
	}
	while (n > 0 && is_blank(w[n - 1]))
		n--;
	if (is_quit_word(w, n))
		return ini_sio_close(s); /* its close event shows it */
	if (p[0] == '/' && !(len > 1 && p[1] == '/'))
		return command(s, w, n);
	if (p[0] == '/') { /* "//text" sends "/text" */
		p++;
		len--;
	}
	ret = ini_sio_send(s, p, len);
	return ret != KD3_OK ? ret : show_message(chat.self, mark_sent(), p, len);
}

/* The terminal is readable: its keys, a bounded number per wake-up. */
static int on_readable(ini_sio *s, void *ctx)
{
	(void)ctx;
	for (int i = 0; i < CHAT_KEYS_PER_WAKE; i++) {
		size_t len = 0;
		int ret = KD3_OK;
		ini_key key = ini_screen_key(chat.line, sizeof(chat.line), &len);

		if (key == INI_KEY_EMPTY)
			return KD3_OK;
		if (key == INI_KEY_EOF)
			return ini_sio_close(s);
		if (key == INI_KEY_LINE) {
			ret = on_line(s, len);
			kd3_wipe(chat.line, sizeof(chat.line));
		}
		if (ret != KD3_OK || s->closed_sent)
			return ret; /* after our CLOSE the loop reads no more keys */
	}
	return KD3_OK;
}

/* ---- entry points ------------------------------------------------------------------ */

int ini_chat_wanted(const ini_settings *s)
{
	return !s->batch && !s->json && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
}

void ini_chat_events(kd3_events *events, const ini_settings *s)
{
	chat.settings = s;
	ini_screen_safe_name(s->peer, chat.peer, sizeof(chat.peer));
	ini_screen_safe_name(s->name, chat.self, sizeof(chat.self));
	kd3_events_init_callback(events, on_event, NULL);
}

int ini_chat_run(ini_sio *sio)
{
	char prompt[CHAT_NAME_MAX + 2];
	ini_sio_input in = {.fd = STDIN_FILENO, .on_readable = on_readable, .ctx = NULL};
	int ret;

	ini_screen_safe_name(sio->self, chat.self, sizeof(chat.self));
	snprintf(prompt, sizeof(prompt), "%s> ", chat.self);
	ret = ini_screen_start(prompt);
	if (ret != KD3_OK) {
		kd3_log_error("cannot start the chat screen (%s): reading lines instead",
		              kd3_strerror(ret));
		return ini_sio_run(sio, STDIN_FILENO, stdout);
	}
	ret = ini_sio_run_input(sio, &in, stdout);
	ini_screen_stop();
	kd3_wipe(chat.line, sizeof(chat.line));
	return ret;
}
