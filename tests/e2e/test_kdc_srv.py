"""KDC discovery by DNS SRV records (responder --kdc dns:DOMAIN) with the real programs
and a real DNS server: Debian's dnsmasq on a free 127.0.0.1 port
(tests/support/dnsmasq.py). Every process gets KD3_DNS_SERVER (dnsmasq, or a UDP socket
on loopback that nobody reads) and CARES_HOSTS (an empty file): nothing reaches the
machine's DNS or /etc/hosts.

  - priority order: _kd3._udp SRV records for kdc1 (priority 10) and kdc2 (20); the
    responder's sessions go to kdc1 (its log names the KDC that answered each one);
    kdc1 killed: the next session fails over to kdc2;
  - records changed on the server are picked up when their TTL runs out (ttl=2, taken
    as KD3_SRV_TTL_MIN_S = 5 s): a new "KDCs:" line, and sessions go to the new KDC;
  - an SRV set whose only target is ".", or whose target does not resolve, stops the
    responder at start with a line naming the domain and why; so does a domain nobody
    answers for (within the bound: two lookups of RESP_KDCS_RESOLVE_MS);
  - _kd3._tcp records alone work too;
  - an explicit KDC list never asks DNS (dnsmasq --log-queries shows no query; with a
    silent DNS server the responder is ready at once).
"""
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import dnsmasq  # noqa: E402
import kd3e2e as k  # noqa: E402

EXIT_OK, EXIT_RUNTIME = 0, 1
SRV_TTL_MIN_S = 5          # KD3_SRV_TTL_MIN_S
RESOLVE_MS = 3000          # RESP_KDCS_RESOLVE_MS: one SRV or name lookup
SLACK_S = 2.0

TMP = None
ENV = None        # every process: CARES_HOSTS empty, KD3_DNS_SERVER silent (unless a test sets dnsmasq)
SILENT = None


def setUpModule():
    global TMP, ENV, SILENT
    TMP = tempfile.mkdtemp(prefix="kd3-test-kdc-srv-")
    hosts = os.path.join(TMP, "hosts")
    open(hosts, "w").close()
    SILENT = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    SILENT.bind(("127.0.0.1", 0))
    os.environ["CARES_HOSTS"] = hosts
    os.environ["KD3_DNS_SERVER"] = f"127.0.0.1:{SILENT.getsockname()[1]}"
    ENV = dict(os.environ)


def tearDownModule():
    SILENT.close()
    shutil.rmtree(TMP, ignore_errors=True)


def host_records(*names):
    return tuple(f"host-record={n}.realm.test,127.0.0.1" for n in names)


