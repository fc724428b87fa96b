"""End to end: the real kdc, responder and initiator on 127.0.0.1.

Honest sessions in both suites and both modes, key updates on every record, many
sessions at once, a multi-megabyte stream byte for byte, KDC failover and TCP
fallback, and each configuration error with its own message and exit code.
"""
import os
import socket
import subprocess
import threading
import time
import unittest

import kd3e2e as k
import mitm as M

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_HANDSHAKE, EXIT_AUTH, EXIT_GONE = 0, 1, 2, 3, 4, 5


class Honest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.realm = k.Realm(("alice", "bob", "carol"))
        cls.kdc = cls.realm.start_kdc()
        cls.echo = cls.realm.start_responder("--exec", "cat")

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()

    def converse(self, *extra, lines=("hello bob", "second line", "")):
        r = self.realm.run_initiator(self.echo.port, lines, *extra)
        self.assertEqual(r.rc, EXIT_OK, r)
        self.assertEqual(r.stdout, "".join(l + "\n" for l in lines), r)
        return r

    def test_suites_and_modes(self):
        for suite in ("chacha20-poly1305", "aes-256-gcm"):
            for fs in ("no", "yes"):
                with self.subTest(suite=suite, fs=fs):
                    r = self.converse("--suite", suite, f"--forward-secret={fs}")
                    on = "on" if fs == "yes" else "off"
                    self.assertIn(f"established ({suite}, forward secrecy {on}", r.stderr)

    def test_key_update_every_record(self):
        lines = [f"message {i}" for i in range(40)]
        self.converse("--rekey-after-messages", "1", "--forward-secret", lines=lines)
        # The responder updates its own key on every record too.
        resp = self.realm.start_responder("--exec", "cat", "--rekey-after-messages", "1")
        r = self.realm.run_initiator(resp.port, lines, "--rekey-after-messages", "1", "--trace")
        self.assertEqual(r.rc, EXIT_OK, r)
        self.assertEqual(r.stdout.splitlines(), lines)
        # 40 DATA from us, each preceded by a KEY_UPDATE; and the same from bob.
        self.assertGreaterEqual(r.stderr.count("KEY_UPDATE"), 80, r.stderr[-2000:])

    def test_key_update_after_seconds(self):
        # Two lines 1.3 s apart with a 1 s policy: one KEY_UPDATE, before the second.
        p = subprocess.Popen(self.realm.initiator_argv(self.echo.port, "--rekey-after-seconds",
                                                       "1", "--trace"),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(b"first\n")
        p.stdin.flush()
        self.assertEqual(p.stdout.readline(), b"first\n")
        time.sleep(1.3)
        out, err = p.communicate(b"second\n", timeout=30)
        self.assertEqual(p.returncode, EXIT_OK, err)
        self.assertEqual(out, b"second\n")
        sent = err.decode().split("-> I->R")
        updates = [i for i, block in enumerate(sent) if "inner     KEY_UPDATE" in block]
        self.assertEqual(len(updates), 1, err.decode()[-3000:])
        self.assertIn("inner     DATA", sent[updates[0] + 1])

    def test_multi_megabyte_stream(self):
        # 2 MiB of lines, echoed back byte for byte through --exec cat.
        payload = b"".join(b"%07d " % i + os.urandom(300).hex().encode() + b"\n"
                           for i in range(3500))
        r = self.realm.run_initiator(self.echo.port, (), input_bytes=payload, timeout=120)
        self.assertEqual(r.rc, EXIT_OK, r.stderr)
        self.assertEqual(r.stdout.encode(), payload)

    def test_many_sessions_at_once(self):
        # 50 initiators at once, each with its own `--exec cat` process at the responder.
        n = 50
        procs = []
        for i in range(n):
            p = subprocess.Popen(self.realm.initiator_argv(self.echo.port),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            procs.append(p)
        results = [None] * n

        def drive(i):
            lines = "".join(f"session {i} line {j}\n" for j in range(20)).encode()
            results[i] = procs[i].communicate(lines, timeout=60)

        threads = [threading.Thread(target=drive, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        for i, p in enumerate(procs):
            self.assertEqual(p.returncode, EXIT_OK, results[i][1])
            expect = "".join(f"session {i} line {j}\n" for j in range(20)).encode()
            self.assertEqual(results[i][0], expect)

    def test_one_initiator_leaving_never_stops_the_responder(self):
        p = subprocess.Popen(self.realm.initiator_argv(self.echo.port), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(b"half a session\n")
        p.stdin.flush()
        self.assertEqual(p.stdout.readline(), b"half a session\n")
        p.kill()
        p.communicate(timeout=5)
        self.converse()

    def test_trace_shows_messages(self):
        r = self.converse("--trace", lines=("traced",))
        for m in ("I->R  M1", "R->I  M4", "FINISHED", "kvno_i", "confirm_r", "blob_i"):
            self.assertIn(m, r.stderr)
        # KD3_TRACE=1 does the same.
        env = dict(os.environ, KD3_TRACE="1")
        r2 = self.realm.run_initiator(self.echo.port, ["x"], env=env)
        self.assertIn("I->R  M1", r2.stderr)

    def test_line_too_long_is_not_sent(self):
        big = "x" * 16385
        r = self.realm.run_initiator(self.echo.port, ["before", big, "after"])
        self.assertEqual(r.stdout, "before\nafter\n", r)
        self.assertIn("16384", r.stderr)


class Refusals(unittest.TestCase):
    """Each wrong setting has its own error text at the user's terminal."""

    @classmethod
    def setUpClass(cls):
        cls.realm = k.Realm(("alice", "bob", "carol"))
        cls.kdc = cls.realm.start_kdc("--deny", "carol->bob")
        cls.resp = cls.realm.start_responder("--exec", "cat")

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()

    def expect(self, rc, text, *extra, **kw):
        r = self.realm.run_initiator(self.resp.port, ["never delivered"], *extra, **kw)
        self.assertEqual(r.rc, rc, r)
        self.assertIn(text, r.stderr, r)
        self.assertEqual(r.stdout, "", r)
        return r

    def test_wrong_key(self):
        # A key file for "alice" from another realm: the KDC's alice key differs.
        with k.Realm(("alice",)) as other:
            self.expect(EXIT_HANDSHAKE, "BAD_AUTH", "--keyfile", other.keyfile("alice"))

    def test_unknown_principal(self):
        with k.Realm(("dave",)) as other:
            r = self.realm.run_initiator(self.resp.port, ["x"], "--keyfile",
                                         other.keyfile("dave"))
            self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
            self.assertIn("UNKNOWN_PRINCIPAL", r.stderr)

    def test_unknown_responder_name(self):
        self.expect(EXIT_HANDSHAKE, "UNKNOWN_PRINCIPAL", peer="zed")

    def test_policy_denied(self):
        self.expect(EXIT_HANDSHAKE, "POLICY_DENIED", name="carol")

    def test_same_principal(self):
        r = self.realm.run_initiator(self.resp.port, ["x"], peer="alice")
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertIn("initiator and responder must differ", r.stderr)

    def test_suite_not_allowed(self):
        resp = self.realm.start_responder("--suites", "chacha20-poly1305")
        r = self.realm.run_initiator(resp.port, ["x"], "--suite", "aes-256-gcm")
        self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
        self.assertIn("UNSUPPORTED", r.stderr)

    def test_forward_secrecy_required(self):
        resp = self.realm.start_responder("--require-forward-secret")
        r = self.realm.run_initiator(resp.port, ["x"])
        self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
        self.assertIn("forward-secret", r.stderr)
        r = self.realm.run_initiator(resp.port, ["x"], "--forward-secret")
        self.assertEqual(r.rc, EXIT_OK, r)

    def test_readable_key_file_refused(self):
        path = os.path.join(self.realm.dir, "loose.key")
        with open(self.realm.keyfile("alice"), "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o640)
        r = self.realm.run_initiator(self.resp.port, ["x"], "--keyfile", path)
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertIn("readable by group or others", r.stderr)

    def test_no_kdc_answers(self):
        dead = k.free_port()
        resp = self.realm.start_responder("--kdc-timeout-ms", "50", kdc=[f"127.0.0.1:{dead}"])
        r = self.realm.run_initiator(resp.port, ["x"], timeout=60)
        self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
        self.assertIn("TIMEOUT", r.stderr)

    def test_responder_unreachable(self):
        r = self.realm.run_initiator(k.free_port(), ["x"])
        self.assertEqual(r.rc, EXIT_GONE, r)


class KdcPaths(unittest.TestCase):
    """The responder's KDC client: next KDC in the list, and TCP when UDP is lost."""

    def test_failover_to_second_kdc(self):
        with k.Realm() as realm:
            realm.start_kdc()
            dead = k.free_port()
            resp = realm.start_responder("--kdc-timeout-ms", "50",
                                         kdc=[f"127.0.0.1:{dead}", f"127.0.0.1:{realm.kdc_port}"])
            r = realm.run_initiator(resp.port, ["via the second KDC"])
            self.assertEqual(r.rc, EXIT_OK, r)

    def test_tcp_when_udp_is_lost(self):
        with k.Realm() as realm:
            kdc = realm.start_kdc()
            # A port where UDP datagrams vanish and TCP is relayed to the KDC. The TCP
            # port of that number may be taken (tests run in parallel): try another.
            for _ in range(20):
                hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                hole.bind(("127.0.0.1", 0))
                port = hole.getsockname()[1]
                try:
                    relay = M.TcpRelay(port, realm.kdc_port)
                    break
                except OSError:
                    hole.close()
            else:
                self.fail("no port number free for both UDP and TCP")
            try:
                resp = realm.start_responder("--kdc-timeout-ms", "50",
                                             kdc=[f"127.0.0.1:{port}"])
                r = realm.run_initiator(resp.port, ["over tcp"])
                self.assertEqual(r.rc, EXIT_OK, r)
                self.assertEqual(r.stdout, "")  # no --exec: bob prints, alice gets nothing
                kdc.wait_for(r" tcp ")  # the KDC logged a TCP request
            finally:
                hole.close()
                relay.close()


class Busy(unittest.TestCase):
    """BUSY: a KDC at its connection cap, a responder at its session cap."""

    def test_kdc_connection_cap(self):
        with k.Realm() as realm:
            realm.start_kdc("--max-conns", "1", workers=1)
            first = socket.create_connection(("127.0.0.1", realm.kdc_port), timeout=5)
            second = socket.create_connection(("127.0.0.1", realm.kdc_port), timeout=5)
            try:
                reply = second.recv(1024)
                self.assertGreaterEqual(len(reply), 7, reply)
                self.assertEqual(reply[1], 0x7F)  # ERROR
                self.assertEqual(int.from_bytes(reply[4:6], "big"), 7)  # BUSY
                self.assertIn(b"busy", reply)
            finally:
                first.close()
                second.close()

    def test_responder_session_cap(self):
        with k.Realm() as realm:
            realm.start_kdc()
            resp = realm.start_responder("--max-sessions", "1", "--exec", "cat")
            hold = subprocess.Popen(realm.initiator_argv(resp.port), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                hold.stdin.write(b"holding\n")
                hold.stdin.flush()
                self.assertEqual(hold.stdout.readline(), b"holding\n")
                r = realm.run_initiator(resp.port, ["refused"])
                self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
                self.assertIn("BUSY", r.stderr)
            finally:
                hold.communicate(timeout=10)  # closes its stdin: a clean CLOSE
            self.assertEqual(hold.returncode, EXIT_OK)


class BoolWords(unittest.TestCase):
    """A yes|no option followed by its value as the next word ("--log-requests no") is
    taken as "--log-requests=no" by each program; a next word that is no boolean word
    is not taken (it stays a positional argument, which these programs refuse)."""

    REQUEST_LINE = r"alice -> bob kvno \d+/\d+ OK"

    @classmethod
    def setUpClass(cls):
        cls.realm = k.Realm(("alice", "bob"))

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()

    def session(self, kdc, *initiator_args, resp_args=()):
        resp = self.realm.start_responder(*resp_args, kdc=[f"127.0.0.1:{kdc.port}"])
        r = self.realm.run_initiator(resp.port, ["x"], *initiator_args)
        resp.stop()
        return r, resp

    def test_kdc_log_requests_no(self):
        quiet = self.realm.start_kdc("--log-requests", "no", "--trace", "off")
        loud = self.realm.start_kdc("--log-requests", "yes")
        for kdc in (quiet, loud):
            r, _ = self.session(kdc)
            self.assertEqual(r.rc, EXIT_OK, r)
        loud.wait_for(self.REQUEST_LINE)
        quiet.stop()
        self.assertNotRegex(quiet.text(), self.REQUEST_LINE)
        self.assertNotIn("M2", quiet.text())  # --trace off: no frame printed
        r = k.run([k.exe("kdc"), "serve", *self.realm.dbargs, "--trace", "extra"])
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertIn("unexpected argument 'extra'", r.stderr)

    def test_initiator_forward_secret_no(self):
        kdc = self.realm.start_kdc()
        for word, on in (("no", "off"), ("off", "off"), ("yes", "on"), ("1", "on")):
            with self.subTest(word=word):
                r, _ = self.session(kdc, "--forward-secret", word, "--batch", "yes")
                self.assertEqual(r.rc, EXIT_OK, r)
                self.assertIn(f"forward secrecy {on}", r.stderr)
        r = self.realm.run_initiator(kdc.port, ["x"], "--trace", "trace.out")
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertIn("unexpected argument 'trace.out'", r.stderr)

    def test_responder_require_forward_secret_yes(self):
        kdc = self.realm.start_kdc()
        r, _ = self.session(kdc, "--forward-secret", "no",
                            resp_args=("--require-forward-secret", "yes"))
        self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
        self.assertIn("forward-secret", r.stderr)
        r, resp = self.session(kdc, "--forward-secret", "no",
                               resp_args=("--require-forward-secret", "no", "--trace", "false"))
        self.assertEqual(r.rc, EXIT_OK, r)
        self.assertNotIn("M1", resp.text())  # --trace false: no frame printed
        r = k.run([k.exe("responder"), "--keyfile", self.realm.keyfile("bob"), "--json",
                   "somefile"])
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertIn("unexpected argument 'somefile'", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
