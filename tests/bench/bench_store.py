#!/usr/bin/env python3
"""kd3 storage backends side by side: the same realm on SQLite (the reference) and on
PostgreSQL (a primary and a streaming hot standby started here, tests/support/
pgcluster.py), measured in one run on 127.0.0.1.

  1. kdc serve start time and resident memory with N principals (SQLite file vs the
     standby: one binary COPY in a REPEATABLE READ snapshot);
  2. requests per second of one KDC on each (kdcload, UDP): nothing on the request
     path depends on the backend, so these should match;
  3. an admin commit (`kdc add` returning) until every KDC serves it, p50/p99, two
     KDCs on each backend (SQLite: two servers on the one file);
  4. lockout propagation: a principal locked through KDC 1 until KDC 2 refuses it
     (PostgreSQL only: SQLite KDCs do not share lockouts, nor does MIT Kerberos).

Writes tests/bench/RESULTS-store.md. --quick: 100k principals, fewer rounds; --smoke:
10k, one round (the ctest bench_store_smoke). The realms of 100k and 1M principals are
made once with `kdc import` and cached under BUILD/tests/bench/realm-cache; the
PostgreSQL copy is made from it with `kdc dump` and `kdc load` each run. Every load is
bounded in count and time; every process started is stopped here.
"""
import argparse
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "support"))

import bench  # noqa: E402  (Proc, Tools, make_scale_realm, free_port, rss_kib, run_json)
import pgcluster  # noqa: E402

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def log(msg):
    print(f"bench_store: {msg}", file=sys.stderr, flush=True)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else None


