"""Real PostgreSQL servers for tests, on loopback, in a temporary folder.

A primary (initdb, pg_ctl) and streaming hot standbys (pg_basebackup -R), each on a
free 127.0.0.1 port with its Unix socket in its own folder. PostgreSQL refuses to run
as root, so under root (as in CI) the servers run as the unprivileged system user
kd3pg; the tests' own programs keep running as the caller and reach the servers over
TCP with scram-sha-256 and a passfile (PgCluster.passfile).

Every command has a timeout and every wait a deadline; failures raise RuntimeError
with the tail of the node's log. close() (also on leaving a with block, at exit, and,
through a watchdog process, when the test process is killed outright) stops every
server and removes the folder.

    with PgCluster() as c:
        primary = c.start_primary()
        c.create_role("kd3", password)
        c.create_database("kd3", "kd3")
        os.environ["PGPASSFILE"] = c.passfile([(primary, "kd3", "kd3", password)])
        standby = c.start_standby(primary)
        c.wait_replayed(standby)
"""
import atexit
import os
import pwd
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

PG_BIN = "/usr/lib/postgresql/15/bin"
# Version-specific psql, not Debian's /usr/bin/psql wrapper, which picks a version by
# looking at the system's clusters.
PSQL = os.path.join(PG_BIN, "psql")
SERVER_USER = "kd3pg"          # who the servers run as when the tests run as root
SUPERUSER = "postgres"
REPL_ROLE = "kd3repl"          # made by start_primary, used by start_standby
HOST = "127.0.0.1"
CMD_TIMEOUT = 120              # initdb, pg_basebackup: seconds
PG_CTL_WAIT = 60               # pg_ctl -t
SQL_TIMEOUT = 30
# Commands run as the server user get this environment and nothing of the caller's:
# no PG* variables aimed at the tests' servers, no LD_PRELOAD or ASAN_OPTIONS of a
# sanitizer run, no PATH entries under /root the server user cannot read.
SAFE_PATH = f"{PG_BIN}:/usr/sbin:/usr/bin:/sbin:/bin"
SUN_PATH_MAX = 107             # sockaddr_un.sun_path on Linux, less the NUL
# By path: a CI job's PATH may lack the sbin folders.
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
USERADD = shutil.which("useradd") or "/usr/sbin/useradd"

# Shared by every node; the node's own port and socket folder follow (_write_conf).
COMMON_CONF = """\
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 5
wal_keep_size = 128MB
hot_standby = on
fsync = off
synchronous_commit = off
# pg_basebackup wants full page writes; keep them.
full_page_writes = on
# Commits are asynchronous: flush WAL (and so replicate) within 10 ms, not 200.
wal_writer_delay = 10ms
shared_buffers = 32MB
password_encryption = scram-sha-256
logging_collector = off
# Dynamic shared memory in files under the data folder, not /dev/shm: a server
# killed with SIGKILL would leave its /dev/shm/PostgreSQL.* segments behind forever.
dynamic_shared_memory_type = mmap
"""

HBA_CONF = """\
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
"""


def _free_port():
    """A TCP port nobody listens on at 127.0.0.1 just now (a race; _start retries)."""
    for _ in range(20):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port != 5432:  # the system's default cluster, even if it is not up
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def _ident(name):
    return '"' + name.replace('"', '""') + '"'


def _literal(text):
    return "'" + text.replace("'", "''") + "'"


def _pgpass_field(text):
    return str(text).replace("\\", "\\\\").replace(":", "\\:")


# ---- processes, by /proc (shared with the watchdog) --------------------------------------

