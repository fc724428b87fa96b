"""Host names for every address, with the real kdc, responder and initiator.

Nothing here ever reaches the machine's DNS or /etc/hosts: every process gets
CARES_HOSTS (this test's own hosts file) and KD3_DNS_SERVER, pointing at a UDP socket
on loopback that this test binds and never reads (a name not in the hosts file gets no
answer), or at dnsmasq (tests/support/dnsmasq.py) for the NXDOMAIN case.

  - kdc serve --listen NAME binds every address of the name (127.0.0.2 and ::1) and
    both serve: a responder asking each address by its literal gets sessions;
  - responder --listen NAME --kdc NAME, initiators --connect NAME / each literal;
  - localhost for all three (answered by kd3 itself: 127.0.0.1, then ::1);
  - the initiator tries a name's next address when the first refuses;
  - bad input: a name nobody answers for (each program's bound, timed), ports out of
    range, malformed names, dns: with a port, a name of the wrong family only, an
    NXDOMAIN name: one line naming the text, the documented exit code, in bounded time.
"""
import os
import re
import socket
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import dnsmasq  # noqa: E402
import kd3e2e as k  # noqa: E402

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_GONE = 0, 1, 2, 5
INITIATOR_TIMEOUT_S = 2      # --timeout given to the initiator: its resolve bound too
KDC_RESOLVE_MS = 5000        # KD3_RESOLVE_TIMEOUT_MS: kdc serve --listen, responder --listen
RESPONDER_KDC_MS = 3000      # RESP_KDCS_RESOLVE_MS: responder --kdc, per name
SLACK_S = 2.0                # exit within the bound + this
QUICK_S = 3.0                # a text refused without resolving: well under any bound

HOSTS = """\
127.0.0.2 kd3-dual.test
::1 kd3-dual.test
127.0.0.3 kd3-next.test
127.0.0.2 kd3-next.test
::1 kd3-v6only.test
127.0.1.1 kd3-many.test
127.0.1.2 kd3-many.test
127.0.1.3 kd3-many.test
127.0.1.4 kd3-many.test
127.0.1.5 kd3-many.test
127.0.1.6 kd3-many.test
127.0.1.7 kd3-many.test
127.0.1.8 kd3-many.test
127.0.1.9 kd3-many.test
127.0.1.10 kd3-many.test
127.0.1.11 kd3-many.test
127.0.1.12 kd3-many.test
127.0.1.13 kd3-many.test
127.0.1.14 kd3-many.test
127.0.1.15 kd3-many.test
127.0.1.16 kd3-many.test
127.0.1.17 kd3-many.test
127.0.1.18 kd3-many.test
127.0.1.19 kd3-many.test
127.0.1.20 kd3-many.test
"""

SILENT = None   # the UDP socket nobody reads: KD3_DNS_SERVER for every process here
ENV = None


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


IPV6 = has_ipv6_loopback()


def setUpModule():
    global SILENT, ENV
    SILENT = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    SILENT.bind(("127.0.0.1", 0))
    hosts_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                             f"kd3-test-names-{os.getpid()}")
    os.makedirs(hosts_dir, exist_ok=True)
    hosts = os.path.join(hosts_dir, "hosts")
    with open(hosts, "w", encoding="ascii") as f:
        f.write(HOSTS)
    # Inherited by every process started here, Realm's kdc init/add included.
    os.environ["KD3_DNS_SERVER"] = f"127.0.0.1:{SILENT.getsockname()[1]}"
    os.environ["CARES_HOSTS"] = hosts
    ENV = dict(os.environ)


def tearDownModule():
    SILENT.close()
    hosts = os.environ["CARES_HOSTS"]
    os.unlink(hosts)
    os.rmdir(os.path.dirname(hosts))


