"""The --metrics endpoints of kdc serve and responder (issue 15), scraped during real
traffic and parsed by a real Prometheus parser: python3-prometheus-client's, for both
the Prometheus text format (0.0.4) and OpenMetrics 1.0 (asked for in Accept, as
Prometheus does). Every count is checked against what the test sent.

  - KDC: requests by transport and outcome (OK, BAD_AUTH, UNKNOWN_PRINCIPAL, BUSY,
    POLICY_DENIED...), unanswered ones, the latency histogram's count, cache hits, the
    rate limit (requests and sources), lockouts, TCP connections, the snapshot
    (generation, principals after a `kdc add`), workers;
  - responder: sessions accepted, established, closed and failed by cause, the
    handshake histogram, KDC answers and failovers per KDC, messages and bytes;
  - the HTTP side's bounds: 404, 405, a body refused, a request larger than the limit,
    more connections than allowed, HEAD.
"""
import os
import re
import socket
import sys
import time
import unittest
import urllib.error
import urllib.request

from prometheus_client.openmetrics import parser as om_parser
from prometheus_client import parser as text_parser

import kd3e2e as k

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "resource"))
import kd3proto as P  # noqa: E402

OM_ACCEPT = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"


def fetch(port, path="/metrics", accept=None, method="GET", data=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=data)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def read_to_eof(sock):
    """Everything the server sends until it closes (the socket's timeout bounds each read)."""
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


