"""Real PostgreSQL servers for tests, on loopback, in a temporary folder.

A primary (initdb, pg_ctl) and streaming hot standbys (pg_basebackup -R), each on a
free 127.0.0.1 port with its socket in its own folder. Run as root (as CI is), the
servers run as the unprivileged system user kd3pg, which PostgreSQL requires; the
tests' own programs keep running as the caller and reach the servers over TCP with
scram-sha-256 and a passfile. Every command has a timeout, every wait a deadline, and
close() (also at exit) stops every server and removes the folder.
"""
import atexit
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
SERVER_USER = "kd3pg"
SUPERUSER = "postgres"
REPL_ROLE = "kd3repl"
CMD_TIMEOUT = 120


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One server: its folder, port, log."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.dir = os.path.join(cluster.dir, name)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.running = False

    def uri(self, user, db):
        return f"postgresql://{user}@{self.host}:{self.port}/{db}"

    def pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def log_tail(self, n=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"


class PgCluster:
    def __init__(self, workdir=None):
        self.root = os.geteuid() == 0
        self.dir = workdir or tempfile.mkdtemp(prefix="kd3-pg-")
        os.chmod(self.dir, 0o711)  # the server user passes through to its folders
        self.nodes = []
        self.superpass = secrets.token_hex(16)
        self.replpass = secrets.token_hex(16)
        self.closed = False
        if self.root:
            self._ensure_user()
        atexit.register(self.close)

    # ---- running things as the server user ----------------------------------------

    def _ensure_user(self):
        try:
            pwd.getpwnam(SERVER_USER)
            return
        except KeyError:
            pass
        r = subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", SERVER_USER],
                           capture_output=True, text=True, timeout=CMD_TIMEOUT)
        try:  # another test process may have made it meanwhile
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise RuntimeError(f"useradd {SERVER_USER}: {r.stderr.strip()}")

    def _as_server(self, argv):
        return ["runuser", "-u", SERVER_USER, "--", *argv] if self.root else list(argv)

    def _own(self, path):
        if self.root:
            pw = pwd.getpwnam(SERVER_USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _run(self, argv, node=None, env=None, timeout=CMD_TIMEOUT, input=None):
        e = dict(os.environ, LC_ALL="C")
        e.pop("PGPASSFILE", None)  # the tests' passfile is not the server user's to read
        e.update(env or {})
        r = subprocess.run(self._as_server(argv), capture_output=True, text=True, env=e,
                           timeout=timeout, input=input, cwd="/")
        if r.returncode != 0:
            tail = f"\n--- {node.name} log:\n{node.log_tail()}" if node else ""
            raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}{tail}")
        return r.stdout

    def _private_file(self, path, text):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self._own(path)

    # ---- nodes ----------------------------------------------------------------------

    def _new_node(self, name):
        node = Node(self, name)
        os.mkdir(node.dir, 0o700)
        self._own(node.dir)
        self.nodes.append(node)
        return node

    def _settings(self, node):
        return (f"listen_addresses = '127.0.0.1'\nport = {node.port}\n"
                f"unix_socket_directories = '{node.dir}'\n"
                "wal_level = replica\nmax_wal_senders = 8\nhot_standby = on\n"
                "fsync = off\nsynchronous_commit = off\nshared_buffers = 32MB\n"
                "max_connections = 100\nwal_keep_size = 256MB\n")

    def _start(self, node):
        self._run([f"{PG_BIN}/pg_ctl", "-D", node.data, "-l", node.log, "-w", "-t", "60",
                   "start"], node)
        node.running = True
        self._wait_ready(node)

    def _wait_ready(self, node, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sql(node, "SELECT 1")
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def start_primary(self, name="primary"):
        node = self._new_node(name)
        pwfile = os.path.join(node.dir, "superpass")
        self._private_file(pwfile, self.superpass + "\n")
        self._run([f"{PG_BIN}/initdb", "-D", node.data, "-U", SUPERUSER, "--pwfile", pwfile,
                   "-A", "scram-sha-256", "--auth-local=trust", "-E", "UTF8",
                   "--locale=C"], node)
        with open(os.path.join(node.data, "postgresql.conf"), "a") as f:
            f.write(self._settings(node))
        with open(os.path.join(node.data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\n"
                    "host all all 127.0.0.1/32 scram-sha-256\n"
                    "host replication all 127.0.0.1/32 scram-sha-256\n")
        self._start(node)
        self.sql(node, f"CREATE ROLE {REPL_ROLE} LOGIN REPLICATION PASSWORD '{self.replpass}'")
        return node

    def start_standby(self, primary, name=None):
        node = self._new_node(name or f"standby{len(self.nodes)}")
        passfile = os.path.join(node.dir, "replpass")
        self._private_file(passfile,
                           f"127.0.0.1:{primary.port}:*:{REPL_ROLE}:{self.replpass}\n")
        self._run([f"{PG_BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port),
                   "-U", REPL_ROLE, "-D", node.data, "-R", "-X", "stream", "-c", "fast"],
                  node, env={"PGPASSFILE": passfile})
        # The copy carries the primary's settings: this one's own port and socket.
        with open(os.path.join(node.data, "postgresql.auto.conf"), "a") as f:
            f.write(f"port = {node.port}\nunix_socket_directories = '{node.dir}'\n")
            f.write(f"primary_conninfo = 'host=127.0.0.1 port={primary.port} "
                    f"user={REPL_ROLE} passfile={passfile}'\n")
        self._start(node)
        deadline = time.monotonic() + 30
        while self.sql(node, "SELECT pg_is_in_recovery()") != "t":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name}: not a standby\n{node.log_tail()}")
            time.sleep(0.1)
        return node

    def wait_replayed(self, standby, primary=None, timeout=10):
        primary = primary or self.nodes[0]
        lsn = self.sql(primary, "SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout
        while True:
            behind = self.sql(standby, f"SELECT pg_last_wal_replay_lsn() < '{lsn}'::pg_lsn")
            if behind == "f":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{standby.name}: not at {lsn} after {timeout}s")
            time.sleep(0.05)

    # ---- SQL ----------------------------------------------------------------------------

    def sql(self, node, sql, db="postgres", timeout=30):
        """Runs sql as the superuser over the node's socket; the output, stripped."""
        out = self._run(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", node.dir,
                         "-p", str(node.port), "-U", SUPERUSER, "-d", db, "-c", sql],
                        node, timeout=timeout)
        return out.strip()

    def create_role(self, name, password, superuser=False, replication=False):
        extra = (" SUPERUSER" if superuser else "") + (" REPLICATION" if replication else "")
        self.sql(self.nodes[0], f"CREATE ROLE {name} LOGIN{extra} PASSWORD '{password}'")

    def create_database(self, name, owner):
        self.sql(self.nodes[0], f"CREATE DATABASE {name} OWNER {owner}")

    def passfile(self, entries, path=None):
        """A libpq passfile for the caller (mode 0600): (node or '*', db, user, password)."""
        path = path or os.path.join(self.dir, f"pgpass.{len(os.listdir(self.dir))}")
        lines = []
        for node, db, user, password in entries:
            port = "*" if node == "*" else str(node.port)
            lines.append(f"127.0.0.1:{port}:{db}:{user}:{password}\n")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(lines)
        return path

    # ---- failures -------------------------------------------------------------------------

    @staticmethod
    def _children(pid):
        kids = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
        return kids

    def kill9(self, node):
        """The server dies as its machine would: the postmaster and every backend at
        once (a backend left alone would still commit on a connection it holds)."""
        pid = node.pid()
        if pid:
            victims = [pid, *self._children(pid)]
            for v in victims:
                try:
                    os.kill(v, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while victims and time.monotonic() < deadline:
                victims = [v for v in victims if os.path.exists(f"/proc/{v}")
                           and not self._zombie(v)]
                time.sleep(0.05)
        node.running = False

    @staticmethod
    def _zombie(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    def promote(self, node):
        self._run([f"{PG_BIN}/pg_ctl", "-D", node.data, "-w", "-t", "60", "promote"], node)
        deadline = time.monotonic() + 30
        while self.sql(node, "SELECT pg_is_in_recovery()") != "f":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name}: still in recovery\n{node.log_tail()}")
            time.sleep(0.1)

    def stop_node(self, node, mode="fast"):
        if node.running:
            try:
                self._run([f"{PG_BIN}/pg_ctl", "-D", node.data, "-m", mode, "-w", "-t", "30",
                           "stop"], node, timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired):
                self.kill9(node)
        node.running = False

    def close(self):
        if self.closed:
            return
        self.closed = True
        for node in self.nodes:
            self.stop_node(node, "immediate")  # kills what pg_ctl cannot stop
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