def free_port(hosts):
    """A port free for TCP and UDP on every one of hosts (IP literals)."""
    for _ in range(100):
        held = []
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind(("127.0.0.1", 0))
                port = t.getsockname()[1]
            try:
                for h in hosts:
                    fam = socket.AF_INET6 if ":" in h else socket.AF_INET
                    for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                        s = socket.socket(fam, typ)
                        held.append(s)
                        s.bind((h, port))
            except OSError:
                continue
            return port
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free port")


def timed(argv, timeout=30, input=b""):
    t0 = time.monotonic()
    r = k.run(argv, input=input, timeout=timeout, env=ENV)
    r.elapsed = time.monotonic() - t0
    return r


def err_lines(r):
    return [line for line in r.stderr.splitlines() if line.strip()]


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.realm = k.Realm()

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()

    # ---- servers on chosen addresses ----------------------------------------------

    def start(self, make_argv, ready, hosts, env=None):
        """make_argv(port) started on a port free on every one of hosts; retried on
        another port when something took it first."""
        for _ in range(5):
            port = free_port(hosts)
            p = k.Proc(make_argv(port), env=env or ENV)
            self.realm.procs.append(p)
            try:
                p.ready = p.wait_for(ready, timeout=15)
            except AssertionError:
                if "in use" in p.text():
                    p.stop()
                    continue
                raise
            p.port = port
            self.addCleanup(self.stopped_clean, p)
            return p
        raise AssertionError("no free port after 5 tries")

    def stopped_clean(self, p):
        """Stops p (SIGTERM): it exits 0, and no sanitizer said anything (ASan builds)."""
        rc = p.stop()
        text = p.text()
        self.assertNotRegex(text, r"Sanitizer|runtime error:", text)
        self.assertIn(rc, (0, None), f"{p.argv[0]} exited {rc}:\n{text}")

    def start_kdc(self, listen, hosts):
        return self.start(lambda prt: [k.exe("kdc"), "serve", *self.realm.dbargs, "--listen",
                                       listen.format(port=prt), "--workers", "1"],
                          r"serving on (.*) \(udp\+tcp\)", hosts)

    def start_responder(self, listen, hosts, kdc, *extra, env=None):
        return self.start(lambda prt: [k.exe("responder"), "--listen", listen.format(port=prt),
                                       "--keyfile", self.realm.keyfile("bob"), "--kdc", kdc,
                                       "--exec", "cat", *extra],
                          r"listening on (.*) as bob", hosts, env)

    def initiator(self, connect, *extra, lines=("hello bob", "second line"), timeout=30):
        data = "".join(line + "\n" for line in lines).encode()
        return timed([k.exe("initiator"), "--connect", connect, "--keyfile",
                      self.realm.keyfile("alice"), "--peer", "bob", *extra],
                     input=data, timeout=timeout)

    def converse(self, connect, *extra):
        lines = (f"hello via {connect}", "second line")
        r = self.initiator(connect, *extra, lines=lines)
        self.assertEqual(r.rc, EXIT_OK, r)
        self.assertEqual(r.stdout, "".join(line + "\n" for line in lines), r)
        self.assertIn("session with bob established", r.stderr, r)
        return r

    def kdc_answered(self, responder, kdc_addr, timeout=10):
        """The responder logged that kdc_addr answered a session ok."""
        return responder.wait_for(r"session \d+: KDC " + re.escape(kdc_addr) + r" answered ok",
                                  timeout=timeout)


