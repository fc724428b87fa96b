"""End-to-end test support: a throwaway realm on loopback and the real executables.

Every address is an IP literal on 127.0.0.1; every wait has a timeout; every process
started here is stopped when the test ends (Realm is a context manager).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import kd3db

BIN = os.environ.get("KD3_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


def exe(name):
    path = os.path.join(BIN, name, name)
    if not os.path.exists(path):
        raise RuntimeError(f"missing executable {path} (set KD3_BIN to the build dir)")
    return path


# valgrind memcheck for KD3_VALGRIND (tests/memory): definite leaks count as errors.
VALGRIND_ARGS = ["--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=97",
                 "--num-callers=30"]


def valgrind_wrap(argv):
    """Opt-in: with KD3_VALGRIND=DIR in the environment, a kd3 executable (one exe()
    returned) runs under valgrind memcheck, its log in DIR/NAME.PID.log (tests/memory
    reads them). Anything else, or without KD3_VALGRIND, runs as it is."""
    logdir = os.environ.get("KD3_VALGRIND")
    if not logdir or not argv:
        return list(argv)
    prog = os.path.realpath(argv[0])
    name = os.path.basename(prog)
    if prog != os.path.realpath(os.path.join(BIN, name, name)):
        return list(argv)
    return ["valgrind", *VALGRIND_ARGS, f"--log-file={os.path.join(logdir, name)}.%p.log",
            *argv]


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 (the KDC serves both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


class Proc:
    """A background process whose stderr (and stdout) lines are collected."""

    def __init__(self, argv, env=None, stdin=subprocess.DEVNULL):
        self.argv = argv
        self.lines = []
        self.out_lines = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(valgrind_wrap(argv), stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self._t_err = threading.Thread(target=self._pump, args=(self.p.stderr, self.lines),
                                       daemon=True)
        self._t_out = threading.Thread(target=self._pump, args=(self.p.stdout, self.out_lines),
                                       daemon=True)
        self._t_err.start()
        self._t_out.start()

    def _pump(self, stream, into):
        for raw in iter(stream.readline, b""):
            with self.cond:
                into.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, pattern, timeout=10.0, stream="err"):
        """Wait until a line matches; return the match. Fails on timeout or exit."""
        rx = re.compile(pattern)
        lines = self.lines if stream == "err" else self.out_lines
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for line in lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and seen == len(lines)):
                    if self.p.poll() is not None:
                        self.cond.wait(0.2)  # let the pumps finish
                        if len(lines) > seen:
                            continue
                    raise AssertionError(
                        f"{os.path.basename(self.argv[0])}: no line matching {pattern!r} "
                        f"within {timeout}s; stderr:\n" + "\n".join(self.lines[-30:]))
                self.cond.wait(min(left, 0.2))

    def text(self):
        with self.cond:
            return "\n".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        if os.environ.get("KD3_VALGRIND"):
            timeout = max(timeout, 60.0)  # the leak check at exit takes a while
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self._t_err.join(2)
        self._t_out.join(2)
        for stream in (self.p.stdout, self.p.stderr):
            stream.close()
        return self.p.returncode


class Result:
    def __init__(self, rc, stdout, stderr):
        self.rc, self.stdout, self.stderr = rc, stdout, stderr

    def __repr__(self):
        return f"rc={self.rc}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


class Realm:
    """A database with principals, a KDC and responders, in a temporary folder."""

    def __init__(self, principals=("alice", "bob")):
        self.dir = tempfile.mkdtemp(prefix="kd3-e2e-")
        self.procs = []
        self.kdc_port = None
        try:
            # A file here, or a database of the test's PostgreSQL server (kd3db.py).
            self.store = kd3db.TestDb(self.dir)
            self.db, self.stash, self.dbargs = self.store.db, self.store.stash, self.store.args
            run([exe("kdc"), "init", *self.dbargs], check=True)
            for name in principals:
                self.add(name)
        except BaseException:
            self.close()
            raise

    def keyfile(self, name):
        return os.path.join(self.dir, name + ".key")

    def add(self, name):
        run([exe("kdc"), "add", name, *self.dbargs, "--keyfile", self.keyfile(name)],
            check=True)

    def _start(self, make_argv, ready, port=None, env=None):
        """Starts a server on a free port, or the given one. free_port() releases the
        port before the server binds it, so another process may take it first: then
        the server says so, and we try another port."""
        for _ in range(5):
            p_port = port or free_port()
            p = Proc(make_argv(p_port), env=env)
            self.procs.append(p)
            try:
                p.wait_for(ready)
            except AssertionError:
                if port is None and "Address already in use" in p.text():
                    p.stop()
                    continue
                raise
            p.port = p_port
            return p
        raise AssertionError("no free port after 5 tries")

    def start_kdc(self, *extra, port=None, workers=2):
        p = self._start(lambda prt: [exe("kdc"), "serve", *self.dbargs, "--listen",
                                     f"127.0.0.1:{prt}", "--workers", str(workers), *extra],
                        r"serving on", port)
        self.kdc_port = p.port
        return p

    def start_responder(self, *extra, name="bob", kdc=None, port=None, env=None):
        kdcs = kdc if kdc is not None else [f"127.0.0.1:{self.kdc_port}"]

        def argv(prt):
            a = [exe("responder"), "--listen", f"127.0.0.1:{prt}",
                 "--keyfile", self.keyfile(name)]
            for k in kdcs:
                a += ["--kdc", k]
            return a + list(extra)

        return self._start(argv, r"listening on", port, env)

    def initiator_argv(self, port, *extra, name="alice", peer="bob"):
        return [exe("initiator"), "--connect", f"127.0.0.1:{port}",
                "--keyfile", self.keyfile(name), "--peer", peer, *extra]

    def run_initiator(self, port, lines=(), *extra, name="alice", peer="bob", timeout=30,
                      input_bytes=None, env=None):
        data = input_bytes if input_bytes is not None else "".join(l + "\n" for l in lines).encode()
        return run(self.initiator_argv(port, *extra, name=name, peer=peer), input=data,
                   timeout=timeout, env=env)

    def close(self):
        for p in self.procs:
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def kdc(realm, *args, timeout=60, env=None):
    """A kdc command on realm's database."""
    return run([exe("kdc"), *args, *realm.dbargs], timeout=timeout, env=env)


def run(argv, input=None, timeout=30, check=False, env=None, cwd=None):
    p = subprocess.run(valgrind_wrap(argv), input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env, cwd=cwd)
    r = Result(p.returncode, p.stdout.decode("utf-8", "replace"),
               p.stderr.decode("utf-8", "replace"))
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} failed: {r}")
    return r
