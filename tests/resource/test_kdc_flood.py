"""Resource attack: a UDP flood at the KDC while an honest client keeps getting keys.

The flood is 10,000 garbage datagrams (never answered) and 10,000 valid-looking M2s for
the real principals with forged authenticators (each answered with ERROR BAD_AUTH, never
a key), sent from another process. Meanwhile an honest client sends real M2s built with
alice's and bob's keys, one after another, and checks each M3 the way a responder and
initiator would (n_r, both sealed keys open to the same SK). Its latency during the flood
is printed next to its latency in the same run without the flood.

The flood is paced at 10,000 datagrams a second (KD3_FLOOD_RATE, 0: as fast as one
Python process sends) from 16 source ports; the honest client sends a request every 5 ms
at most, for 3 s before the flood, all through it, and 1 s after.

Asserted: every honest request gets a correct M3 (with the responder's retry schedule:
UDP 200 ms, doubling, 3 tries, then TCP), p99 under the flood below 1 s, no key for any
flood datagram (none comes back, and the KDC's log shows keys only for the honest
requests), no answer to any garbage datagram, the KDC alive and serving a real
initiator/responder session afterwards.

KD3_BIN: the build directory. Runs about 10 s.
"""
import json
import os
import socket
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kd3proto as P  # noqa: E402
import rsupport as S  # noqa: E402
from rsupport import k  # noqa: E402

GARBAGE, BAD_M2 = 10_000, 10_000
RATE = int(os.environ.get("KD3_FLOOD_RATE", "10000"))  # datagrams/s; 0: no pacing
INTERVAL_S = 0.005      # the honest client: a request every 5 ms at most
FLOOD_SOCKETS = 8       # source ports, so the flood reaches every worker
BASELINE_S = 3.0
P99_LIMIT_S = 1.0


class HonestClient:
    """Real M2s for alice -> bob, one at a time, over UDP with the responder's retries,
    then TCP; every answer checked."""

    def __init__(self, port, alice, bob):
        self.port, self.alice, self.bob = port, alice, bob
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))

    def close(self):
        self.sock.close()

    def ask_tcp(self, req):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as t:
            t.sendall(req.frame)
            return P.recv_frame(t, 2.0)

    def one(self):
        """(latency s, UDP tries, went to TCP) of one request; AssertionError on failure."""
        req = P.Request(self.alice, self.bob)
        start = time.monotonic()
        data, tries = P.ask_udp(self.sock, req)
        tcp = data is None
        if tcp:
            data = self.ask_tcp(req)
        took = time.monotonic() - start
        if data is None:
            raise AssertionError(f"honest request unanswered over UDP ({tries} tries) and TCP")
        req.check_m3(data)
        return took, tries, tcp

    def run(self, keep_going, limit_s):
        """Requests while keep_going() and for at most limit_s: a summary dict."""
        lat, retries, tcp = [], 0, 0
        deadline = time.monotonic() + limit_s
        while keep_going() and time.monotonic() < deadline:
            took, tries, went_tcp = self.one()
            time.sleep(max(0.0, INTERVAL_S - took))
            lat.append(took)
            retries += tries - 1
            tcp += went_tcp
        out = S.stats_ms(lat)
        out.update({"udp_retries": retries, "tcp_fallbacks": tcp})
        return out


def fmt(name, s):
    return (f"{name:14s} {s['n']:6d} requests  p50 {s['p50']:7.3f} ms  p99 {s['p99']:7.3f} ms"
            f"  max {s['max']:8.3f} ms  UDP retries {s['udp_retries']}  TCP {s['tcp_fallbacks']}")


