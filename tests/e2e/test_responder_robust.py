"""End to end: the responder stays responsive and truthful when others misbehave.

- Default mode, stdout nobody reads: received messages queue up to a bound, the
  sessions that deliver wait, and everything else (new handshakes, SIGTERM) goes on.
- --exec, a command that leaves something running in the background holding its
  stdout: the session still ends within a second of the command's exit, and the
  background process ends with it (the command's process group is signalled).
- A forged ERROR datagram from the KDC's address does not end an exchange: the
  responder asks the KDC again over TCP before believing it; a real ERROR still reaches
  the initiator.
- The log names an initiator as "with NAME" only once the session is established;
  before, the name is only claimed.
- Hardening: the command's environment is minimal; a closed stdout becomes /dev/null;
  a refused connection gets its ERROR BUSY and a clean end of stream; stdin and stdout
  descriptions shared with others keep their flags.

KD3_BIN: the build directory (default ../../build from this file).
"""
import fcntl
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kd3e2e as k  # noqa: E402
import mitm as M  # noqa: E402

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_HANDSHAKE, EXIT_AUTH, EXIT_GONE = 0, 1, 2, 3, 4, 5
CODE_BAD_AUTH = 4


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class RawResponder:
    """A responder whose stdin, stdout and stderr the test chooses (kd3e2e.Proc always
    reads stdout). stderr goes to a file, read back for its log lines."""

    def __init__(self, realm, *extra, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 preexec_fn=None):
        self.log_path = os.path.join(realm.dir, f"responder-{random.getrandbits(32)}.log")
        for _ in range(5):
            self.port = k.free_port()
            argv = [k.exe("responder"), "--listen", f"127.0.0.1:{self.port}", "--keyfile",
                    realm.keyfile("bob"), "--kdc", f"127.0.0.1:{realm.kdc_port}", *extra]
            with open(self.log_path, "wb") as log:
                self.p = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=log,
                                          preexec_fn=preexec_fn)
            try:
                self.wait_for("listening on")
                return
            except AssertionError:
                self.stop()
                if "Address already in use" not in self.text():
                    raise
        raise AssertionError("no free port after 5 tries")

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=10.0):
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text())
            if m:
                return m
            if time.monotonic() > deadline or self.p.poll() is not None:
                if self.p.poll() is not None:
                    m = rx.search(self.text())
                    if m:
                        return m
                raise AssertionError(f"responder: no line matching {pattern!r} within "
                                     f"{timeout}s; log:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def stop(self, timeout=5.0):
        """SIGTERM; the exit code, or None when it did not stop within timeout (then it
        is killed)."""
        if self.p.poll() is not None:
            return self.p.returncode
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)
            return None


