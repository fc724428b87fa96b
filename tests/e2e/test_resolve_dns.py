"""kd3_resolve and kd3_srv_lookup (shared/resolve.c) against a real DNS server:
Debian's dnsmasq on a free 127.0.0.1 port (tests/support/dnsmasq.py), asked through
tests/support/resolve_probe with KD3_DNS_SERVER pointing at it and CARES_HOSTS at an
empty file, so that neither the machine's DNS nor its /etc/hosts is ever asked.

  - SRV records: every field and the TTL read back, priority order and the weighted
    order (kd3_srv_order) over many seeds, more records than one UDP reply holds
    (TCP), NOT_FOUND for an unknown name and for a set whose only target is ".";
  - names: both families, NOT_FOUND, the --addn-hosts file reread on SIGHUP;
  - dnsmasq.py itself: a restart on the same port with new records and TTL (clamped
    to KD3_SRV_TTL_MIN_S), and, under root, the same server run by an unprivileged user.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import dnsmasq  # noqa: E402

BIN = os.environ.get("KD3_BIN", os.path.join(HERE, "..", "..", "build"))
PROBE = os.path.join(BIN, "tests", "resolve_probe")
TTL = 45
SRV_TTL_MIN = 5     # KD3_SRV_TTL_MIN_S
SRV_MAX = 16        # KD3_SRV_MAX

RECORDS = (
    "host-record=kdc1.realm.test,127.0.0.1,::1",
    "host-record=kdc2.realm.test,127.0.0.2",
    "srv-host=_kd3._udp.realm.test,kdc1.realm.test,7088,10,5",
    "srv-host=_kd3._udp.realm.test,kdc2.realm.test,7089,20,0",
    # one priority, weights 1, 3 and 96
    "srv-host=_kd3._tcp.realm.test,light.realm.test,1,0,1",
    "srv-host=_kd3._tcp.realm.test,middle.realm.test,2,0,3",
    "srv-host=_kd3._tcp.realm.test,heavy.realm.test,3,0,96",
    # no target: "." (RFC 2782: the service is not offered)
    "srv-host=_kd3._udp.dot.realm.test",
) + tuple(
    # more than a 512-byte UDP reply holds: c-ares asks again over TCP
    f"srv-host=_kd3._udp.many.realm.test,kdc-many-{i:02d}.realm.test,{7000 + i},1,1"
    for i in range(24))


class Probe:
    """resolve_probe with this test's environment."""

    def __init__(self, server, hosts_file):
        self.env = dict(os.environ, KD3_DNS_SERVER=server, CARES_HOSTS=hosts_file)

    def run(self, *args):
        p = subprocess.run([PROBE, *args], env=self.env, capture_output=True, text=True,
                           timeout=30)
        return p.returncode, p.stdout.splitlines(), p.stderr.strip()

    def ok(self, *args):
        rc, out, err = self.run(*args)
        if rc != 0:
            raise AssertionError(f"resolve_probe {' '.join(args)}: exit {rc}: {out} {err}")
        return out

    def srv(self, name, seed=None):
        """(ttl, [(host, port, priority, weight), ...])"""
        out = self.ok("srv", name, "5000", *([str(seed)] if seed is not None else []))
        head, rows = out[0].split(), [line.split() for line in out[1:]]
        assert head[0] == "ttl", out
        return int(head[1]), [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]


