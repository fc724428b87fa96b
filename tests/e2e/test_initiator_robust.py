"""End to end: the initiator in a hostile or broken environment.

- Started with stdout closed, its TCP socket must not land on fd 1: received plaintext
  would go to the responder (kd3_proc_harden opens /dev/null there first).
- After its CLOSE, the responder's CLOSE is due by a fixed deadline (--timeout): a
  responder that keeps sending DATA cannot keep it alive, nor can one that goes silent
  and holds the connection open.
- The example configs load with the real option tables, and a config using what inih
  would silently misread (an inline comment) is refused with the line named.

KD3_BIN: the build directory (default ../../build from this file).
"""
import os
import subprocess
import threading
import time
import unittest

import kd3e2e as k
import mitm as M

EXIT_OK, EXIT_USAGE, EXIT_GONE = 0, 2, 5
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIG = os.path.join(SRC, "config")


class StdoutClosed(unittest.TestCase):
    def setUp(self):
        self.realm = k.Realm()
        self.addCleanup(self.realm.close)
        self.realm.start_kdc()
        self.resp = self.realm.start_responder("--exec", "cat")

    def test_session_with_stdout_closed(self):
        argv = self.realm.initiator_argv(self.resp.port)
        # sh closes fd 1, then execs the initiator with it closed.
        r = k.run(["/bin/sh", "-c", 'exec "$@" >&-', "sh", *argv],
                  input=b"hello bob\nsecond line\n", timeout=30)
        self.assertEqual(r.rc, EXIT_OK, r)
        self.assertIn("session with bob established", r.stderr, r)
        self.resp.wait_for(r"session \d+ with alice closed \(command exited with status 0\)")
        log = self.resp.text()
        self.assertNotIn("error", log, log)
        self.assertNotIn("not kd3", log, log)


class CloseDeadline(unittest.TestCase):
    TIMEOUT = 2

    def setUp(self):
        self.realm = k.Realm()
        self.addCleanup(self.realm.close)
        self.realm.start_kdc()

    def run_closing(self, port):
        """The initiator with empty stdin: it sends CLOSE right after the handshake."""
        argv = self.realm.initiator_argv(port, "--timeout", str(self.TIMEOUT))
        start = time.monotonic()
        try:
            r = k.run(argv, input=b"", timeout=self.TIMEOUT + 20)
        except subprocess.TimeoutExpired:
            self.fail(f"the initiator was still running after {self.TIMEOUT + 20} s")
        return r, time.monotonic() - start

    def assert_timed_out(self, r, elapsed):
        self.assertEqual(r.rc, EXIT_GONE, r)
        self.assertIn("timed out waiting for the responder to close the session", r.stderr, r)
        self.assertLess(elapsed, self.TIMEOUT + 2, r)

    def test_trickling_responder_cannot_hold_the_close(self):
        # A command that never ends: the responder keeps sending DATA after our CLOSE
        # and never sends its own. Each DATA used to restart the wait.
        resp = self.realm.start_responder("--exec", "while :; do echo tick; sleep 0.2; done")
        r, elapsed = self.run_closing(resp.port)
        self.assert_timed_out(r, elapsed)
        self.assertIn("tick", r.stdout)  # the DATA did arrive meanwhile

    def test_silent_responder_after_close(self):
        # A man in the middle drops the responder's CLOSE and holds the connection open.
        resp = self.realm.start_responder("--exec", "cat")
        release = threading.Event()
        state = {"closed": False, "held": 0}

        def hook(conn, direction, n, frame):
            if direction == "I->R" and n >= 2:  # M1, FINISHED, then our CLOSE
                state["closed"] = True
            if direction == "R->I" and state["closed"]:
                state["held"] += 1
                release.wait(30)  # neither forward it nor end the stream
                return None
            return [frame]

        mid = M.TcpMitm(resp.port, hook=hook)
        self.addCleanup(mid.close)
        self.addCleanup(release.set)
        r, elapsed = self.run_closing(mid.port)
        self.assert_timed_out(r, elapsed)
        self.assertEqual(state["held"], 1)


class ExampleConfigs(unittest.TestCase):
    """Each example loads: the run then fails on the missing key file or database, past
    the config, and the error names that, not the config."""

    def check(self, argv, conf, expect):
        r = k.run(argv, timeout=10)
        self.assertNotEqual(r.rc, EXIT_OK, r)
        self.assertNotIn(conf + ":", r.stderr, r)
        self.assertIn(expect, r.stderr, r)

    def test_examples_load(self):
        self.check([k.exe("initiator"), "--config", os.path.join(CONFIG, "initiator.conf"),
                    "--keyfile", "/nonexistent/a.key"], "initiator.conf",
                   "/nonexistent/a.key: no such key file")
        self.check([k.exe("responder"), "--config", os.path.join(CONFIG, "responder.conf"),
                    "--keyfile", "/nonexistent/b.key", "--listen", "127.0.0.1:1"],
                   "responder.conf", "/nonexistent/b.key: no such key file")
        self.check([k.exe("kdc"), "list", "--config", os.path.join(CONFIG, "kdc.conf"),
                    "--db", "/nonexistent/x.db"], "kdc.conf",
                   "/nonexistent/x.db: no such database")

    def test_inline_comment_refused(self):
        realm = k.Realm()
        self.addCleanup(realm.close)
        conf = os.path.join(realm.dir, "initiator.conf")
        with open(conf, "w") as f:
            f.write("# ok\npeer = bob ; the responder\n")
        r = k.run([k.exe("initiator"), "--config", conf, "--keyfile", realm.keyfile("alice")],
                  timeout=10)
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertIn(f"{conf}:2: inline comments are not supported; put the comment on its "
                      "own line", r.stderr)


if __name__ == "__main__":
    unittest.main()
