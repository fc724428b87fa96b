"""End to end: the initiator's chat screen, on a pseudo-terminal rendered by pyte.

The initiator runs with the pty as its controlling terminal (setsid -c), as under a
real terminal, against `responder --exec` children that echo (cat), speak first after
a pause, or send terminal escape sequences. What the user would see is read from the
pyte screen; what was written, from the raw bytes. Covered: the status line once
established; sent and echoed messages with names, time and the verified mark; a
message arriving while a line is half typed (one row, then wrapped with the cursor
inside it) lands above it and the line is intact and then sent as typed; /status with
records, bytes, generations and the key update policy (rekey_after_messages = 5 from a
config file), the generation moving after 5 records and on /rekey; unknown commands
and //text; an empty line; Ctrl-C; history; an over-long line; the peer's escape
sequences shown escaped; closing with a configured quit word, /quit and Ctrl-D (exit 0,
CLOSE both ways); the terminal given back as it was, also on SIGTERM; and scripted mode
on a terminal with --batch.
"""
import fcntl
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
import unittest

import pyte

import kd3e2e as k

EXIT_OK = 0
COLS, ROWS = 120, 40
SETSID = shutil.which("setsid") or "/usr/bin/setsid"
TIME = r"\d\d:\d\d:\d\d"
PAYLOAD_MAX = 16384


class Chat:
    """One initiator on a pseudo-terminal. Every wait has a deadline; the terminal's
    output is read while keys are written, so neither side can block the other."""

    def __init__(self, argv, home):
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        os.set_blocking(self.master, False)
        self.tty_before = termios.tcgetattr(self.slave)
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TERM": "xterm",
               "LANG": "C.UTF-8", "EDITRC": "/dev/null"}
        # setsid -c: a new session whose controlling terminal is the pty (fd 0).
        self.p = subprocess.Popen([SETSID, "-c", *argv], stdin=self.slave, stdout=self.slave,
                                  stderr=self.slave, env=env, close_fds=True)

    # ---- reading ----
    def _read(self, timeout):
        r, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not r:
            return False
        try:
            data = os.read(self.master, 65536)
        except (BlockingIOError, OSError):
            return False
        self.raw += data
        self.stream.feed(data)
        return bool(data)

    def text(self):
        return "\n".join(line.rstrip() for line in self.screen.display)

    def out(self):
        """Everything written so far, decoded."""
        return self.raw.decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=10.0, where="screen"):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text() if where == "screen" else self.out())
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} on the {where} within {timeout}s; "
                                     f"screen:\n{self.text()}")
            self._read(min(left, 0.1))

    def wait_count(self, pattern, n, timeout=10.0):
        """Until pattern occurs n times in the output; returns the matches."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.findall(pattern, self.out())
            if len(found) >= n:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"{pattern!r}: {len(found)} of {n} within {timeout}s; "
                                     f"screen:\n{self.text()}")
            self._read(0.1)

    def settle(self, quiet=0.3, timeout=5.0):
        """Reads until nothing came for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(quiet):
            pass

    # ---- writing ----
    def type(self, data, chunk=512, timeout=20.0):
        deadline = time.monotonic() + timeout
        for i in range(0, len(data), chunk):
            part = data[i:i + chunk]
            while part:
                if time.monotonic() >= deadline:
                    raise AssertionError("the terminal took no more input")
                try:
                    part = part[os.write(self.master, part):]
                except BlockingIOError:
                    pass
                self._read(0.005 if part else 0)

    # ---- the cursor's line ----
    def cursor_line(self):
        return self.screen.display[self.screen.cursor.y].rstrip()

    def prompt_ready(self, typed="", timeout=10.0):
        """Waits until the cursor sits after 'alice> ' + typed on its own row."""
        deadline = time.monotonic() + timeout
        want = "alice> " + typed
        while True:
            if self.cursor_line() == want.rstrip() and self.screen.cursor.x == len(want):
                return
            if time.monotonic() >= deadline:
                raise AssertionError(f"cursor line {self.cursor_line()!r} (x="
                                     f"{self.screen.cursor.x}), not {want!r}:\n{self.text()}")
            self._read(0.05)

    # ---- the end ----
    def wait_exit(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while self.p.poll() is None:
            if time.monotonic() >= deadline:
                self.p.kill()
                self.p.wait(5)
                raise AssertionError(f"initiator still running after {timeout}s:\n{self.text()}")
            self._read(0.05)
        self.settle(0.1, 2.0)
        return self.p.returncode

    def tty_now(self):
        return termios.tcgetattr(self.slave)

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)
        os.close(self.master)
        os.close(self.slave)


