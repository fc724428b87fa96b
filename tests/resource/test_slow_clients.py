"""Resource attack: 1,000 slow TCP clients, each sending one byte a second of a real
frame and never finishing it, at the KDC and then at the responder.

KDC (--workers 2 --max-conns 400 --idle-timeout-ms 2000): at most 800 are held, the rest
get ERROR BUSY and are closed at once; each held one is closed when its idle time runs
out. Responder (--handshake-timeout 2): each gets ERROR TIMEOUT and is closed. In both
cases honest sessions (real initiator -> responder -> KDC) and honest KDC requests keep
succeeding throughout, and the server's descriptor count (/proc/PID/fd) returns to
what it was before the attack. The clients keep sending after the server's FIN, as an
attacker would: the server must close on its own.

KD3_BIN: the build directory. Needs an RLIMIT_NOFILE hard limit >= 2512 (the test raises
the soft limit up to it). Runs about 10 s.
"""
import os
import socket
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kd3proto as P  # noqa: E402
import rsupport as S  # noqa: E402
from rsupport import k  # noqa: E402
from slowloris import SlowLoris  # noqa: E402

CLIENTS = 1000
KDC_MAX_CONNS = 400      # per worker, 2 workers: 800 < CLIENTS
IDLE_MS = 2000
HANDSHAKE_S = 2
SLACK_S = 5.0            # scheduling slack on a busy 2-core machine


class Honest(threading.Thread):
    """Real sessions (initiator -> responder -> KDC), and between them real M2s straight
    to the KDC over UDP, until stopped. Every failure is kept."""

    def __init__(self, realm, resp_port):
        super().__init__(daemon=True)
        self.realm, self.resp_port = realm, resp_port
        self.alice = P.load_keyfile(realm.keyfile("alice"))
        self.bob = P.load_keyfile(realm.keyfile("bob"))
        self.stop_flag = threading.Event()
        self.sessions, self.requests, self.failures = [], [], []

    def run(self):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.connect(("127.0.0.1", self.realm.kdc_port))
        n = 0
        try:
            while not self.stop_flag.is_set() and n < 2000:
                n += 1
                t = time.monotonic()
                r = self.realm.run_initiator(self.resp_port, [f"honest {n}"], "--timeout", "20")
                self.sessions.append(time.monotonic() - t)
                if r.rc != 0 or r.stdout != "":
                    self.failures.append(f"session {n}: {r}")
                req = P.Request(self.alice, self.bob)
                t = time.monotonic()
                data, _ = P.ask_udp(udp, req)
                self.requests.append(time.monotonic() - t)
                try:
                    if data is None:
                        raise AssertionError("no answer")
                    req.check_m3(data)
                except AssertionError as e:
                    self.failures.append(f"request {n}: {e}")
                self.stop_flag.wait(0.05)
        finally:
            udp.close()

    def finish(self, test):
        self.stop_flag.set()
        self.join(60)
        test.assertFalse(self.is_alive())
        test.assertEqual(self.failures, [])
        return S.stats_ms(self.sessions), S.stats_ms(self.requests)


def error_code(data):
    try:
        ftype, body = P.frame_split(data)
    except ValueError:
        return None
    return P.ERROR_NAMES.get(int.from_bytes(body[:2], "big")) if ftype == P.T_ERROR else None