@unittest.skipUnless(IPV6, "needs ::1 on the loopback interface")
class DualStack(Base):
    """A name with an IPv4 and an IPv6 address: every program uses both."""

    def test_kdc_listens_on_every_address(self):
        kdc = self.start_kdc("kd3-dual.test:{port}", ("127.0.0.2", "::1"))
        kp = kdc.port
        self.assertEqual(kdc.ready.group(1), f"127.0.0.2:{kp}, [::1]:{kp}")
        self.assertIn("2 workers (1 on each address)", kdc.ready.string)
        # Each address really serves: a responder pointed at each literal gets sessions.
        for addr in (f"127.0.0.2:{kp}", f"[::1]:{kp}"):
            with self.subTest(kdc=addr):
                resp = self.start_responder("127.0.0.1:{port}", ("127.0.0.1",), addr)
                self.converse(f"127.0.0.1:{resp.port}")
                self.kdc_answered(resp, addr)
                resp.stop()

    def test_responder_and_initiator_by_name(self):
        kdc = self.start_kdc("kd3-dual.test:{port}", ("127.0.0.2", "::1"))
        kp = kdc.port
        resp = self.start_responder("kd3-dual.test:{port}", ("127.0.0.2", "::1"),
                                    f"kd3-dual.test:{kp}")
        rp = resp.port
        self.assertEqual(resp.ready.group(1), f"127.0.0.2:{rp}, [::1]:{rp}")
        # The KDC name resolved at start, logged once with what it came from.
        resp.wait_for(re.escape(f"KDCs: 127.0.0.2:{kp}, [::1]:{kp} "
                                f"(resolved from kd3-dual.test:{kp})") + "$", timeout=1)
        for connect in (f"kd3-dual.test:{rp}", f"127.0.0.2:{rp}", f"[::1]:{rp}"):
            with self.subTest(connect=connect):
                r = self.converse(connect, "--trace")
                # the name's first address took it
                want = f"[::1]:{rp}" if connect.startswith("[") else f"127.0.0.2:{rp}"
                self.assertIn(f"connected to {want}", r.stderr)
        # The responder's exchanges went to the KDC's first address.
        self.kdc_answered(resp, f"127.0.0.2:{kp}")

    def test_localhost_everywhere(self):
        both = ("127.0.0.1", "::1")
        kdc = self.start_kdc("localhost:{port}", both)
        kp = kdc.port
        self.assertEqual(kdc.ready.group(1), f"127.0.0.1:{kp}, [::1]:{kp}")
        resp = self.start_responder("localhost:{port}", both, f"localhost:{kp}")
        rp = resp.port
        self.assertEqual(resp.ready.group(1), f"127.0.0.1:{rp}, [::1]:{rp}")
        r = self.converse(f"localhost:{rp}", "--trace")
        self.assertIn(f"connected to 127.0.0.1:{rp}", r.stderr)
        self.kdc_answered(resp, f"127.0.0.1:{kp}")


