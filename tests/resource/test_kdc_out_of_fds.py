"""Resource attack: the KDC out of file descriptors. It runs with RLIMIT_NOFILE 64 and
room for 1,000 connections (--max-conns 500 --workers 2); 1,000 clients connect and
send nothing. Every accept past the limit fails with EMFILE: the KDC sheds those
connections, keeps serving UDP, and logs them at most once a second per worker, each
line with its count (it once logged a line per refused connection: 571 for one burst
of 1,000). When the clients are gone its descriptors come back and TCP works again.

KD3_BIN: the build directory. Needs an RLIMIT_NOFILE hard limit >= 1512 (the test
raises the soft limit). Runs about 5 s.
"""
import os
import re
import socket
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kd3proto as P  # noqa: E402
import rsupport as S  # noqa: E402
from rsupport import k  # noqa: E402

CLIENTS = 1000
KDC_NOFILE = 64
WORKERS = 2
LINE = re.compile(r"kdc: error: worker (\d+): tcp: out of file descriptors: (\d+) "
                  r"connections? refused \(one such line a second at most\)$", re.M)


def udp_request(port, alice, bob):
    """'M3' (checked) for one honest M2 over UDP, or what came instead."""
    req = P.Request(alice, bob)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        data, _ = P.ask_udp(s, req)
    if data is None:
        return "no answer"
    req.check_m3(data)
    return "M3"


class OutOfDescriptors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        S.raise_nofile(CLIENTS + 512)

    def test_kdc(self):
        with k.Realm() as realm:
            kdc = S.LoggedServer(realm, "kdc", "--workers", str(WORKERS), "--max-conns",
                                 "500", "--idle-timeout-ms", "3000", ready=r"serving on",
                                 nofile=KDC_NOFILE)
            try:
                self.attack(realm, kdc)
            finally:
                kdc.stop()

    def attack(self, realm, kdc):
        alice = P.load_keyfile(realm.keyfile("alice"))
        bob = P.load_keyfile(realm.keyfile("bob"))
        self.assertEqual(udp_request(kdc.port, alice, bob), "M3")
        base_fds = kdc.fds()
        clients, failed = [], 0
        t0 = time.monotonic()
        for _ in range(CLIENTS):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", kdc.port))
                clients.append(s)
            except OSError:
                s.close()
                failed += 1
        connect_s = time.monotonic() - t0
        during = udp_request(kdc.port, alice, bob)  # UDP needs no new descriptor
        # Every refusal is counted in a line within a second of it.
        time.sleep(1.5)
        for s in clients:
            s.close()
        elapsed = time.monotonic() - t0
        S.wait_until(lambda: kdc.fds() <= base_fds, 10, "the KDC's descriptors back")
        after = P.tcp_request(kdc.port, alice, bob)[0]
        if os.environ.get("KD3_TEST_SHOW_LOG"):
            print(kdc.text()[-3000:])
        lines = LINE.findall(kdc.text())
        refused = sum(int(n) for _, n in lines)
        print(f"\nKDC with {KDC_NOFILE} descriptors: {len(clients)} clients connected in "
              f"{connect_s:.2f} s ({failed} failed); {len(lines)} log lines for {refused} "
              f"refused connections in {elapsed:.1f} s")

        self.assertEqual(during, "M3")
        self.assertEqual(after, "M3")
        self.assertTrue(kdc.alive())
        said = kdc.count(r"out of file descriptors")
        self.assertGreater(said, 0, "the KDC never ran out of descriptors")
        # One line a second at most per worker (and one more each at the end).
        self.assertLessEqual(said, WORKERS * (int(elapsed) + 2), kdc.text()[-2000:])
        self.assertEqual(said, len(lines), "a line without its count")
        self.assertLess(len(lines), refused)


if __name__ == "__main__":
    unittest.main(verbosity=2)