def stamp_of(line):
    m = STAMP.match(line)
    if not m:
        return None
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def wait_log(path, pattern, since_bytes, timeout):
    """The first line after since_bytes of the file matching pattern: (line, time seen)."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path) as f:
            f.seek(since_bytes)
            for line in f:
                if rx.search(line):
                    return line, time.monotonic()
        time.sleep(0.002)
    raise bench.BenchError(f"{os.path.basename(path)}: no {pattern!r} within {timeout} s")


class Store:
    """One backend: where the realm is, the options every command takes, and kdc serve."""

    def __init__(self, t, name, args, serve_args):
        self.t, self.name, self.args, self.serve_args = t, name, args, serve_args

    def kdc(self, *argv, timeout=1800):
        r = subprocess.run([self.t.kdc, *argv, *self.args], capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise bench.BenchError(f"kdc {argv[0]} ({self.name}): {r.stderr.strip()}")
        return r.stdout

    def serve(self, workdir, tag, extra=()):
        port = bench.free_port()
        p = bench.Proc(f"{self.name}-{tag}", [self.t.kdc, "serve", *self.serve_args,
                                              "--listen", f"127.0.0.1:{port}", *extra],
                       workdir, r"serving on", timeout=300)
        p.port = port
        return p


class StoreBench:
    def __init__(self, args):
        self.args = args
        self.t = bench.Tools(args.build)
        self.rounds = 1 if args.smoke else (3 if args.quick else 5)
        self.tmp = tempfile.mkdtemp(prefix="kd3bench-store-")
        os.chmod(self.tmp, 0o700)
        self.pg = pgcluster.PgCluster()
        self.results = {}

    def close(self):
        self.pg.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def pg_realm(self, sqlite_db, n):
        """The SQLite realm's copy on the primary, through kdc dump and kdc load."""
        if not hasattr(self, "primary"):
            self.primary = self.pg.start_primary()
            password = os.urandom(12).hex()
            self.pg.create_role("kd3", password)
            os.environ["PGPASSFILE"] = self.pg.passfile([("*", "*", "kd3", password)])
            self.standby = self.pg.start_standby(self.primary)
        dbname = f"realm{n}"
        self.pg.create_database(dbname, "kd3")
        dump = os.path.join(self.tmp, f"dump{n}.json")
        subprocess.run([self.t.kdc, "dump", dump, "--db", sqlite_db], check=True,
                       capture_output=True, timeout=1800)
        stash = sqlite_db + ".stash"
        started = time.monotonic()
        subprocess.run([self.t.kdc, "load", dump, "--db", self.primary.uri("kd3", dbname),
                        "--stash", stash], check=True, capture_output=True, timeout=3600)
        loaded = time.monotonic() - started
        os.unlink(dump)
        self.pg.wait_replayed(self.standby, timeout=600)
        write = self.primary.uri("kd3", dbname)
        return Store(self.t, "postgresql", ["--db", write, "--stash", stash],
                     ["--db", self.standby.uri("kd3", dbname), "--db-write", write,
                      "--stash", stash]), loaded

    def realm(self, n):
        """(sqlite store, postgresql store, keys list, seconds: import, load)."""
        cache, made = bench.cached_scale_realm(self.t, n)
        db = os.path.join(cache, "kd3.db")
        log(f"copying {n:,} principals to PostgreSQL (kdc dump, kdc load)")
        pg, loaded = self.pg_realm(db, n)
        sq = Store(self.t, "sqlite", ["--db", db], ["--db", db])
        return sq, pg, os.path.join(cache, "keys.list"), made, loaded

    # 1 and 2
    def start_and_load(self, n, sq, pg, keys):
        for store in (sq, pg):
            starts, rss, rps = [], [], []
            for r in range(self.rounds):
                p = store.serve(self.tmp, f"start{n}-{r}", ["--log-requests=no"])
                try:
                    starts.append(p.ready_s)
                    rss.append(bench.rss_kib(p.pid))
                    res = bench.run_json([
                        self.t.kdcload, "--kdc", f"127.0.0.1:{p.port}", "--keys", keys,
                        "--proto", "udp", "--outstanding", "16", "--seconds",
                        "0.5" if self.args.smoke else "3", "--requests",
                        "5000" if self.args.smoke else "400000", "--kdc-pid", str(p.pid)])
                    rps.append(res["rps"])
                finally:
                    p.stop()
            self.results[("start", n, store.name)] = {"start_s": starts, "rss_kib": rss,
                                                      "rps": rps}

    # 3 and 4
    def propagation(self, sq, pg):
        rounds = 3 if self.args.smoke else 20
        lock = ["--lockout-failures", "1", "--lockout-window-seconds", "60",
                "--lockout-seconds", "600"]
        for store in (sq, pg):
            kdcs = [store.serve(self.tmp, f"prop-{i}", ["--log-requests=no", *lock])
                    for i in (1, 2)]
            try:
                lat = []
                for i in range(rounds):
                    name = f"prop{store.name[:2]}{i}"
                    marks = [os.path.getsize(k.err_path) for k in kdcs]
                    store.kdc("add", name, "--keyfile", os.path.join(self.tmp, name + ".key"))
                    done = time.monotonic()
                    seen = [wait_log(k.err_path, r"reloaded \(the database changed\)", m, 30)[1]
                            for k, m in zip(kdcs, marks)]
                    lat.append(max(seen) - done)
                self.results[("commit", store.name)] = lat
                if store.name == "postgresql":
                    self.results[("lockout",)] = self.lockout(store, kdcs, rounds)
            finally:
                for k in kdcs:
                    k.stop()

    def lockout(self, store, kdcs, rounds):
        """Seconds from KDC 1 locking a principal (its log's time) to KDC 2 counting it
        (KDC 2's log's time): both logs are stamped by the same clock, this host's."""
        resp_port = bench.free_port()
        key = os.path.join(self.tmp, "lockresp.key")
        store.kdc("add", "lockresp", "--keyfile", key)
        resp = bench.Proc("lockresp", [self.t.responder, "--listen", f"127.0.0.1:{resp_port}",
                                       "--kdc", f"127.0.0.1:{kdcs[0].port}", "--keyfile", key,
                                       "--exec", "cat"], self.tmp, r"listening on")
        out = []
        try:
            for i in range(rounds):
                name = f"victim{i}"
                store.kdc("add", name, "--keyfile", os.path.join(self.tmp, name + ".key"))
                wrong = os.path.join(self.tmp, name + ".wrong")
                fd = os.open(wrong, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(f"principal = {name}\nkey = 1:{os.urandom(32).hex()}\n")
                time.sleep(1.2)  # both KDCs serve the new principal (section 3)
                marks = [os.path.getsize(k.err_path) for k in kdcs]
                subprocess.run([self.t.initiator, "--connect", f"127.0.0.1:{resp_port}",
                                "--keyfile", wrong, "--peer", "lockresp", "--batch",
                                "--timeout", "5"], input=b"x\n", capture_output=True,
                               timeout=30)
                l1, _ = wait_log(kdcs[0].err_path, rf"principal {name} locked out", marks[0], 10)
                l2, _ = wait_log(kdcs[1].err_path, rf"principal {name} locked out .*across",
                                 marks[1], 10)
                out.append(stamp_of(l2) - stamp_of(l1))
        finally:
            resp.stop()
        return out

    def private_copy(self, sq):
        """The cached SQLite realm copied here: the writes of section 3 stay out of it."""
        src = sq.args[1]
        dst = os.path.join(self.tmp, "prop.db")
        shutil.copy(src, dst)
        shutil.copy(src + ".stash", dst + ".stash")
        return Store(self.t, "sqlite", ["--db", dst], ["--db", dst])

    def run(self):
        sizes = [10000] if self.args.smoke else ([100000] if self.args.quick
                                                 else [100000, 1000000])
        made = {}
        for n in sizes:
            sq, pg, keys, imported, loaded = self.realm(n)
            made[n] = (imported, loaded)
            log(f"start and load, {n:,} principals")
            self.start_and_load(n, sq, pg, keys)
            if n == sizes[0]:
                log("admin commit -> every KDC serving; lockout propagation")
                self.propagation(self.private_copy(sq), pg)
        return made


def ms(v):
    return "-" if v is None else f"{v * 1000:.0f} ms"


def report(b, made, out_path):
    med = statistics.median
    lines = ["# kd3 storage backends, side by side", "",
             f"Made by `tests/bench/bench_store.py{' --quick' if b.args.quick else ''}` on "
             f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; "
             f"{b.rounds} round(s) per cell, medians. SQLite is the reference; PostgreSQL 15 "
             "is a primary and a streaming hot standby on the same machine, the KDCs "
             "loading from the standby.", "",
             "## 1-2. Start, memory, requests per second (one KDC, UDP, 16 outstanding)", "",
             "| principals | backend | start | RSS after start | requests/s |",
             "|---:|---|---:|---:|---:|"]
    for key, r in sorted(((k, v) for k, v in b.results.items() if k[0] == "start"),
                         key=lambda kv: (kv[0][1], kv[0][2] != "sqlite")):
        lines.append(f"| {key[1]:,} | {key[2]} | {med(r['start_s']):.2f} s | "
                     f"{med(r['rss_kib']) / 1024:.0f} MiB | {med(r['rps']):,.0f} |")
    lines += ["", "Making the realms: " + "; ".join(
        f"{n:,} principals: `kdc import` into SQLite "
        f"{'(cached)' if imp is None else f'{imp:.1f} s'}, `kdc load` of its dump into "
        f"PostgreSQL {load:.1f} s" for n, (imp, load) in made.items()) + ".", "",
        "## 3. An admin commit until every KDC serves it (two KDCs)", "",
        "| backend | p50 | p99 | max | rounds |", "|---|---:|---:|---:|---:|"]
    for name in ("sqlite", "postgresql"):
        lat = b.results.get(("commit", name), [])
        lines.append(f"| {name} | {ms(pct(lat, 50))} | {ms(pct(lat, 99))} | "
                     f"{ms(max(lat) if lat else None)} | {len(lat)} |")
    lock = b.results.get(("lockout",), [])
    lines += ["", "## 4. Lockout through KDC 1 until KDC 2 refuses the principal", "",
              "| backend | p50 | p99 | max | rounds |", "|---|---:|---:|---:|---:|",
              f"| postgresql | {ms(pct(lock, 50))} | {ms(pct(lock, 99))} | "
              f"{ms(max(lock) if lock else None)} | {len(lock)} |",
              "| sqlite (reference) | not shared: each KDC counts its own failures | | | |",
              ""]
    text = "\n".join(lines) + "\n"
    with open(out_path, "w") as f:
        f.write(text)
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(SRC, "build-bench"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS-store.md"))
    args = ap.parse_args()
    b = StoreBench(args)
    try:
        made = b.run()
        report(b, made, args.out)
    finally:
        b.close()


if __name__ == "__main__":
    main()
