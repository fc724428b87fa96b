"""libkd3 as a user gets it: installed, found by pkg-config, and talking to the real
kdc, responder and initiator on 127.0.0.1.

  - `cmake --install` into a scratch prefix; kd3.pc there gives the flags; the two
    examples (examples/, their own Makefile) and the public API test (test_api.c) build
    against that copy alone, and test_api passes against the installed library;
  - ABI: the installed libkd3.so.0 has SONAME libkd3.so.0 and exports exactly the
    functions the headers mark KD3_API, which are exactly tests/lib/abi.txt (a symbol
    added or removed fails here until the list is updated);
  - echo_client against the real responder (--exec cat), the real initiator against
    echo_server, echo_client against echo_server; echo_server fails over from a dead
    KDC to a live one; a forged UDP ERROR from the KDC's address is asked again over TCP
    and does not end the exchange (and is taken when TCP is down); a wrong address or
    key file is one clear line and a non-zero exit.

usage: test_installed.py (KD3_BIN: the build dir; KD3_SOURCE: the source tree;
KD3_LIB_CFLAGS: extra compiler flags, the sanitizers' in a sanitizer build)
"""
import glob
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import kd3e2e as k  # noqa: E402
import mitm as M  # noqa: E402

BIN = os.environ["KD3_BIN"]
SRC = os.environ["KD3_SOURCE"]
EXTRA_CFLAGS = os.environ.get("KD3_LIB_CFLAGS", "")


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=kw.pop("timeout", 120), **kw)


