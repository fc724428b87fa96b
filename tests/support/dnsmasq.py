"""A real DNS server for tests: Debian's dnsmasq on a free 127.0.0.1 port, answering
only the records a test gives it (never the machine's resolv.conf or /etc/hosts).

Records are dnsmasq options, with or without the leading "--":

    with Dnsmasq() as dns:
        port = dns.start("host-record=kdc1.realm.test,127.0.0.1,::1",
                         "srv-host=_kd3._udp.realm.test,kdc1.realm.test,7088,10,5",
                         ttl=45)
        env = dict(os.environ, **dns.env())        # KD3_DNS_SERVER=127.0.0.1:PORT
        ...
        dns.restart("srv-host=_kd3._udp.realm.test,kdc2.realm.test,7089,10,5")
        dns.set_hosts([("127.0.0.9", "extra.realm.test")])   # SIGHUP, no restart

- Names under each of local_domains (default: "test", RFC 2606) are answered by
  dnsmasq alone: a name it does not know is NXDOMAIN (kd3: KD3_E_NOT_FOUND). Other
  names are REFUSED (no upstream servers).
- ttl is dnsmasq's --local-ttl: the TTL of every record it answers with.
- Command-line records are read once, at start: restart() stops dnsmasq and starts it
  again on the same port with new records (and a new ttl if given). Address records
  given with hosts= (or set_hosts) live in an --addn-hosts file, which dnsmasq rereads
  on SIGHUP: set_hosts() rewrites it, signals, and waits for dnsmasq to say it read it.
- As root, dnsmasq would drop to the user nobody: it gets --user=<the caller>, and
  runs as whoever runs the test (root or not; nothing here needs a privilege).

Every wait has a deadline; a failure raises RuntimeError with the tail of dnsmasq's
log. stop() (also on leaving a with block, and at exit) stops it and removes the
folder.
"""
import atexit
import os
import pwd
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

