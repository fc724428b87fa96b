/* initiator chat screen: the terminal under the chat (chat.h).
 *
 * A libedit line editor owns the bottom of the screen (the prompt and the line being
 * typed); lines are printed above it without disturbing what is being typed. While
 * the editor runs the terminal is in raw mode without signal keys (Ctrl-C clears
 * the line, Ctrl-Z and Ctrl-\ do nothing); ini_screen_stop() and a fatal signal give
 * the terminal back as it was. Before ini_screen_start() and after ini_screen_stop()
 * the same output calls simply print lines.
 *
 * Output of one or more lines:
 *   ini_screen_begin(); ini_screen_time(); ini_screen_puts("-- hi"); ini_screen_newline();
 *   ret = ini_screen_end();
 * Text from the network goes through ini_screen_text() (or ini_screen_safe_name()),
 * never through the others. */
#ifndef KD3_INITIATOR_SCREEN_H
#define KD3_INITIATOR_SCREEN_H

#include <stddef.h>
#include <stdint.h>

/* Starts the editor with this prompt (printable ASCII). KD3_OK, or KD3_E_IO /
 * KD3_E_NOMEM with the terminal left as it was. */
int ini_screen_start(const char *prompt);
/* Clears the line being typed, wipes what we can reach of it and of the history,
 * and gives the terminal back (input typed meanwhile is discarded). Idempotent. */
void ini_screen_stop(void);

/* 1 when the terminal takes UTF-8 (the locale's codeset). */
int ini_screen_utf8(void);

typedef enum ini_key {
	INI_KEY_NONE,  /* a key was handled; no line yet */
	INI_KEY_LINE,  /* Enter: a line, copied out; the editor shows a fresh prompt */
	INI_KEY_EOF,   /* Ctrl-D on an empty line, or the terminal went away */
	INI_KEY_EMPTY, /* nothing to read now */
} ini_key;

/* Reads one key if the terminal has one (never waits for one). On INI_KEY_LINE
 * *len is the line's length without its newline, and line[] holds it (and a NUL)
 * when *len < cap; a longer line is only measured. Lines go into the history. */
ini_key ini_screen_key(uint8_t *line, size_t cap, size_t *len);

/* Output. begin: go above the line being typed; end: draw it again and flush,
 * KD3_E_IO (errno set) when the terminal could not be written. */
void ini_screen_begin(void);
void ini_screen_time(void); /* "HH:MM:SS " in local time */
void ini_screen_puts(const char *s);
void ini_screen_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Untrusted bytes: printable ASCII and (on a UTF-8 terminal) valid UTF-8 as they
 * are; control bytes, DEL, invalid UTF-8, C1 and bidirectional controls as \xNN. */
void ini_screen_text(const uint8_t *p, size_t len);
void ini_screen_newline(void);
int ini_screen_end(void);

/* An untrusted name as printable ASCII (anything else as \xNN), cut to fit out. */
void ini_screen_safe_name(const char *name, char *out, size_t cap);

#endif