class Installed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kd3-lib-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        r = run(["cmake", "--install", BIN, "--prefix", cls.prefix])
        assert r.returncode == 0, r.stderr
        pcs = glob.glob(os.path.join(cls.prefix, "**", "pkgconfig", "kd3.pc"), recursive=True)
        assert len(pcs) == 1, pcs
        cls.pcdir = os.path.dirname(pcs[0])
        cls.libdir = os.path.dirname(cls.pcdir)
        # Only the scratch copy: pkg-config must not find a kd3.pc elsewhere.
        cls.env = {**os.environ, "PKG_CONFIG_PATH": cls.pcdir}
        cls.build = os.path.join(cls.tmp, "examples")
        shutil.copytree(os.path.join(SRC, "examples"), cls.build)
        cflags = f"-O1 -g -Wall -Wextra -Werror {EXTRA_CFLAGS}"
        ldflags = f"-Wl,-rpath,{cls.libdir} {EXTRA_CFLAGS}"
        r = run(["make", "-C", cls.build, f"CFLAGS={cflags}", f"LDFLAGS={ldflags}"], env=cls.env)
        assert r.returncode == 0, r.stdout + r.stderr
        cls.realm = k.Realm(("alice", "echo", "bob"))
        cls.kdc = cls.realm.start_kdc()

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def pkg(self, *args):
        r = run(["pkg-config", *args, "kd3"], env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.split()

    def test_pkg_config(self):
        includes = [os.path.normpath(f[2:]) for f in self.pkg("--cflags") if f.startswith("-I")]
        self.assertIn(os.path.join(self.prefix, "include"), includes)
        libs = self.pkg("--libs")
        self.assertIn("-lkd3", libs)
        self.assertTrue(os.path.exists(os.path.join(self.prefix, "include", "kd3", "kd3.h")))
        self.assertTrue(os.path.exists(os.path.join(self.libdir, "libkd3.a")))
        self.assertTrue(os.path.exists(os.path.join(self.libdir, "libkd3.so.0")))

    def test_api_against_installed_copy(self):
        out = os.path.join(self.tmp, "test_api")
        cflags = self.pkg("--cflags") + run(["pkg-config", "--cflags", "cmocka"]).stdout.split()
        libs = self.pkg("--libs") + run(["pkg-config", "--libs", "cmocka"]).stdout.split()
        r = run(["cc", "-std=c11", "-D_DEFAULT_SOURCE", "-Wall", "-Wextra", "-Werror",
                 *EXTRA_CFLAGS.split(), *cflags, os.path.join(HERE, "test_api.c"),
                 f"-Wl,-rpath,{self.libdir}", *libs, "-pthread", "-o", out], env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run(["ldd", out])
        self.assertIn(os.path.join(self.libdir, "libkd3.so.0"), r.stdout)
        r = run([out, os.path.join(SRC, "docs", "PROTOCOL.md")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_abi(self):
        lib = os.path.join(self.libdir, "libkd3.so.0")
        r = run(["readelf", "-d", lib])
        self.assertIn("Library soname: [libkd3.so.0]", r.stdout)
        r = run(["nm", "-D", "--defined-only", lib])
        exported = set()
        for line in r.stdout.splitlines():
            name = line.split()[-1]
            if name == "KD3_0":  # the version node itself
                continue
            self.assertTrue(name.endswith("@@KD3_0"), f"{name}: no KD3_0 symbol version")
            exported.add(name.split("@")[0])
        declared = set()
        for h in glob.glob(os.path.join(SRC, "include", "kd3", "*.h")):
            with open(h) as f:
                text = f.read()
            declared |= set(re.findall(r"KD3_API\b[^;]*?\b(kd3_\w+)\s*\(", text))
        with open(os.path.join(HERE, "abi.txt")) as f:
            listed = {l.strip() for l in f if l.strip() and not l.startswith("#")}
        self.assertEqual(exported, declared, "exported symbols differ from the KD3_API declarations")
        self.assertEqual(exported, listed,
                         "exported symbols differ from tests/lib/abi.txt: added "
                         f"{sorted(exported - listed)}, removed {sorted(listed - exported)}")

    def example(self, name):
        return os.path.join(self.build, name)

    def test_client_to_real_responder(self):
        resp = self.realm.start_responder("--exec", "cat", name="echo")
        lines = ["hello echo", "x" * 16384, "", "last line"]
        r = run([self.example("echo_client"), self.realm.keyfile("alice"), "echo",
                 f"127.0.0.1:{resp.port}"], input="".join(l + "\n" for l in lines))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "".join(l + "\n" for l in lines))
        self.assertIn("session with echo", r.stderr)
        resp.stop()

    def start_server(self, kdcs, sessions):
        p = k.Proc([self.example("echo_server"), self.realm.keyfile("echo"), "127.0.0.1:0",
                    kdcs, str(sessions)])
        self.realm.procs.append(p)
        m = p.wait_for(r"listening on port (\d+)", stream="out")
        p.port = int(m.group(1))
        return p

    def test_real_initiator_to_server(self):
        srv = self.start_server(f"127.0.0.1:{self.kdc.port}", 2)
        for fs in ("yes", "no"):
            r = self.realm.run_initiator(srv.port, ["one", "two"], "--forward-secret=" + fs,
                                         peer="echo")
            self.assertEqual(r.rc, 0, r)
            self.assertEqual(r.stdout, "one\ntwo\n")
        srv.stop()

    def test_client_to_server_with_kdc_failover(self):
        dead = k.free_port()
        srv = self.start_server(f"127.0.0.1:{dead},127.0.0.1:{self.kdc.port}", 1)
        r = run([self.example("echo_client"), self.realm.keyfile("bob"), "echo",
                 f"127.0.0.1:{srv.port}"], input="ping\npong\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "ping\npong\n")
        srv.stop()
        self.assertIn("session with bob", srv.text())

    def forging_kdc(self, relay):
        """A UdpMitm in front of the KDC that answers each M2 with a forged ERROR (the M2
        never reaches the KDC over UDP), and on the same port number a TCP relay to the
        KDC (relay) or a bound socket that refuses connections."""
        def hook(conn, direction, n, frame):
            if direction == "R->KDC" and frame[1] == M.T_M2:
                body = struct.pack(">H", 4) + bytes([6]) + b"forged"  # BAD_AUTH
                conn.back(bytes([1, M.T_ERROR]) + struct.pack(">H", len(body)) + body)
                return []
            return [frame]

        for _ in range(20):
            udp = M.UdpMitm(self.kdc.port, hook=hook)
            try:
                if relay:
                    tcp = M.TcpRelay(udp.port, self.kdc.port)
                else:
                    tcp = socket.socket()
                    tcp.bind(("127.0.0.1", udp.port))
            except OSError:
                udp.close()
                continue
            self.addCleanup(tcp.close)
            self.addCleanup(udp.close)
            return udp, tcp
        raise AssertionError("no port free for both UDP and TCP")

    def test_forged_udp_error_is_asked_again_over_tcp(self):
        udp, tcp = self.forging_kdc(relay=True)
        srv = self.start_server(f"127.0.0.1:{udp.port}", 1)
        r = run([self.example("echo_client"), self.realm.keyfile("alice"), "echo",
                 f"127.0.0.1:{srv.port}"], input="through the forged error\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "through the forged error\n")
        self.assertEqual(tcp.accepted, 1)
        srv.stop()

    def test_forged_udp_error_taken_when_tcp_is_down(self):
        udp, _ = self.forging_kdc(relay=False)
        srv = self.start_server(f"127.0.0.1:{udp.port}", 1)
        r = run([self.example("echo_client"), self.realm.keyfile("alice"), "echo",
                 f"127.0.0.1:{srv.port}"], input="x\n")
        self.assertNotEqual(r.returncode, 0)
        srv.wait_for(r"the KDC refused: forged")
        srv.stop()

    def test_bad_input(self):
        port = k.free_port()
        r = run([self.example("echo_client"), self.realm.keyfile("alice"), "echo",
                 f"127.0.0.1:{port}"], input="")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^echo_client: cannot connect to 127\.0\.0\.1:\d+: "
                                   r"Connection refused\n$")
        r = run([self.example("echo_client"), self.realm.keyfile("alice"), "echo",
                 "localhost:99999"], input="")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        r = run([self.example("echo_client"), "/nonexistent.key", "echo", "127.0.0.1:1"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent.key", r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