class SlowClients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        S.raise_nofile(2 * CLIENTS + 512)

    def test_kdc(self):
        with k.Realm() as realm:
            kdc = S.LoggedServer(realm, "kdc", "--workers", "2", "--max-conns",
                                 str(KDC_MAX_CONNS), "--idle-timeout-ms", str(IDLE_MS),
                                 ready=r"serving on")
            realm.kdc_port = kdc.port
            try:
                resp = realm.start_responder()
                self.kdc_attack(realm, kdc, resp)
            finally:
                kdc.stop()

    def kdc_attack(self, realm, kdc, resp):
        alice = P.load_keyfile(realm.keyfile("alice"))
        bob = P.load_keyfile(realm.keyfile("bob"))
        self.assertEqual(P.tcp_request(kdc.port, alice, bob)[0], "M3")
        base_fds = S.wait_until(lambda: kdc.fds() if kdc.fds() else None, 5, "fd count")
        honest = Honest(realm, resp.port)
        honest.start()
        try:
            loris = SlowLoris(kdc.port, CLIENTS, P.Request(alice, bob).frame)
            try:
                peak_fds = kdc.fds()
                busy_tcp = P.tcp_request(kdc.port, alice, bob)
                closed = loris.run_until(lambda: loris.open_count() == 0, IDLE_MS / 1000 + 15)
                open_left = loris.open_count()
                back = loris.run_until(lambda: kdc.fds() <= base_fds, 10)
                end_fds = kdc.fds()
            finally:
                loris.close()
            after_tcp = P.tcp_request(kdc.port, alice, bob)
        finally:
            sessions, requests = honest.finish(self)

        refused = [c for c in loris.clients if error_code(c.received) == "BUSY"]
        held = [c for c in loris.clients if c.received == b""]
        held_for = [c.t_eof - c.t_connect for c in held if c.t_eof is not None]
        print(f"\nKDC: {len(loris.clients)} slow clients connected in {loris.connect_s:.2f} s "
              f"({loris.connect_failures} failed); {len(refused)} refused with ERROR BUSY, "
              f"{len(held)} held, closed after {min(held_for):.2f}..{max(held_for):.2f} s "
              f"(idle timeout {IDLE_MS} ms)")
        print(f"KDC descriptors: {base_fds} before, {peak_fds} after the connects, "
              f"{end_fds} at the end")
        print(f"honest TCP request during the attack: {busy_tcp[0]} in "
              f"{1000 * busy_tcp[1]:.1f} ms; after: {after_tcp[0]} in {1000 * after_tcp[1]:.1f} ms")
        print(f"honest sessions during the attack: {sessions['n']}, p50 {sessions['p50']:.1f} "
              f"ms, p99 {sessions['p99']:.1f} ms; UDP requests {requests['n']}, p50 "
              f"{requests['p50']:.3f} ms, p99 {requests['p99']:.3f} ms")

        self.assertEqual(loris.connect_failures, 0)
        self.assertTrue(closed, f"{open_left} slow clients still open")
        self.assertEqual(len(refused) + len(held), CLIENTS,
                         "a slow client got something other than ERROR BUSY")
        self.assertGreaterEqual(len(refused), CLIENTS - 2 * KDC_MAX_CONNS)
        self.assertLessEqual(len(held), 2 * KDC_MAX_CONNS)
        for c in refused:
            self.assertLess(c.t_eof - c.t_connect, SLACK_S, "a refused client was not closed")
        self.assertEqual(len(held_for), len(held))
        self.assertGreaterEqual(min(held_for), IDLE_MS / 1000 - 0.1, "closed before the timeout")
        self.assertLess(max(held_for), IDLE_MS / 1000 + SLACK_S + loris.connect_s,
                        "idle timeout not applied")
        self.assertGreater(peak_fds, base_fds + len(held) // 2, "the attack held no descriptor")
        self.assertTrue(back, f"KDC descriptors {end_fds}, {base_fds} before the attack")
        self.assertIn(busy_tcp[0], ("M3", "ERROR BUSY (KDC busy: too many connections)"))
        self.assertLess(busy_tcp[1], SLACK_S)
        self.assertEqual(after_tcp[0], "M3")
        self.assertGreaterEqual(sessions["n"], 3)
        self.assertTrue(kdc.alive())

    def test_responder(self):
        with k.Realm() as realm:
            realm.start_kdc()
            resp = S.LoggedServer(realm, "responder", "--handshake-timeout", str(HANDSHAKE_S),
                                  "--max-sessions", str(CLIENTS + 100), ready=r"listening on")
            try:
                self.responder_attack(realm, resp)
            finally:
                resp.stop()

    def responder_attack(self, realm, resp):
        alice = P.load_keyfile(realm.keyfile("alice"))
        m1 = P.frame(P.T_M1, P.m1_body(alice, b"bob"))
        r = realm.run_initiator(resp.port, ["before"])
        self.assertEqual(r.rc, 0, r)
        base_fds = S.wait_until(lambda: resp.fds() if resp.count("closed") else None, 10,
                                "the first session to end")
        honest = Honest(realm, resp.port)
        honest.start()
        try:
            loris = SlowLoris(resp.port, CLIENTS, m1)
            try:
                peak_fds = resp.fds()
                closed = loris.run_until(lambda: loris.open_count() == 0, HANDSHAKE_S + 15)
                open_left = loris.open_count()
                back = loris.run_until(lambda: resp.fds() <= base_fds, 15)
                end_fds = resp.fds()
            finally:
                loris.close()
        finally:
            sessions, requests = honest.finish(self)

        timed_out = [c for c in loris.clients if error_code(c.received) == "TIMEOUT"]
        held_for = [c.t_eof - c.t_connect for c in loris.clients if c.t_eof is not None]
        log_timeouts = resp.count(r"failed: handshake timed out \(in WAIT_M1\)")
        print(f"\nresponder: {len(loris.clients)} slow clients connected in "
              f"{loris.connect_s:.2f} s ({loris.connect_failures} failed); {len(timed_out)} got "
              f"ERROR TIMEOUT after {min(held_for):.2f}..{max(held_for):.2f} s "
              f"(--handshake-timeout {HANDSHAKE_S}); {log_timeouts} log lines")
        print(f"responder descriptors: {base_fds} before, {peak_fds} after the connects, "
              f"{end_fds} at the end")
        print(f"honest sessions during the attack: {sessions['n']}, p50 {sessions['p50']:.1f} "
              f"ms, p99 {sessions['p99']:.1f} ms")

        self.assertEqual(loris.connect_failures, 0)
        self.assertTrue(closed, f"{open_left} slow clients still open")
        self.assertEqual(len(timed_out), CLIENTS)
        self.assertEqual(log_timeouts, CLIENTS)
        self.assertGreaterEqual(min(held_for), HANDSHAKE_S - 0.1)
        # Measured from our connect: a connection may wait in the listen queue before the
        # responder accepts it (and starts its timer), at most as long as the connects took.
        self.assertLess(max(held_for), HANDSHAKE_S + SLACK_S + loris.connect_s)
        # Each client is held HANDSHAKE_S from its accept: when the connects take longer
        # than that (a loaded CI machine took 5.1 s), the first ones are already closed
        # when the last ones arrive, and about CLIENTS * HANDSHAKE_S / connect_s are held
        # at once. Half of that proves the attack held descriptors.
        held_at_once = CLIENTS * min(1.0, HANDSHAKE_S / max(loris.connect_s, 1e-3))
        self.assertGreater(peak_fds, base_fds + held_at_once // 2,
                           f"the attack held too few descriptors ({held_at_once:.0f} expected)")
        self.assertTrue(back, f"responder descriptors {end_fds}, {base_fds} before the attack")
        self.assertGreaterEqual(sessions["n"], 3)
        self.assertEqual(resp.out_lines(), ["before"] + [f"honest {i + 1}"
                                                          for i in range(sessions["n"])])
        self.assertTrue(resp.alive())
        r = realm.run_initiator(resp.port, ["after"])
        self.assertEqual(r.rc, 0, r)


if __name__ == "__main__":
    unittest.main(verbosity=2)