class ResolveDns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(PROBE):
            raise RuntimeError(f"missing {PROBE} (set KD3_BIN to the build dir)")
        cls.tmp = tempfile.mkdtemp(prefix="kd3-test-resolve-dns-")
        cls.hosts_file = os.path.join(cls.tmp, "hosts")
        open(cls.hosts_file, "w").close()
        cls.dns = dnsmasq.Dnsmasq()
        cls.dns.start(*RECORDS, ttl=TTL, hosts=[("127.0.0.9", "extra.realm.test")])
        cls.probe = Probe(cls.dns.server, cls.hosts_file)

    @classmethod
    def tearDownClass(cls):
        cls.dns.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_srv_fields_and_ttl(self):
        ttl, targets = self.probe.srv("_kd3._udp.realm.test")
        self.assertEqual(ttl, TTL)
        self.assertEqual(sorted(targets), [("kdc1.realm.test", 7088, 10, 5),
                                           ("kdc2.realm.test", 7089, 20, 0)])
        # a trailing dot asks the same name
        self.assertEqual(sorted(self.probe.srv("_kd3._udp.realm.test.")[1]), sorted(targets))

    def test_srv_priority_order(self):
        for seed in range(1, 21):
            _, targets = self.probe.srv("_kd3._udp.realm.test", seed=seed)
            self.assertEqual([t[0] for t in targets], ["kdc1.realm.test", "kdc2.realm.test"])

    def test_srv_weighted_order(self):
        firsts = {}
        for seed in range(1, 61):
            _, targets = self.probe.srv("_kd3._tcp.realm.test", seed=seed)
            hosts = [t[0] for t in targets]
            self.assertEqual(sorted(hosts), ["heavy.realm.test", "light.realm.test",
                                             "middle.realm.test"])
            firsts[hosts[0]] = firsts.get(hosts[0], 0) + 1
        # weight 96 of 100: first nearly always (fixed seeds: no flake), not always
        self.assertGreaterEqual(firsts.get("heavy.realm.test", 0), 50, firsts)
        self.assertLess(firsts.get("heavy.realm.test", 0), 60, firsts)

    def test_srv_more_than_udp_holds(self):
        ttl, targets = self.probe.srv("_kd3._udp.many.realm.test")
        self.assertEqual(ttl, TTL)
        self.assertEqual(len(targets), SRV_MAX)  # kept: the first KD3_SRV_MAX
        for host, port, prio, weight in targets:
            self.assertRegex(host, r"^kdc-many-\d\d\.realm\.test$")
            self.assertEqual(port, 7000 + int(host[9:11]))
            self.assertEqual((prio, weight), (1, 1))

    def test_srv_not_found(self):
        rc, out, err = self.probe.run("srv", "_kd3._udp.none.realm.test", "5000")
        self.assertEqual((rc, out), (1, ["error NOT_FOUND"]))
        self.assertIn("'_kd3._udp.none.realm.test': no such name", err)
        # a name with addresses but no SRV record
        rc, out, err = self.probe.run("srv", "kdc1.realm.test", "5000")
        self.assertEqual((rc, out), (1, ["error NOT_FOUND"]), err)

    def test_srv_only_dot(self):
        rc, out, err = self.probe.run("srv", "_kd3._udp.dot.realm.test", "5000")
        self.assertEqual((rc, out), (1, ["error NOT_FOUND"]))
        self.assertIn("no usable SRV target", err)

    def test_resolve_both_families(self):
        out = self.probe.ok("resolve", "kdc1.realm.test:7100")
        self.assertEqual(sorted(out), ["127.0.0.1:7100", "[::1]:7100"])
        self.assertEqual(self.probe.ok("resolve", "kdc2.realm.test"), ["127.0.0.2:7088"])
        self.assertEqual(self.probe.ok("resolve", "extra.realm.test"), ["127.0.0.9:7088"])

    def test_resolve_not_found(self):
        rc, out, err = self.probe.run("resolve", "nope.realm.test")
        self.assertEqual((rc, out), (1, ["error NOT_FOUND"]))
        self.assertIn("'nope.realm.test': no such name", err)


class DnsmasqHelper(unittest.TestCase):
    """What the integrator's tests rely on: restart with new records, hosts reload."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kd3-test-dnsmasq-")
        self.hosts_file = os.path.join(self.tmp, "hosts")
        open(self.hosts_file, "w").close()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_restart_same_port_new_records(self):
        with dnsmasq.Dnsmasq() as dns:
            port = dns.start("srv-host=_kd3._udp.r.test,a.r.test,1,0,0", ttl=300)
            probe = Probe(dns.server, self.hosts_file)
            self.assertEqual(probe.srv("_kd3._udp.r.test"), (300, [("a.r.test", 1, 0, 0)]))
            self.assertEqual(dns.restart("srv-host=_kd3._udp.r.test,b.r.test,2,0,0", ttl=2),
                             port)
            # the TTL below KD3_SRV_TTL_MIN_S is taken as that
            self.assertEqual(probe.srv("_kd3._udp.r.test"),
                             (SRV_TTL_MIN, [("b.r.test", 2, 0, 0)]))
            dns.stop()
            rc, out, _ = probe.run("srv", "_kd3._udp.r.test", "2000")
            self.assertEqual(rc, 1)  # nothing there: refused (ICMP) or no answer
            self.assertIn(out, (["error IO"], ["error TIMEOUT"]))

    def test_hosts_reload(self):
        with dnsmasq.Dnsmasq() as dns:
            dns.start(hosts=[("127.0.0.20", "moving.r.test")])
            probe = Probe(dns.server, self.hosts_file)
            self.assertEqual(probe.ok("resolve", "moving.r.test"), ["127.0.0.20:7088"])
            dns.set_hosts([("127.0.0.21", "moving.r.test"), ("::1", "moving.r.test")])
            self.assertEqual(sorted(probe.ok("resolve", "moving.r.test")),
                             ["127.0.0.21:7088", "[::1]:7088"])

    @unittest.skipUnless(os.getuid() == 0, "runs as root only: then as nobody too")
    def test_unprivileged_user(self):
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        script = (
            "import sys, subprocess; sys.path.insert(0, %r); import dnsmasq\n"
            "with dnsmasq.Dnsmasq() as d:\n"
            "    d.start('host-record=nobody.r.test,127.0.0.30')\n"
            "    out = subprocess.run([%r, 'resolve', 'nobody.r.test'], env=dict(d.env(),"
            " CARES_HOSTS='/dev/null'), capture_output=True, text=True, timeout=30)\n"
            "    print(out.stdout.strip(), out.stderr.strip())\n"
        ) % (os.path.join(HERE, "..", "support"), os.path.abspath(PROBE))
        p = subprocess.run([runuser, "-u", "nobody", "--", "/usr/bin/python3", "-B", "-c", script],
                           capture_output=True, text=True, timeout=60, cwd="/")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.strip(), "127.0.0.30:7088")


if __name__ == "__main__":
    unittest.main(verbosity=2)