def _stat(pid):
    """(state, ppid) of a process, or None when there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid):
    st = _stat(pid)
    # A zombie is dead: it only waits for a parent (maybe a PID 1 that never reaps).
    return st is not None and st[0] not in ("Z", "X")


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(entry)
            if st and st[1] == pid:
                kids.append(int(entry))
    return kids


def _pidfile(data):
    try:
        with open(os.path.join(data, "postmaster.pid")) as f:
            return f.read().splitlines()
    except OSError:
        return []


def _postmaster(data):
    """The pid of the live postmaster of data folder data, or None. postmaster.pid
    outlives a SIGKILL, so the pid is trusted only if that process is a postgres
    started on this very folder (pid reuse)."""
    lines = _pidfile(data)
    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    if data not in argv or not _alive(pid):
        return None
    return pid


def _kill_postmaster(data, timeout=10):
    """SIGKILL the postmaster of data and all its backends at once, as a machine that
    dies would; True once none is left. Backends must go too: one left alone would
    still commit on a connection it holds. The postmaster is stopped first so that it
    forks no backend we would miss."""
    pid = _postmaster(data)
    if pid is None:
        return True
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        pass
    victims = [pid, *_children(pid)]
    for v in victims:
        try:
            os.kill(v, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while True:
        victims = [v for v in victims if _alive(v)]
        if not victims or time.monotonic() > deadline:
            return not victims
        time.sleep(0.02)


def _remove_shm(data):
    """Remove the System V segment a killed postmaster leaves (PostgreSQL removes it
    itself on any shutdown but SIGKILL; leaked ones pile up until the machine boots).
    Only the one this folder's postmaster.pid names, and only once nobody uses it."""
    lines = _pidfile(data)
    try:
        key, shmid = (int(x) for x in lines[6].split())
    except (IndexError, ValueError):
        return
    try:
        with open("/proc/sysvipc/shm") as f:
            rows = [r.split() for r in f.read().splitlines()[1:]]
    except OSError:
        return
    for r in rows:
        # key shmid perms size cpid lpid nattch ...
        if len(r) > 6 and r[1] == str(shmid) and int(r[0]) == key and r[6] == "0":
            subprocess.run(["ipcrm", "-m", str(shmid)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10, check=False)


# ---- one server -----------------------------------------------------------------------------

class Node:
    """One server: its folder (socket, log, passfile), data folder, port."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.dir = os.path.join(cluster.dir, name)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.host = HOST
        self.port = _free_port()
        self.upstream = None  # the node a standby streams from

    def __repr__(self):
        return f"<Node {self.name} {self.host}:{self.port}>"

    def uri(self, user, db, password=None):
        """A libpq URI. Leave password out and give it in a passfile: a URI is an
        argument, and arguments are visible to every user in ps."""
        q = urllib.parse.quote
        auth = q(user, safe="")
        if password is not None:
            auth += ":" + q(password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{q(db, safe='')}"

    def pid(self):
        """The postmaster's pid (postmaster.pid), or None when the server is down."""
        return _postmaster(self.data)

    def log_tail(self, n=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError as e:
            return f"(no log: {e})"


# ---- the cluster ----------------------------------------------------------------------------

class PgCluster:
    """Servers in one folder; a context manager. See the module's docstring."""

    def __init__(self, workdir=None):
        self.root = os.geteuid() == 0
        self.superuser_password = secrets.token_hex(16)
        self.repl_password = secrets.token_hex(16)
        self.nodes = []
        self.primary = None  # where create_role and create_database go; moves on promote
        self._files = []
        self._closed = False
        # A child made with os.fork() inherits this object and its atexit hook; only
        # the process that made the servers may stop them.
        self._owner_pid = os.getpid()
        if self.root:
            self._ensure_server_user()
            pw = pwd.getpwnam(SERVER_USER)
            self._server_ids = (pw.pw_uid, pw.pw_gid)
        if workdir is None:
            # /tmp, not $TMPDIR: that may be a 0700 folder the server user cannot cross.
            self.dir = tempfile.mkdtemp(prefix="kd3-pg-", dir="/tmp")
            os.chmod(self.dir, 0o711)
            self._made = self.dir
        else:
            self.dir = os.path.abspath(workdir)
            self._made = self._make_dirs(self.dir)
        self._standbys = 0
        try:
            self._watchdog, self.watchdog_pid = self._start_watchdog()
        except Exception:
            if self._made:
                shutil.rmtree(self._made, ignore_errors=True)
            raise
        atexit.register(self._close_at_exit)

    # ---- running things as the server user ---------------------------------------------

    @staticmethod
    def _ensure_server_user():
        def exists():
            try:
                pwd.getpwnam(SERVER_USER)
                return True
            except KeyError:
                return False

        err = ""
        for _ in range(10):  # other test processes may be adding it meanwhile
            if exists():
                return
            r = subprocess.run([USERADD, "--system", "--no-create-home",
                                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                                SERVER_USER], capture_output=True, text=True,
                               timeout=CMD_TIMEOUT, check=False)
            err = r.stderr.strip()
            if r.returncode == 0 or exists():
                return
            time.sleep(0.2)  # "cannot lock /etc/passwd": another useradd holds it
        raise RuntimeError(f"useradd {SERVER_USER}: {err}")

    def _make_dirs(self, path):
        """Make path and its missing parents, mode 0711 so that the server user can
        pass through; the topmost folder made (close() removes it), or None."""
        missing = []
        p = path
        while not os.path.exists(p):
            missing.append(p)
            p = os.path.dirname(p)
        for p in reversed(missing):
            os.mkdir(p)
            os.chmod(p, 0o711)  # mkdir's mode is cut by the umask
        return missing[-1] if missing else None

    def _server_argv(self, argv):
        # runuser (util-linux) rather than su: no password, no login shell (kd3pg has
        # nologin), and it execs argv itself.
        return [RUNUSER, "-u", SERVER_USER, "--", *argv] if self.root else list(argv)

    def _own(self, path):
        if self.root:
            os.chown(path, *self._server_ids)

    def _run(self, argv, node=None, env=None, timeout=CMD_TIMEOUT, input=None):
        """Run argv as the server user; its stdout. The command gets its own process
        group so that a timeout kills it whole (runuser forks: killing runuser alone
        would leave the command running)."""
        what = " ".join(argv)
        argv = self._server_argv(argv)
        e = {"PATH": SAFE_PATH, "LC_ALL": "C", "LANG": "C", **(env or {})}
        try:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None
                                 else subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=e, cwd="/",
                                 start_new_session=True)
        except OSError as err:
            raise RuntimeError(f"{what}: {err}") from None
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            p.kill()
            p.wait(timeout=5)
            raise RuntimeError(f"{what}: no answer in {timeout} s{self._tail(node)}") from None
        if p.returncode != 0:
            raise RuntimeError(f"{what}: exit {p.returncode}: {err.strip()}{self._tail(node)}")
        return out

    @staticmethod
    def _tail(node):
        return f"\n--- {node.name} log ({node.log}):\n{node.log_tail()}" if node else ""

    def _write(self, path, text, mode=0o600):
        """A file for the server user (root writes it, so hand it over)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(path, mode)  # an existing file keeps its old mode otherwise
        self._own(path)

    # ---- the watchdog ----------------------------------------------------------------------

    def _start_watchdog(self):
        """A process that cleans up if we die without close() (SIGKILL, SIGTERM, which
        skips atexit, a ctest timeout). It reads our folder and nodes on its stdin; end
        of file without "done" means we are gone. It is no descendant of ours (the
        first process forks it and exits) and in a session of its own: ctest, on a
        timeout, kills the test's whole tree, and the watchdog must outlive it.
        Returns the pipe to it and its pid."""
        w = subprocess.Popen([sys.executable, "-B", os.path.abspath(__file__), "--watchdog"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, cwd="/", start_new_session=True,
                             text=True)
        ready, _, _ = select.select([w.stdout], [], [], 30)
        line = w.stdout.readline() if ready else ""
        w.stdout.close()
        try:
            w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait(timeout=5)
        if not line.strip().isdigit():
            raise RuntimeError(f"pgcluster watchdog did not start (exit {w.returncode})")
        if self._made:
            self._tell(w, f"made {self._made}")
        return w, int(line)

    def _tell(self, w, line):
        try:
            w.stdin.write(line + "\n")
            w.stdin.flush()
        except (OSError, ValueError):
            pass  # a dead watchdog cannot help; close() still does the work

    # ---- nodes -------------------------------------------------------------------------------

    def _new_node(self, name):
        if self._closed:
            raise RuntimeError("cluster closed")
        if any(n.name == name for n in self.nodes):
            raise RuntimeError(f"node {name} exists")
        node = Node(self, name)
        if len(os.path.join(node.dir, ".s.PGSQL.65535.lock")) > SUN_PATH_MAX:
            raise RuntimeError(f"{node.dir}: too long for a Unix socket; a shorter workdir")
        os.mkdir(node.dir, 0o700)
        self._own(node.dir)
        self.nodes.append(node)
        self._tell(self._watchdog, f"node {node.dir}")
        if self.root:  # fail here, clearly, rather than in initdb
            try:
                self._run(["test", "-w", node.dir], timeout=10)
            except RuntimeError:
                raise RuntimeError(f"{SERVER_USER} cannot reach {node.dir}: each folder "
                                   "above it needs o+x") from None
        return node

    def _write_conf(self, node):
        # A file of our own, included last from postgresql.conf: pg_basebackup copies it
        # to a standby, which rewrites it with its own port; a port taken meanwhile is
        # replaced the same way. (postgresql.auto.conf is ALTER SYSTEM's.)
        self._write(os.path.join(node.data, "kd3_node.conf"),
                    COMMON_CONF + f"port = {node.port}\n"
                    f"unix_socket_directories = {_literal(node.dir)}\n")

    def _start(self, node):
        for attempt in range(5):
            self._write_conf(node)
            try:
                self._run([f"{PG_BIN}/pg_ctl", "-D", node.data, "-l", node.log, "-w",
                           "-t", str(PG_CTL_WAIT), "start"], node, timeout=PG_CTL_WAIT + 30)
                break
            except RuntimeError:
                # Between _free_port and the bind, another program may take the port.
                if attempt == 4 or "Address already in use" not in node.log_tail(10):
                    raise
                node.port = _free_port()
        self._wait_ready(node)

    def _wait_ready(self, node, timeout=60):
        """Until the server answers SQL on its socket and accepts TCP on 127.0.0.1."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sql(node, "SELECT 1", timeout=10)
                self._run([f"{PG_BIN}/pg_isready", "-q", "-h", HOST, "-p", str(node.port),
                           "-t", "5"], node, timeout=10)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _wait_sql(self, node, sql, want, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            got = self.sql(node, sql, timeout=10)
            if got == want:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name}: {what} after {timeout} s "
                                   f"({sql} is {got!r}){self._tail(node)}")
            time.sleep(0.05)

    def start_primary(self, name="primary"):
        """initdb and start a primary; it gets the replication role standbys use."""
        node = self._new_node(name)
        pwfile = os.path.join(node.dir, "superuser.pw")
        self._write(pwfile, self.superuser_password + "\n")
        try:
            # --no-sync: fsync is off anyway, and it saves seconds on a busy disk.
            self._run([f"{PG_BIN}/initdb", "-D", node.data, "-U", SUPERUSER,
                       "--pwfile", pwfile, "-A", "scram-sha-256", "--auth-local=trust",
                       "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                      node)
        finally:
            os.unlink(pwfile)
        with open(os.path.join(node.data, "postgresql.conf"), "a") as f:
            f.write("\ninclude 'kd3_node.conf'\n")
        self._write(os.path.join(node.data, "pg_hba.conf"), HBA_CONF)
        self._start(node)
        self.sql(node, f"CREATE ROLE {_ident(REPL_ROLE)} LOGIN REPLICATION "
                       f"PASSWORD {_literal(self.repl_password)}")
        if self.primary is None:
            self.primary = node
        return node

    def start_standby(self, primary, name=None):
        """A streaming hot standby of primary, started and accepting connections."""
        if name is None:
            self._standbys += 1
            name = f"standby{self._standbys}"
        node = self._new_node(name)
        node.upstream = primary
        # The server user's own passfile: pg_basebackup reads it now, and the standby's
        # walreceiver on every reconnection (-R puts it in primary_conninfo).
        passfile = os.path.join(node.dir, "repl.pgpass")
        self._write(passfile, f"{HOST}:{primary.port}:*:{REPL_ROLE}:"
                              f"{_pgpass_field(self.repl_password)}\n")
        self._run([f"{PG_BIN}/pg_basebackup", "-h", HOST, "-p", str(primary.port),
                   "-U", REPL_ROLE, "-w", "-D", node.data, "-R", "-X", "stream",
                   "-c", "fast", "--no-sync"], primary, env={"PGPASSFILE": passfile})
        self._start(node)
        self._wait_sql(node, "SELECT pg_is_in_recovery()", "t", 30, "not a standby")
        return node

    def wait_replayed(self, standby, primary=None, timeout=10):
        """Until standby has replayed everything committed on primary (by default the
        node it streams from) before this call."""
        upstream = primary or standby.upstream or self.primary
        if self.sql(upstream, "SELECT pg_is_in_recovery()") == "t":
            lsn = self.sql(upstream, "SELECT pg_last_wal_replay_lsn()")
        else:
            # Commits are asynchronous (synchronous_commit = off): the caller's last one
            # may not be written yet, and pg_current_wal_lsn() not past it (seen: most
            # rows missing on the standby). A transaction that writes WAL and commits
            # synchronously flushes all the WAL before it; then the flush position is
            # past every earlier commit. (One that only takes an xid commits
            # asynchronously all the same.)
            lsn = self.sql(upstream, "SET synchronous_commit = on;\n"
                                     "SELECT pg_logical_emit_message(true, 'kd3', '');\n"
                                     "SELECT pg_current_wal_flush_lsn();").splitlines()[-1]
        self._wait_sql(standby, f"SELECT pg_last_wal_replay_lsn() >= {_literal(lsn)}::pg_lsn",
                       "t", timeout, f"not at {upstream.name}'s {lsn}")

    # ---- SQL --------------------------------------------------------------------------------

    def sql(self, node, sql, db="postgres", timeout=SQL_TIMEOUT):
        """Run sql as the superuser over node's Unix socket (the server user's psql);
        its output, unaligned, tuples only, stripped. Statements go on stdin, not in
        argv, where ps would show passwords."""
        out = self._run([PSQL, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                         "-h", node.dir, "-p", str(node.port), "-U", SUPERUSER, "-d", db],
                        node, timeout=timeout, input=sql)
        return out.strip()

    def create_role(self, name, password, superuser=False, replication=False, node=None):
        attrs = " SUPERUSER" if superuser else ""
        attrs += " REPLICATION" if replication else ""
        self.sql(node or self._writable(), f"CREATE ROLE {_ident(name)} LOGIN{attrs} "
                                           f"PASSWORD {_literal(password)}")

    def create_database(self, name, owner, node=None):
        self.sql(node or self._writable(),
                 f"CREATE DATABASE {_ident(name)} OWNER {_ident(owner)}")

    def _writable(self):
        if self.primary is None:
            raise RuntimeError("no primary: start_primary first")
        return self.primary

    def passfile(self, entries, path=None):
        """A libpq passfile for the caller's own programs (so the caller's, mode 0600);
        its path. entries: (node, db, user, password), node a Node or "*" (any port)."""
        if path is None:
            path = os.path.join(self.dir, f"pgpass.{len(self._files) + 1}")
        lines = []
        for node, db, user, password in entries:
            port = "*" if node == "*" else str(node.port)
            lines.append(":".join([HOST, port] + [_pgpass_field(x) for x in (db, user,
                                                                               password)]))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, 0o600)  # libpq ignores a passfile others can read
        self._files.append(path)
        self._tell(self._watchdog, f"file {path}")
        return path

    # ---- failures and stops ---------------------------------------------------------------

    def kill9(self, node):
        """The server dies as its machine would: SIGKILL to the postmaster and its
        backends at once. Then it is down (its stale postmaster.pid stays)."""
        if not _kill_postmaster(node.data):
            raise RuntimeError(f"{node.name}: processes left after SIGKILL")
        _remove_shm(node.data)

    def promote(self, node):
        """Promote a standby; it becomes the primary create_role and friends use."""
        self._run([f"{PG_BIN}/pg_ctl", "-D", node.data, "-w", "-t", str(PG_CTL_WAIT),
                   "promote"], node, timeout=PG_CTL_WAIT + 30)
        self._wait_sql(node, "SELECT pg_is_in_recovery()", "f", 30, "still in recovery")
        node.upstream = None
        self.primary = node

    def stop_node(self, node, mode="fast"):
        """pg_ctl stop -m mode; SIGKILL if that fails. Nothing if it is down."""
        if node.pid() is not None:
            try:
                self._run([f"{PG_BIN}/pg_ctl", "-D", node.data, "-m", mode, "-w", "-t",
                           "30", "stop"], node, timeout=45)
            except RuntimeError:
                pass  # what pg_ctl could not stop, SIGKILL does
        self.kill9(node)

    def close(self):
        """Stop every server and remove the folder. Raises RuntimeError if a server or
        a file could not be removed (the watchdog then tries once more)."""
        if self._closed or os.getpid() != self._owner_pid:
            return
        self._closed = True
        problems = []
        for node in self.nodes:
            try:
                self.stop_node(node, "immediate")
            except RuntimeError as e:
                problems.append(str(e))
        paths = [self._made] if self._made else [n.dir for n in self.nodes] + self._files
        for p in paths:
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            elif os.path.lexists(p):
                os.unlink(p)
            if os.path.lexists(p):
                problems.append(f"{p}: not removed")
        if not problems:
            self._tell(self._watchdog, "done")
        try:
            self._watchdog.stdin.close()  # the watchdog's cue: it ends, or cleans up
        except OSError:
            pass
        if problems:
            raise RuntimeError("PgCluster.close: " + "; ".join(problems))

    def _close_at_exit(self):
        try:
            self.close()
        except RuntimeError as e:
            print(e, file=sys.stderr)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except RuntimeError as e:
            if exc_type is None:
                raise
            print(e, file=sys.stderr)  # the test's own failure matters more


def _watchdog():
    """Run by PgCluster in its own process: wait for our parent's end of stdin; unless
    it said "done", kill the servers and remove what it made."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C for the tests is not for us
    made, nodes, files, done = None, [], [], False
    for line in sys.stdin:
        word, _, rest = line.rstrip("\n").partition(" ")
        if word == "made":
            made = rest
        elif word == "node":
            nodes.append(rest)
        elif word == "file":
            files.append(rest)
        elif word == "done":
            done = True
    if done:
        return
    for d in nodes:
        data = os.path.join(d, "data")
        _kill_postmaster(data)
        _remove_shm(data)
    for p in ([made] if made else nodes + files):
        if os.path.isdir(p):
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            os.unlink(p)


if __name__ == "__main__" and sys.argv[1:] == ["--watchdog"]:
    child = os.fork()
    if child:
        print(child, flush=True)
        os._exit(0)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the pipe the pid went through: let PgCluster see its end
    _watchdog()
