#!/usr/bin/env python3
"""kd3 benchmarks, side by side with their references in the same run.

Starts throwaway realms of the real executables on 127.0.0.1 (and, with --with-krb5,
an MIT Kerberos realm), drives them with the C load generators of tests/bench (kdcload,
krb5load, sessload, msgload), repeats each measurement, and writes medians and ratios
to a Markdown file (tests/bench/RESULTS.md). tests/bench/run.sh is the one command;
--smoke runs every generator for about a second each (the ctest bench_smoke).

Every load is bounded in count and time, every wait has a timeout, and every process
started here is stopped here (by its own pid)."""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
REALM = "BENCH.TEST"
SIZES = (64, 1024, 16384)


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (the KDCs serve both on one)."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise BenchError("no free port on 127.0.0.1")


def run_json(cmd, timeout=120, env=None, input_text=None):
    """Runs a load generator; its one JSON line, or BenchError with its stderr."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           input=input_text)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{os.path.basename(cmd[0])} did not finish within {timeout} s")
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        raise BenchError(f"{' '.join(cmd[:3])}... exited {p.returncode}: "
                         f"{p.stderr.strip()[-400:]}")
    return json.loads(lines[-1])


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


class Proc:
    """A server started here: stderr to a file, ready once a line matches."""

    def __init__(self, name, cmd, workdir, ready_re, env=None, stdout=None, preexec=None,
                 timeout=30.0, ready_file=None):
        self.name = name
        self.err_path = os.path.join(workdir, f"{name}.stderr")
        self.ready_file = ready_file or self.err_path
        self.err = open(self.err_path, "w")
        self.started = time.monotonic()
        self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                  stdout=stdout if stdout is not None else subprocess.DEVNULL,
                                  stderr=self.err, env=env, preexec_fn=preexec)
        self.pid = self.p.pid
        self.ready_s = self._wait_ready(ready_re, timeout)

    def _wait_ready(self, ready_re, timeout):
        pat = re.compile(ready_re)
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.ready_file):
                with open(self.ready_file) as f:
                    if pat.search(f.read()):
                        return time.monotonic() - self.started
            if self.p.poll() is not None:
                raise BenchError(f"{self.name} exited {self.p.returncode}: {self.tail()}")
            time.sleep(0.002)
        self.stop()
        raise BenchError(f"{self.name} not ready within {timeout} s: {self.tail()}")

    def tail(self):
        with open(self.err_path) as f:
            return " | ".join(f.read().strip().splitlines()[-3:])

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        self.err.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


class Tools:
    def __init__(self, build):
        self.build = os.path.abspath(build)
        b = os.path.join(self.build, "tests", "bench")
        self.kdc = os.path.join(self.build, "kdc", "kdc")
        self.responder = os.path.join(self.build, "responder", "responder")
        self.initiator = os.path.join(self.build, "initiator", "initiator")
        self.kdcload = os.path.join(b, "kdcload")
        self.kdcfloor = os.path.join(b, "kdcfloor")
        self.krb5load = os.path.join(b, "krb5load")
        self.sessload = os.path.join(b, "sessload")
        self.msgload = os.path.join(b, "msgload")
        for path in (self.kdc, self.responder, self.initiator, self.kdcload, self.kdcfloor,
                     self.sessload, self.msgload):
            if not os.access(path, os.X_OK):
                raise BenchError(f"{path} is missing: build first (tests/bench/run.sh does)")


class Kd3Realm:
    """A kd3 database made with the kdc CLI: principal svc (the responder) and
    initiators p1..pN, their key files under keys/ and listed in keys.list."""

    def __init__(self, tools, workdir, n):
        self.t = tools
        self.dir = workdir
        self.db = os.path.join(workdir, "kd3.db")
        os.makedirs(os.path.join(workdir, "keys"), mode=0o700, exist_ok=True)
        subprocess.run([tools.kdc, "init", "--db", self.db], check=True,
                       capture_output=True, timeout=30)
        self.keyfiles = []
        for name in ["svc"] + [f"p{i}" for i in range(1, n + 1)]:
            path = os.path.join(workdir, "keys", f"{name}.key")
            subprocess.run([tools.kdc, "add", name, "--db", self.db, "--keyfile", path],
                           check=True, capture_output=True, timeout=30)
            if name != "svc":
                self.keyfiles.append(path)
        self.svc_key = os.path.join(workdir, "keys", "svc.key")
        self.keys_list = os.path.join(workdir, "keys.list")
        with open(self.keys_list, "w") as f:
            f.write("\n".join(self.keyfiles) + "\n")

    def serve(self, name, log_requests=True, workers=None, extra=()):
        port = free_port()
        cmd = [self.t.kdc, "serve", "--db", self.db, "--listen", f"127.0.0.1:{port}",
               f"--log-requests={'yes' if log_requests else 'no'}", *extra]
        if workers:
            cmd += ["--workers", str(workers)]
        p = Proc(name, cmd, self.dir, r"serving on")
        p.port = port
        return p


def cached_scale_realm(tools, n):
    """A realm of n principals made once by make_scale_realm and kept under the build
    folder for later runs; returns (its folder, seconds the import took when made)."""
    wd = os.path.join(tools.build, "tests", "bench", "realm-cache", f"imported-{n}")
    marker = os.path.join(wd, "complete")
    if not os.path.exists(marker):
        shutil.rmtree(wd, ignore_errors=True)
        os.makedirs(wd, mode=0o700)
        log(f"  creating {n:,} principals with 'kdc import' (cached in {wd})")
        _, _, made_s = make_scale_realm(tools, wd, n, 64)
        with open(marker, "w") as f:
            f.write(f"{made_s:.1f}\n")
        return wd, made_s
    with open(marker) as f:
        return wd, float(f.read().strip() or 0)


def make_scale_realm(tools, workdir, n, keep):
    """n principals s1..sN with random keys through one 'kdc import', keeping the key
    files of the first keep; returns (db, keys_list, seconds the import took)."""
    db = os.path.join(workdir, "kd3.db")
    keys_dir = os.path.join(workdir, "keys")
    os.makedirs(keys_dir, mode=0o700, exist_ok=True)
    subprocess.run([tools.kdc, "init", "--db", db], check=True, capture_output=True,
                   timeout=30)
    batch = os.path.join(workdir, "import.keys")
    fd = os.open(batch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        for i in range(1, n + 1):
            text = f"principal = s{i}\nkey = 1:{os.urandom(32).hex()}\n"
            f.write(text)
            if i <= keep:
                kfd = os.open(os.path.join(keys_dir, f"s{i}.key"),
                              os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(kfd, "w") as kf:
                    kf.write("# kd3 key file: keep secret (mode 0600)\n" + text)
    started = time.monotonic()
    r = subprocess.run([tools.kdc, "import", batch, "--db", db], capture_output=True,
                       text=True, timeout=1800)
    took = time.monotonic() - started
    os.unlink(batch)
    if r.returncode != 0:
        raise BenchError(f"kdc import failed: {r.stderr.strip()}")
    keys_list = os.path.join(workdir, "keys.list")
    with open(keys_list, "w") as f:
        for i in range(1, keep + 1):
            f.write(os.path.join(keys_dir, f"s{i}.key") + "\n")
    return db, keys_list, took


class MitRealm:
    """A throwaway MIT Kerberos realm on 127.0.0.1: kdb5_util create -s, principals
    user1..userN and svc with random keys, keytabs, krb5kdc -n logging to a file."""

    def __init__(self, workdir, n_clients):
        self.dir = workdir
        self.port = free_port()
        self.n = n_clients
        self.keytabs = os.path.join(workdir, "keytabs")
        os.makedirs(self.keytabs, mode=0o700, exist_ok=True)
        self.log_path = os.path.join(workdir, "krb5kdc.log")
        self.kdc_conf = os.path.join(workdir, "kdc.conf")
        with open(self.kdc_conf, "w") as f:
            f.write(f"""[kdcdefaults]
    kdc_listen = 127.0.0.1:{self.port}
    kdc_tcp_listen = 127.0.0.1:{self.port}
