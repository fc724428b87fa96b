"""Resource attack: half-open handshakes. Each client sends a real M1 (alice's, valid),
gets M4 (checked: blob_i opens, confirm_r verifies) and never sends FINISHED.

Asserted: while they are pending, honest sessions still work; they hold --max-sessions
slots (the one after the last gets ERROR BUSY, and so does an honest initiator then);
the responder times each out (ERROR TIMEOUT to the client, a log line "handshake timed
out (in WAIT_FINISHED)") and frees it: its descriptor count returns to what it was, the
same number of half-open handshakes fits again, and honest sessions work again.

KD3_BIN: the build directory. Runs about 15 s.
"""
import os
import socket
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kd3proto as P  # noqa: E402
import rsupport as S  # noqa: E402
from rsupport import k  # noqa: E402

MAX_SESSIONS = 200
FIRST = 150             # half-open handshakes before the honest sessions
HANDSHAKE_S = 4
SLACK_S = 5.0


class HalfOpen:
    """One handshake left hanging after M4. outcome: 'M4' or the ERROR's name."""

    def __init__(self, port, alice):
        self.m1 = P.m1_body(alice, b"bob")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.t_connect = time.monotonic()
        self.sock.sendall(P.frame(P.T_M1, self.m1))
        data = P.recv_frame(self.sock, 10.0)
        if data is None:
            self.outcome = "nothing"
            return
        ftype, body = P.frame_split(data)
        if ftype == P.T_ERROR:
            self.outcome = P.ERROR_NAMES.get(int.from_bytes(body[:2], "big"), "ERROR?")
            return
        P.check_m4(data, alice, b"bob", self.m1)
        self.outcome = "M4"

    def wait_end(self, timeout):
        """(what came after M4, seconds from connect to the server's FIN)."""
        frame = P.recv_frame(self.sock, timeout)
        what = "EOF"
        if frame is not None:
            ftype, body = P.frame_split(frame)
            what = P.error_text(body) if ftype == P.T_ERROR else f"type {ftype:#x}"
            rest = P.recv_frame(self.sock, timeout)
            if rest is not None:
                return f"{what} then more", None
        return what, time.monotonic() - self.t_connect

    def close(self):
        self.sock.close()


def open_many(port, alice, n):
    return [HalfOpen(port, alice) for _ in range(n)]


class HalfOpenHandshakes(unittest.TestCase):
    def test_half_open(self):
        with k.Realm() as realm:
            realm.start_kdc()
            resp = S.LoggedServer(realm, "responder", "--handshake-timeout", str(HANDSHAKE_S),
                                  "--max-sessions", str(MAX_SESSIONS), ready=r"listening on")
            pending = []
            try:
                self.run_attack(realm, resp, pending)
            finally:
                for h in pending:
                    h.close()
                resp.stop()

    def honest(self, realm, resp, n, tag):
        took = []
        for i in range(n):
            t = time.monotonic()
            r = realm.run_initiator(resp.port, [f"{tag} {i}"])
            took.append(time.monotonic() - t)
            self.assertEqual(r.rc, 0, r)
        want = [f"{tag} {i}" for i in range(n)]
        S.wait_until(lambda: [l for l in resp.out_lines() if l.startswith(tag + " ")] == want,
                     5, f"the responder to print {want}")
        return S.stats_ms(took)

    def run_attack(self, realm, resp, pending):
        alice = P.load_keyfile(realm.keyfile("alice"))
        quiet = self.honest(realm, resp, 5, "before")
        base_fds = S.wait_until(lambda: resp.fds() if resp.count(r" closed") >= 5 else None,
                                10, "the honest sessions to end")

        # Pending half-open handshakes; honest sessions meanwhile.
        t0 = time.monotonic()
        pending += open_many(resp.port, alice, FIRST)
        self.assertEqual([h.outcome for h in pending], ["M4"] * FIRST)
        during = self.honest(realm, resp, 5, "during")
        S.wait_until(lambda: resp.fds() == base_fds + FIRST, 10,
                     f"{base_fds + FIRST} responder descriptors (honest sessions closed)")
        # The rest of the slots, then one too many; an honest initiator is refused too.
        pending += open_many(resp.port, alice, MAX_SESSIONS - FIRST)
        extra = HalfOpen(resp.port, alice)
        extra.close()
        full_fds = resp.fds()
        refused = realm.run_initiator(resp.port, ["refused"], "--timeout", "5")
        fill_s = time.monotonic() - t0
        self.assertLess(fill_s, HANDSHAKE_S, "too slow to fill the slots before the timeout")
        self.assertEqual([h.outcome for h in pending], ["M4"] * MAX_SESSIONS)
        self.assertEqual(extra.outcome, "BUSY")
        self.assertEqual(refused.rc, 3, refused)
        self.assertIn("BUSY", refused.stderr)

        # The responder times every one of them out and frees it.
        ends = [h.wait_end(HANDSHAKE_S + 10) for h in pending]
        whats = {w for w, _ in ends}
        took = [t for _, t in ends if t is not None]
        S.wait_until(lambda: resp.count(r"handshake timed out \(in WAIT_FINISHED\)")
                     >= MAX_SESSIONS, 10, "the timeout log lines")
        logged = resp.count(r"\(claiming alice\) failed: handshake timed out \(in WAIT_FINISHED\)")
        back = S.wait_until(lambda: resp.fds() <= base_fds, 10, "descriptors back") and True
        end_fds = resp.fds()
        for h in pending:
            h.close()
        pending.clear()

        # The slots are back: as many half-open handshakes fit again, then BUSY.
        pending += open_many(resp.port, alice, MAX_SESSIONS)
        again = [h.outcome for h in pending]
        extra2 = HalfOpen(resp.port, alice)
        extra2.close()
        for h in pending:  # this time the clients leave: their sessions end at once
            h.close()
        pending.clear()
        S.wait_until(lambda: resp.fds() <= base_fds, 10, "descriptors back after clients left")
        after = self.honest(realm, resp, 5, "after")

        print(f"\nhalf-open: {MAX_SESSIONS} handshakes pending (each got a valid M4) in "
              f"{fill_s:.2f} s; one more: ERROR {extra.outcome}; honest initiator then: rc "
              f"{refused.rc}")
        print(f"each ended with {sorted(whats)} after {min(took):.2f}..{max(took):.2f} s "
              f"(--handshake-timeout {HANDSHAKE_S}); {logged} log lines")
        print(f"responder descriptors: {base_fds} before, {full_fds} full, {end_fds} after "
              f"the timeouts")
        for name, s in (("before", quiet), ("during", during), ("after", after)):
            print(f"honest sessions {name:6s}: {s['n']}, p50 {s['p50']:.1f} ms, "
                  f"max {s['max']:.1f} ms")

        self.assertEqual(whats, {"TIMEOUT (handshake timed out)"})
        self.assertEqual(len(took), MAX_SESSIONS)
        self.assertGreaterEqual(min(took), HANDSHAKE_S - 0.1)
        self.assertLess(max(took), HANDSHAKE_S + SLACK_S)
        self.assertEqual(logged, MAX_SESSIONS)
        self.assertGreaterEqual(full_fds, base_fds + MAX_SESSIONS)
        self.assertTrue(back)
        self.assertEqual(again, ["M4"] * MAX_SESSIONS)
        self.assertEqual(extra2.outcome, "BUSY")
        self.assertTrue(resp.alive())


if __name__ == "__main__":
    unittest.main(verbosity=2)