class Names(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kdc = cls.realm.start_kdc()  # 127.0.0.1, an IP literal

    def test_initiator_tries_next_address(self):
        # kd3-next.test: 127.0.0.3 (nothing listens there), then 127.0.0.2.
        resp = self.start_responder("127.0.0.2:{port}", ("127.0.0.2", "127.0.0.3"),
                                    f"127.0.0.1:{self.kdc.port}")
        r = self.converse(f"kd3-next.test:{resp.port}", "--trace")
        self.assertIn(f"connected to 127.0.0.2:{resp.port}", r.stderr)
        self.assertNotIn("connected to 127.0.0.3", r.stderr)
        self.assertLess(r.elapsed, 5, r)  # a refusal costs nothing like the timeout

    def test_a_name_with_many_addresses_leaves_room_for_the_next_entry(self):
        # kd3-many.test has 20 addresses, more than the 16 places of the list: the entry
        # after it (the real KDC) still gets its place, and its share comes first.
        kp = self.kdc.port
        resp = self.start_responder("127.0.0.1:{port}", ("127.0.0.1",), f"kd3-many.test:{kp}",
                                    "--kdc", f"127.0.0.1:{kp}")
        line = resp.wait_for(r"KDCs: (.*) \(resolved from", timeout=5).group(1).split(", ")
        self.assertEqual(len(line), 16, line)
        self.assertEqual(line[:8], [f"127.0.1.{i}:{kp}" for i in range(1, 9)], line)
        self.assertEqual(line[8], f"127.0.0.1:{kp}", line)
        self.assertEqual(line[9:], [f"127.0.1.{i}:{kp}" for i in range(9, 16)], line)

    def test_wrong_family_only(self):
        # kd3-v6only.test is only ::1; the responder listens on 127.0.0.1 only.
        resp = self.start_responder("127.0.0.1:{port}", ("127.0.0.1", "::1"),
                                    f"127.0.0.1:{self.kdc.port}")
        r = self.initiator(f"kd3-v6only.test:{resp.port}")
        self.assertEqual(r.rc, EXIT_GONE, r)
        self.assertIn(f"cannot connect to the responder at [::1]:{resp.port}: "
                      "Connection refused", r.stderr)
        self.assertLess(r.elapsed, QUICK_S, r)
        self.assertEqual(r.stdout, "", r)

    def test_no_answer_for_name(self):
        """A name in no hosts file, and a DNS server that never answers: each program
        gives up at its bound with one line naming the name."""
        name = "kd3-nowhere.test"
        kp = self.kdc.port
        cases = {
            "initiator --connect": (
                [k.exe("initiator"), "--connect", f"{name}:7000", "--timeout",
                 str(INITIATOR_TIMEOUT_S), "--keyfile", self.realm.keyfile("alice"),
                 "--peer", "bob"],
                EXIT_GONE, INITIATOR_TIMEOUT_S * 1000,
                f"initiator: error: --connect: '{name}': no answer from DNS within "
                f"{INITIATOR_TIMEOUT_S * 1000} ms"),
            "responder --kdc": (
                [k.exe("responder"), "--listen", "127.0.0.1:0", "--keyfile",
                 self.realm.keyfile("bob"), "--kdc", f"127.0.0.1:{kp}", "--kdc", name],
                EXIT_RUNTIME, RESPONDER_KDC_MS,
                f"responder: error: KDC: '{name}': no answer from DNS within "
                f"{RESPONDER_KDC_MS} ms"),
            "responder --listen": (
                [k.exe("responder"), "--listen", f"{name}:0", "--keyfile",
                 self.realm.keyfile("bob"), "--kdc", f"127.0.0.1:{kp}"],
                EXIT_USAGE, KDC_RESOLVE_MS,
                f"responder: error: --listen: '{name}': no answer from DNS within "
                f"{KDC_RESOLVE_MS} ms"),
            "kdc serve --listen": (
                [k.exe("kdc"), "serve", *self.realm.dbargs, "--listen", f"{name}:7000"],
                EXIT_USAGE, KDC_RESOLVE_MS,
                f"kdc: error: listen: '{name}': no answer from DNS within "
                f"{KDC_RESOLVE_MS} ms"),
        }
        results = {}

        def one(label, argv):
            results[label] = timed(argv, timeout=30)

        threads = [threading.Thread(target=one, args=(label, c[0]))
                   for label, c in cases.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
        for label, (_, code, bound_ms, line) in cases.items():
            with self.subTest(label):
                r = results[label]
                self.assertEqual(r.rc, code, r)
                self.assertEqual(err_lines(r), [line], r)
                # it waited for the answer (the server is silent, not refusing)...
                self.assertGreaterEqual(r.elapsed, bound_ms / 1000 * 0.9, r)
                # ...and not much longer than the bound it names
                self.assertLess(r.elapsed, bound_ms / 1000 + SLACK_S, r)

    def test_bad_text(self):
        """Texts refused before any lookup: exit 2, one line naming the text, at once."""
        kp = self.kdc.port
        port_range = "is not a number 1-65535"
        texts = [
            ("name.test:70000", f"port '70000' {port_range}"),
            ("name.test:0", f"port '0' {port_range}"),
            ("bad name", "' ' is not allowed in a host name (letters, digits, '-', '_' and '.')"),
            ("-x.test", "a label starts or ends with '-'"),
            ("name.test:", "port '' " + port_range),
        ]
        progs = {
            "initiator --connect": lambda t: (
                [k.exe("initiator"), "--connect", t, "--keyfile", self.realm.keyfile("alice"),
                 "--peer", "bob"], "initiator: error: --connect: "),
            "responder --kdc": lambda t: (
                [k.exe("responder"), "--listen", "127.0.0.1:0", "--keyfile",
                 self.realm.keyfile("bob"), "--kdc", t], "responder: error: --kdc: "),
            "responder --listen": lambda t: (
                [k.exe("responder"), "--listen", t, "--keyfile", self.realm.keyfile("bob"),
                 "--kdc", f"127.0.0.1:{kp}"], "responder: error: --listen: "),
            "kdc serve --listen": lambda t: (
                [k.exe("kdc"), "serve", *self.realm.dbargs, "--listen", t],
                "kdc: error: listen: "),
        }
        for label, make in progs.items():
            for text, why in texts:
                if text == "name.test:0" and label == "responder --listen":
                    continue  # port 0 is a free port there (resolved: see no_answer)
                with self.subTest(prog=label, text=text):
                    argv, prefix = make(text)
                    if label == "responder --listen":  # port 0 allowed there
                        why = why.replace("1-65535", "0-65535")
                    r = timed(argv)
                    self.assertEqual(r.rc, EXIT_USAGE, r)
                    self.assertEqual(err_lines(r), [f"{prefix}'{text}': {why}"], r)
                    self.assertLess(r.elapsed, QUICK_S, r)
        # dns: takes a domain, never a port
        r = timed(progs["responder --kdc"]("dns:realm.test:88")[0])
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertEqual(err_lines(r), ["responder: error: --kdc: 'dns:realm.test:88': "
                                        "dns: takes a domain name, without a port"], r)
        self.assertLess(r.elapsed, QUICK_S, r)
        # and an IP literal is no domain
        r = timed(progs["responder --kdc"]("dns:127.0.0.1")[0])
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertEqual(err_lines(r), ["responder: error: --kdc: 'dns:127.0.0.1': "
                                        "dns: takes a domain name, without a port"], r)

    def test_nxdomain(self):
        """With a real DNS server (dnsmasq): a name it does not know is 'no such name',
        at once, for each program."""
        with dnsmasq.Dnsmasq() as dns:
            dns.start("host-record=kdc.realm.test,127.0.0.1")
            env = dict(ENV, **dns.env())
            name = "nosuch.realm.test"
            kp = self.kdc.port
            cases = [
                ([k.exe("initiator"), "--connect", f"{name}:7000", "--keyfile",
                  self.realm.keyfile("alice"), "--peer", "bob"], EXIT_GONE,
                 f"initiator: error: --connect: '{name}': no such name (Domain name not found)"),
                ([k.exe("responder"), "--listen", "127.0.0.1:0", "--keyfile",
                  self.realm.keyfile("bob"), "--kdc", f"{name}:{kp}"], EXIT_RUNTIME,
                 f"responder: error: KDC: '{name}': no such name (Domain name not found)"),
                ([k.exe("kdc"), "serve", *self.realm.dbargs, "--listen", f"{name}:7000"],
                 EXIT_USAGE, f"kdc: error: listen: '{name}': no such name (Domain name not found)"),
            ]
            for argv, code, line in cases:
                with self.subTest(argv=argv[0]):
                    t0 = time.monotonic()
                    r = k.run(argv, timeout=30, env=env)
                    elapsed = time.monotonic() - t0
                    self.assertEqual(r.rc, code, r)
                    self.assertEqual(err_lines(r), [line], r)
                    self.assertLess(elapsed, QUICK_S, r)
            # a name the server does know works through it
            resp = self.start_responder("127.0.0.1:{port}", ("127.0.0.1",),
                                        f"kdc.realm.test:{kp}", env=env)
            resp.wait_for(re.escape(f"KDCs: 127.0.0.1:{kp} (resolved from kdc.realm.test:{kp})"),
                          timeout=1)
            r = self.initiator(f"127.0.0.1:{resp.port}")
            self.assertEqual(r.rc, EXIT_OK, r)
            resp.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