class KdcSrv(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.realm = k.Realm()

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()

    def setUp(self):
        self.dns = dnsmasq.Dnsmasq()
        self.addCleanup(self.dns.close)

    def stopped_clean(self, p):
        """Stops p (SIGTERM): it exits 0 (unless the test killed it), and no sanitizer
        said anything (ASan builds)."""
        rc = p.stop()
        text = p.text()
        self.assertNotRegex(text, r"Sanitizer|runtime error:", text)
        self.assertIn(rc, (0, -signal.SIGKILL), f"{p.argv[0]} exited {rc}:\n{text}")

    def kdc(self):
        p = self.realm.start_kdc(workers=1)
        self.addCleanup(self.stopped_clean, p)
        return p

    def responder(self, *kdcs, env=None):
        p = self.realm.start_responder("--exec", "cat", kdc=list(kdcs),
                                       env=env or dict(ENV, **self.dns.env()))
        self.addCleanup(self.stopped_clean, p)
        return p

    def session(self, resp, timeout=30):
        """One session through resp; returns the KDC address its log says answered."""
        before = len(resp.lines)
        line = f"line {time.monotonic()}"
        r = self.realm.run_initiator(resp.port, (line,), timeout=timeout, env=ENV)
        self.assertEqual(r.rc, EXIT_OK, r)
        self.assertEqual(r.stdout, line + "\n", r)
        resp.wait_for(r"session \d+: KDC \S+ answered ok", timeout=5)
        with resp.cond:
            new = resp.lines[before:]
        answered = [m.group(1) for m in
                    (re.search(r"session \d+: KDC (\S+) answered ok", x) for x in new) if m]
        self.assertEqual(len(answered), 1, "\n".join(new))
        return answered[0]

    def kdcs_line(self, resp, addrs, domain, ttl, timeout=1.0):
        return resp.wait_for(re.escape(f"KDCs: {', '.join(addrs)} (resolved from dns:{domain}; "
                                       f"SRV records refreshed in {ttl} s)") + "$",
                             timeout=timeout)

    # ---- the tests ----------------------------------------------------------------

    def test_priority_then_failover(self):
        kdc1, kdc2 = self.kdc(), self.kdc()
        self.dns.start(*host_records("kdc1", "kdc2"),
                       f"srv-host=_kd3._udp.realm.test,kdc1.realm.test,{kdc1.port},10,0",
                       f"srv-host=_kd3._udp.realm.test,kdc2.realm.test,{kdc2.port},20,0",
                       ttl=300)
        resp = self.responder("dns:realm.test")
        a1, a2 = f"127.0.0.1:{kdc1.port}", f"127.0.0.1:{kdc2.port}"
        self.kdcs_line(resp, (a1, a2), "realm.test", 300)
        for _ in range(3):
            self.assertEqual(self.session(resp), a1)
        kdc1.stop(signal.SIGKILL)
        t0 = time.monotonic()
        self.assertEqual(self.session(resp), a2)
        self.assertLess(time.monotonic() - t0, 5, "failover to kdc2 took too long")
        self.assertEqual(self.session(resp), a2)  # kdc1 in backoff: straight to kdc2
        # nothing changed in DNS: no new list logged
        self.assertEqual(len([x for x in resp.lines if "KDCs:" in x]), 1, resp.text())

    def test_records_changed_after_ttl(self):
        kdc1, kdc3 = self.kdc(), self.kdc()
        self.dns.start("log-queries", *host_records("kdc1", "kdc3"),
                       f"srv-host=_kd3._udp.realm.test,kdc1.realm.test,{kdc1.port},10,0",
                       ttl=2)
        t0 = time.monotonic()
        resp = self.responder("dns:realm.test")
        a1, a3 = f"127.0.0.1:{kdc1.port}", f"127.0.0.1:{kdc3.port}"
        # ttl=2 is taken as KD3_SRV_TTL_MIN_S
        self.kdcs_line(resp, (a1,), "realm.test", SRV_TTL_MIN_S)
        self.assertEqual(self.session(resp), a1)
        self.dns.restart("log-queries", *host_records("kdc1", "kdc3"),
                         f"srv-host=_kd3._udp.realm.test,kdc3.realm.test,{kdc3.port},10,0")
        # kdc1 still serves: only the TTL makes the responder look again. Once, or twice
        # when its lookup fell in the restart (a failed refresh retries after 5 s).
        self.kdcs_line(resp, (a3,), "realm.test", SRV_TTL_MIN_S,
                       timeout=3 * SRV_TTL_MIN_S + 2 * RESOLVE_MS / 1000)
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, SRV_TTL_MIN_S - 0.5, "refreshed before the TTL ran out")
        self.assertEqual(self.session(resp), a3)
        self.assertEqual(self.session(resp), a3)
        self.assertIn("query[SRV] _kd3._udp.realm.test", self.dns.log())

    def test_dns_gone_keeps_the_list(self):
        # The DNS server stops answering after start: the refresh at the TTL finds
        # nothing, says so, and the KDCs found before keep serving.
        kdc1 = self.kdc()
        self.dns.start(*host_records("kdc1"),
                       f"srv-host=_kd3._udp.realm.test,kdc1.realm.test,{kdc1.port},10,0",
                       ttl=2)
        resp = self.responder("dns:realm.test")
        a1 = f"127.0.0.1:{kdc1.port}"
        self.kdcs_line(resp, (a1,), "realm.test", SRV_TTL_MIN_S)
        self.dns.stop()
        resp.wait_for(re.escape("KDC list: 1 of 1 entry not resolved now; its previous "
                                "addresses kept"),
                      timeout=SRV_TTL_MIN_S + 2 * RESOLVE_MS / 1000 + 3)
        self.assertEqual(self.session(resp), a1)

    def refused_at_start(self, domain, env):
        """responder --kdc dns:DOMAIN: exits 1 at start; its lines and the time taken."""
        t0 = time.monotonic()
        r = k.run([k.exe("responder"), "--listen", "127.0.0.1:0", "--keyfile",
                   self.realm.keyfile("bob"), "--kdc", f"dns:{domain}"], timeout=30, env=env)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.rc, EXIT_RUNTIME, r)
        self.assertEqual(r.stdout, "", r)
        return r.stderr.strip().splitlines(), elapsed

    def test_no_usable_target(self):
        self.dns.start("srv-host=_kd3._udp.empty.test",  # no target: "."
                       "srv-host=_kd3._udp.ghost.test,ghost.realm.test,7000,0,0",
                       # RFC 2782: a target is a domain name; DNS may not point us at an
                       # address of its choosing, nor at this host's own services
                       "srv-host=_kd3._udp.literal.test,127.0.0.1,7000,0,0",
                       "srv-host=_kd3._udp.literal.test,localhost,7001,0,0")
        env = dict(ENV, **self.dns.env())
        nx = "no such name (Domain name not found)"
        lines, elapsed = self.refused_at_start("empty.test", env)
        self.assertEqual(lines, [
            "responder: error: KDC dns:empty.test: no usable SRV record ("
            "'_kd3._udp.empty.test': no usable SRV target (\".\": service not offered); "
            f"'_kd3._tcp.empty.test': {nx})"])
        self.assertLess(elapsed, 2)
        # a target that does not resolve: named, then the domain
        lines, elapsed = self.refused_at_start("ghost.test", env)
        self.assertEqual(lines, [
            "responder: error: KDC ghost.realm.test (SRV target of _kd3._udp.ghost.test): "
            f"'ghost.realm.test': {nx}",
            "responder: error: KDC dns:ghost.test: no usable SRV record ("
            f"'_kd3._udp.ghost.test': no target resolved; '_kd3._tcp.ghost.test': {nx})"])
        self.assertLess(elapsed, 2)
        lines, elapsed = self.refused_at_start("literal.test", env)
        self.assertEqual(sorted(lines[:2]), [
            "responder: error: KDC 127.0.0.1 (SRV target of _kd3._udp.literal.test): "
            "not a domain name; skipped",
            "responder: error: KDC localhost (SRV target of _kd3._udp.literal.test): "
            "not a domain name; skipped"])
        self.assertEqual(lines[2:], [
            "responder: error: KDC dns:literal.test: no usable SRV record ("
            f"'_kd3._udp.literal.test': no target resolved; '_kd3._tcp.literal.test': {nx})"])
        self.assertLess(elapsed, 2)

    def test_no_answer_for_domain(self):
        # KD3_DNS_SERVER silent: _udp then _tcp, each RESP_KDCS_RESOLVE_MS
        lines, elapsed = self.refused_at_start("realm.test", ENV)
        na = f"no answer from DNS within {RESOLVE_MS} ms"
        self.assertEqual(lines, [
            "responder: error: KDC dns:realm.test: no usable SRV record ("
            f"'_kd3._udp.realm.test': {na}; '_kd3._tcp.realm.test': {na})"])
        bound = 2 * RESOLVE_MS / 1000
        self.assertGreaterEqual(elapsed, bound * 0.9)
        self.assertLess(elapsed, bound + SLACK_S)

    def test_tcp_records_only(self):
        kdc1 = self.kdc()
        self.dns.start(*host_records("kdc1"),
                       f"srv-host=_kd3._tcp.tcponly.test,kdc1.realm.test,{kdc1.port},0,0",
                       ttl=120)
        resp = self.responder("dns:tcponly.test")
        a1 = f"127.0.0.1:{kdc1.port}"
        self.kdcs_line(resp, (a1,), "tcponly.test", 120)
        self.assertEqual(self.session(resp), a1)

    def test_explicit_list_asks_no_dns(self):
        kdc1 = self.kdc()
        self.dns.start("log-queries", *host_records("kdc1"),
                       f"srv-host=_kd3._udp.realm.test,kdc1.realm.test,{kdc1.port},0,0")
        a1 = f"127.0.0.1:{kdc1.port}"
        resp = self.responder(a1)
        self.assertEqual(self.session(resp), a1)
        resp.stop()

        def queries():
            return [x for x in self.dns.log().splitlines()
                    if re.search(r"\bquery\[", x) and "kd3-dnsmasq-ready.test" not in x]

        self.assertEqual(queries(), [], self.dns.log())
        self.assertNotIn("KDCs:", resp.text())  # IP literals: nothing resolved, no line
        # The same server does see the queries of a dns: list (so the log would show them).
        resp2 = self.responder("dns:realm.test")
        self.assertEqual(self.session(resp2), a1)
        self.assertTrue(any("query[SRV] _kd3._udp.realm.test" in x for x in queries()),
                        self.dns.log())
        # With a DNS server that never answers, an explicit list starts at once.
        t0 = time.monotonic()
        resp3 = self.responder(a1, env=ENV)
        self.assertLess(time.monotonic() - t0, 1.0, resp3.text())
        self.assertEqual(self.session(resp3), a1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