class KdcFlood(unittest.TestCase):
    def test_honest_client_through_a_flood(self):
        with k.Realm() as realm:
            kdc = S.LoggedServer(realm, "kdc", "--workers", "2", ready=r"serving on")
            realm.kdc_port = kdc.port
            try:
                self.flood_and_measure(realm, kdc)
            finally:
                kdc.stop()

    def flood_and_measure(self, realm, kdc):
        alice = P.load_keyfile(realm.keyfile("alice"))
        bob = P.load_keyfile(realm.keyfile("bob"))
        client = HonestClient(kdc.port, alice, bob)
        try:
            client.one()  # warm up (first request: caches, page faults)
            t0 = time.monotonic()
            quiet = client.run(lambda: time.monotonic() - t0 < BASELINE_S, BASELINE_S + 5)

            flooder = subprocess.Popen(
                [sys.executable, "-B", os.path.join(HERE, "flood.py"), str(kdc.port),
                 realm.keyfile("alice"), realm.keyfile("bob"), str(GARBAGE), str(BAD_M2),
                 str(RATE), str(FLOOD_SOCKETS)], stdout=subprocess.PIPE, text=True)
            try:
                self.assertEqual(flooder.stdout.readline().strip(), "flooding")
                flood_t0 = time.monotonic()
                during = client.run(lambda: flooder.poll() is None, 120)
                flood_s = time.monotonic() - flood_t0
                report = json.loads(flooder.stdout.readline())
                self.assertEqual(flooder.wait(30), 0)
            finally:
                if flooder.poll() is None:
                    flooder.kill()
                    flooder.wait(5)
                flooder.stdout.close()
            after = client.run(lambda: True, 1.0)
        finally:
            client.close()

        sent, replies = report["sent"], report["replies"]
        processed_bad = kdc.count(r" BAD_AUTH ")
        print(f"\nflood: {sent['garbage']} garbage + {sent['bad_m2']} bad-authenticator M2 "
              f"datagrams in {report['seconds']} s "
              f"({f'{RATE}/s paced' if RATE else 'unpaced'}, {FLOOD_SOCKETS} source "
              f"ports x 2); not sent (socket full): {sent['dropped_by_sender']}")
        print(f"flood replies: to garbage {replies['garbage']}, to bad M2s {replies['bad_m2']};"
              f" KDC log: {processed_bad} BAD_AUTH, "
              f"{kdc.count(r' MALFORMED | UNSUPPORTED ')} MALFORMED/UNSUPPORTED lines")
        print(fmt("without flood", quiet))
        print(fmt("during flood", during) + f"  ({flood_s:.1f} s)")
        print(fmt("after flood", after))

        # The flood happened: sent in full, and the KDC saw and refused most of it.
        self.assertEqual(sent["garbage"] + sent["bad_m2"] + sent["dropped_by_sender"],
                         GARBAGE + BAD_M2)
        self.assertGreater(sent["bad_m2"], 0.9 * BAD_M2)
        self.assertGreater(processed_bad, 0.5 * BAD_M2, "the flood never reached the KDC")
        # No key for a forged request; no answer at all to what is not a request.
        self.assertEqual(replies["bad_m2"].get("M3", 0), 0, "the KDC issued a key to the flood")
        self.assertEqual(replies["bad_m2"].get("other", 0), 0)
        self.assertEqual(replies["garbage"], {}, "the KDC answered a datagram that is no M2")
        # The honest client was served throughout (every request: check_m3 above).
        self.assertGreaterEqual(during["n"], 20, "too few honest requests during the flood")
        self.assertLess(during["p99"], P99_LIMIT_S * 1000.0,
                        "honest p99 latency under the flood")
        self.assertTrue(kdc.alive())
        # Keys were issued for the honest requests only: each was handled at least once,
        # and more only for a retry (a retransmit that missed the cache, or TCP).
        honest = [quiet, during, after]
        issued = (kdc.count(r"alice -> bob kvno \d+/\d+ OK \d+us$")
                  + kdc.count(r"alice -> bob kvno \d+/\d+ OK no-reply \d+us$"))
        requests = 1 + sum(h["n"] for h in honest)
        retries = sum(h["udp_retries"] + h["tcp_fallbacks"] for h in honest)
        self.assertGreaterEqual(issued, requests)
        self.assertLessEqual(issued, requests + retries)
        # And a real session through it afterwards.
        resp = realm.start_responder()
        r = realm.run_initiator(resp.port, ["after the flood"])
        self.assertEqual(r.rc, 0, r)
        resp.wait_for(r"^after the flood$", stream="out")


if __name__ == "__main__":
    unittest.main(verbosity=2)
