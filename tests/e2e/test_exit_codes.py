"""End to end: the initiator's exit codes in scripted mode, one failure each, as
docs/SESSIONS.md and `initiator --help` list them.

  0  clean close                         1  stdout closed under a received message
  2  usage (bad option, missing key file) 3  handshake refused (unknown principal, policy)
  4  authentication (a record altered in flight: a man in the middle flips one bit)
  5  peer gone (connection refused; responder killed mid-session)
Each failure also leaves exactly one error line on stderr.
"""
import os
import subprocess
import unittest

import kd3e2e as k
import mitm

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_HANDSHAKE, EXIT_AUTH, EXIT_GONE = 0, 1, 2, 3, 4, 5


def error_lines(stderr):
    return [l for l in stderr.splitlines() if ": error: " in l]


class ExitCodes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.realm = k.Realm(("alice", "bob", "carol"))
        cls.kdc = cls.realm.start_kdc("--deny", "carol->bob")
        cls.echo = cls.realm.start_responder("--exec", "cat")

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()

    def assert_code(self, r, code, text):
        self.assertEqual(r.rc, code, r)
        errs = error_lines(r.stderr)
        self.assertEqual(len(errs), 1, r.stderr)
        self.assertIn(text, errs[0])

    def test_0_clean(self):
        r = self.realm.run_initiator(self.echo.port, ["a", "b"], "--batch")
        self.assertEqual((r.rc, r.stdout), (EXIT_OK, "a\nb\n"), r)
        self.assertEqual(error_lines(r.stderr), [])

    def test_1_stdout_closed(self):
        rd, wr = os.pipe()
        os.close(rd)  # nobody will read what the initiator prints
        try:
            p = subprocess.run(self.realm.initiator_argv(self.echo.port, "--batch"),
                               input=b"hello\n", stdout=wr, stderr=subprocess.PIPE,
                               timeout=30)
        finally:
            os.close(wr)
        r = k.Result(p.returncode, "", p.stderr.decode())
        self.assert_code(r, EXIT_RUNTIME, "cannot write a received message")

    def test_2_usage(self):
        r = k.run([k.exe("initiator"), "--peer", "bob", "--keyfile",
                   os.path.join(self.realm.dir, "missing.key")])
        self.assert_code(r, EXIT_USAGE, "missing.key")
        r = k.run([k.exe("initiator"), "--no-such-option"])
        self.assertEqual(r.rc, EXIT_USAGE, r)

    def test_3_handshake_refused(self):
        r = self.realm.run_initiator(self.echo.port, ["x"], "--peer", "nobody")
        self.assert_code(r, EXIT_HANDSHAKE, "UNKNOWN_PRINCIPAL")
        r = self.realm.run_initiator(self.echo.port, ["x"], name="carol")
        self.assert_code(r, EXIT_HANDSHAKE, "POLICY_DENIED")

    def test_4_record_altered(self):
        def flip_first_echo(conn, direction, n, frame):
            # R->I: frame 0 is M4, frame 1 the first record (the echo of "hello").
            if direction == "R->I" and n == 1:
                return [mitm.flip(frame, -1)]
            return [frame]

        m = mitm.TcpMitm(self.echo.port, hook=flip_first_echo, half_close=True)
        try:
            r = self.realm.run_initiator(m.port, ["hello", "again"], "--batch")
        finally:
            m.close()
        self.assert_code(r, EXIT_AUTH, "record failed authentication")
        self.assertEqual(r.stdout, "", "nothing is delivered from a record that failed")

    def test_5_gone(self):
        port = k.free_port()  # nothing listens there
        r = self.realm.run_initiator(port, ["x"])
        self.assert_code(r, EXIT_GONE, "cannot connect to the responder")

    def test_5_responder_killed_mid_session(self):
        resp = self.realm.start_responder("--exec", "cat")
        p = subprocess.Popen(self.realm.initiator_argv(resp.port, "--batch"),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        p.stdin.write(b"one\n")
        p.stdin.flush()
        self.assertEqual(p.stdout.readline(), b"one\n")
        resp.p.kill()  # no CLOSE: the stream just ends
        try:
            _, err = p.communicate(timeout=30)
        finally:
            p.kill()
        r = k.Result(p.returncode, "", err.decode())
        self.assertEqual(r.rc, EXIT_GONE, r)
        self.assertEqual(len(error_lines(r.stderr)), 1, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
