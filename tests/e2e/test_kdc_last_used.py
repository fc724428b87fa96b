"""`kdc list` shows when each principal last took part in an issued key (LAST USED),
end to end on 127.0.0.1: "never" before any use; after a real session (initiator,
responder, KDC) both principals show a time within seconds of it while an unused one
still shows "never", written when the KDC stops (SIGTERM) and, while it keeps running,
within the flush period; the server's own writes never make it reload; a principal
removed while the server runs does not break the writes; a later session moves the
time forward.
"""
import calendar
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import kd3e2e as k  # noqa: E402

FLUSH_S = 1  # --last-used-flush-seconds for the running server
SLACK_S = 2  # clock granularity (whole seconds) and a loaded machine


def kdc_list(realm):
    r = k.run([k.exe("kdc"), "list", *realm.dbargs])
    if r.rc != 0:
        raise AssertionError(f"kdc list: {r}")
    lines = r.stdout.splitlines()
    if not re.match(r"^NAME +KVNOS +STATE +CREATED +LAST USED$", lines[0]):
        raise AssertionError(f"kdc list: header {lines[0]!r}")
    return {f[0]: f[-1] for f in (l.split() for l in lines[1:])}


def used_at(text):
    """Unix seconds of a LAST USED cell, or None for 'never'."""
    if text == "never":
        return None
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def session(realm, port, name="alice", peer="bob"):
    """One session through the responder at port; (start, end) in Unix seconds."""
    start = time.time()
    r = k.run([k.exe("initiator"), "--connect", f"127.0.0.1:{port}", "--keyfile",
               realm.keyfile(name), "--peer", peer, "--batch", "--timeout", "10"],
              input=b"hello\n", timeout=30)
    if r.rc != 0:
        raise AssertionError(f"session {name} -> {peer}: {r}")
    return start, time.time()


def wait_listed(realm, name, after, timeout):
    """Polls kdc list until name's LAST USED is a time >= after; returns the listing."""
    deadline = time.monotonic() + timeout
    while True:
        rows = kdc_list(realm)
        t = used_at(rows.get(name, "never"))
        if t is not None and t >= after:
            return rows
        if time.monotonic() >= deadline:
            raise AssertionError(f"{name}: last used {rows.get(name)!r}, not >= "
                                 f"{after} within {timeout} s")
        time.sleep(0.1)


class LastUsed(unittest.TestCase):
    def setUp(self):
        self.realm = k.Realm(("alice", "bob", "carol"))
        self.addCleanup(self.realm.close)

    def assert_used_during(self, rows, name, span):
        t = used_at(rows[name])
        self.assertIsNotNone(t, f"{name} never used: {rows}")
        self.assertGreaterEqual(t, int(span[0]) - SLACK_S, rows)
        self.assertLessEqual(t, span[1] + SLACK_S, rows)
        return t

    def test_never_then_written_at_sigterm(self):
        self.assertEqual(kdc_list(self.realm), {"alice": "never", "bob": "never",
                                                "carol": "never"})
        # A flush period longer than the test: only the write at stop can put the
        # times there.
        kdc = self.realm.start_kdc("--last-used-flush-seconds", "3600")
        bob = self.realm.start_responder()
        span = session(self.realm, bob.port)
        self.assertEqual(kdc_list(self.realm)["alice"], "never")
        self.assertEqual(kdc.stop(signal.SIGTERM), 0, kdc.text())
        rows = kdc_list(self.realm)
        self.assert_used_during(rows, "alice", span)
        self.assert_used_during(rows, "bob", span)
        self.assertEqual(rows["carol"], "never")
        self.assertNotIn("not written", kdc.text())

    def test_written_while_running(self):
        kdc = self.realm.start_kdc("--last-used-flush-seconds", str(FLUSH_S))
        bob = self.realm.start_responder()
        self.realm.add("dave")
        kdc.wait_for(r"reloaded \(the database changed\): 4 principals")
        reloads = kdc.text().count("reloaded")

        span = session(self.realm, bob.port)
        rows = wait_listed(self.realm, "alice", int(span[0]) - SLACK_S, FLUSH_S + 5)
        first = self.assert_used_during(rows, "alice", span)
        self.assert_used_during(rows, "bob", span)
        self.assertEqual((rows["carol"], rows["dave"]), ("never", "never"))

        # dave used, then removed while the server runs (before or after its time is
        # written: either way the writes go on).
        session(self.realm, bob.port, name="dave")
        r = k.run([k.exe("kdc"), "remove", "dave", *self.realm.dbargs])
        self.assertEqual(r.rc, 0, r)
        time.sleep(max(1.1, first + 1 - time.time()))  # the next whole second
        span2 = session(self.realm, bob.port)
        rows = wait_listed(self.realm, "alice", first + 1, FLUSH_S + 5)
        self.assert_used_during(rows, "alice", span2)
        self.assertGreater(used_at(rows["bob"]), first)
        self.assertEqual(rows["carol"], "never")
        self.assertNotIn("dave", rows)

        # Its own writes never looked like an admin change: the one reload is the
        # remove's.
        time.sleep(2 * FLUSH_S)
        log = kdc.text()
        self.assertEqual(log.count("reloaded"), reloads + 1, log)
        self.assertNotIn("not written", log)
        self.assertEqual(kdc.stop(signal.SIGTERM), 0, log)


if __name__ == "__main__":
    unittest.main()
