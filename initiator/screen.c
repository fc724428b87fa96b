/* initiator chat screen (screen.h): libedit's own API (histedit.h) in unbuffered
 * mode, one key per el_wgets() call, driven by the session loop when the terminal is
 * readable; and lines printed above the line being typed.
 *
 * Printing above: libedit tells where the cursor is in the line (el_wline) but not
 * on which screen row, so we lay the prompt and the line out as its refresh.c does
 * (wrapping at the terminal's width, tabs, ^X for control characters, wide
 * characters not split), move up to the prompt's row, clear to the end of the screen,
 * print, and have EL_REFRESH draw the prompt and the line again below.
 *
 * Not the readline compatibility layer: in this libedit, rl_redisplay() pushes a ^R
 * key into the input, rl_replace_line() cannot empty a line, rl_point is stale after
 * a line is cut, and the callback handler has to be installed again after each line. */
#include "screen.h"

#include <errno.h>
#include <histedit.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>
#include <wctype.h>

#include "crypto.h"
#include "err.h"

/* Lines kept for Up/Down, in memory only. */
#define SCREEN_HISTORY_MAX 200
#define SCREEN_PROMPT_MAX  1100
/* The longest wait for the next byte of a key already begun (see read_char). */
#define SCREEN_SEQ_WAIT_MS 250

static struct {
	EditLine *el;
	History *hist;
	int active; /* the editor owns the terminal (raw mode, prompt shown) */
	int utf8;   /* the terminal takes UTF-8 */
	char prompt[SCREEN_PROMPT_MAX];
	int prompt_width; /* the prompt is printable ASCII: one column per byte */
} scr;

/* The terminal as it was, for ini_screen_stop and for a fatal signal's handler. */
static struct termios saved_tty;
static volatile sig_atomic_t have_saved_tty;
static volatile sig_atomic_t resized;

static const int fatal_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM};
#define SCREEN_NFATAL (sizeof(fatal_signals) / sizeof(fatal_signals[0]))
static struct sigaction old_fatal[SCREEN_NFATAL];
static int fatal_installed[SCREEN_NFATAL];
static struct sigaction old_winch;
static int winch_installed;

/* ---- untrusted text ------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence of 2 to 4 bytes at p (no overlong forms,
 * surrogates or code points above U+10FFFF), else 0. *cp gets its code point. */
static size_t utf8_seq(const uint8_t *p, size_t left, uint32_t *cp)
{
	uint8_t lo = 0x80, hi = 0xbf; /* bounds of the second byte */
	size_t n;
	uint32_t c;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		c = p[0] & 0x1fu;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		c = p[0] & 0x0fu;
		lo = p[0] == 0xe0 ? 0xa0 : lo;
		hi = p[0] == 0xed ? 0x9f : hi;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		c = p[0] & 0x07u;
		lo = p[0] == 0xf0 ? 0x90 : lo;
		hi = p[0] == 0xf4 ? 0x8f : hi;
	} else {
		return 0;
	}
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3fu);
	}
	*cp = c;
	return n;
}

/* Valid code points that still must not reach the terminal as they are: the C1
 * controls (some terminals act on them, U+009B is a CSI) and the bidirectional
 * controls (they reorder what is shown, so a line could show other text). */
static int cp_hidden(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* How many bytes at p pass to the terminal as they are; 0: escape p[0]. */
static size_t safe_len(const uint8_t *p, size_t left, int utf8)
{
	uint32_t cp = 0;
	size_t n;

	if (p[0] >= 0x20 && p[0] < 0x7f)
		return 1;
	n = utf8 ? utf8_seq(p, left, &cp) : 0;
	return n && !cp_hidden(cp) ? n : 0;
}

void ini_screen_text(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t start = i, n;
		while (i < len && (n = safe_len(p + i, len - i, scr.utf8)) > 0)
			i += n;
		if (i > start)
			fwrite(p + start, 1, i - start, stdout);
		if (i < len)
			printf("\\x%02x", p[i++]);
	}
}

