/* initiator chat: the interactive front end, used when stdin and stdout are a
 * terminal. A line editor (libedit, history in memory only) at the bottom; messages,
 * key updates and closes as lines above it, each with the local time; commands
 * /status, /rekey, /help and /quit (and Ctrl-D, and the configured quit words).
 *
 * Everything received is untrusted: a payload reaches the terminal only as printable
 * text (control bytes, invalid UTF-8, C1 and bidirectional controls as \xNN), so a
 * peer cannot drive the terminal with escape sequences.
 *
 * Use: ini_chat_events() before the handshake (its sink prints the status line when
 * the session is established), then ini_chat_run() instead of ini_sio_run(). */
#ifndef KD3_INITIATOR_CHAT_H
#define KD3_INITIATOR_CHAT_H

#include "events.h"
#include "options.h"
#include "sio.h"

/* 1 when the chat is the mode: stdin and stdout are terminals, and neither --batch
 * nor --json was given. */
int ini_chat_wanted(const ini_settings *s);

/* Makes events the chat screen's sink. s must outlive the session. */
void ini_chat_events(kd3_events *events, const ini_settings *s);

/* The established session as a chat, until both sides closed (KD3_OK) or a failure
 * (its kd3_err). The terminal is given back as it was on every way out, including a
 * fatal signal while the chat runs. */
int ini_chat_run(ini_sio *sio);

#endif
