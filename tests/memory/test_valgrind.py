#!/usr/bin/python3
"""Every kd3 executable under valgrind memcheck through real end-to-end runs: zero
errors and no definite leak, in every process.

kd3e2e runs each kd3 executable under valgrind when KD3_VALGRIND names a folder
(--leak-check=full --errors-for-leak-kinds=definite --error-exitcode=97, one log per
process: NAME.PID.log). The runs: kdc init and add; kdc serve (UDP and TCP, with a
transcript); a responder in default mode and one with --exec, whose first KDC is dead;
sessions with forward secrecy off and on, both suites, key updates, transcripts with
keys; a failing handshake (a forged key: BAD_AUTH), an initiator asking for an unknown
responder, an unknown KDC principal; a tampered record (a bit flipped by a man in the
middle); a handshake left half-open until the timeout; garbage, a bad header and a real
request straight at the KDC. Then every process is stopped with SIGTERM and every log
is read: each must end with "ERROR SUMMARY: 0 errors" (definite leaks count as errors
here) and say "definitely lost: 0" if it lists leaks at all.

Positive control: valgrind_control (a definite leak, a jump on an uninitialised value)
run with the same options must come out as an error exit and a log the same check
refuses.

KD3_BIN: a build without sanitizers. KD3_VALGRIND_CONTROL: the built valgrind_control.
Needs valgrind (Debian: valgrind); exits 77 (skipped) without it. Runs about a minute.
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "resource"))

import kd3e2e as k  # noqa: E402
import kd3proto as P  # noqa: E402
import mitm as M  # noqa: E402

SKIP = 77
TIMEOUT = ["--timeout", "60"]  # everything is 20-50 times slower under valgrind


def forged_keyfile(realm, name):
    """A key file naming name with a key the KDC does not have (mode 0600)."""
    path = os.path.join(realm.dir, f"forged-{name}.key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"principal = {name}\nkey = 1:{os.urandom(32).hex()}\n")
    return path


def flip_first_data(conn, direction, n, frame):
    """Flips a bit in the sealed part of the second I->R record (the first DATA)."""
    if direction == "I->R" and frame[1] == M.T_RECORD:
        conn.records = getattr(conn, "records", 0) + 1
        if conn.records == 2:
            return [M.flip(frame, -1)]
    return [frame]


def check_log(text):
    """'clean', None when the log has no summary (the process did not exit, or exec'd),
    or what is wrong."""
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    if not summary:
        return None
    definite = re.search(r"definitely lost: ([\d,]+) bytes", text)
    if summary.group(1) != "0" or (definite and definite.group(1) != "0"):
        return summary.group(0) + (f", definitely lost {definite.group(1)} bytes"
                                   if definite else "")
    return "clean"


def read_log(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


class Valgrind(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.logdir = tempfile.mkdtemp(prefix="kd3-valgrind-")
        os.environ["KD3_VALGRIND"] = cls.logdir

    @classmethod
    def tearDownClass(cls):
        os.environ.pop("KD3_VALGRIND", None)
        shutil.rmtree(cls.logdir, ignore_errors=True)

    def check_logs(self, started, exec_sessions):
        """Every log clean; every kd3 process we started has one. A responder's child for
        --exec is a fork that replaces itself with /bin/sh (valgrind stops following it
        then, so its log has no summary): one per --exec session, no more."""
        logs = sorted(glob.glob(os.path.join(self.logdir, "*.log")))
        parsed, bad = {}, []
        for path in logs:
            text = read_log(path)
            pid = re.search(r"^==(\d+)==", text, re.M)
            if not pid:
                bad.append(f"{os.path.basename(path)}: not a valgrind log:\n{text[-2000:]}")
                continue
            parent = re.search(r"^==\d+== Parent PID: (\d+)$", text, re.M)
            parsed[int(pid.group(1))] = (os.path.basename(path), text,
                                         int(parent.group(1)) if parent else 0)
        seen, exec_children = {}, 0
        for pid, (name, text, parent) in sorted(parsed.items()):
            summary = check_log(text)
            if summary is None and parent in parsed:
                exec_children += 1
                continue
            seen[name] = re.search(r"^==\d+== Command: (.*)$", text, re.M).group(1)
            if summary != "clean":
                bad.append(f"{name}: {summary or 'no ERROR SUMMARY (did it exit?)'}\n"
                           + text[-6000:])
        print(f"\nvalgrind: {len(logs)} process logs ({exec_children} of them children that "
              "ran the --exec command):")
        for name, cmd in sorted(seen.items()):
            print(f"  {name}: {cmd[:120]}")
        self.assertEqual(bad, [], "\n\n".join(bad))
        self.assertEqual(exec_children, exec_sessions)
        for prog, n in started.items():
            got = sum(1 for c in seen.values() if os.path.basename(c.split()[0]) == prog)
            self.assertEqual(got, n, f"{got} {prog} logs for {n} {prog} processes run")

    def test_control_is_caught(self):
        """The options and the log check do catch a leak and an error (valgrind_control)."""
        control = os.environ.get("KD3_VALGRIND_CONTROL")
        if not control:
            self.skipTest("KD3_VALGRIND_CONTROL (the built valgrind_control) is not set")
        with tempfile.TemporaryDirectory(prefix="kd3-valgrind-control-") as folder:
            log = os.path.join(folder, "control.log")
            r = subprocess.run(["valgrind", *k.VALGRIND_ARGS, f"--log-file={log}", control],
                               stdout=subprocess.DEVNULL, timeout=120)
            text = read_log(log)
        verdict = check_log(text)
        print(f"\ncontrol: exit {r.returncode}, {verdict}")
        self.assertEqual(r.returncode, 97)
        self.assertIn("Conditional jump or move depends on uninitialised value", text)
        self.assertIn("definitely lost 256 bytes", verdict)
        self.assertRegex(verdict, r"ERROR SUMMARY: [2-9]\d* errors")

    def test_end_to_end_under_valgrind(self):
        t0 = time.monotonic()
        started = {"kdc": 0, "responder": 0, "initiator": 0, "exec sessions": 0}
        with k.Realm(("alice", "bob", "carol")) as realm:
            started["kdc"] += 4  # init, add x 3
            procs = []
            try:
                self.scenarios(realm, procs, started)
            finally:
                codes = {os.path.basename(p.argv[0]) + f" {p.p.pid}": p.stop(timeout=60)
                         for p in reversed(procs)}
            print(f"\nservers' exit codes after SIGTERM: {codes}")
            self.assertEqual(set(codes.values()), {0}, codes)
        self.check_logs(started, exec_sessions=started.pop("exec sessions"))
        print(f"valgrind runs took {time.monotonic() - t0:.1f} s")

    def scenarios(self, realm, procs, started):
        kdc = realm.start_kdc("--transcript", os.path.join(realm.dir, "kdc.tr"),
                              "--reveal-keys")
        procs.append(kdc)
        # Default mode (stdout), the first KDC dead (failover); the half-open handshake
        # below waits for its handshake timeout.
        dead = k.free_port()
        plain = realm.start_responder("--handshake-timeout", "10", "--transcript",
                                      os.path.join(realm.dir, "bob.tr"), "--reveal-keys",
                                      kdc=[f"127.0.0.1:{dead}", f"127.0.0.1:{kdc.port}"])
        procs.append(plain)
        execd = realm.start_responder("--exec", "cat", "--rekey-after-messages", "2")
        procs.append(execd)
        started["kdc"] += 1
        started["responder"] += 2

        def initiator(port, lines, *extra, **kw):
            started["initiator"] += 1
            return realm.run_initiator(port, lines, *TIMEOUT, *extra, timeout=240, **kw)

        # Honest sessions: forward secrecy off and on, both suites, key updates, transcripts.
        r = initiator(plain.port, ["one", "two"])
        self.assertEqual(r.rc, 0, r)
        r = initiator(plain.port, ["three"] * 4, "--forward-secret=yes", "--suite",
                      "aes-256-gcm", "--rekey-after-messages", "1", "--transcript",
                      os.path.join(realm.dir, "alice.tr"), "--reveal-keys", "--json")
        self.assertEqual(r.rc, 0, r)
        plain.wait_for(r"^three$", stream="out", timeout=30)
        r = initiator(execd.port, ["echo me", "and me"], "--forward-secret=yes")
        started["exec sessions"] += 1
        self.assertEqual((r.rc, r.stdout), (0, "echo me\nand me\n"), r)

        # Failing handshakes: a forged key (the KDC: BAD_AUTH), an unknown responder name
        # (the responder refuses M1), a principal the KDC does not know.
        r = initiator(plain.port, ["x"], "--keyfile", forged_keyfile(realm, "alice"))
        self.assertEqual(r.rc, 3, r)
        self.assertIn("initiator authenticator did not verify", r.stderr)
        r = initiator(plain.port, ["x"], peer="dave")
        self.assertEqual(r.rc, 3, r)
        r = initiator(plain.port, ["x"], "--keyfile", forged_keyfile(realm, "mallory"))
        self.assertEqual(r.rc, 3, r)
        self.assertIn("UNKNOWN_PRINCIPAL", r.stderr + kdc.text())

        # A tampered record: the responder refuses it and ends the session.
        mitm = M.TcpMitm(plain.port, hook=flip_first_data, half_close=True)
        try:
            r = initiator(mitm.port, ["tampered", "never"])
        finally:
            mitm.close()
        self.assertEqual(r.rc, 4, r)
        plain.wait_for(r"record failed authentication", timeout=30)

        # A handshake left half-open after M4 until the responder's timeout.
        alice = P.load_keyfile(realm.keyfile("alice"))
        m1 = P.m1_body(alice, b"bob")
        with socket.create_connection(("127.0.0.1", plain.port), timeout=30) as s:
            s.sendall(P.frame(P.T_M1, m1))
            P.check_m4(P.recv_frame(s, 60), alice, b"bob", m1)
            plain.wait_for(r"handshake timed out \(in WAIT_FINISHED\)", timeout=60)

        # Straight at the KDC: garbage over UDP, a bad header and a real request over TCP.
        bob = P.load_keyfile(realm.keyfile("bob"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(os.urandom(300), ("127.0.0.1", kdc.port))
        with socket.create_connection(("127.0.0.1", kdc.port), timeout=30) as s:
            s.sendall(b"\x07\x07\x07\x07")
            self.assertIsNotNone(P.recv_frame(s, 60))
        req = P.Request(alice, bob)
        with socket.create_connection(("127.0.0.1", kdc.port), timeout=30) as s:
            s.sendall(req.frame)
            req.check_m3(P.recv_frame(s, 60))
        kdc.wait_for(r"tcp 127\.0\.0\.1:\d+ alice -> bob kvno 1/1 OK", timeout=30)

        # One more honest session after all that, through both responders.
        r = initiator(plain.port, ["last"])
        self.assertEqual(r.rc, 0, r)
        r = initiator(execd.port, ["last"])
        started["exec sessions"] += 1
        self.assertEqual((r.rc, r.stdout), (0, "last\n"), r)


if __name__ == "__main__":
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)")
        sys.exit(1 if os.environ.get("CI") == "true" else SKIP)  # CI must run it
    unittest.main(verbosity=2)
