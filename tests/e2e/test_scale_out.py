"""A realm that outgrows one machine, end to end on 127.0.0.1: a PostgreSQL primary and
one streaming hot standby (real servers, started here: tests/support/pgcluster.py), two
stateless KDCs loading from the standby and writing to the primary, and responders
listing them.

Checked: sessions work through either KDC; `kdc add` on the primary is served by both
KDCs within a second (plus replication); a principal locked out through KDC 1 is
refused by KDC 2, and `kdc unlock` reaches both; kill -9 of the primary: both KDCs go
on issuing keys from their snapshots and say so once; the standby promoted: admin
writes work again and the failures queued meanwhile arrive; kill -9 of one KDC: the
responder fails over with no failed session after the first. `kdc status` shows each
KDC's snapshot. Times are printed as KD3SCALE lines.
"""
import os
import re
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import kd3e2e as k  # noqa: E402
import pgcluster  # noqa: E402

LIVE_S = 1.0         # the bound for an admin change on one KDC
REPLICATION_S = 1.0  # what a standby may add on a loaded CI machine
LOCKOUT = ["--lockout-failures", "3", "--lockout-window-seconds", "60", "--lockout-seconds",
           "300"]


def note(text):
    print(f"KD3SCALE {text}", flush=True)


def mark(proc):
    with proc.cond:
        return len(proc.lines)


def wait_line(proc, pattern, since=0, timeout=10.0):
    """Seconds until a line at index >= since matches pattern."""
    rx = re.compile(pattern)
    start = time.monotonic()
    with proc.cond:
        while True:
            if any(rx.search(l) for l in proc.lines[since:]):
                return time.monotonic() - start
            left = start + timeout - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n" +
                                     "\n".join(proc.lines[-20:]))
            proc.cond.wait(min(left, 0.05))


def write_keyfile(path, name, kvno, key_hex):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"principal = {name}\nkey = {kvno}:{key_hex}\n")


