#!/usr/bin/python3
"""Keys do not linger in memory: each program's memory, dumped right before it exits,
holds none of the session's secrets nor its long-term key, in binary or hex form.

The KDC, a responder (--exec cat, so both directions carry records, and key updates
every 2 records) and two initiators run under gdb (coremem.py): each stops at exit() or
_exit(), and gcore dumps its whole memory (heap, stacks of every thread, data). Two
sessions: forward secrecy off with ChaCha20-Poly1305, on with AES-256-GCM.

The secrets searched for, per session: SK, the X25519 shared secret, the schedule's PRK,
confirm_i, and for every key generation of both directions the traffic secret, AEAD key
and IV. The KDC (--reveal-keys: SK) and the responder (--reveal-keys: SK, X25519 shared
secret, every generation's keys) reveal them in their transcripts; the test derives all
of them again from SK, TH and the shared secret with the independent implementation of
tests/vectors/check_vectors.py and checks the two agree, so what is searched is what was
used. confirm_r is not searched: it travels in clear in M4. The initiators run without
any transcript (nothing but the production path). Long-term: each program's own key and
its two subkeys (the KDC: every principal's, the realm secret when the database holds it
in clear, the master key when a stash file holds it).

Positive control: the first initiator is also dumped mid-session (at its first
kd3_channel_seal, the FINISHED record): the same search must find both directions'
traffic secrets there, and the principal's name must be found at exit. So a clean
result means wiped, not unsearchable.

The IVs are searched and reported but do not fail the test: an IV is the base of the
AEAD nonces (nonce = IV XOR seq), which no AEAD needs secret, and Mbed TLS 2.28's
ChaCha20 (chacha20_block) leaves the nonce words of its state in stack spill slots
that it does not wipe, so the IV of the last key generation that sealed or opened a
record with seq 0 can be found on the stack: outside kd3's control.

A secret found names the value, the form, the address and the mapping ([heap], [stack],
an anonymous mapping: a thread's stack) where it was found. KD3_WIPE_KEEP=DIR keeps the
cores, the gdb outputs, the transcripts and the key files in DIR to look into them.

KD3_BIN: a build without sanitizers (ASan's quarantine keeps freed memory unreused).
Needs gdb (Debian: gdb) and root (CAP_SYS_PTRACE): kd3 sets PR_SET_DUMPABLE 0, and
although gdb starts each program itself (so no attach is needed, whatever
kernel.yama.ptrace_scope says), the kernel lets even the tracer read a non-dumpable
process's memory only with CAP_SYS_PTRACE. Exits 77 (skipped) without gdb or without
that capability, saying which. Runs about 10 s.
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "resource"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import coremem  # noqa: E402
import kd3e2e as k  # noqa: E402
import kd3proto as P  # noqa: E402

cv = P.cv
SKIP = 77
MID_FUNCTION = "kd3_channel_seal"


def child_of(pid, timeout=10.0):
    """The pid of pid's child (gdb's inferior)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                return int(entry)
        time.sleep(0.05)
    raise AssertionError(f"gdb {pid} started no program")


class UnderGdb:
    """A program run by gdb: stopped at exit, its memory dumped (and mid-session too
    with mid=True). stdout (gdb's and the program's) and stderr go to files."""

    def __init__(self, folder, name, argv, stdin=subprocess.DEVNULL, mid=False):
        self.name = name
        self.core = os.path.join(folder, f"{name}.core")
        self.mid_core = os.path.join(folder, f"{name}.mid.core") if mid else None
        script = os.path.join(folder, f"{name}.gdb")
        coremem.write_script(script, self.core, self.mid_core, MID_FUNCTION)
        self.out_path = os.path.join(folder, f"{name}.out")
        self.err_path = os.path.join(folder, f"{name}.err")
        # KD3_WIPE_KEEP stays out of the program's environment: the environment's size
        # moves the stack, and with it what a run leaves there.
        env = {n: v for n, v in os.environ.items() if n != "KD3_WIPE_KEEP"}
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(coremem.gdb_argv(script, argv), stdin=stdin,
                                      stdout=out, stderr=err, env=env)

    def out(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def err(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.err(), re.M):
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {pattern!r}:\n{self.err()[-2000:]}")
            time.sleep(0.05)

    def stop(self):
        """SIGTERM to the program (not to gdb); gdb dumps it at exit."""
        if self.p.poll() is None:
            os.kill(child_of(self.p.pid), signal.SIGTERM)
        return self.finish()

    def finish(self, timeout=120):
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)
            raise AssertionError(f"{self.name}: gdb did not finish:\n{self.out()[-2000:]}")
        if not os.path.exists(self.core):
            raise AssertionError(f"{self.name}: no core dumped at exit:\n{self.out()[-3000:]}"
                                 f"\n{self.err()[-2000:]}")
        return coremem.Core(self.core, coremem.parse_mappings(self.out()))

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)