void ini_screen_safe_name(const char *name, char *out, size_t cap)
{
	size_t o = 0;

	if (cap == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)name; *p && o + 5 <= cap; p++) {
		if (*p >= 0x20 && *p < 0x7f)
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
	}
	out[o] = '\0';
}

int ini_screen_utf8(void)
{
	return scr.utf8;
}

/* ---- where the cursor is ---------------------------------------------------------- */

/* A position in the input area, laid out as libedit's refresh.c lays it out. */
typedef struct layout {
	int h, v;       /* column, and row counted from the prompt's */
	int cols, rows; /* the terminal's size as libedit knows it */
} layout;

/* re_nextline: past the screen's last row libedit scrolls its picture instead. */
static void lay_nextline(layout *l)
{
	l->h = 0;
	if (l->v + 1 < l->rows)
		l->v++;
}

/* re_putc: w columns; a wide character does not straddle the right margin. */
static void lay_put(layout *l, int w)
{
	if (w > 1 && l->h + w > l->cols)
		lay_nextline(l);
	l->h += w;
	if (l->h >= l->cols)
		lay_nextline(l);
}

/* re_addc: one character of the line as drawn. */
static void lay_char(layout *l, wchar_t c)
{
	if (c == L'\t') {
		do
			lay_put(l, 1);
		while (l->h & 7);
	} else if (c == L'\n') {
		lay_nextline(l);
	} else if (c < 0x100 && iswcntrl((wint_t)c)) {
		lay_put(l, 1); /* ^X */
		lay_put(l, 1);
	} else if (iswprint((wint_t)c)) {
		int w = wcwidth(c);
		lay_put(l, w < 0 ? 0 : w);
	} else {
		for (int i = c > 0xffff ? 8 : 7; i > 0; i--) /* \U+XXXX */
			lay_put(l, 1);
	}
}

/* The rows the prompt and the line take: returns the last one's number (0: the
 * prompt's), and *cursor_row the cursor's. Without_newline leaves out the '\n' that
 * ends an entered line. */
static int input_rows(int *cursor_row, int without_newline)
{
	const LineInfoW *li = el_wline(scr.el);
	const wchar_t *end = li->lastchar;
	layout l = {.cols = 80, .rows = 24};
	int cursor = -1;

	el_get(scr.el, EL_GETTC, "co", &l.cols);
	el_get(scr.el, EL_GETTC, "li", &l.rows);
	l.cols = l.cols > 0 ? l.cols : 1;
	l.rows = l.rows > 0 ? l.rows : 1;
	if (without_newline && end > li->buffer && end[-1] == L'\n')
		end--;
	for (int i = 0; i < scr.prompt_width; i++)
		lay_put(&l, 1);
	for (const wchar_t *p = li->buffer; p < end; p++) {
		if (p == li->cursor) {
			int w = wcwidth(*p);
			cursor = l.v + (w > 1 && l.h + w > l.cols ? 1 : 0);
		}
		lay_char(&l, *p);
	}
	cursor = cursor < 0 ? l.v : cursor;
	*cursor_row = cursor < l.rows ? cursor : l.rows - 1;
	return l.v;
}

/* Moves up rows rows to column 0 and clears from there to the end of the screen. */
static void go_up_and_clear(int rows)
{
	if (rows > 0)
		printf("\033[%dA", rows);
	fputs("\r\033[J", stdout);
}

static void apply_resize(void)
{
	if (!resized)
		return;
	resized = 0;
	el_resize(scr.el);
}

/* ---- output ------------------------------------------------------------------------ */

void ini_screen_begin(void)
{
	int cursor_row = 0;

	if (!scr.active)
		return;
	apply_resize();
	input_rows(&cursor_row, 0);
	go_up_and_clear(cursor_row);
}

void ini_screen_time(void)
{
	time_t now = time(NULL);
	struct tm tm;
	char hms[16];

	if (localtime_r(&now, &tm) && strftime(hms, sizeof(hms), "%H:%M:%S ", &tm) > 0)
		fputs(hms, stdout);
}

void ini_screen_puts(const char *s)
{
	fputs(s, stdout);
}