[realms]
    {REALM} = {{
        database_name = {workdir}/principal
        key_stash_file = {workdir}/stash
        acl_file = {workdir}/kadm5.acl
        max_life = 10h
    }}
[logging]
    kdc = FILE:{self.log_path}
    admin_server = FILE:{workdir}/kadmin.log
    default = FILE:{workdir}/krb5lib.log
""")
        self.conf = {}
        for proto, limit in (("udp", 1465), ("tcp", 1)):
            path = os.path.join(workdir, f"krb5-{proto}.conf")
            with open(path, "w") as f:
                f.write(f"""[libdefaults]
    default_realm = {REALM}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = {limit}
[realms]
    {REALM} = {{
        kdc = 127.0.0.1:{self.port}
    }}
""")
            self.conf[proto] = path
        self.env = dict(os.environ, KRB5_CONFIG=self.conf["udp"], KRB5_KDC_PROFILE=self.kdc_conf,
                        KRB5CCNAME="MEMORY:bench", KRB5_TRACE="/dev/null")
        password = os.urandom(24).hex()
        subprocess.run(["kdb5_util", "create", "-s", "-r", REALM, "-P", password],
                       env=self.env, check=True, capture_output=True, timeout=60)
        script = ["addprinc -randkey svc"]
        for i in range(1, n_clients + 1):
            script.append(f"addprinc -randkey user{i}")
            script.append(f"ktadd -k {self.keytabs}/user{i}.keytab -norandkey user{i}")
        p = subprocess.run(["kadmin.local", "-r", REALM], input="\n".join(script) + "\nquit\n",
                           env=self.env, capture_output=True, text=True, timeout=300)
        if p.returncode != 0 or not os.path.exists(f"{self.keytabs}/user{n_clients}.keytab"):
            raise BenchError(f"kadmin.local failed: {p.stderr.strip()[-300:]}")
        # krb5kdc -n stays in the foreground and says it is ready in its log file.
        self.kdc = Proc("krb5kdc", ["krb5kdc", "-n", "-r", REALM, "-P",
                                    os.path.join(workdir, "krb5kdc.pid")],
                        workdir, r"commencing operation", env=self.env,
                        ready_file=self.log_path)

    def requests_logged(self):
        with open(self.log_path) as f:
            text = f.read()
        return text.count("AS_REQ") + text.count("TGS_REQ")

    def env_for(self, proto):
        return dict(self.env, KRB5_CONFIG=self.conf[proto])


# --------------------------------------------------------------------------------------
# Measurements. Each returns a dict of lists (one entry per round) for the report.


class Bench:
    def __init__(self, args):
        self.args = args
        self.t = Tools(args.build)
        self.quick = args.quick or args.smoke
        self.rounds = 1 if args.smoke else (args.rounds or (3 if args.quick else 5))
        self.secs = 0.3 if args.smoke else (1.5 if args.quick else 3.0)
        self.results = {}
        self.notes = []
        self.tmp = tempfile.mkdtemp(prefix="kd3bench-")
        os.chmod(self.tmp, 0o700)
        self.procs = []

    def cleanup(self):
        for p in self.procs:
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def add(self, key, value):
        self.results.setdefault(key, []).append(value)

    def kdcload(self, kdc, keys, proto, outstanding, requests=None, verify=True):
        cmd = [self.t.kdcload, "--kdc", f"127.0.0.1:{kdc.port}", "--keys", keys,
               "--proto", proto, "--outstanding", str(outstanding),
               "--seconds", str(self.secs), "--kdc-pid", str(kdc.pid),
               "--requests", str(requests or (2000 if self.args.smoke else 400000)),
               "--warmup", "200" if self.args.smoke else "1000"]
        if not verify:
            cmd.append("--no-verify")
        return run_json(cmd)

    # 1 and 2: the KDC, and krb5kdc beside it.
    def kdc_section(self):
        log("KDC throughput and latency")
        n_init = 64
        realm = Kd3Realm(self.t, os.path.join(self.tmp, "kd3"), n_init)
        self.realm = realm
        kdc_log = realm.serve("kdc-log", log_requests=True)
        kdc_nolog = realm.serve("kdc-nolog", log_requests=False)
        self.procs += [kdc_log, kdc_nolog]
        self.kdc_nolog = kdc_nolog
        outs = (1, 16) if self.quick else (1, 4, 16, 64)
        kd3_cfgs = [("udp", o, True) for o in outs] + [("udp", o, False) for o in outs]
        kd3_cfgs += [("tcp", o, True) for o in (1, 16)] + [("tcp-new", o, True) for o in (1, 16)]
        if self.args.smoke:
            kd3_cfgs = [("udp", 1, True), ("udp", 4, False), ("tcp", 2, True),
                        ("tcp-new", 2, True)]
        mit = None
        mit_cfgs = []
        if self.args.with_krb5:
            log("MIT Kerberos realm on 127.0.0.1")
            mit = MitRealm(os.path.join(self.tmp, "mit"), max(outs))
            self.procs.append(mit.kdc)
            mit_cfgs = [(kind, "udp", o) for kind in ("as", "tgs") for o in outs]
            mit_cfgs += [("tgs", "tcp", o) for o in (1, 16)]
            if self.args.smoke:
                mit_cfgs = [("as", "udp", 1), ("tgs", "udp", 2)]
        for r in range(self.rounds):
            log(f"  round {r + 1} of {self.rounds}")
            for proto, o, logged in kd3_cfgs:
                kdc = kdc_log if logged else kdc_nolog
                res = self.kdcload(kdc, realm.keys_list, proto, o)
                self.add(("kd3", proto, o, logged), res)
            for kind, proto, o in mit_cfgs:
                before = mit.requests_logged()
                cmd = [self.t.krb5load, "--realm", REALM, "--keytabs", mit.keytabs,
                       "--kind", kind, "--outstanding", str(o), "--seconds", str(self.secs),
                       "--kdc-pid", str(mit.kdc.pid),
                       "--requests", "2000" if self.args.smoke else "200000"]
                res = run_json(cmd, env=mit.env_for(proto))
                res["kdc_logged"] = mit.requests_logged() - before
                self.add(("mit", kind, proto, o), res)
        for p in (kdc_log, kdc_nolog):
            if not p.alive():
                raise BenchError(f"{p.name} died during the run: {p.tail()}")
        self.kdc_outs = outs
        self.floor_section(realm, outs)

    def floor_section(self, realm, outs):
        """kdcfloor: the KDC's sockets and loop with no work (no lookup, no crypto, no
        log), driven by the same kdcload: the kernel's share of a request, beside kd3's."""
        log("the floor: kdcfloor, the same sockets and loop doing no work")
        port = free_port()
        floor = Proc("kdcfloor", [self.t.kdcfloor, "--listen", f"127.0.0.1:{port}"],
                     realm.dir, r"serving on")
        floor.port = port
        self.procs.append(floor)
        cfgs = [("udp", o) for o in outs] + [("tcp-new", o) for o in (1, 16)]
        if self.args.smoke:
            cfgs = [("udp", 1), ("tcp-new", 2)]
        for r in range(self.rounds):
            for proto, o in cfgs:
                self.add(("floor", proto, o), self.kdcload(floor, realm.keys_list, proto, o,
                                                           verify=False))
        if not floor.alive():
            raise BenchError(f"kdcfloor died during the run: {floor.tail()}")

    # 3: sessions.
    def session_section(self):
        log("full sessions")
        realm = self.realm
        kdc = self.kdc_nolog
        kdc_logged = realm.serve("kdc-sessions", log_requests=True)
        self.procs.append(kdc_logged)
        port = free_port()
        resp = Proc("responder", [self.t.responder, "--keyfile", realm.svc_key, "--listen",
                                  f"127.0.0.1:{port}", "--kdc", f"127.0.0.1:{kdc_logged.port}"],
                    realm.dir, r"responder: listening", preexec=_raise_nofile)
        self.procs.append(resp)
        resp.port = port
        self.resp = resp
        n = 50 if self.args.smoke else 20000
        threads = (1, 4) if not self.args.smoke else (1, 2)
        spawns = 5 if self.args.smoke else (30 if self.quick else 100)
        for r in range(self.rounds):
            log(f"  round {r + 1} of {self.rounds}")
            self.add(("rtt",), run_json([self.t.sessload, "--mode", "rtt", "--rounds",
                                         "500" if self.args.smoke else "5000"]))
            for th in threads:
                # Plain and forward-secret mode back to back, the first of the two
                # alternating by round, so that a drift of the machine hits both.
                for fs in (False, True) if r % 2 == 0 else (True, False):
                    res = run_json([self.t.sessload, "--mode", "handshake", "--connect",
                                    f"127.0.0.1:{port}", "--keys", realm.keys_list, "--peer",
                                    "svc", "--threads", str(th), "--sessions", str(n),
                                    "--seconds", str(self.secs)]
                                   + (["--forward-secret"] if fs else []))
                    self.add(("hs-fs" if fs else "hs", th), res)
            self.add(("x25519",), run_json([self.t.sessload, "--mode", "x25519", "--rounds",
                                            "200" if self.args.smoke else "2000"]))
            self.add(("spawn",), self.spawn_initiators(realm, port, spawns))
        del kdc

    def spawn_initiators(self, realm, port, count):
        """The real initiator binary, one process per session (stdin at EOF: handshake,
        CLOSE both ways), next to spawning /bin/true: process start is most of it."""
        walls, trues = [], []
        for _ in range(count):
            t0 = time.monotonic()
            p = subprocess.run([self.t.initiator, "--batch", "--connect", f"127.0.0.1:{port}",
                                "--keyfile", realm.keyfiles[0], "--peer", "svc"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            walls.append(time.monotonic() - t0)
            if p.returncode != 0:
                raise BenchError(f"initiator exited {p.returncode}: {p.stderr.decode()[-300:]}")
            t0 = time.monotonic()
            subprocess.run(["/bin/true"], timeout=30)
            trues.append(time.monotonic() - t0)
        return {"initiator_p50_us": statistics.median(walls) * 1e6,
                "true_p50_us": statistics.median(trues) * 1e6}

    # 4: messaging.
    def messaging_section(self):
        log("messaging throughput")
        realm = self.realm
        port = free_port()
        echo = Proc("responder-cat", [self.t.responder, "--keyfile", realm.svc_key, "--listen",
                                      f"127.0.0.1:{port}", "--kdc",
                                      f"127.0.0.1:{self.kdc_nolog.port}", "--exec", "cat"],
                    realm.dir, r"responder: listening")
        echo.port = port
        self.procs.append(echo)
        secs = str(0.2 if self.args.smoke else (0.6 if self.quick else 1.5))
        sizes = (1024,) if self.args.smoke else SIZES
        for r in range(self.rounds):
            log(f"  round {r + 1} of {self.rounds}")
            for size in sizes:
                base = [self.t.msgload, "--size", str(size), "--seconds", secs]
                self.add(("aead", size), run_json(base + ["--mode", "aead"]))
                self.add(("aead-gcm", size), run_json(base + ["--mode", "aead", "--suite",
                                                               "aes-256-gcm"]))
                self.add(("tcp-oneway", size), run_json(base + ["--mode", "tcp-oneway"]))
                self.add(("tcp-echo", size), run_json(base + ["--mode", "tcp-echo"]))
                sess = ["--keyfile", realm.keyfiles[0], "--peer", "svc"]
                self.add(("session-oneway", size),
                         run_json(base + ["--mode", "session-oneway", "--connect",
                                          f"127.0.0.1:{self.resp.port}"] + sess))
                self.add(("session-echo", size),
                         run_json(base + ["--mode", "session-echo", "--connect",
                                          f"127.0.0.1:{port}"] + sess))

    # 5: memory and scale.
    def scale_section(self):
        log("memory and scale")
        counts = [] if self.args.smoke else ([10000, 1000000] if self.quick
                                             else [10000, 100000, 1000000])
        for n in counts:
            wd, made_s = cached_scale_realm(self.t, n)
            db = os.path.join(wd, "kd3.db")
            keys = os.path.join(wd, "keys.list")
            starts, rss_start, rss_load, rps = [], [], [], []
            for _ in range(self.rounds):
                port = free_port()
                p = Proc(f"kdc-{n}", [self.t.kdc, "serve", "--db", db, "--listen",
                                      f"127.0.0.1:{port}", "--log-requests=no"],
                         self.tmp, r"serving on", timeout=120)
                p.port = port
                self.procs.append(p)
                try:
                    starts.append(p.ready_s)
                    rss_start.append(rss_kib(p.pid))
                    res = self.kdcload(p, keys, "udp", 16)
                    rps.append(res)
                    rss_load.append(rss_kib(p.pid))
                finally:
                    p.stop()
            self.results[("scale", n)] = {"start_s": starts, "rss_start": rss_start,
                                          "rss_load": rss_load, "load": rps, "made_s": made_s}
        # Small realm for comparison, same shape.
        small = self.realm
        starts, rss = [], []
        for _ in range(self.rounds):
            p = small.serve("kdc-small", log_requests=False)
            starts.append(p.ready_s)
            rss.append(rss_kib(p.pid))
            p.stop()
        self.results[("scale", len(small.keyfiles) + 1)] = {"start_s": starts,
                                                            "rss_start": rss}

    # Responder memory per idle session (its own section: it needs no scale realm).
    def idle_section(self):
        log("responder memory per idle session")
        small = self.realm
        n_idle = 20 if self.args.smoke else 1000
        for _ in range(self.rounds):
            before = rss_kib(self.resp.pid)
            idle = subprocess.Popen([self.t.sessload, "--mode", "idle", "--connect",
                                     f"127.0.0.1:{self.resp.port}", "--keys",
                                     small.keys_list, "--peer", "svc", "--sessions",
                                     str(n_idle), "--hold", "120"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, preexec_fn=_raise_nofile)
            try:
                line = idle.stdout.readline()
                opened = json.loads(line)["opened"] if line.startswith("{") else 0
                time.sleep(0.5)  # the responder has taken every FINISHED by then
                during = rss_kib(self.resp.pid)
            finally:
                idle.stdin.close()
                idle.wait(timeout=30)
            if opened != n_idle:
                raise BenchError(f"idle sessions: opened {opened} of {n_idle}: "
                                 f"{idle.stderr.read()[-300:]}")
            time.sleep(0.3)
            self.add(("idle",), {"sessions": opened, "rss_before": before,
                                 "rss_during": during,
                                 "per_session_kib": (during - before) / opened})

    # The metrics' cost: the same load to a KDC with --metrics (scraped every second,
    # far more often than Prometheus's 15 s default) and to one without, in turns.
    def metrics_section(self):
        log("KDC with and without --metrics")
        realm = self.realm
        mport = free_port()
        with_m = realm.serve("kdc-metrics", log_requests=False,
                             extra=("--metrics", f"127.0.0.1:{mport}"))
        without = realm.serve("kdc-nometrics", log_requests=False)
        self.procs += [with_m, without]
        stop = threading.Event()
        scrapes = []

        def scraper():
            while not stop.is_set():
                t = time.monotonic()
                with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics",
                                            timeout=5) as r:
                    body = r.read()
                scrapes.append((time.monotonic() - t, len(body)))
                stop.wait(1.0)

        th = threading.Thread(target=scraper, daemon=True)
        th.start()
        outs = (1, 16) if not self.args.smoke else (1,)
        try:
            for r in range(self.rounds):
                for o in outs:  # the order flips each round: neither always goes first
                    pair = [(without, False), (with_m, True)]
                    for kdc, on in (pair if r % 2 == 0 else pair[::-1]):
                        self.add(("metrics", o, on),
                                 self.kdcload(kdc, realm.keys_list, "udp", o))
        finally:
            stop.set()
            th.join(timeout=10)
        if not scrapes:
            raise BenchError("the metrics endpoint was never scraped")
        self.metrics_outs = outs
        self.results[("metrics", "scrapes")] = scrapes

    # Profile: callgrind on the KDC for a fixed number of requests.
    def profile_section(self):
        if not shutil.which("valgrind"):
            self.notes.append("valgrind is not installed: no profile")
            return
        log("callgrind profile of the KDC (5,000 UDP requests, 1 worker)")
        out = os.path.join(self.tmp, "callgrind.out")
        port = free_port()
        p = Proc("kdc-callgrind", ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                   self.t.kdc, "serve", "--db", self.realm.db, "--listen",
                                   f"127.0.0.1:{port}", "--log-requests=no", "--workers",
                                   "1"], self.tmp, r"serving on", timeout=120)
        p.port = port
        self.procs.append(p)
        try:
            cmd = [self.t.kdcload, "--kdc", f"127.0.0.1:{port}", "--keys", self.realm.keys_list,
                   "--proto", "udp", "--outstanding", "4", "--requests", "5000", "--warmup",
                   "0", "--seconds", "120"]
            run_json(cmd, timeout=300)
        finally:
            p.stop()
        ann = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True,
                             timeout=120)
        self.profile = parse_callgrind(ann.stdout)
        ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", out],
                             capture_output=True, text=True, timeout=120)
        incl = parse_callgrind(ann.stdout, limit=200)
        seen, mine = set(), []
        for row in incl["top"]:
            if row[2].startswith(("kd3_", "kdc_")) and " " not in row[2] and row[2] not in seen:
                seen.add(row[2])
                mine.append(row)
        self.profile["inclusive"] = mine[:12]
        self.perf_profile()

    def perf_profile(self):
        """perf (when the kernel lets us): samples by binary (kd3's code, Mbed TLS, libc,
        the kernel) and the top symbols, of the KDC under UDP load and of the responder
        during handshakes."""
        if not shutil.which("perf"):
            self.notes.append("perf is not installed: no kernel/user split")
            return
        self.perf = {}
        log("perf profile of the KDC under UDP load (16 outstanding, no log)")
        self.perf["kdc"] = self.perf_record(
            self.kdc_nolog, lambda: self.kdcload(self.kdc_nolog, self.realm.keys_list, "udp",
                                                 16))
        if getattr(self, "resp", None):
            log("perf profile of the responder during handshakes (1 initiator)")
            self.perf["responder"] = self.perf_record(
                self.resp, lambda: run_json([self.t.sessload, "--mode", "handshake",
                                             "--connect", f"127.0.0.1:{self.resp.port}",
                                             "--keys", self.realm.keys_list, "--peer", "svc",
                                             "--sessions", "100000", "--seconds",
                                             str(self.secs)]))

    def perf_record(self, proc, load):
        data = os.path.join(self.tmp, f"perf-{proc.name}.data")
        rec = subprocess.Popen(["perf", "record", "-F", "999", "-o", data, "-p", str(proc.pid),
                                "--", "sleep", str(self.secs + 1.5)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        try:
            load()
        finally:
            _, err = rec.communicate(timeout=60)
        if rec.returncode != 0 or not os.path.exists(data):
            self.notes.append(f"perf record of {proc.name} failed: {err.strip()[-200:]}")
            return None

        def report_rows(sort):
            r = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort,
                                "--stdio"], capture_output=True, text=True, timeout=120)
            rows = []
            for line in r.stdout.splitlines():
                m = re.match(r"\s*([\d.]+)%\s+(.*\S)", line)
                if m and not line.lstrip().startswith("#"):
                    rows.append((float(m.group(1)), m.group(2)))
            return rows
        return {"dso": report_rows("dso")[:6], "sym": report_rows("dso,sym")[:15]}

    def startup_profile(self):
        """callgrind on 'kdc serve' with the largest scale database up to 100k (callgrind
        runs ~50x slower), until it serves."""
        scales = [k[1] for k in self.results if k[0] == "scale" and 10000 <= k[1] <= 100000]
        if not scales or not shutil.which("valgrind"):
            return
        n = max(scales)
        log(f"callgrind profile of the KDC's start with {n:,} principals")
        db = os.path.join(self.t.build, "tests", "bench", "realm-cache", f"imported-{n}",
                          "kd3.db")
        out = os.path.join(self.tmp, "callgrind-start.out")
        port = free_port()
        p = Proc("kdc-start-callgrind", ["valgrind", "--tool=callgrind",
                                         f"--callgrind-out-file={out}", self.t.kdc, "serve",
                                         "--db", db, "--listen", f"127.0.0.1:{port}",
                                         "--log-requests=no", "--workers", "1"],
                 self.tmp, r"serving on", timeout=600)
        self.procs.append(p)
        p.stop()
        incl = parse_callgrind(subprocess.run(["callgrind_annotate", "--inclusive=yes", out],
                                              capture_output=True, text=True,
                                              timeout=120).stdout, limit=400)
        self_cost = parse_callgrind(subprocess.run(["callgrind_annotate", out],
                                                   capture_output=True, text=True,
                                                   timeout=120).stdout, limit=10)
        seen, mine = set(), []
        for row in incl["top"]:
            name = row[2]
            if " " in name or name in seen:
                continue
            if name.startswith(("kd3_", "kdc_", "sqlite3_step", "table_", "seal_", "db_")):
                seen.add(name)
                mine.append(row)
        self.start_profile = {"n": n, "total": incl["total"], "inclusive": mine[:14],
                              "self": self_cost["top"]}


def _raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_callgrind(text, limit=15):
    """Total Ir and the top functions by cost from callgrind_annotate's output."""
    total = None
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(\S.*?)\s*(\[.*\])?$", line)
        if m and total:
            fn = m.group(3)
            fn = re.sub(r"^.*?:", "", fn) if ":" in fn else fn
            rows.append((int(m.group(1).replace(",", "")), float(m.group(2)), fn))
    return {"total": total, "top": rows[:limit]}