def start_server(realm, name, make_argv, ready):
    for _ in range(5):
        port = k.free_port()
        s = UnderGdb(realm.dir, name, make_argv(port))
        try:
            s.wait_for(ready)
        except AssertionError:
            s.kill()
            if "Address already in use" in s.err():
                continue
            raise
        s.port = port
        return s
    raise AssertionError("no free port after 5 tries")


def is_nonce_base(name):
    return " iv_" in name


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def kdc_secrets(realm):
    """The KDC's own secrets the test can know: the realm secret when the database holds
    it in clear, the master key(s) of a stash file next to the database (`master =
    ID:HEX64` lines) when there is one. Best effort: what cannot be read is not searched."""
    out = {}
    try:
        with sqlite3.connect(f"file:{realm.db}?mode=ro", uri=True) as db:
            row = db.execute("SELECT secret FROM realm WHERE id = 1").fetchone()
        if row and isinstance(row[0], bytes) and len(row[0]) == 32:
            out["realm secret"] = row[0]
    except sqlite3.Error:
        pass
    try:
        with open(realm.stash) as f:
            for i, m in enumerate(re.finditer(r"^master\s*=\s*[0-9a-fA-F]+:([0-9a-fA-F]{64})\s*$",
                                              f.read(), re.M)):
                out[f"master key {i + 1}"] = bytes.fromhex(m.group(1))
    except OSError:
        pass
    return out


def long_term(realm, name):
    p = P.load_keyfile(realm.keyfile(name))
    return {f"{name} K": p.key, f"{name} K.auth": p.auth, f"{name} K.wrap": p.wrap}


class Session:
    """One session's secrets, from the responder's and the KDC's transcripts."""

    def __init__(self, number, lines, kdc_sk_by_th, test):
        mine = [l for l in lines if l.get("session") == number]
        info = next(l for l in mine if l["kind"] == "session")
        keys = [l for l in mine if l["kind"] == "keys"]
        th = bytes.fromhex(info["th"])
        sk = bytes.fromhex(next(l["sk"] for l in keys if "sk" in l))
        test.assertEqual(kdc_sk_by_th[th], sk, "the KDC and the responder disagree on SK")
        dh_hex = next((l["x25519_shared"] for l in keys if "x25519_shared" in l), None)
        dh = bytes.fromhex(dh_hex) if dh_hex else None
        test.assertEqual(dh is not None, info["forward_secrecy"])
        self.fs, self.suite = info["forward_secrecy"], info["suite"]
        s = cv.session_secrets(th, sk, dh)
        self.secrets = {"SK": sk, "PRK": cv.hkdf_extract(th, sk + (dh or b"")),
                        "confirm_i": s["confirm_i"]}
        if dh:
            self.secrets["X25519 shared"] = dh
        # The responder sends r2i and receives i2r; every generation it revealed must be
        # the one derived here.
        self.generations = {"i2r": 0, "r2i": 0}
        for line in keys:
            if "direction" in line:
                d = "r2i" if line["direction"] == "sent" else "i2r"
                self.generations[d] = max(self.generations[d], line["generation"])
        revealed = {(("r2i" if l["direction"] == "sent" else "i2r"), l["generation"]): l
                    for l in keys if "direction" in l}
        for d in ("i2r", "r2i"):
            ts = s["ts_" + d]
            for g in range(self.generations[d] + 1):
                key, iv = cv.traffic_key_iv(ts)
                got = revealed[(d, g)]
                test.assertEqual((got["traffic_secret"], got["key"], got["iv"]),
                                 (ts.hex(), key.hex(), iv.hex()), f"{d} generation {g}")
                self.secrets.update({f"ts_{d}[{g}]": ts, f"key_{d}[{g}]": key,
                                     f"iv_{d}[{g}]": iv})
                ts = cv.traffic_next(ts)

    def named(self, tag):
        return {f"session {tag} {n}": v for n, v in self.secrets.items()}