void ini_screen_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* "\r\n": in raw mode as in cooked mode, the next line starts at column 0. */
void ini_screen_newline(void)
{
	fputs("\r\n", stdout);
}

int ini_screen_end(void)
{
	if (scr.active)
		el_set(scr.el, EL_REFRESH);
	errno = 0;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		errno = errno ? errno : EIO;
		return KD3_E_IO;
	}
	return KD3_OK;
}

/* ---- input ------------------------------------------------------------------------- */

/* 1: the terminal has bytes; 0: none now; -1: it ended or hung up (readable, yet
 * nothing to read), which would otherwise wake the session loop forever. */
static int input_state(void)
{
	struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
	int avail = 0;
	int n;

	do
		n = poll(&pfd, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	if (n < 0 || ioctl(STDIN_FILENO, FIONREAD, &avail) != 0)
		return -1;
	return avail > 0 ? 1 : -1;
}

/* One byte of the terminal within wait_ms: 1, 0 when none came, -1 at its end or on
 * an error. */
static int read_byte(char *b, int wait_ms)
{
	struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
	ssize_t n;

	for (;;) {
		int ready = poll(&pfd, 1, wait_ms);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0)
			return ready == 0 ? 0 : -1;
		n = read(STDIN_FILENO, b, 1);
		if (n < 0 && errno == EINTR)
			continue;
		return n == 1 ? 1 : -1;
	}
}

/* libedit's reads (EL_GETCFN): one character, decoded from the locale's multibyte
 * bytes. Its own reads block: a lone ESC (the start of an arrow key's sequence) or a
 * cut UTF-8 character would hold the whole session loop until the next key. Here the
 * bytes after the first, which a terminal sends at once, are waited for at most
 * SCREEN_SEQ_WAIT_MS each; then the key ends as ^G, which libedit just beeps at. */
static int read_char(EditLine *el, wchar_t *wc)
{
	char bytes[MB_LEN_MAX];
	size_t n = 0;
	int ret = 0;

	(void)el;
	while (ret == 0) {
		mbstate_t st;
		int got = read_byte(&bytes[n], SCREEN_SEQ_WAIT_MS);
		if (got <= 0) {
			*wc = L'\a';
			ret =
			    got == 0 ? 1 : -1; /* -1: the terminal failed; libedit stops the line */
			break;
		}
		n++;
		memset(&st, 0, sizeof(st));
		size_t k = mbrtowc(wc, bytes, n, &st);
		if (k == (size_t)-2 && n < sizeof(bytes))
			continue; /* more bytes of this character */
		if (k == (size_t)-1 || k == (size_t)-2)
			n = 0; /* not a character in this locale: dropped, as libedit does */
		else
			ret = 1;
	}
	kd3_wipe(bytes, sizeof(bytes));
	return ret;
}

/* A fresh, empty line under its prompt: libedit starts one when unbuffered mode
 * starts. */
static void new_line(void)
{
	el_set(scr.el, EL_UNBUFFERED, 0);
	el_set(scr.el, EL_UNBUFFERED, 1);
	fflush(stdout);
}

/* Wipes libedit's line (it holds what was typed). It stays allocated: we only
 * overwrite the characters, and libedit resets the line before reading more. */
static void wipe_line(void)
{
	const LineInfoW *li = el_wline(scr.el);
	kd3_wipe((void *)li->buffer, (size_t)(li->lastchar - li->buffer) * sizeof(wchar_t));
}

static void history_add(const char *line)
{
	HistEvent ev;

	if (!line[0])
		return;
	/* The oldest line is about to be dropped, freed but not wiped: wipe it now. */
	if (history(scr.hist, &ev, H_GETSIZE) == 0 && ev.num >= SCREEN_HISTORY_MAX &&
	    history(scr.hist, &ev, H_LAST) == 0)
		kd3_wipe((void *)ev.str, strlen(ev.str));
	history(scr.hist, &ev, H_ENTER, line);
}

static void history_wipe(void)
{
	HistEvent ev;

	for (int r = history(scr.hist, &ev, H_FIRST); r == 0; r = history(scr.hist, &ev, H_NEXT))
		kd3_wipe((void *)ev.str, strlen(ev.str));
	history(scr.hist, &ev, H_CLEAR);
}

