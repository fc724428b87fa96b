"""Support for the resource tests: servers whose log goes to a file, descriptor counts,
the descriptor limit, and bounded waits.

A KDC under a flood logs a line per datagram: written to a pipe that this process
reads, the log would compete with the client being measured (and could block the KDC
when the reader falls behind), so these servers log to a file.
"""
import os
import re
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

import kd3e2e as k  # noqa: E402


def wait_until(cond, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def _nofile(limit):
    """A preexec_fn that gives the child RLIMIT_NOFILE = limit (None: inherit)."""
    if limit is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


class LoggedServer:
    """A kdc serve or responder started on a free port; stderr and stdout go to files
    in the realm's folder."""

    def __init__(self, realm, role, *extra, ready, nofile=None):
        for attempt in range(5):
            self.port = k.free_port()
            self.log_path = os.path.join(realm.dir, f"{role}-{self.port}.log")
            self.out_path = os.path.join(realm.dir, f"{role}-{self.port}.out")
            argv = self.argv(realm, role, self.port, extra)
            with open(self.log_path, "wb") as log, open(self.out_path, "wb") as out:
                self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=log, preexec_fn=_nofile(nofile))
            try:
                self.wait_for(ready)
                break
            except AssertionError:
                self.stop()
                if "Address already in use" not in self.text() or attempt == 4:
                    raise
        self.pid = self.p.pid

    @staticmethod
    def argv(realm, role, port, extra):
        if role == "kdc":
            return [k.exe("kdc"), "serve", *realm.dbargs, "--listen", f"127.0.0.1:{port}",
                    *extra]
        return [k.exe("responder"), "--listen", f"127.0.0.1:{port}", "--keyfile",
                realm.keyfile("bob"), "--kdc", f"127.0.0.1:{realm.kdc_port}", *extra]

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def out_lines(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()

    def count(self, pattern):
        return len(re.findall(pattern, self.text(), re.M))

    def wait_for(self, pattern, timeout=10.0):
        def seen():
            if re.search(pattern, self.text(), re.M):
                return True
            if self.p.poll() is not None:
                raise AssertionError(f"exited ({self.p.returncode}) before {pattern!r}:\n"
                                     + self.text()[-2000:])
            return False
        wait_until(seen, timeout, f"{pattern!r} in {self.log_path}")

    def fds(self):
        return len(os.listdir(f"/proc/{self.p.pid}/fd"))

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        return self.p.returncode


def raise_nofile(need):
    """Raises this process's descriptor limit (soft, up to hard) to at least need; the
    servers started afterwards inherit it. AssertionError when the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        raise AssertionError(f"RLIMIT_NOFILE hard limit {hard} < {need} descriptors needed "
                             "(raise it: ulimit -Hn)")
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def stats_ms(latencies_s):
    """p50, p99 and max of a list of seconds, in milliseconds."""
    s = sorted(latencies_s)

    def pct(p):
        return 1000.0 * s[min(len(s) - 1, max(0, int(round(p / 100.0 * len(s))) - 1))]
    return {"n": len(s), "p50": pct(50), "p99": pct(99), "max": 1000.0 * s[-1]}