class ScaleOut(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = pgcluster.PgCluster()
        cls.primary = cls.pg.start_primary()
        password = os.urandom(12).hex()
        cls.pg.create_role("kd3", password)
        cls.pg.create_database("kd3", "kd3")
        os.environ["PGPASSFILE"] = cls.pg.passfile([("*", "*", "kd3", password)])
        cls.dir = tempfile.mkdtemp(prefix="kd3-scale-")
        cls.stash = os.path.join(cls.dir, "realm.stash")
        cls.primary_uri = cls.primary.uri("kd3", "kd3")
        cls.admin("init")
        for name in ("alice", "bob", "carol"):
            cls.admin("add", name, "--keyfile", cls.keyfile(name))
        cls.standby = cls.pg.start_standby(cls.primary)
        cls.pg.wait_replayed(cls.standby)
        # Writes go to whichever of the two is the primary now (libpq picks it).
        cls.write_uri = (f"postgresql://kd3@127.0.0.1:{cls.primary.port},"
                         f"127.0.0.1:{cls.standby.port}/kd3?target_session_attrs=read-write")
        cls.procs = []

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            p.stop()
        cls.pg.close()

    @classmethod
    def keyfile(cls, name):
        return os.path.join(cls.dir, name + ".key")

    @classmethod
    def admin(cls, *args, uri=None, check=True):
        r = k.run([k.exe("kdc"), *args, "--db", uri or cls.primary_uri, "--stash", cls.stash],
                  timeout=60)
        if check and r.rc != 0:
            raise AssertionError(f"kdc {' '.join(args)}: {r}")
        return r

    @classmethod
    def start(cls, argv, ready):
        p = k.Proc(argv)
        cls.procs.append(p)
        p.wait_for(ready, timeout=20)
        return p

    @classmethod
    def start_kdc(cls, n):
        port = k.free_port()
        p = cls.start([k.exe("kdc"), "serve", "--db", cls.standby.uri("kd3", "kd3"),
                       "--db-write", cls.write_uri, "--stash", cls.stash, "--listen",
                       f"127.0.0.1:{port}", "--workers", "1", "--last-used-flush-seconds", "1",
                       "--status-file", os.path.join(cls.dir, f"kdc{n}.status"), *LOCKOUT],
                      r"serving on")
        p.port = port
        return p

    @classmethod
    def start_responder(cls, *kdcs):
        port = k.free_port()
        argv = [k.exe("responder"), "--listen", f"127.0.0.1:{port}", "--keyfile",
                cls.keyfile("bob"), "--exec", "cat"]
        for kdc in kdcs:
            argv += ["--kdc", f"127.0.0.1:{kdc.port}"]
        p = cls.start(argv, r"listening on")
        p.port = port
        return p

    def session(self, resp, name="alice", keyfile=None):
        return k.run([k.exe("initiator"), "--connect", f"127.0.0.1:{resp.port}", "--keyfile",
                      keyfile or self.keyfile(name), "--peer", "bob", "--batch", "--timeout",
                      "10"], input=b"hello\n", timeout=30)

    def assert_ok(self, r):
        self.assertEqual((r.rc, r.stdout), (0, "hello\n"), r)

    def assert_refused(self, r, text):
        self.assertEqual(r.rc, 3, r)
        self.assertIn(text, r.stderr)

    def until(self, what, check, timeout):
        """Seconds until check() holds; fails after timeout."""
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > timeout:
                self.fail(f"{what}: not within {timeout} s")
            time.sleep(0.05)
        return time.monotonic() - start

    def status(self, n):
        return k.run([k.exe("kdc"), "status", "--status-file",
                      os.path.join(self.dir, f"kdc{n}.status")])

    def test_realm_on_primary_and_standby(self):
        kdc1, kdc2 = self.start_kdc(1), self.start_kdc(2)
        via1, via2 = self.start_responder(kdc1), self.start_responder(kdc2)
        both = self.start_responder(kdc1, kdc2)
        for resp in (via1, via2, both):
            self.assert_ok(self.session(resp))
        r = self.status(1)
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.stdout, r"snapshot: +generation 1, .*3 principals")

        # An admin write on the primary, served by both KDCs.
        marks = (mark(kdc1), mark(kdc2))
        t0 = time.monotonic()
        self.admin("add", "dave", "--keyfile", self.keyfile("dave"))
        committed = time.monotonic() - t0
        for kdc, since in zip((kdc1, kdc2), marks):
            wait_line(kdc, r"reloaded \(the database changed\): 4 principals", since)
        served = time.monotonic() - t0 - committed
        note(f"kdc add -> served by both KDCs {served * 1000:.0f} ms after the commit")
        self.assertLess(served, LIVE_S + REPLICATION_S)
        for resp in (via1, via2):
            self.assert_ok(self.session(resp, "dave"))

        # Locked out through KDC 1, refused by KDC 2.
        wrong = os.path.join(self.dir, "alice-wrong.key")
        write_keyfile(wrong, "alice", 1, os.urandom(32).hex())
        for _ in range(3):
            self.assert_refused(self.session(via1, keyfile=wrong), "BAD_AUTH")
        wait_line(kdc1, r"principal alice locked out for 300 s")
        t0 = time.monotonic()
        seen = wait_line(kdc2, r"principal alice locked out for 300 s .*counted across KDCs")
        note(f"lockout through KDC 1 -> in force at KDC 2 {seen * 1000:.0f} ms later")
        self.assertLess(seen, LIVE_S + REPLICATION_S)
        self.assert_refused(self.session(via2), "temporarily locked out")
        self.assert_ok(self.session(via2, "carol"))

        marks = (mark(kdc1), mark(kdc2))
        t0 = time.monotonic()
        self.admin("unlock", "alice")
        for kdc, since in zip((kdc1, kdc2), marks):
            wait_line(kdc, r"principal alice unlocked", since, timeout=LIVE_S + REPLICATION_S)
        note(f"kdc unlock -> both KDCs serve alice {(time.monotonic() - t0) * 1000:.0f} ms")
        for resp in (via1, via2):
            self.assert_ok(self.session(resp))

        # The primary dies: both KDCs go on from their snapshots.
        marks = (mark(kdc1), mark(kdc2))
        self.pg.kill9(self.primary)
        carol_wrong = os.path.join(self.dir, "carol-wrong.key")
        write_keyfile(carol_wrong, "carol", 1, os.urandom(32).hex())
        self.assert_refused(self.session(via1, keyfile=carol_wrong), "BAD_AUTH")
        for _ in range(5):
            for resp in (via1, via2, both):
                self.assert_ok(self.session(resp))
        wait_line(kdc1, r"lockout: failed authentications not shared: .*said once", marks[0])
        for kdc, since in zip((kdc1, kdc2), marks):
            wait_line(kdc, r"last-used times not written: .*said once", since, timeout=5)
            said = [l for l in kdc.lines[since:] if "said once" in l]
            self.assertLessEqual(len(said), 2, said)  # one line per kind of write, once
        r = self.status(1)
        self.assertEqual(r.rc, 0, r)  # the standby it loads from is still there
        self.assertIn("1 failed authentications wait for the primary", r.stdout,
                      "\n".join(kdc1.lines[marks[0]:]))

        # The standby promoted: writes work again, the queued failure arrives.
        self.pg.promote(self.standby)
        t0 = time.monotonic()
        wait_line(kdc1, r"lockout: the database is back; 1 failed authentications", marks[0],
                  timeout=15)
        note(f"promotion -> queued failures written {(time.monotonic() - t0) * 1000:.0f} ms")
        rows = self.pg.sql(self.standby, "SELECT count(*) FROM auth_failures WHERE name = "
                                         "'carol'", db="kd3")
        self.assertEqual(rows, "1")
        self.admin("add", "erin", "--keyfile", self.keyfile("erin"),
                   uri=self.standby.uri("kd3", "kd3"))
        for kdc in (kdc1, kdc2):
            wait_line(kdc, r"reloaded .*: 5 principals", timeout=5)
        self.assert_ok(self.session(both, "erin"))

        # A KDC dies: the responder listing both fails over, no session fails after.
        kdc1.stop(signal.SIGKILL)
        results = [self.session(both).rc for _ in range(6)]
        note(f"KDC 1 killed: session results {results}")
        self.assertEqual(results[1:], [0] * 5, results)
        wait_line(both, rf"KDC 127\.0\.0\.1:{kdc2.port} answered ok")
        self.assertNotEqual(self.status(1).rc, 0)  # kdc status: not running


if __name__ == "__main__":
    unittest.main(verbosity=2)