/* The wide line as the terminal's multibyte text (UTF-8 in a UTF-8 locale) into
 * out[cap], with a NUL when it fits; returns its length in bytes either way. */
static size_t line_bytes(const wchar_t *w, size_t n, uint8_t *out, size_t cap)
{
	char mb[MB_LEN_MAX];
	mbstate_t st;
	size_t len = 0;

	memset(&st, 0, sizeof(st));
	for (size_t i = 0; i < n; i++) {
		size_t k = wcrtomb(mb, w[i], &st);
		if (k == (size_t)-1) { /* cannot happen: libedit decoded it in this locale */
			mb[0] = '?';
			k = 1;
			memset(&st, 0, sizeof(st));
		}
		if (len + k < cap)
			memcpy(out + len, mb, k);
		len += k;
	}
	if (len < cap)
		out[len] = '\0';
	kd3_wipe(mb, sizeof(mb));
	return len;
}

/* Enter was pressed: libedit left the cursor on the row below the line. Take the
 * line off the screen (the chat shows it as a message instead), wipe libedit's copy,
 * and show a fresh prompt. */
static void line_taken(void)
{
	int cursor_row = 0;
	int last_row = input_rows(&cursor_row, 1);

	wipe_line();
	go_up_and_clear(last_row + 1);
	new_line();
}

static ini_key end_of_input(void)
{
	int cursor_row = 0;

	input_rows(&cursor_row, 0);
	go_up_and_clear(cursor_row); /* the "^D" libedit echoed */
	new_line();
	return INI_KEY_EOF;
}

ini_key ini_screen_key(uint8_t *line, size_t cap, size_t *len)
{
	int state = input_state();
	int count = 0;
	const wchar_t *buf;

	*len = 0;
	if (state == 0)
		return INI_KEY_EMPTY;
	if (state < 0)
		return end_of_input();
	apply_resize();
	/* The wide form: el_gets would convert the whole line to multibyte at every key,
	 * quadratic in a long paste. */
	buf = el_wgets(scr.el, &count);
	/* Unbuffered, an empty line reads as NULL and -1, like an error: the end of the
	 * input is told by input_state instead. */
	if (!buf || count <= 0)
		return INI_KEY_NONE;
	/* Ctrl-D on an empty line: unbuffered libedit returns the line "^D" (CC_EOF). */
	if (count == 1 && buf[0] == L'\x04')
		return end_of_input();
	if (buf[count - 1] != L'\n')
		return INI_KEY_NONE;
	*len = line_bytes(buf, (size_t)count - 1, line, cap);
	if (*len < cap)
		history_add((const char *)line);
	line_taken();
	return INI_KEY_LINE;
}

/* ---- signals ----------------------------------------------------------------------- */

/* Only async-signal-safe calls: give the terminal back, then die of sig as before. */
static void on_fatal_signal(int sig)
{
	int saved_errno = errno;

	if (have_saved_tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	if (write(STDOUT_FILENO, "\r\n", 2) < 0) {
		/* nothing to do: the process is ending */
	}
	errno = saved_errno;
	raise(sig); /* SA_RESETHAND: the default action, once this handler returns */
}

static void on_winch(int sig)
{
	(void)sig;
	resized = 1; /* applied before the next drawing (el_resize is not signal-safe) */
}

/* Our handlers, not libedit's (EL_SIGNAL): libedit's re-send each signal to the whole
 * process group. A signal ignored when we started (nohup) stays ignored. */
static void signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_fatal_signal;
	sa.sa_flags = SA_RESETHAND;
	for (size_t i = 0; i < SCREEN_NFATAL; i++) {
		if (sigaction(fatal_signals[i], NULL, &old_fatal[i]) != 0 ||
		    old_fatal[i].sa_handler == SIG_IGN)
			continue;
		fatal_installed[i] = sigaction(fatal_signals[i], &sa, NULL) == 0;
	}
	sa.sa_handler = on_winch;
	sa.sa_flags = SA_RESTART;
	winch_installed = sigaction(SIGWINCH, &sa, &old_winch) == 0;
}