class KeyWipe(unittest.TestCase):
    def test_keys_wiped_before_exit(self):
        with k.Realm(("alice", "bob", "carol")) as realm:
            progs = []
            try:
                self.run_check(realm, progs)
            finally:
                for p in progs:
                    p.kill()
                keep = os.environ.get("KD3_WIPE_KEEP")
                if keep:  # the cores, gdb outputs, transcripts and keys, to look into
                    shutil.copytree(realm.dir, keep, dirs_exist_ok=True)

    def run_check(self, realm, progs):
        d = realm.dir
        kdc = start_server(realm, "kdc", lambda port: [
            k.exe("kdc"), "serve", *realm.dbargs, "--listen", f"127.0.0.1:{port}",
            "--workers", "2", "--transcript", os.path.join(d, "kdc.tr"), "--reveal-keys"],
            r"serving on")
        progs.append(kdc)
        realm.kdc_port = kdc.port
        resp = start_server(realm, "responder", lambda port: [
            k.exe("responder"), "--listen", f"127.0.0.1:{port}", "--keyfile",
            realm.keyfile("bob"), "--kdc", f"127.0.0.1:{kdc.port}", "--exec", "cat",
            "--rekey-after-messages", "2", "--transcript", os.path.join(d, "responder.tr"),
            "--reveal-keys"], r"listening on")
        progs.append(resp)

        cores = {}
        runs = [("1", ["one", "two", "three"], ["--rekey-after-messages", "2"], True),
                ("2", ["four", "five"], ["--forward-secret", "--suite", "aes-256-gcm"], False)]
        for tag, lines, extra, mid in runs:
            stdin_path = os.path.join(d, f"initiator{tag}.in")
            with open(stdin_path, "w") as f:
                f.write("".join(l + "\n" for l in lines))
            with open(stdin_path, "rb") as stdin:
                ini = UnderGdb(d, f"initiator{tag}", realm.initiator_argv(resp.port, *extra),
                               stdin=stdin, mid=mid)
                progs.append(ini)
                cores[f"initiator {tag}"] = ini.finish()
            self.assertIn("established", ini.err())
            self.assertRegex(ini.out(), "(?s)" + ".*".join(re.escape(l) for l in lines),
                             "the initiator did not print the echoed lines")
            if mid:
                self.assertTrue(os.path.exists(ini.mid_core), "no mid-session core")
                cores[f"initiator {tag} mid-session"] = coremem.Core(ini.mid_core)
        resp.wait_for(r"session 2 with alice closed")
        cores["responder"] = resp.stop()
        cores["kdc"] = kdc.stop()

        kdc_lines = read_jsonl(os.path.join(d, "kdc.tr"))
        sk_by_th = {bytes.fromhex(l["th"]): bytes.fromhex(l["sk"]) for l in kdc_lines
                    if l["kind"] == "kdc" and "sk" in l}
        resp_lines = read_jsonl(os.path.join(d, "responder.tr"))
        s1, s2 = (Session(n, resp_lines, sk_by_th, self) for n in (1, 2))
        self.assertFalse(s1.fs)
        self.assertTrue(s2.fs)
        self.assertGreaterEqual(min(s1.generations.values()), 1, "no key update happened")
        alice, bob = long_term(realm, "alice"), long_term(realm, "bob")
        everyone = {**alice, **bob, **long_term(realm, "carol")}
        searched = {
            "initiator 1": {**s1.named(1), **alice},
            "initiator 2": {**s2.named(2), **alice},
            "responder": {**s1.named(1), **s2.named(2), **bob},
            "kdc": {"session 1 SK": s1.secrets["SK"], "session 2 SK": s2.secrets["SK"],
                    **everyone, **kdc_secrets(realm)},
        }

        # Positive control: the same search finds live keys mid-session, and a name at exit.
        mid = cores["initiator 1 mid-session"].search(s1.named(1))
        print(f"\npositive control, initiator 1 at its first {MID_FUNCTION} "
              f"({cores['initiator 1 mid-session'].memory_bytes()} bytes of memory): found "
              + ", ".join(f"{n} ({', '.join(f for f, _ in v)})" for n, v in sorted(mid.items())))
        for live in ("session 1 ts_i2r[0]", "session 1 ts_r2i[0]"):
            self.assertIn(live, mid, "the search cannot see a key that must be live")
        self.assertTrue(cores["initiator 1"].find(b"alice"), "the name is not in the image")

        findings, notes = [], []
        for prog, secrets in searched.items():
            core = cores[prog]
            found = core.search(secrets)
            print(f"{prog}: {len(secrets)} values searched in {core.memory_bytes()} bytes "
                  f"at exit: {'none found' if not found else f'{len(found)} found'}")
            for name, hits in sorted(found.items()):
                for form, places in hits:
                    line = f"{prog}: {name} ({form}) at {', '.join(places)}"
                    (notes if is_nonce_base(name) else findings).append(line)
        for line in notes:
            print(f"note (an IV, not a secret; see the docstring): {line}")
        self.assertEqual(findings, [], "secrets left in memory at exit:\n  "
                         + "\n  ".join(findings))


def can_read_undumpable():
    """gdb reads a PR_SET_DUMPABLE 0 process's memory only with CAP_SYS_PTRACE (root),
    even as the process's own tracer."""
    with open("/proc/self/status") as f:
        caps = re.search(r"^CapEff:\s*([0-9a-f]+)", f.read(), re.M)
    return bool(caps) and bool(int(caps.group(1), 16) & (1 << 19))  # CAP_SYS_PTRACE


if __name__ == "__main__":
    in_ci = os.environ.get("CI") == "true"  # CI runs as root with gdb: it must not skip
    if shutil.which("gdb") is None:
        print("gdb is not installed (Debian: apt-get install gdb)")
        sys.exit(1 if in_ci else SKIP)
    if not can_read_undumpable():
        print("needs CAP_SYS_PTRACE (root): kd3 sets PR_SET_DUMPABLE 0, and gdb cannot read "
              "such a process's memory without it")
        sys.exit(1 if in_ci else SKIP)
    unittest.main(verbosity=2)