class Scrape:
    """One scrape in both formats: {(sample name, frozenset(labels)): value}, checked to
    say the same thing."""

    def __init__(self, port):
        status, ctype, text = fetch(port)
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
        self.samples = self.flatten(text_parser.text_string_to_metric_families(text))
        status, ctype, om = fetch(port, accept=OM_ACCEPT)
        assert status == 200 and ctype.startswith("application/openmetrics-text"), ctype
        assert om.endswith("# EOF\n")
        self.families = {f.name: f.type for f in om_parser.text_string_to_metric_families(om)}
        om_samples = self.flatten(om_parser.text_string_to_metric_families(om))
        # The same numbers either way (but what moved between the two scrapes).
        assert set(om_samples) == set(self.samples), set(om_samples) ^ set(self.samples)

    @staticmethod
    def flatten(families):
        out = {}
        for fam in families:
            for s in fam.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def get(self, name, **labels):
        return self.samples[(name, frozenset(labels.items()))]

    def total(self, name, **labels):
        """The sum over every sample of name whose labels include labels."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)


def wait_until(check, timeout=10.0):
    end = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, OSError):  # OSError: a connection the server dropped
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


class KdcMetrics(unittest.TestCase):
    def setUp(self):
        self.realm = k.Realm(("alice", "bob", "carol"))
        self.addCleanup(self.realm.close)
        self.alice = P.load_keyfile(self.realm.keyfile("alice"))
        self.bob = P.load_keyfile(self.realm.keyfile("bob"))

    def start(self, *extra):
        self.mport = k.free_port()
        kdc = self.realm.start_kdc("--metrics", str(self.mport), "--log-requests=no", *extra)
        kdc.wait_for(r"metrics at http://127\.0\.0\.1:%d/metrics" % self.mport)
        return kdc

    def udp(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", self.realm.kdc_port))
        self.addCleanup(s.close)
        return s

    def test_counts_equal_the_traffic(self):
        self.start()
        first = Scrape(self.mport)
        self.assertEqual(first.total("kd3_kdc_requests_total"), 0)
        self.assertEqual(first.get("kd3_kdc_principals"), 3)
        self.assertEqual(first.get("kd3_kdc_workers"), 2)
        self.assertEqual(first.get("kd3_kdc_snapshot_generation"), 1)
        self.assertEqual(first.get("kd3_kdc_database_ok"), 1)
        self.assertEqual(first.families["kd3_kdc_requests"], "counter")
        self.assertEqual(first.families["kd3_kdc_request_duration_seconds"], "histogram")

        sock = self.udp()
        for _ in range(5):  # honest: OK
            req = P.Request(self.alice, self.bob)
            data, _ = P.ask_udp(sock, req)
            req.check_m3(data)
        repeat = P.Request(self.alice, self.bob)  # the same M2 twice: the cache answers
        for _ in range(2):
            sock.send(repeat.frame)
            repeat.check_m3(sock.recv(2048))
        for valid_m1 in (False, True, False):  # BAD_AUTH
            sock.send(P.bad_auth_m2(self.alice, self.bob, valid_m1))
            self.assertIn("BAD_AUTH", P.error_text(P.frame_split(sock.recv(2048))[1]))
        ghost = P.Principal("ghost", 1, os.urandom(32))
        for _ in range(2):  # UNKNOWN_PRINCIPAL
            sock.send(P.Request(ghost, self.bob).frame)
            self.assertIn("UNKNOWN_PRINCIPAL", P.error_text(P.frame_split(sock.recv(2048))[1]))
        sock.send(b"\x01\x02\x00\x01x")  # too short to answer: no reply
        sock.send(b"\x01\x02" + b"\xff" * 3000)  # longer than any request: refused unread
        for _ in range(2):  # over TCP, a connection each
            self.assertEqual(P.tcp_request(self.realm.kdc_port, self.alice, self.bob)[0], "M3")
        with socket.create_connection(("127.0.0.1", self.realm.kdc_port), timeout=5) as c:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not a kd3 frame header
            ftype, body = P.frame_split(P.recv_frame(c, 5))
            self.assertEqual((ftype, P.error_text(body)), (P.T_ERROR, "MALFORMED (bad frame header)"))

        def settled():
            s = Scrape(self.mport)
            self.assertEqual(s.get("kd3_kdc_tcp_connections_open"), 0)
            self.assertEqual(s.total("kd3_kdc_requests_total"), 17)
            return s

        s = wait_until(settled)
        udp = dict(transport="udp")
        self.assertEqual(s.get("kd3_kdc_requests_total", outcome="OK", **udp), 7)
        self.assertEqual(s.get("kd3_kdc_requests_total", outcome="BAD_AUTH", **udp), 3)
        self.assertEqual(s.get("kd3_kdc_requests_total", outcome="UNKNOWN_PRINCIPAL", **udp), 2)
        self.assertEqual(s.get("kd3_kdc_requests_total", outcome="OK", transport="tcp"), 2)
        # The bad frame header over TCP: MALFORMED, answered with its ERROR.
        self.assertEqual(s.get("kd3_kdc_requests_total", outcome="MALFORMED", transport="tcp"), 1)
        self.assertEqual(s.total("kd3_kdc_requests_total", transport="tcp"), 3)
        self.assertEqual(s.get("kd3_kdc_requests_unanswered_total", transport="tcp"), 0)
        # The runt and the oversized one: counted under their outcome, and unanswered.
        self.assertEqual(s.total("kd3_kdc_requests_total", **udp), 14)
        self.assertEqual(s.get("kd3_kdc_requests_unanswered_total", **udp), 2)
        self.assertEqual(s.get("kd3_kdc_cache_hits_total"), 1)
        self.assertEqual(s.get("kd3_kdc_request_duration_seconds_count", **udp), 14)
        self.assertEqual(s.get("kd3_kdc_request_duration_seconds_bucket", le="+Inf", **udp), 14)
        self.assertGreater(s.get("kd3_kdc_request_duration_seconds_sum", **udp), 0)
        self.assertEqual(s.get("kd3_kdc_tcp_connections_accepted_total"), 3)
        self.assertEqual(s.get("kd3_kdc_lockouts_total"), 0)

        # A new principal: the reload thread publishes generation 2 with 4 principals.
        k.kdc(self.realm, "add", "dave", "--keyfile", self.realm.keyfile("dave"))

        def reloaded():
            s = Scrape(self.mport)
            self.assertEqual(s.get("kd3_kdc_snapshot_generation"), 2)
            self.assertEqual(s.get("kd3_kdc_principals"), 4)
            self.assertLess(s.get("kd3_kdc_snapshot_age_seconds"), 30)
        wait_until(reloaded)

    def test_rate_limit_and_lockout(self):
        self.start("--rate-limit", "1", "--rate-limit-burst", "2", "--lockout-failures", "2")
        sock = self.udp()
        answers = []
        for _ in range(5):
            sock.send(P.Request(self.alice, self.bob).frame)
            answers.append(P.frame_split(sock.recv(2048))[0])
        self.assertEqual(answers.count(P.T_M3), 2, answers)
        s = Scrape(self.mport)
        self.assertEqual(s.get("kd3_kdc_rate_limited_requests_total"), 3)
        self.assertEqual(s.get("kd3_kdc_requests_total", transport="udp", outcome="BUSY"), 3)
        self.assertEqual(s.get("kd3_kdc_rate_limited_sources"), 1)
        time.sleep(2.2)  # the bucket refills
        for valid_m1 in (False, False):
            sock.send(P.bad_auth_m2(self.alice, self.bob, valid_m1))
            sock.recv(2048)
        time.sleep(1.1)
        sock.send(P.Request(self.alice, self.bob).frame)
        self.assertIn("locked out", P.error_text(P.frame_split(sock.recv(2048))[1]))
        s = Scrape(self.mport)
        self.assertEqual(s.get("kd3_kdc_lockouts_total"), 1)
        self.assertEqual(s.get("kd3_kdc_lockout_refused_requests_total"), 1)
        self.assertEqual(s.get("kd3_kdc_requests_total", transport="udp", outcome="BAD_AUTH"), 2)
        self.assertEqual(s.get("kd3_kdc_requests_total", transport="udp", outcome="POLICY_DENIED"),
                         1)

    def test_http_bounds(self):
        self.start()
        port = self.mport
        self.assertEqual(fetch(port, "/")[0], 404)
        self.assertEqual(fetch(port, "/metricsx")[0], 404)
        self.assertEqual(fetch(port, method="POST", data=b"x=1")[0], 405)
        # HEAD: the headers of a GET (its Content-Length), and no body after them.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = read_to_eof(c)
            head, _, body = got.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
            self.assertIn(b"Content-Length: ", head)
            self.assertEqual(body, b"")
        # A client that half-closes after its request gets the answer and the close at
        # once (libmicrohttpd's epoll mode held it for the whole idle timeout).
        for request in (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01garbage"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                t = time.monotonic()
                c.sendall(request)
                c.shutdown(socket.SHUT_WR)
                got = read_to_eof(c)
                self.assertLess(time.monotonic() - t, 2.0, request)
                if request.startswith(b"GET"):
                    self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got[:40])
        # A GET with a body: refused.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            self.assertRegex(c.recv(4096).decode("latin-1"), r"^HTTP/1\.1 413 ")
        # Headers past the 8 KiB bound: refused, never read without end.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
            reply = c.recv(4096).decode("latin-1")
            self.assertRegex(reply, r"^HTTP/1\.1 (413|431) ")
        # More connections than the bound from one address: the extra ones are closed,
        # and the endpoint still answers once they go.
        held = []
        try:
            for _ in range(8):
                held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            closed = 0
            for c in held:
                c.settimeout(1.0)
                try:
                    c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                    closed += c.recv(16) == b""
                except (ConnectionError, socket.timeout):
                    closed += 1
            self.assertGreaterEqual(closed, 4)  # 4 a source at most
        finally:
            for c in held:
                c.close()
        wait_until(lambda: self.assertEqual(fetch(port)[0], 200))
        # An idle connection is closed by the server after its timeout (5 s).
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            t = time.monotonic()
            self.assertEqual(c.recv(16), b"")
            self.assertLess(time.monotonic() - t, 9)

    def test_bad_address_is_refused(self):
        for bad in ("nope", "127.0.0.1", "127.0.0.1:0", "99999", "[::1"):
            r = k.run([k.exe("kdc"), "serve", *self.realm.dbargs, "--metrics", bad])
            self.assertEqual(r.rc, 2, (bad, r))
            self.assertIn("metrics:", r.stderr)

    def test_a_name_is_taken(self):
        # localhost is answered by kd3 itself: no hosts file, no DNS.
        port = k.free_port()
        kdc = self.realm.start_kdc("--metrics", f"localhost:{port}", "--log-requests=no")
        kdc.wait_for(r"metrics at http://127\.0\.0\.1:%d/metrics" % port)
        status, _, body = fetch(port)
        self.assertEqual(status, 200)
        self.assertIn("kd3_kdc_workers", body)
        kdc.stop()


class ResponderMetrics(unittest.TestCase):
    def test_counts_equal_the_sessions(self):
        realm = k.Realm(("alice", "bob"))
        self.addCleanup(realm.close)
        realm.start_kdc()
        live = f"127.0.0.1:{realm.kdc_port}"
        dead = f"127.0.0.1:{k.free_port()}"  # nothing listens: refused over UDP and TCP
        mport = k.free_port()
        resp = realm.start_responder("--metrics", f"127.0.0.1:{mport}", kdc=[dead, live])
        s = Scrape(mport)
        self.assertEqual(s.get("kd3_responder_sessions_accepted_total"), 0)
        self.assertEqual(s.get("kd3_responder_kdc_failovers_total", kdc=dead), 0)

        lines = ["hello", "second message"]
        for _ in range(2):
            r = realm.run_initiator(resp.port, lines)
            self.assertEqual(r.rc, 0, r)
        # A session the KDC refuses: alice's key file with the wrong key.
        wrong = os.path.join(realm.dir, "wrong.key")
        with open(realm.keyfile("alice")) as f:
            text = re.sub(r"key = (\d+):[0-9a-f]{64}", lambda m: f"key = {m.group(1)}:" + "ab" * 32,
                          f.read())
        fd = os.open(wrong, os.O_CREAT | os.O_WRONLY, 0o600)
        os.write(fd, text.encode())
        os.close(fd)
        r = k.run([k.exe("initiator"), "--connect", f"127.0.0.1:{resp.port}", "--keyfile", wrong,
                   "--peer", "bob"], input=b"")
        self.assertNotEqual(r.rc, 0, r)

        def settled():
            s = Scrape(mport)
            self.assertEqual(s.get("kd3_responder_sessions_open"), 0)
            self.assertEqual(s.get("kd3_responder_sessions_accepted_total"), 3)
            return s

        s = wait_until(settled)
        self.assertEqual(s.get("kd3_responder_sessions_established_total"), 2)
        self.assertEqual(s.get("kd3_responder_sessions_closed_total"), 2)
        self.assertEqual(s.total("kd3_responder_sessions_failed_total"), 1)
        self.assertEqual(s.get("kd3_responder_sessions_failed_total", cause="PEER_ERROR"), 1)
        self.assertEqual(s.get("kd3_responder_sessions_refused_total"), 0)
        self.assertEqual(s.get("kd3_responder_handshake_duration_seconds_count"), 2)
        self.assertEqual(s.get("kd3_responder_kdc_answers_total", kdc=live, kind="M3"), 2)
        self.assertEqual(s.get("kd3_responder_kdc_answers_total", kdc=live, kind="ERROR"), 1)
        self.assertEqual(s.get("kd3_responder_kdc_answers_total", kdc=dead, kind="M3"), 0)
        # The dead KDC failed the first exchange, then sat in backoff (tried last) for a
        # second or more: as many failovers as the log tells, one at least.
        failed = len(re.findall(r"KDC %s: .*; trying the next KDC" % re.escape(dead), resp.text()))
        self.assertGreaterEqual(failed, 1)
        self.assertEqual(s.get("kd3_responder_kdc_failovers_total", kdc=dead), failed)
        self.assertEqual(s.get("kd3_responder_kdc_failovers_total", kdc=live), 0)
        self.assertEqual(s.get("kd3_responder_records_total", direction="in"), 4)
        self.assertEqual(s.get("kd3_responder_bytes_total", direction="in"),
                         2 * sum(len(l) for l in lines))
        self.assertEqual(s.get("kd3_responder_records_total", direction="out"), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