DNSMASQ = "/usr/sbin/dnsmasq"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0    # seconds until dnsmasq answers a query
STOP_TIMEOUT = 5.0
RELOAD_TIMEOUT = 10.0
PORT_TRIES = 20         # free ports tried when another process takes the one picked


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq serves both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((HOST, 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("dnsmasq: no free port")


def _query(name, qtype=1, qid=0x4b44):
    """A DNS query (RD set) for name, type qtype, class IN."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + \
        struct.pack(">HH", qtype, 1)


def _option(record):
    return record if record.startswith("--") else "--" + record


class Dnsmasq:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kd3-dnsmasq-")
        os.chmod(self.dir, 0o755)
        self.hosts_path = os.path.join(self.dir, "hosts")
        self.log_path = os.path.join(self.dir, "dnsmasq.log")
        self.proc = None
        self.port = None
        self.ttl = 60
        self.records = ()
        self.local_domains = ("test",)
        self._log = None
        atexit.register(self.close)

    # ---- starting and stopping ------------------------------------------------------

    def start(self, *records, ttl=60, hosts=(), local_domains=("test",), port=None):
        """Starts dnsmasq with records (dnsmasq options) on port, or a free one;
        returns the port. hosts: (address, name, ...) tuples for the --addn-hosts
        file."""
        if self.proc:
            raise RuntimeError("dnsmasq: already running")
        self.records = tuple(records)
        self.ttl = ttl
        self.local_domains = tuple(local_domains)
        self._write_hosts(hosts)
        if port is not None:
            self._start_on(port)
            return port
        last = None
        for _ in range(PORT_TRIES):
            try:
                self._start_on(free_port())
                return self.port
            except _PortTaken as e:
                last = e
        raise RuntimeError(f"dnsmasq: no port it could bind: {last}")

    def restart(self, *records, ttl=None, hosts=None):
        """Stops dnsmasq and starts it again on the same port with new records (and
        ttl, and hosts, when given)."""
        port = self.port
        if port is None:
            raise RuntimeError("dnsmasq: restart before start")
        self.stop()
        self.records = tuple(records)
        if ttl is not None:
            self.ttl = ttl
        if hosts is not None:
            self._write_hosts(hosts)
        # The port was ours a moment ago; a UDP port has no TIME_WAIT, and dnsmasq
        # sets SO_REUSEADDR on its TCP one. Another process may still take it.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self._start_on(port)
                return port
            except _PortTaken:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dnsmasq: port {port} taken by another process")
                time.sleep(0.1)

    def stop(self):
        """Stops dnsmasq (SIGTERM, then SIGKILL); the folder stays for a restart."""
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def close(self):
        """stop(), and the folder removed."""
        self.stop()
        if self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- what a test uses -----------------------------------------------------------

    @property
    def server(self):
        """KD3_DNS_SERVER's value for this server: "127.0.0.1:PORT"."""
        return f"{HOST}:{self.port}"

    def env(self):
        """The variables that point kd3 at this server, for a subprocess env."""
        return {"KD3_DNS_SERVER": self.server}

    def set_hosts(self, hosts):
        """Rewrites the --addn-hosts file ((address, name, ...) tuples) and has dnsmasq
        reread it (SIGHUP; it also empties its cache): returns once it has."""
        if not self.proc:
            raise RuntimeError("dnsmasq: not running")
        before = self.log().count(f"read {self.hosts_path}")
        self._write_hosts(hosts)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while self.log().count(f"read {self.hosts_path}") <= before:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("dnsmasq: hosts file not reread after SIGHUP\n" +
                                   self.log()[-2000:])
            time.sleep(0.02)

    def log(self):
        """dnsmasq's log so far (--log-facility=-: its stderr)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # ---- inside -------------------------------------------------------------------

    def _write_hosts(self, hosts):
        tmp = self.hosts_path + ".new"
        with open(tmp, "w", encoding="ascii") as f:
            for entry in hosts:
                f.write(" ".join(entry) + "\n")
        os.replace(tmp, self.hosts_path)

    def _argv(self, port):
        user = pwd.getpwuid(os.getuid()).pw_name
        argv = [DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts", f"--port={port}",
                f"--listen-address={HOST}", "--bind-interfaces", "--conf-file=/dev/null",
                f"--pid-file={os.path.join(self.dir, 'dnsmasq.pid')}",
                f"--local-ttl={self.ttl}", f"--user={user}", "--log-facility=-",
                f"--addn-hosts={self.hosts_path}"]
        argv += [f"--local=/{d}/" for d in self.local_domains]
        return argv + [_option(r) for r in self.records]

    def _start_on(self, port):
        if not os.path.exists(DNSMASQ):
            raise RuntimeError(f"dnsmasq: {DNSMASQ} missing (Debian: apt install dnsmasq-base)")
        self._log = open(self.log_path, "a", encoding="utf-8")
        self._log.write(f"---- start on port {port}\n")
        self._log.flush()
        self.proc = subprocess.Popen(self._argv(port), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        self.port = port
        try:
            self._wait_answering()
        except Exception:
            self.stop()
            raise

    def _wait_answering(self):
        """Until dnsmasq answers a query over UDP (any answer: it is serving)."""
        deadline = time.monotonic() + START_TIMEOUT
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    text = self.log()
                    if "Address already in use" in text.split("---- start")[-1]:
                        raise _PortTaken(f"port {self.port}")
                    raise RuntimeError(f"dnsmasq exited ({self.proc.returncode}):\n" +
                                       text[-2000:])
                s.sendto(_query("kd3-dnsmasq-ready.test"), (HOST, self.port))
                ready, _, _ = select.select([s], [], [], 0.1)
                if ready:
                    try:
                        s.recv(4096)
                        return
                    except ConnectionRefusedError:  # ICMP: not bound yet
                        pass
        raise RuntimeError(f"dnsmasq: no answer on port {self.port} within "
                           f"{START_TIMEOUT} s:\n" + self.log()[-2000:])


class _PortTaken(RuntimeError):
    pass