class ChatScreen(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.realm = k.Realm(("alice", "bob"))
        cls.kdc = cls.realm.start_kdc()
        cls.echo = cls.realm.start_responder("--exec", "cat")

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()

    def start(self, port, *extra, argv=None):
        chat = Chat(argv or self.realm.initiator_argv(port, *extra), self.realm.dir)
        self.addCleanup(chat.close)
        chat.wait_for(r"session with bob established: chacha20-poly1305, forward secrecy off,"
                      r" key lifetime \d+ s")
        chat.prompt_ready()
        return chat

    def status(self, chat):
        """/status, parsed from its newest output."""
        n = len(re.findall("rekey_after_messages", chat.out())) + 1
        chat.type(b"/status\r")
        chat.wait_count("rekey_after_messages", n)
        chat.wait_count(r"key lifetime \d+ s, \d+ s left", n)
        out = chat.out()
        sent = re.findall(r"sent: +(\d+) records, (\d+) bytes, key generation (\d+)", out)[-1]
        got = re.findall(r"received: +(\d+) records, (\d+) bytes, key generation (\d+)", out)[-1]
        policy = re.findall(r"key updates: (.*)", out)[-1]
        return [int(x) for x in sent], [int(x) for x in got], policy

    def assert_closed_cleanly(self, chat):
        self.assertEqual(chat.wait_exit(), EXIT_OK, chat.text())
        out = chat.out()
        self.assertRegex(out, TIME + r" -- alice closed the session")
        self.assertRegex(out, TIME + r" -- bob closed the session")
        self.assertEqual(chat.tty_now(), chat.tty_before, "terminal not given back")
        # The prompt was taken off the screen: the last notice is the last line.
        self.assertTrue(chat.text().rstrip().endswith("bob closed the session"), chat.text())

    def test_conversation_commands_and_quit_word(self):
        conf = os.path.join(self.realm.dir, "chat.conf")
        with open(conf, "w") as f:
            f.write("[initiator]\n"
                    f"connect = 127.0.0.1:{self.echo.port}\n"
                    f"keyfile = {self.realm.keyfile('alice')}\n"
                    "peer = bob\n"
                    "rekey-after-messages = 5\n"
                    "quit-words = EXIT, END\n")
        chat = self.start(None, argv=[k.exe("initiator"), "--config", conf])
        sent0, got0, policy = self.status(chat)
        self.assertIn("rekey_after_messages = 5", policy)
        self.assertEqual((sent0[2], got0), (0, [0, 0, 0]))

        # A message, echoed back by cat: both shown with time, name and mark.
        chat.type(b"hello bob\r")
        chat.wait_for(TIME + r" bob \u2713 hello bob")
        self.assertRegex(chat.text(), TIME + r" alice \u2192 hello bob")
        self.assertNotIn("alice> hello bob", chat.text())  # the typed line became a message
        chat.prompt_ready()

        sent, got, _ = self.status(chat)
        self.assertEqual(sent, [sent0[0] + 1, sent0[1] + len("hello bob"), 0])
        self.assertEqual(got, [1, len("hello bob"), 0])

        # An empty line sends nothing.
        chat.type(b"\r")
        sent2, _, _ = self.status(chat)
        self.assertEqual(sent2[:2], sent[:2])

        # Six more messages: after 5 records under one key ours moves to generation 1.
        for i in range(6):
            chat.type(b"m%d\r" % i)
        chat.wait_for(TIME + r" bob \u2713 m5")
        chat.wait_for(TIME + r" -- alice moved to key generation 1")
        sent3, got3, _ = self.status(chat)
        self.assertEqual(sent3[2], 1)
        self.assertEqual(sent3[1], sent[1] + 6 * 2)
        self.assertEqual(got3[1], got[1] + 6 * 2)

        # /rekey: the next generation now.
        chat.type(b"/rekey\r")
        chat.wait_for(TIME + r" -- alice moved to key generation 2")
        self.assertEqual(self.status(chat)[0][2], 2)

        # Commands: unknown ones are not sent; //text sends /text.
        chat.type(b"/bogus\r")
        chat.wait_for(r"unknown command /bogus, not sent")
        chat.type(b"//slash\r")
        chat.wait_for(TIME + r" bob \u2713 /slash")
        self.assertNotIn("\u2713 /bogus", chat.out())

        # Ctrl-C clears the line (and is no signal: the session goes on).
        chat.type(b"junk")
        chat.prompt_ready("junk")
        chat.type(b"\x03")
        chat.prompt_ready()
        chat.type(b"ok\r")
        chat.wait_for(TIME + r" bob \u2713 ok")
        self.assertNotIn("junk", chat.text())

        # History: Up recalls the last line.
        chat.type(b"\x1b[A")
        chat.prompt_ready("ok")
        chat.type(b"\r")
        chat.wait_count("\u2713 ok", 2)

        # Over the limit by one byte: a notice, nothing sent; at the limit: sent.
        chat.type(b"b" * (PAYLOAD_MAX + 1) + b"\r")
        chat.wait_for(r"line of %d bytes not sent: one message holds at most %d bytes"
                      % (PAYLOAD_MAX + 1, PAYLOAD_MAX))
        chat.type(b"c" * PAYLOAD_MAX + b"\r")
        chat.wait_for(r"bob \u2713 c{%d}\r*\n" % PAYLOAD_MAX, timeout=20, where="out")
        chat.settle()
        self.assertNotIn("\u2713 bbb", chat.out())
        sent4, _, _ = self.status(chat)
        self.assertEqual(sent4[1], sent3[1] + len("/slash") + 2 * len("ok") + PAYLOAD_MAX)

        # A configured quit word (surrounding blanks ignored) closes the session.
        chat.type(b"  END \r")
        self.assert_closed_cleanly(chat)
        self.assertNotIn("\u2713 END", chat.out())

    def test_message_arrives_while_typing(self):
        script = ("sleep 1; echo ping one; sleep 1.5; echo ping two; sleep 1; echo ping three;"
                  " exec cat")
        resp = self.realm.start_responder("--exec", script)
        chat = self.start(resp.port)

        # One row half typed when "ping one" arrives: it lands above, the line stays.
        chat.type(b"half typed")
        chat.prompt_ready("half typed")
        chat.wait_for(TIME + r" bob \u2713 ping one")
        chat.prompt_ready("half typed")
        y = chat.screen.cursor.y
        self.assertRegex(chat.screen.display[y - 1], TIME + r" bob \u2713 ping one")

        # Now a line over three rows, the cursor three characters from its end.
        tail = " " + "w" * 250
        chat.type(tail.encode() + b"\x1b[D" * 3)
        chat.wait_for(TIME + r" bob \u2713 ping two", timeout=5)
        chat.settle(0.2)
        whole = "alice> half typed" + tail
        rows = (len(whole) + COLS - 1) // COLS
        first = chat.screen.cursor.y - (len(whole) - 3) // COLS
        shown = "".join(chat.screen.display[first + i] for i in range(rows)).rstrip()
        self.assertEqual(shown, whole, chat.text())
        self.assertEqual(chat.screen.cursor.x, (len(whole) - 3) % COLS)
        self.assertRegex(chat.screen.display[first - 1], TIME + r" bob \u2713 ping two")
        self.assertEqual(chat.text().count("half typed"), 1, chat.text())  # no stale rows
        self.assertLess(chat.text().index("ping one"), chat.text().index("ping two"))

        # Enter sends the whole line as typed (the cursor's place does not matter).
        chat.type(b"\r")
        chat.wait_for(TIME + r" alice \u2192 half typed w{250}\r*\n", where="out")

        # A lone ESC (an arrow key's first byte) does not hold the session loop.
        chat.type(b"\x1b")
        chat.wait_for(TIME + r" bob \u2713 ping three", timeout=5)
        chat.wait_for(TIME + r" bob \u2713 half typed w{250}\r*\n", where="out")
        chat.prompt_ready()
        chat.type(b"/quit\r")
        self.assert_closed_cleanly(chat)

    def test_peer_escape_sequences_are_shown_escaped(self):
        # A title change, colours, an invalid byte, a C1 CSI and a bidi override.
        script = (r"printf '\033]0;pwned\007\033[31mred\033[0m \377 \302\233 \342\200\256 "
                  r"caf\303\251\n'; exec cat")
        resp = self.realm.start_responder("--exec", script, "--rekey-after-messages", "2")
        chat = self.start(resp.port)
        shown = r"\x1b]0;pwned\x07\x1b[31mred\x1b[0m \xff \xc2\x9b \xe2\x80\xae " + "caf\u00e9"
        chat.wait_for(TIME + r" bob \u2713 " + re.escape(shown))
        self.assertEqual(chat.screen.title, "")
        colours = {(c.fg, c.bg, c.bold, c.reverse) for row in chat.screen.buffer.values()
                   for c in row.values()}
        self.assertEqual(colours, {("default", "default", False, False)}, colours)
        self.assertNotIn(b"\x1b]0;", chat.raw)
        self.assertNotIn(b"\x1b[31m", chat.raw)
        self.assertNotIn(b"\xc2\x9b", chat.raw)
        self.assertNotIn(b"\xe2\x80\xae", chat.raw)

        # The peer updates its key after 2 records: shown as a notice.
        for word in (b"one", b"two", b"three"):
            chat.type(word + b"\r")
        chat.wait_for(TIME + r" bob \u2713 three")
        chat.wait_for(TIME + r" -- bob moved to key generation 1")

        # Ctrl-D on an empty line closes the session.
        chat.prompt_ready()
        chat.type(b"\x04")
        self.assert_closed_cleanly(chat)

    def test_resize_then_sigterm_gives_the_terminal_back(self):
        chat = self.start(self.echo.port)
        self.assertNotEqual(chat.tty_now(), chat.tty_before)  # raw while the chat runs
        # A narrower terminal (SIGWINCH): lines wrap at the new width.
        cols = 50
        fcntl.ioctl(chat.slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, cols, 0, 0))
        chat.screen.resize(ROWS, cols)
        chat.type(b"x" * 70)
        chat.settle(0.2)
        y = chat.screen.cursor.y
        self.assertEqual((chat.screen.display[y - 1] + chat.screen.display[y]).rstrip(),
                         "alice> " + "x" * 70)
        self.assertEqual(chat.screen.cursor.x, len("alice> ") + 70 - cols)
        chat.type(b"\r")
        chat.wait_for(TIME + r" bob \u2713 x{70}", where="out")
        chat.prompt_ready()
        chat.p.send_signal(signal.SIGTERM)
        self.assertEqual(chat.wait_exit(), -signal.SIGTERM)
        self.assertEqual(chat.tty_now(), chat.tty_before)

    def test_failure_gives_the_terminal_back(self):
        # The responder vanishes mid-session (its command kills it): no CLOSE came.
        resp = self.realm.start_responder("--exec", "sleep 1; kill -KILL $PPID")
        chat = self.start(resp.port)
        chat.type(b"never sent")
        self.assertEqual(chat.wait_exit(), 5, chat.text())
        self.assertEqual(chat.tty_now(), chat.tty_before)
        self.assertRegex(chat.text().rstrip().splitlines()[-1], r"^initiator: error: ")
        self.assertNotIn("never sent", chat.text())  # the unsent line was taken away

    def test_batch_on_a_terminal_is_scripted(self):
        chat = Chat(self.realm.initiator_argv(self.echo.port, "--batch"), self.realm.dir)
        self.addCleanup(chat.close)
        chat.wait_for(r"initiator: session with bob established")
        chat.type(b"plain\r")
        chat.wait_count(r"(?m)^plain\r?$", 2)  # the terminal's echo, then the message
        chat.type(b"\x04")  # end of input in the terminal's own line mode
        self.assertEqual(chat.wait_exit(), EXIT_OK, chat.text())
        self.assertNotIn("\u2713", chat.out())
        self.assertNotIn("alice>", chat.out())


if __name__ == "__main__":
    unittest.main(verbosity=2)