# --------------------------------------------------------------------------------------
# The report.


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def med_field(runs, field):
    return median([r.get(field) for r in runs]) if runs else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def machine_info(args, tools):
    def cmd_out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    rev = cmd_out(["git", "-C", SRC, "rev-parse", "--short", "HEAD"])
    # A results file an earlier run wrote is not a change to what is measured.
    dirty = cmd_out(["git", "-C", SRC, "status", "--porcelain", "--untracked-files=no", "--",
                     ".", ":(exclude)tests/bench/RESULTS*.md"])
    kd3v = cmd_out([tools.kdc, "--version"])
    mbed = cmd_out(["dpkg-query", "-W", "-f", "${Version}", "libmbedtls-dev"])
    krb5 = cmd_out(["dpkg-query", "-W", "-f", "${Version}", "krb5-kdc"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "kd3": f"{kd3v} (git {rev}{', with uncommitted changes' if dirty else ''})",
        "mbedtls": mbed or "?",
        "krb5": krb5 if args.with_krb5 else (krb5 + " (not run)" if krb5 else "not installed"),
        "load": open("/proc/loadavg").read().split()[0],
    }


def made_in(d, n):
    if not d.get("made_s"):
        return ""
    return f"{fmt(d['made_s'], 1)} s (one kdc import)"


def forward_secret_table(R, w):
    """Section 2's forward-secret mode beside plain mode, measured in the same rounds."""
    keys = sorted(k for k in R if k[0] == "hs-fs")
    if not keys:
        return
    w("Forward-secret mode (X25519: the initiator's key pair before M1, the responder's "
      "before M2 and its shared secret before M4, the initiator's shared secret after M4) "
      "beside plain mode, same run, same responder and KDC, the two modes back to back "
      "with the first alternating by round:\n")
    w("| initiators at once | sessions/s plain | sessions/s forward-secret | "
      "forward-secret / plain | open p50 us plain | open p50 us forward-secret | "
      "verified p50 us plain | verified p50 us forward-secret | verified p99 us plain | "
      "verified p99 us forward-secret |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in keys:
        plain, fs = R.get(("hs", key[1]), []), R[key]
        sp, sf = med_field(plain, "sessions_per_s"), med_field(fs, "sessions_per_s")
        w(f"| {key[1]} | {fmt(sp)} | {fmt(sf)} | {fmt(ratio(sf, sp), 2)}x | "
          f"{fmt(med_field(plain, 'open_p50_us'))} | {fmt(med_field(fs, 'open_p50_us'))} | "
          f"{fmt(med_field(plain, 'verified_p50_us'))} | "
          f"{fmt(med_field(fs, 'verified_p50_us'))} | "
          f"{fmt(med_field(plain, 'verified_p99_us'))} | "
          f"{fmt(med_field(fs, 'verified_p99_us'))} |")
    x = R.get(("x25519",))
    if x:
        w("")
        w(f"X25519 alone, one side of a handshake (`sessload --mode x25519`: a private key "
          f"from the DRBG, its public key, one shared secret; Mbed TLS's ecp module, one "
          f"core): p50 {fmt(med_field(x, 'p50_us'))} us, p99 {fmt(med_field(x, 'p99_us'))} "
          f"us, mean {fmt(med_field(x, 'mean_us'))} us. Both sides do it, one after the "
          "other, on the handshake's critical path.")


def report(b, info):
    R = b.results
    q = "--quick" if b.args.quick else "full"
    out = []
    w = out.append
    w("# kd3 benchmark results\n")
    w("Written by `tests/bench/run.sh` (tests/bench/README.md says what each number is). "
      "Medians of repeated runs on a shared, noisy machine: compare the ratios, measured "
      "side by side in the same run, rather than the absolute figures.\n")
    w("| | |\n|---|---|")
    w(f"| date | {info['date']} |")
    w(f"| machine | {info['nproc']} cores, {info['cpu']}, Linux {info['kernel']}, "
      f"load average {info['load']} at the start |")
    w(f"| kd3 | {info['kd3']}, RelWithDebInfo |")
    w(f"| Mbed TLS | {info['mbedtls']} |")
    w(f"| MIT Kerberos | {info['krb5']} |")
    w(f"| run | {q}: {b.rounds} rounds, {b.secs} s per load run |")
    w("")

    targets = []

    # 1 + 2.
    w("## 1. KDC: requests per second, latency, CPU per request\n")
    w("Closed loop, N requests outstanding, 127.0.0.1. kd3: every request a fresh M2 "
      "(new n_i and n_r, so the lookaside cache never answers one; the cache is on, "
      "window 5 s), 64 initiators to pairs of principals, every reply checked (blob_r "
      "and blob_i open to the same SK); `kdc serve` with its default 2 workers. "
      "\"log\": one log line per request to a file (the default, like krb5kdc's "
      "file log); \"no log\": `--log-requests no`. kd3 \"tcp\" keeps one connection per "
      "slot; \"tcp-new\" connects for every request, as MIT's client does over TCP. "
      "CPU/request is the server process's utime+stime (/proc/PID/stat) over the "
      "requests answered.\n")
    w("| server | request | transport | outstanding | requests/s | p50 us | p99 us | "
      "p99.9 us | server CPU us/request | client CPU us/request |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for key in sorted((k for k in R if k[0] == "kd3"), key=lambda k: (k[1], not k[3], k[2])):
        runs = R[key]
        bad = sum(r.get("bad", 0) for r in runs)
        w(f"| kd3 | M2 ({'log' if key[3] else 'no log'}) | {key[1]} | {key[2]} | "
          f"{fmt(med_field(runs, 'rps'))} | {fmt(med_field(runs, 'p50_us'))} | "
          f"{fmt(med_field(runs, 'p99_us'))} | {fmt(med_field(runs, 'p999_us'))} | "
          f"{fmt(med_field(runs, 'server_cpu_us_per_req'), 1)} | "
          f"{fmt(med_field(runs, 'client_cpu_us_per_req'), 1)} |"
          + (f" {bad} WRONG |" if bad else ""))
    for key in sorted((k for k in R if k[0] == "mit"), key=lambda k: (k[1], k[2], k[3])):
        runs = R[key]
        w(f"| krb5kdc | {key[1].upper()} | {key[2]}{' (new conn.)' if key[2] == 'tcp' else ''}"
          f" | {key[3]} | {fmt(med_field(runs, 'rps'))} | {fmt(med_field(runs, 'p50_us'))} | "
          f"{fmt(med_field(runs, 'p99_us'))} | {fmt(med_field(runs, 'p999_us'))} | "
          f"{fmt(med_field(runs, 'server_cpu_us_per_req'), 1)} | "
          f"{fmt(med_field(runs, 'client_cpu_us_per_req'), 1)} |")
    w("")
    if any(k[0] == "mit" for k in R):
        w("Every krb5load call reached krb5kdc: its log counted "
          + ", ".join(f"{k[1].upper()}/{k[2]}/{k[3]}: {sum(r['kdc_logged'] for r in R[k]):,} "
                      f"requests for {sum(r['answered'] for r in R[k]):,} measured calls"
                      for k in sorted(k for k in R if k[0] == "mit"))
          + " (the difference is the warm-up).\n")
        w("### kd3 against krb5kdc, same run\n")
        w("| measure | kd3 | krb5kdc TGS | krb5kdc AS | kd3 advantage over TGS | target |")
        w("|---|---:|---:|---:|---:|---|")
        for o in b.kdc_outs:
            for logged in (True, False):
                kd = R.get(("kd3", "udp", o, logged))
                tgs = R.get(("mit", "tgs", "udp", o))
                as_ = R.get(("mit", "as", "udp", o))
                if not (kd and tgs):
                    continue
                lab = "log" if logged else "no log"
                kc = med_field(kd, "server_cpu_us_per_req")
                tc = med_field(tgs, "server_cpu_us_per_req")
                ac = med_field(as_, "server_cpu_us_per_req") if as_ else None
                rc = ratio(tc, kc)
                met = rc is not None and rc >= 20
                w(f"| CPU us/request, UDP, {o} outstanding, kd3 {lab} | {fmt(kc, 1)} | "
                  f"{fmt(tc, 1)} | {fmt(ac, 1)} | {fmt(rc, 1)}x | >= 20x: "
                  f"{'met' if met else 'missed'} |")
                if o == max(b.kdc_outs):
                    targets.append((f"KDC CPU per request >= 20x lower than krb5kdc TGS "
                                    f"(UDP, {o} outstanding, kd3 {lab})", met,
                                    f"{fmt(rc, 1)}x ({fmt(kc, 1)} vs {fmt(tc, 1)} us)"))
                kr = med_field(kd, "rps")
                tr = med_field(tgs, "rps")
                ar = med_field(as_, "rps") if as_ else None
                rr = ratio(kr, tr)
                met = rr is not None and rr >= 20
                w(f"| requests/s, UDP, {o} outstanding, kd3 {lab} | {fmt(kr)} | {fmt(tr)} | "
                  f"{fmt(ar)} | {fmt(rr, 1)}x | >= 20x: {'met' if met else 'missed'} |")
                if o == max(b.kdc_outs):
                    targets.append((f"KDC throughput on {info['nproc']} cores >= 20x krb5kdc "
                                    f"TGS (UDP, {o} outstanding, kd3 {lab})", met,
                                    f"{fmt(rr, 1)}x ({fmt(kr)} vs {fmt(tr)} requests/s)"))
        for o in (1, 16):
            kd = R.get(("kd3", "tcp-new", o, True))
            tgs = R.get(("mit", "tgs", "tcp", o))
            if kd and tgs:
                kc, tc = med_field(kd, "server_cpu_us_per_req"), med_field(tgs,
                                                                          "server_cpu_us_per_req")
                kr, tr = med_field(kd, "rps"), med_field(tgs, "rps")
                rc = ratio(tc, kc)
                met = rc is not None and rc >= 10
                w(f"| CPU us/request, TCP (new connection each), {o} outstanding, kd3 log | "
                  f"{fmt(kc, 1)} | {fmt(tc, 1)} | | {fmt(rc, 1)}x | >= 10x: "
                  f"{'met' if met else 'missed'} |")
                w(f"| requests/s, TCP (new connection each), {o} outstanding, kd3 log | "
                  f"{fmt(kr)} | {fmt(tr)} | | {fmt(ratio(kr, tr), 1)}x | |")
        w("")
        floor_table(w, b, R)
    else:
        w("MIT Kerberos was not measured in this run (`run.sh --with-krb5` adds it).\n")

    # 3.
    w("## 2. Full sessions: initiator + responder + KDC on loopback\n")
    rtt = R.get(("rtt",), [])
    tcp_rtt = med_field(rtt, "tcp_p50_us")
    udp_rtt = med_field(rtt, "udp_p50_us")
    w(f"Reference, same run: loopback round trip of 100 bytes, p50 {fmt(tcp_rtt, 1)} us over "
      f"TCP and {fmt(udp_rtt, 1)} us over UDP (p99 {fmt(med_field(rtt, 'tcp_p99_us'), 1)} / "
      f"{fmt(med_field(rtt, 'udp_p99_us'), 1)} us). The exchange needs about three: "
      "connect, M1 to M4 over TCP, and M2 to M3 over UDP in between.\n")
    w("The initiator is in the load generator (the library's peer state machine over a "
      "socket; one DRBG per thread, seeded once), the responder and the KDC are the real "
      "executables (`responder` without --exec, its stdout to /dev/null; `kdc serve` "
      "logging each request to a file). \"open\": connect until FINISHED is sent (the "
      "initiator holds a confirmed key). \"verified\": then CLOSE, until the responder's "
      "CLOSE comes back, which it sends only after it verified FINISHED.\n")
    w("| initiators at once | sessions/s | open p50 us | open p99 us | verified p50 us | "
      "verified p99 us | open p50 / 3 TCP RTT |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    for key in sorted(k for k in R if k[0] == "hs"):
        runs = R[key]
        op50 = med_field(runs, "open_p50_us")
        w(f"| {key[1]} | {fmt(med_field(runs, 'sessions_per_s'))} | {fmt(op50)} | "
          f"{fmt(med_field(runs, 'open_p99_us'))} | {fmt(med_field(runs, 'verified_p50_us'))} | "
          f"{fmt(med_field(runs, 'verified_p99_us'))} | "
          f"{fmt(ratio(op50, 3 * tcp_rtt) if tcp_rtt else None, 2)}x |")
    hs1 = R.get(("hs", 1))
    if hs1 and tcp_rtt:
        r = ratio(med_field(hs1, "open_p50_us"), 3 * tcp_rtt)
        targets.append(("Handshake p50 within 3x of three loopback round trips", r is not None
                        and r <= 3, f"{fmt(r, 2)}x ({fmt(med_field(hs1, 'open_p50_us'))} us vs "
                        f"3 x {fmt(tcp_rtt, 1)} us)"))
    w("")
    forward_secret_table(R, w)
    sp = R.get(("spawn",))
    if sp:
        w("")
        w(f"The real `initiator` binary, one process per session (`--batch`, stdin at EOF: "
          f"handshake, then CLOSE both ways): p50 {fmt(med_field(sp, 'initiator_p50_us'))} us "
          f"per session, wall clock from spawn to exit; spawning `/bin/true` takes "
          f"{fmt(med_field(sp, 'true_p50_us'))} us here, so process start and Mbed TLS's "
          "DRBG seeding are most of it.")
    w("")

    # 4.
    w("## 3. Messaging throughput through a live session\n")
    w("Payload megabytes (10^6 bytes) per second in each direction; echo modes move the "
      "same again the other way. Session: the initiator in the load generator, the real "
      "responder (one way: without --exec, every message written to its stdout, "
      "/dev/null; both ways: `--exec cat`, every echo checked). Raw AEAD: the suite's "
      "seal and open through shared/crypto.c (the calls the record layer makes), one "
      "core, same sizes; seal+open is one message sealed then opened. Plain TCP: "
      "loopback, one write per message, to a thread that reads or echoes.\n")
    w("| size | AEAD seal | AEAD open | AEAD seal+open | AES-GCM seal+open | TCP one way | "
      "session one way | session / seal+open | session / seal | TCP echo | session echo "
      "(each way) | session echo / TCP echo |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in SIZES:
        a = R.get(("aead", size))
        if not a:
            continue
        g = R.get(("aead-gcm", size))
        seal = med_field(a, "seal_mb_s")
        both = med_field(a, "seal_open_mb_s")
        so = med_field(R.get(("session-oneway", size)), "mb_s")
        se = med_field(R.get(("session-echo", size)), "mb_s")
        te = med_field(R.get(("tcp-echo", size)), "mb_s")
        w(f"| {size} | {fmt(seal, 1)} | {fmt(med_field(a, 'open_mb_s'), 1)} | {fmt(both, 1)} | "
          f"{fmt(med_field(g, 'seal_open_mb_s'), 1)} | "
          f"{fmt(med_field(R.get(('tcp-oneway', size)), 'mb_s'), 1)} | {fmt(so, 1)} | "
          f"{fmt(100 * ratio(so, both) if ratio(so, both) else None)}% | "
          f"{fmt(100 * ratio(so, seal) if ratio(so, seal) else None)}% | {fmt(te, 1)} | "
          f"{fmt(se, 1)} | {fmt(100 * ratio(se, te) if ratio(se, te) else None)}% |")
        if size == 16384:
            r = ratio(so, both)
            targets.append(("16 KiB messaging >= 80% of raw AEAD seal+open (ChaCha20-Poly1305)",
                            r is not None and r >= 0.8,
                            f"{fmt(100 * r if r else None)}% ({fmt(so, 1)} vs {fmt(both, 1)} "
                            f"MB/s; {fmt(100 * ratio(so, seal) if ratio(so, seal) else None)}% "
                            "of seal alone)"))
    w("")

    # 5.
    w("## 4. Memory and scale\n")
    w("`kdc serve --log-requests no`, start = spawn until its \"serving on\" line; RSS = "
      "VmRSS after start and after a load run (UDP, 16 outstanding, 64 of the principals "
      "as initiators).\n")
    w("| principals | start p50 s | RSS after start MiB | RSS after load MiB | requests/s "
      "under load | CPU us/request | database made in |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    for key in sorted(k for k in R if k[0] == "scale"):
        d = R[key]
        load = d.get("load", [])
        w(f"| {key[1]:,} | {fmt(median(d['start_s']), 3)} | "
          f"{fmt(median(d['rss_start']) / 1024 if d['rss_start'] else None, 1)} | "
          f"{fmt(median(d['rss_load']) / 1024 if d.get('rss_load') else None, 1)} | "
          f"{fmt(med_field(load, 'rps')) if load else 'see section 1'} | "
          f"{fmt(med_field(load, 'server_cpu_us_per_req'), 1) if load else ''} | "
          f"{made_in(d, key[1])} |")
    scales = sorted(k[1] for k in R if k[0] == "scale")
    if ("scale", 1000000) in R:
        t_1m = median(R[("scale", 1000000)]["start_s"])
        rss_1m = median(R[("scale", 1000000)]["rss_start"]) / 1024
        targets.append(("KDC with 1M principals starts in under 2 s", t_1m < 2,
                        f"{fmt(t_1m, 2)} s (median of {len(R[('scale', 1000000)]['start_s'])}"
                        f" starts), {fmt(rss_1m, 0)} MiB resident"))
    elif scales and max(scales) >= 10000:
        big = max(scales)
        targets.append((f"KDC with 1M principals starts in under 2 s (measured up to "
                        f"{big:,})", None,
                        f"{fmt(median(R[('scale', big)]['start_s']), 3)} s for {big:,}"))
    w("")
    w("The scale databases are made with one `kdc import` of random keys (the first 64 "
      "principals' key files kept for the load run) and cached between runs. Start-up "
      "reads every principal in one SQLite pass while other cores open the sealed keys; "
      "each key's subkeys are derived when a request first names its principal, so the "
      "load run's first requests to each of its 64 initiators pay that once.\n")
    idle = R.get(("idle",))
    if idle:
        w(f"Responder memory per live idle session ({idle[0]['sessions']:,} sessions "
          f"established and held open, no --exec): "
          f"{fmt(median([r['per_session_kib'] for r in idle]), 1)} KiB (VmRSS "
          f"{fmt(median([r['rss_before'] for r in idle]) / 1024, 1)} MiB before, "
          f"{fmt(median([r['rss_during'] for r in idle]) / 1024, 1)} MiB with them).\n")

    if getattr(b, "metrics_outs", None):
        scrapes = R[("metrics", "scrapes")]
        w("## The cost of --metrics\n")
        w("The same UDP load (every request a fresh M2, `--log-requests no`, 2 workers) to "
          "two KDCs of one realm, one with `--metrics` and scraped every second during the "
          "run, one without, in turns (the order flips each round). Medians of "
          f"{b.rounds} rounds.\n")
        w("| outstanding | CPU us/request without | with --metrics | difference | "
          "requests/s without | with |")
        w("|---:|---:|---:|---:|---:|---:|")
        for o in b.metrics_outs:
            off, on = R[("metrics", o, False)], R[("metrics", o, True)]
            c_off = med_field(off, "server_cpu_us_per_req")
            c_on = med_field(on, "server_cpu_us_per_req")
            w(f"| {o} | {fmt(c_off, 2)} | {fmt(c_on, 2)} | "
              f"{(c_on - c_off) / c_off * 100:+.1f} % | {fmt(med_field(off, 'rps'))} | "
              f"{fmt(med_field(on, 'rps'))} |")
        w("")
        w(f"{len(scrapes)} scrapes during the runs: median {median([t for t, _ in scrapes]) * 1000:.2f} ms "
          f"for {median([n for _, n in scrapes]):,.0f} bytes. The target: at most 2 % more "
          "CPU per request.\n")

    # Targets.
    w("## Targets (issue 6)\n")
    w("| target | result | |")
    w("|---|---|---|")
    for name, met, detail in targets:
        verdict = "met" if met else ("not measured" if met is None else "MISSED")
        if met is False and "linear" in detail:
            verdict += " (extrapolated)"
        w(f"| {name} | {detail} | {verdict} |")
    w("")
    prof = getattr(b, "profile", None)
    notes = profile_notes(b)
    if notes:
        w("## Profile notes: where the time goes where a target is missed\n")
        for n in notes:
            w(f"- {n}")
        w("")
    if prof and prof.get("total"):
        w("## Profile: where the KDC's instructions go\n")
        w("`valgrind --tool=callgrind` on `kdc serve --workers 1 --log-requests no` for "
          "5,000 UDP requests (4 outstanding) plus start-up; self cost (instructions "
          f"executed, Ir) of the top functions, {prof['total']:,} Ir in all "
          f"({prof['total'] / 5000:,.0f} per request with start-up included). Callgrind counts "
          "user-space instructions only: time in system calls (recvmmsg, sendmmsg, epoll) "
          "does not appear.\n")
        w("| Ir | % | function |")
        w("|---:|---:|---|")
        for ir, pct, fn in prof["top"]:
            w(f"| {ir:,} | {pct:.1f} | `{fn}` |")
        w("")
    if prof and prof.get("inclusive"):
        w("Inclusive cost of kd3's own functions (each with everything it calls):\n")
        w("| Ir | % | function |")
        w("|---:|---:|---|")
        for ir, pct, fn in prof["inclusive"]:
            w(f"| {ir:,} | {pct:.1f} | `{fn}` |")
        w("")
    perf = getattr(b, "perf", None) or {}
    what = {"kdc": "the KDC while kdcload sends UDP requests, 16 outstanding, to `kdc serve "
                   "--log-requests no` (2 workers)",
            "responder": "the responder while sessload opens sessions one after another "
                         "(section 2's shape)"}
    for who, prof_rows in perf.items():
        if not prof_rows:
            continue
        w(f"## Profile: perf samples of the {'KDC' if who == 'kdc' else 'responder'}\n")
        w(f"`perf record -F 999 -p PID` on {what[who]}: share of its CPU samples by binary, "
          "then by symbol. Unlike callgrind this includes the kernel (system calls, "
          "networking, wake-ups).\n")
        w("| % of samples | binary |")
        w("|---:|---|")
        for pct, name in prof_rows["dso"]:
            w(f"| {pct:.1f} | `{name}` |")
        w("")
        w("| % of samples | binary and symbol |")
        w("|---:|---|")
        for pct, name in prof_rows["sym"]:
            w(f"| {pct:.1f} | `{' '.join(name.split())}` |")
        w("")
    sp = getattr(b, "start_profile", None)
    if sp and sp.get("total"):
        w(f"## Profile: the KDC's start with {sp['n']:,} principals\n")
        w(f"`valgrind --tool=callgrind` on `kdc serve` until it serves: {sp['total']:,} Ir in "
          f"all, {sp['total'] / sp['n']:,.0f} per principal. Inclusive cost of kd3's "
          "functions (SQLite reads, unsealing each key, deriving its subkeys):\n")
        w("| Ir | % | function |")
        w("|---:|---:|---|")
        for ir, pct, fn in sp["inclusive"]:
            w(f"| {ir:,} | {pct:.1f} | `{fn}` |")
        w("")
        w("Self cost, top functions:\n")
        w("| Ir | % | function |")
        w("|---:|---:|---|")
        for ir, pct, fn in sp["self"]:
            w(f"| {ir:,} | {pct:.1f} | `{fn}` |")
        w("")
    for n in b.notes:
        w(f"- {n}")
    return "\n".join(out) + "\n"


def floor_table(w, b, R):
    """The floor under each target row: kdcfloor (the KDC's sockets and loop, no work)
    against the CPU budget the target leaves, krb5kdc TGS / 20 (UDP) or / 10 (TCP new
    connection), all from this run."""
    rows = [("udp", o, 20, ("mit", "tgs", "udp", o)) for o in b.kdc_outs]
    rows += [("tcp-new", o, 10, ("mit", "tgs", "tcp", o)) for o in (1, 16)]
    rows = [r for r in rows if R.get(("floor", r[0], r[1])) and R.get(r[3])]
    if not rows:
        return
    w("### The floor: what the kernel alone costs a request here\n")
    w("`kdcfloor` serves the KDC's sockets the way `kdc serve` does (2 worker threads, "
      "SO_REUSEPORT, epoll, recvmmsg/sendmmsg; for TCP one accept per wake-up and the "
      "request read at once) but does no work: it answers each M2 with an M3-sized frame "
      "holding the request's n_r, with no lookup, no crypto and no log. The same kdcload "
      "drives it (`--no-verify`). Its CPU per request is what the kernel and the loop cost; "
      "the budget is krb5kdc TGS's CPU per request divided by the target ratio. Where the "
      "floor is above the budget, no server on these sockets meets that row on this "
      "machine; \"kd3's own work\" is kd3 (no log for UDP, log for TCP) minus the floor.\n")
    over, short = [], []
    w("| transport | outstanding | floor CPU us/request | kd3 CPU us/request | kd3's own work us "
      "| krb5kdc TGS us | budget us (target) | floor / budget |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for proto, o, target, mit_key in rows:
        fl = med_field(R[("floor", proto, o)], "server_cpu_us_per_req")
        kd = med_field(R.get(("kd3", proto, o, proto != "udp")), "server_cpu_us_per_req")
        tg = med_field(R[mit_key], "server_cpu_us_per_req")
        budget = tg / target if tg else None
        own = kd - fl if kd is not None and fl is not None else None
        share = fl / budget if fl is not None and budget else None
        w(f"| {proto} | {o} | {fmt(fl, 1)} | {fmt(kd, 1)} | {fmt(own, 1)} | {fmt(tg, 1)} | "
          f"{fmt(budget, 1)} ({target}x) | {fmt(share * 100 if share else None)} % |")
        if fl is None or budget is None or own is None:
            continue
        where = f"{proto}, {o} outstanding"
        if fl >= budget:
            over.append(f"{where} ({fmt(fl, 1)} us against {fmt(budget, 1)})")
        elif kd > budget:
            need = (kd - budget) / own * 100 if own > 0 else None
            short.append(f"{where}: {fmt(budget - fl, 1)} us left for {fmt(own, 1)} us of work, "
                         f"{fmt(need)} % of it too much")
    w("")
    if over:
        w("Where the floor alone is over the budget, the target cannot be met by any server "
          "on these sockets on this machine: " + "; ".join(over) + ".")
    if short:
        w("Where the floor leaves room, kd3's own work (mostly the SHA-256 compressions "
          "the key schedule fixes: see the profile notes) is more than the room: "
          + "; ".join(short) + ".")
    if over or short:
        w("")


def _pct(rows, name):
    """Share (%) of the first row whose function or symbol ends with name."""
    for row in rows or []:
        label = row[2] if len(row) == 3 else row[1]
        pct = row[1] if len(row) == 3 else row[0]
        if label.split()[-1] == name:
            return pct
    return None


def log_cost_sentence(b):
    """The request log's cost in this run: the log and no-log rows at most outstanding."""
    outs = getattr(b, "kdc_outs", None)
    if not outs:
        return ""
    o = max(outs)
    logged = med_field(b.results.get(("kd3", "udp", o, True)), "server_cpu_us_per_req")
    bare = med_field(b.results.get(("kd3", "udp", o, False)), "server_cpu_us_per_req")
    if logged is None or bare is None:
        return ""
    return (f" A log line per request costs {fmt(logged - bare, 1)} us here ({fmt(logged, 1)} "
            f"against {fmt(bare, 1)} us, {o} outstanding): each worker writes its lines in one "
            "batch before it waits instead of one write(2) per line, and builds the JSON "
            "members only for --log-json (the log cost about 8 us a request before).")


def profile_notes(b):
    """Sentences computed from this run's profiles (callgrind and perf)."""
    notes = []
    prof = getattr(b, "profile", None) or {}
    perf = (getattr(b, "perf", None) or {})
    if prof.get("top"):
        sha = _pct(prof["top"], "mbedtls_internal_sha256_process")
        auth = _pct(prof.get("inclusive"), "kd3_authenticator_check_with")
        seal = _pct(prof.get("inclusive"), "kd3_blob_seal_with")
        sk = _pct(prof.get("inclusive"), "kd3_derive_sk_with")
        th = _pct(prof.get("inclusive"), "kd3_transcript_hash")
        kdc = perf.get("kdc") or {}
        kern = next((p for p, n in kdc.get("dso", []) if "kernel" in n), None)
        mbed = next((p for p, n in kdc.get("dso", []) if "mbedcrypto" in n), None)
        notes.append(
            f"KDC CPU per request: SHA-256 compression (`mbedtls_internal_sha256_process`) is "
            f"{fmt(sha, 0)}% of the KDC's user-space instructions; by caller, the two request "
            f"authenticators take {fmt(auth, 0)}%, sealing the two blobs (HKDF-Expand of each "
            f"blob key, then the AEAD) {fmt(seal, 0)}%, SK {fmt(sk, 0)}% and TH {fmt(th, 0)}%. "
            f"Under load the kernel (UDP receive and send, epoll, wake-ups) has "
            f"{fmt(kern, 0)}% of the KDC's samples and Mbed TLS {fmt(mbed, 0)}%. Every key "
            "the KDC uses per request (the principals' auth and wrap subkeys, the realm "
            "secret) is kept as its two SHA-256 pad states (`kd3_hmac_key`, keyed once at "
            "load), so each HMAC costs only its message blocks and one outer block; what is "
            "left is the protocol's own hashing (TH, two authenticators over M1 and M2, three "
            "HKDF-Expands). Further gains would need fewer hashes per request, or SHA-NI "
            "(Mbed TLS 2.28 has no SHA-256 hardware path on x86), neither of which kd3 may "
            "take: the key schedule is fixed by docs/PROTOCOL.md and all crypto is Mbed TLS's."
            + log_cost_sentence(b))
    resp = perf.get("responder") or {}
    kcpu = med_field(b.results.get(("kd3", "udp", 1, False)), "server_cpu_us_per_req")
    if resp.get("dso"):
        kern = next((p for p, n in resp["dso"] if "kernel" in n), None)
        mbed = next((p for p, n in resp["dso"] if "mbedcrypto" in n), None)
        notes.append(
            f"Handshake latency: in the responder {fmt(kern, 0)}% of the samples are in the "
            f"kernel and {fmt(mbed, 0)}% in Mbed TLS; a session costs it about 28 system "
            "calls (accept, a connected UDP socket per exchange to the KDC, four log lines "
            "on stderr, epoll changes, shutdown and close: counted once by hand with "
            "strace -c over 1,000 sessions). With three processes on two cores each of the "
            "~6 one-way hops also pays a wake-up, and the three parties' crypto (HMACs, HKDF, "
            f"AEAD; the KDC's alone {fmt(kcpu, 0)} us of CPU per request at 1 outstanding) "
            "runs in series on the critical path: the SHA-256 saving above applies to all "
            "three.")
    sp = getattr(b, "start_profile", None)
    scales = sorted(k[1] for k in b.results if k[0] == "scale")
    slope_us = None
    if len(scales) >= 2:
        lo, hi = b.results[("scale", scales[0])], b.results[("scale", scales[-1])]
        slope_us = ((median(hi["start_s"]) - median(lo["start_s"])) /
                    (scales[-1] - scales[0]) * 1e6)
    if sp and sp.get("inclusive"):
        sql = _pct(sp["inclusive"], "sqlite3_step")
        aead = _pct(sp["inclusive"], "kdc_master_open")
        notes.append(
            f"Start with many principals ({sp['n']:,} under callgrind, one worker): SQLite's "
            f"pass over the principals and keys is {fmt(sql, 0)}% of the start-up "
            f"instructions and opening the sealed keys {fmt(aead, 0)}% (on other cores "
            "while SQLite reads, so off the critical path with 2 cores or more); subkeys "
            "are no longer derived at start (that was 74% before: `kd3_derive_subkeys` now "
            f"runs on a principal's first request). About {fmt(slope_us, 2)} us per "
            "principal remain on the critical path: SQLite's walk of the name and key "
            "indexes, with a row fetched per key for its sealed blob.")
    return notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(SRC, "build-bench"))
    ap.add_argument("--with-krb5", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--json", default=None, help="also write the raw results here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--sections", default="kdc,sessions,messaging,scale,idle,metrics,profile")
    args = ap.parse_args()
    if args.smoke and args.with_krb5 is False:
        # The smoke test runs krb5load too when MIT Kerberos is installed and built.
        args.with_krb5 = bool(shutil.which("krb5kdc") and shutil.which("kadmin.local")
                              and os.access(os.path.join(args.build, "tests", "bench",
                                                         "krb5load"), os.X_OK))
    try:
        b = Bench(args)
    except BenchError as e:
        log(f"error: {e}")
        return 1
    sections = args.sections.split(",")
    if args.smoke:
        sections = [s for s in sections if s != "profile"]
    info = machine_info(args, b.t)
    started = time.monotonic()
    try:
        b.kdc_section()
        if {"sessions", "messaging", "scale", "idle"} & set(sections):
            b.session_section()
        if "messaging" in sections:
            b.messaging_section()
        if "scale" in sections:
            b.scale_section()
        if "idle" in sections:
            b.idle_section()
        if "metrics" in sections:
            b.metrics_section()
        if "profile" in sections:
            b.profile_section()
            if "scale" in sections:
                b.startup_profile()
    except (BenchError, subprocess.CalledProcessError, OSError) as e:
        log(f"error: {e}")
        b.cleanup()
        return 1
    b.cleanup()
    text = report(b, info)
    if args.smoke:
        bad = sum(r.get("bad", 0) for runs in b.results.values() if isinstance(runs, list)
                  for r in runs if isinstance(r, dict))
        print(f"bench smoke: every load generator ran ({len(b.results)} measurements, "
              f"{time.monotonic() - started:.0f} s), {bad} wrong answers")
        return 1 if bad else 0
    with open(args.out, "w") as f:
        f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "results": {repr(k): v for k, v in b.results.items()}},
                      f, indent=1)
    log(f"wrote {args.out} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