def pipe_bytes(fd):
    """Bytes waiting in a pipe (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


class StdoutNotRead(unittest.TestCase):
    """Default mode: a stdout nobody drains must not freeze the responder."""

    def setUp(self):
        self.realm = k.Realm()
        self.addCleanup(self.realm.close)
        self.realm.start_kdc()

    def flood(self, port, mbytes):
        """An initiator sending mbytes MiB of lines; its stdin is a file."""
        src = tempfile.TemporaryFile(dir=self.realm.dir)
        line = b"x" * 1000 + b"\n"
        src.write(line * (mbytes * 1024 * 1024 // len(line)))
        src.seek(0)
        p = subprocess.Popen(self.realm.initiator_argv(port, "--timeout", "30"), stdin=src,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        src.close()

        def cleanup():
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=10)
        self.addCleanup(cleanup)
        return p

    def test_full_stdout_does_not_freeze_the_loop(self):
        r_fd, w_fd = os.pipe()
        self.addCleanup(os.close, r_fd)
        resp = RawResponder(self.realm, stdout=w_fd)
        self.addCleanup(resp.stop)
        # The responder writes through its own description of the pipe: the one we
        # share with it (w_fd) stays blocking.
        self.assertFalse(fcntl.fcntl(w_fd, fcntl.F_GETFL) & os.O_NONBLOCK)
        os.close(w_fd)
        self.flood(resp.port, 8)
        resp.wait_for(r"session 1 with alice established")
        # The pipe fills up (64 KiB, less what does not fit in its last page) and is
        # never read.
        wait_until(lambda: pipe_bytes(r_fd) >= 60000, 10, "the stdout pipe to fill")
        time.sleep(0.5)

        # A second initiator still gets through its handshake, and its CLOSE.
        t0 = time.monotonic()
        r = self.realm.run_initiator(resp.port, (), "--timeout", "5", timeout=20)
        self.assertIn("session with bob established", r.stderr, r)
        self.assertEqual(r.rc, EXIT_OK, r)
        self.assertLess(time.monotonic() - t0, 5)
        resp.wait_for(r"session 2 with alice closed")

        # SIGTERM is handled at once: the sessions close, the queue is given up.
        t0 = time.monotonic()
        rc = resp.stop(timeout=8)
        self.assertEqual(rc, 0, "the responder did not stop within 8 s of SIGTERM\n"
                         + resp.text()[-2000:])
        self.assertLess(time.monotonic() - t0, 6)
        self.assertRegex(resp.text(), r"\d+ bytes of messages were never written")

    def test_slow_reader_gets_every_line(self):
        """Back-pressure loses nothing: 4 MiB through a stdout read only after a pause,
        then slowly, arrive complete and in order."""
        r_fd, w_fd = os.pipe()
        resp = RawResponder(self.realm, stdout=w_fd)
        self.addCleanup(resp.stop)
        os.close(w_fd)
        lines = [b"%06d " % i + os.urandom(400).hex().encode() for i in range(5000)]
        got = []

        def reader():
            time.sleep(1.5)
            with os.fdopen(r_fd, "rb") as f:
                for raw in f:
                    got.append(raw.rstrip(b"\n"))
                    if len(got) % 500 == 0:
                        time.sleep(0.05)
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        r = self.realm.run_initiator(resp.port, (), input_bytes=b"\n".join(lines) + b"\n",
                                     timeout=60)
        self.assertEqual(r.rc, EXIT_OK, r)
        resp.wait_for(r"session 1 with alice closed")
        self.assertEqual(resp.stop(), 0)
        t.join(20)
        self.assertEqual(len(got), len(lines))
        self.assertEqual(got, lines)


def procs_with_arg(arg):
    """pids of our processes whose command line is `sleep arg`."""
    found = []
    want = b"sleep\0" + arg.encode() + b"\0"
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if f.read() == want:
                    found.append(int(d))
        except OSError:
            pass
    return found


class ExecBackground(unittest.TestCase):
    """--exec: what the command leaves running cannot keep the session open."""

    def test_background_process_holding_stdout(self):
        # A duration no other process uses: it names our sleep in /proc.
        arg = f"30.{random.randrange(10**8):08d}"
        with k.Realm() as realm:
            try:
                realm.start_kdc()
                resp = realm.start_responder("--exec", f"(sleep {arg} &); cat")
                t0 = time.monotonic()
                r = realm.run_initiator(resp.port, ["hello"], "--timeout", "6", timeout=30)
                elapsed = time.monotonic() - t0
                self.assertEqual(r.rc, EXIT_OK, r)
                self.assertEqual(r.stdout, "hello\n")
                self.assertLess(elapsed, 4, f"the session took {elapsed:.1f} s to close")
                resp.wait_for(r"session 1: the command exited but what it started still "
                              r"holds its stdout")
                resp.wait_for(r"session 1 with alice closed \(command exited with status 0\)")
                # Its process group was sent SIGTERM: the sleep is gone.
                wait_until(lambda: not procs_with_arg(arg), 3, "the background sleep to end")
            finally:
                # Before the realm stops the responder: the sleep holds its stderr open.
                for pid in procs_with_arg(arg):
                    os.kill(pid, signal.SIGKILL)

    def test_background_process_ends_at_stop(self):
        """A session still open when the responder stops: the command's whole process
        group ends, not only the command."""
        arg = f"30.{random.randrange(10**8):08d}"
        with k.Realm() as realm:
            realm.start_kdc()
            resp = realm.start_responder("--exec", f"sleep {arg} & cat")
            p = subprocess.Popen(realm.initiator_argv(resp.port), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                p.stdin.write(b"ping\n")
                p.stdin.flush()
                self.assertEqual(p.stdout.readline(), b"ping\n")
                wait_until(lambda: procs_with_arg(arg), 3, "the background sleep to start")
                # Signalled directly: Proc.stop would wait for the end of the log, which
                # the sleep holds open (it shares the responder's stderr).
                resp.p.send_signal(signal.SIGTERM)
                self.assertEqual(resp.p.wait(10), 0)
                wait_until(lambda: not procs_with_arg(arg), 3, "the background sleep to end")
            finally:
                for pid in procs_with_arg(arg):
                    os.kill(pid, signal.SIGKILL)
                p.kill()
                p.communicate(timeout=10)

    def test_minimal_environment(self):
        with k.Realm() as realm:
            realm.start_kdc()
            env = dict(os.environ, KD3_TEST_SECRET="must-not-leak", LANG="C.UTF-8")
            resp = realm.start_responder("--exec", "env; cat >/dev/null", env=env)
            r = realm.run_initiator(resp.port, ["x"])
            self.assertEqual(r.rc, EXIT_OK, r)
            names = {line.split("=", 1)[0] for line in r.stdout.splitlines()}
            self.assertIn("KD3_PEER=alice", r.stdout.splitlines())
            self.assertIn("KD3_SESSION=1", r.stdout.splitlines())
            self.assertIn("LANG=C.UTF-8", r.stdout.splitlines())
            self.assertNotIn("KD3_TEST_SECRET", names)
            # sh adds PWD (and may add SHLVL, _); nothing else of ours.
            self.assertLessEqual(names, {"PATH", "HOME", "LANG", "TERM", "KD3_PEER",
                                         "KD3_SESSION", "PWD", "SHLVL", "_", "OLDPWD"})


def error_frame(code, text):
    body = struct.pack(">H", code) + bytes([len(text)]) + text
    return bytes([1, M.T_ERROR]) + struct.pack(">H", len(body)) + body


class ForgedKdcError(unittest.TestCase):
    """An ERROR datagram is not authenticated: it is confirmed over TCP first."""

    def setUp(self):
        self.realm = k.Realm()
        self.addCleanup(self.realm.close)
        self.realm.start_kdc()

    def mitm_with_tcp(self, hook, relay=True):
        """A UdpMitm in front of the KDC, and on the same port number either a TCP relay
        to the KDC or (relay=False) a bound socket that refuses connections."""
        for _ in range(20):
            udp = M.UdpMitm(self.realm.kdc_port, hook=hook)
            try:
                if relay:
                    tcp = M.TcpRelay(udp.port, self.realm.kdc_port)
                    self.addCleanup(tcp.close)
                else:
                    tcp = socket.socket()
                    tcp.bind(("127.0.0.1", udp.port))
                    self.addCleanup(tcp.close)
            except OSError:
                udp.close()
                continue
            self.addCleanup(self.close_udp, udp)
            return udp, tcp
        raise AssertionError("no port free for both UDP and TCP")

    @staticmethod
    def close_udp(udp):
        udp.close()
        for conn in list(udp.conns.values()):
            conn.up.close()

    def test_forged_udp_error_does_not_end_the_exchange(self):
        forged = []

        def hook(conn, direction, n, frame):
            if direction == "R->KDC" and frame[1] == M.T_M2:
                conn.back(error_frame(CODE_BAD_AUTH, b"forged"))
                forged.append(frame)
                return []  # the real M2 never reaches the KDC over UDP
            return [frame]

        udp, tcp = self.mitm_with_tcp(hook)
        resp = self.realm.start_responder("--kdc-timeout-ms", "2000",
                                          kdc=[f"127.0.0.1:{udp.port}"])
        r = self.realm.run_initiator(resp.port, ["through the forged error"], "--timeout", "5",
                                     timeout=20)
        self.assertEqual(len(forged), 1)
        self.assertEqual(r.rc, EXIT_OK, r)
        self.assertIn("session with bob established", r.stderr)
        self.assertNotIn("BAD_AUTH", r.stderr)
        resp.wait_for(r"session 1: KDC 127\.0\.0\.1:\d+ answered ERROR BAD_AUTH over UDP; "
                      r"asking it again over TCP")
        resp.wait_for(r"session 1: the UDP ERROR BAD_AUTH was not confirmed: KDC "
                      r"127\.0\.0\.1:\d+ answered M3 over TCP")
        resp.wait_for(r"session 1 with alice established")
        resp.wait_for("through the forged error", stream="out")
        self.assertEqual(tcp.accepted, 1)

    def test_real_error_still_reaches_the_initiator(self):
        resp = self.realm.start_responder()
        with k.Realm(("dave",)) as other:
            r = self.realm.run_initiator(resp.port, ["x"], "--keyfile", other.keyfile("dave"),
                                         timeout=20)
        self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
        self.assertIn("UNKNOWN_PRINCIPAL", r.stderr)
        resp.wait_for(r"session 1: KDC 127\.0\.0\.1:\d+ confirmed its ERROR over TCP")
        resp.wait_for(r"session 1 \(claiming dave\) failed: KDC sent ERROR UNKNOWN_PRINCIPAL")

    def test_udp_error_taken_when_tcp_is_down(self):
        udp, _ = self.mitm_with_tcp(M.honest, relay=False)
        resp = self.realm.start_responder(kdc=[f"127.0.0.1:{udp.port}"])
        with k.Realm(("dave",)) as other:
            r = self.realm.run_initiator(resp.port, ["x"], "--keyfile", other.keyfile("dave"),
                                         timeout=20)
        self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
        self.assertIn("UNKNOWN_PRINCIPAL", r.stderr)
        resp.wait_for(r"session 1: KDC 127\.0\.0\.1:\d+ could not be asked over TCP "
                      r"\(Connection refused\); taking its UDP ERROR UNKNOWN_PRINCIPAL")


class ClaimedName(unittest.TestCase):
    """Before the session is established the initiator's name is a claim, and the log
    says so."""

    def test_failed_handshake_names_a_claim(self):
        with k.Realm() as realm:
            realm.start_kdc()
            resp = realm.start_responder()
            # Someone without alice's key (another realm's "alice") claims to be alice.
            with k.Realm(("alice",)) as other:
                r = realm.run_initiator(resp.port, ["x"], "--keyfile", other.keyfile("alice"))
            self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
            resp.wait_for(r"session 1 \(claiming alice\) failed: KDC sent ERROR BAD_AUTH")
            # The honest alice: "with alice" once established.
            r = realm.run_initiator(resp.port, ["y"])
            self.assertEqual(r.rc, EXIT_OK, r)
            resp.wait_for(r"session 2 with alice closed$")
            log = resp.text()
            self.assertNotIn("session 1 with alice", log)
            self.assertIn("session 2 with alice established", log)


class Hardening(unittest.TestCase):

    def test_closed_stdout_becomes_dev_null(self):
        """Started with fd 1 closed, the responder must not put a socket (or its epoll
        set) there and then write messages into it: fd 1 is /dev/null."""
        with k.Realm() as realm:
            realm.start_kdc()
            resp = RawResponder(realm, preexec_fn=lambda: os.close(1))
            self.addCleanup(resp.stop)
            r = realm.run_initiator(resp.port, ["into the void"])
            self.assertEqual(r.rc, EXIT_OK, r)
            resp.wait_for(r"session 1 with alice closed$")
            self.assertEqual(resp.stop(), 0)

    def test_stdin_pipe_keeps_its_flags(self):
        """stdin is read non-blocking through the responder's own description: the pipe
        end we share with it stays blocking, and each line still reaches the session."""
        with k.Realm() as realm:
            realm.start_kdc()
            r_fd, w_fd = os.pipe()
            resp = RawResponder(realm, stdin=r_fd)
            self.addCleanup(resp.stop)
            self.addCleanup(os.close, w_fd)
            self.assertFalse(fcntl.fcntl(r_fd, fcntl.F_GETFL) & os.O_NONBLOCK)
            os.close(r_fd)
            p = subprocess.Popen(realm.initiator_argv(resp.port), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                resp.wait_for(r"session 1 with alice established")
                os.write(w_fd, b"from bob's stdin\n")
                self.assertEqual(p.stdout.readline(), b"from bob's stdin\n")
            finally:
                out, err = p.communicate(timeout=10)
            self.assertEqual(p.returncode, EXIT_OK, err)

    def test_refused_connection_ends_cleanly(self):
        """Over --max-sessions the responder answers ERROR BUSY, then ends its direction
        (FIN) and reads what the initiator sent until its EOF: the initiator reads the
        ERROR and a clean end of stream, never a reset (closing with our M1 unread would
        send one)."""
        with k.Realm() as realm:
            realm.start_kdc()
            resp = realm.start_responder("--max-sessions", "1", "--exec", "cat")
            hold = subprocess.Popen(realm.initiator_argv(resp.port), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                hold.stdin.write(b"holding\n")
                hold.stdin.flush()
                self.assertEqual(hold.stdout.readline(), b"holding\n")
                for i in range(10):
                    with self.subTest(run=i):
                        s = socket.create_connection(("127.0.0.1", resp.port), timeout=5)
                        s.sendall(b"\x01\x01\x00\x40" + b"m" * 64)  # an M1-sized frame
                        time.sleep(0.1)  # the responder refused and closed meanwhile
                        got = b""
                        try:
                            while True:
                                d = s.recv(4096)
                                if not d:
                                    break
                                got += d
                        finally:
                            s.close()
                        self.assertEqual(got[1], M.T_ERROR)
                        self.assertEqual(struct.unpack(">H", got[4:6])[0], 7)  # BUSY
            finally:
                hold.communicate(timeout=10)
            self.assertEqual(hold.returncode, EXIT_OK)


if __name__ == "__main__":
    unittest.main(verbosity=2)