static void signals_restore(void)
{
	for (size_t i = 0; i < SCREEN_NFATAL; i++) {
		if (fatal_installed[i])
			sigaction(fatal_signals[i], &old_fatal[i], NULL);
		fatal_installed[i] = 0;
	}
	if (winch_installed)
		sigaction(SIGWINCH, &old_winch, NULL);
	winch_installed = 0;
}

/* ---- the editor -------------------------------------------------------------------- */

static char *prompt_text(EditLine *el)
{
	(void)el;
	return scr.prompt;
}

static void editor_setup(EditLine *el)
{
	el_set(el, EL_SIGNAL, 0); /* see signals_install */
	el_set(el, EL_EDITOR, "emacs");
	el_set(el, EL_HIST, history, scr.hist);
	el_set(el, EL_PROMPT, prompt_text);
	el_set(el, EL_GETCFN, read_char);
	el_source(el, NULL); /* the user's ~/.editrc, as in every libedit program */
	/* Ctrl-C, Ctrl-Z and Ctrl-\ reach us as keys: a signal would leave the terminal
	 * raw or the session unclosed. Ctrl-C clears the line (it keeps it to paste back
	 * with Ctrl-Y); the other two are libedit's no-ops. */
	el_set(el, EL_SETTY, "-d", "-isig", NULL);
	el_set(el, EL_BIND, "^C", "em-kill-line", NULL);
	/* Keys most terminals send, which libedit's terminfo bindings may miss. */
	el_set(el, EL_BIND, "\\e[3~", "ed-delete-next-char", NULL);
	el_set(el, EL_BIND, "\\e[H", "ed-move-to-beg", NULL);
	el_set(el, EL_BIND, "\\e[F", "ed-move-to-end", NULL);
	el_set(el, EL_BIND, "\\e[1~", "ed-move-to-beg", NULL);
	el_set(el, EL_BIND, "\\e[4~", "ed-move-to-end", NULL);
}

int ini_screen_start(const char *prompt)
{
	HistEvent ev;

	/* libedit edits characters in the terminal's codeset, not bytes. */
	setlocale(LC_CTYPE, "");
	scr.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	snprintf(scr.prompt, sizeof(scr.prompt), "%s", prompt);
	scr.prompt_width = (int)strlen(scr.prompt);
	if (tcgetattr(STDIN_FILENO, &saved_tty) != 0)
		return KD3_E_IO;
	scr.el = el_init("kd3-initiator", stdin, stdout, stderr);
	scr.hist = history_init();
	if (!scr.el || !scr.hist) {
		if (scr.el)
			el_end(scr.el);
		if (scr.hist)
			history_end(scr.hist);
		scr.el = NULL;
		scr.hist = NULL;
		return KD3_E_NOMEM;
	}
	history(scr.hist, &ev, H_SETSIZE, SCREEN_HISTORY_MAX);
	editor_setup(scr.el);
	have_saved_tty = 1;
	signals_install();
	el_set(scr.el, EL_UNBUFFERED, 1); /* raw mode, and the prompt */
	scr.active = 1;
	if (fflush(stdout) != 0) {
		ini_screen_stop();
		return KD3_E_IO;
	}
	return KD3_OK;
}

void ini_screen_stop(void)
{
	int cursor_row = 0;

	if (!scr.el)
		return;
	if (scr.active) {
		input_rows(&cursor_row, 0);
		go_up_and_clear(cursor_row); /* the prompt, and a line never sent */
		fflush(stdout);
		el_set(scr.el, EL_UNBUFFERED, 0);
		scr.active = 0;
	}
	/* libedit's other copies (its display, cut and undo buffers) are freed unwiped
	 * by el_end: beyond our reach. */
	wipe_line();
	el_end(scr.el);
	scr.el = NULL;
	history_wipe();
	history_end(scr.hist);
	scr.hist = NULL;
	/* Back as it was; keys typed since the session ended are dropped, not handed to
	 * the shell as a command. */
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	have_saved_tty = 0;
	signals_restore();
}
