"""Self-test of pgcluster.py on real servers: a primary, a streaming standby, a client
over TCP with a passfile, kill -9 of the primary, promotion, and no server or file
left behind, whether the test ends well, by an exception, or by SIGKILL.

Run: /usr/bin/python3 -B tests/support/test_pgcluster_self.py   (exit 0, "N passed, 0 failed")
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pgcluster  # noqa: E402

PASSWORD = "s3cret:with\\odd'chars"  # a passfile field and an SQL literal to escape


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def client_psql(uri, passfile, sql, timeout=30):
    """psql as the current user, as the tests' KDCs connect: TCP, scram, a passfile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGPASSFILE=passfile, LC_ALL="C")
    return subprocess.run([pgcluster.PSQL, "-X", "-A", "-t", "-q", "-w", "-v",
                           "ON_ERROR_STOP=1", uri, "-c", sql], capture_output=True,
                          text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def ok_psql(*args, **kw):
    r = client_psql(*args, **kw)
    check(r.returncode == 0, f"psql failed: {r.stderr.strip()}")
    return r.stdout.strip()


def node_pids(node):
    pid = node.pid()
    return [pid, *pgcluster._children(pid)] if pid else []


def listeners(port):
    """The addresses listening on TCP port, from /proc/net/tcp{,6}."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for r in rows:
            local, state = r.split()[1], r.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                found.append(addr)
    return found


def shm_ids():
    with open("/proc/sysvipc/shm") as f:
        return {r.split()[1] for r in f.read().splitlines()[1:]}


def wait_gone(pids, path, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pgcluster._alive(p) for p in pids) and not os.path.exists(path):
            return True
        time.sleep(0.1)
    return False


# ---- the scenario: each step is one check, and needs the ones before it -----------------

class Scenario:
    def __init__(self):
        self.c = pgcluster.PgCluster()
        self.pids = set()

    def step_primary(self):
        c = self.c
        self.primary = p = c.start_primary()
        check(p.host == "127.0.0.1" and p.port != 5432, f"address {p.host}:{p.port}")
        check(p.pid() is not None, "no postmaster pid")
        check(p.dir.startswith(c.dir + "/") and c.dir.startswith("/tmp/"), p.dir)
        check(os.path.exists(p.log) and "ready to accept connections" in p.log_tail(),
              "log")
        addrs = listeners(p.port)
        check(addrs == ["0100007F"], f"listens on {addrs}, not 127.0.0.1 alone")
        check(c.sql(p, "SHOW wal_level") == "replica", "wal_level")
        check(c.sql(p, "SHOW fsync") == "off", "fsync")
        check(c.sql(p, "SHOW unix_socket_directories") == p.dir, "socket folder")
        if c.root:
            uid = pgcluster.pwd.getpwnam(pgcluster.SERVER_USER).pw_uid
            st = os.stat(p.data)
            check(st.st_uid == uid and st.st_mode & 0o777 == 0o700, "data folder owner/mode")
            check(os.stat(c.dir).st_mode & 0o777 == 0o711, "work folder mode")
            with open(f"/proc/{p.pid()}/status") as f:
                uids = next(ln for ln in f if ln.startswith("Uid:")).split()[1:]
            check(all(int(u) == uid for u in uids), f"postmaster runs as uids {uids}")

    def step_role_and_database(self):
        c, p = self.c, self.primary
        c.create_role("kd3", PASSWORD)
        c.create_database("kd3", "kd3")
        check(c.sql(p, "SELECT pg_get_userbyid(datdba) FROM pg_database "
                       "WHERE datname = 'kd3'") == "kd3", "database owner")

    def step_client_writes_over_tcp(self):
        c, p = self.c, self.primary
        self.pass_file = c.passfile([(p, "kd3", "kd3", PASSWORD)])
        st = os.stat(self.pass_file)
        check(st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o600, "passfile owner/mode")
        uri = f"postgresql://kd3@127.0.0.1:{p.port}/kd3"
        check(p.uri("kd3", "kd3") == uri, p.uri("kd3", "kd3"))
        ok_psql(uri, self.pass_file, "CREATE TABLE t (id int PRIMARY KEY, v text); "
                                     "INSERT INTO t VALUES (1, 'one')")
        check(ok_psql(uri, self.pass_file, "SELECT current_user, v FROM t") == "kd3|one",
              "row read back")
        check(c.sql(p, "SELECT v FROM t", db="kd3") == "one", "row seen by the superuser")

    def step_wrong_password_refused(self):
        c, p = self.c, self.primary
        wrong = c.passfile([(p, "kd3", "kd3", "not-the-password")])
        r = client_psql(p.uri("kd3", "kd3"), wrong, "SELECT 1")
        check(r.returncode != 0 and "password authentication failed" in r.stderr,
              f"wrong password: exit {r.returncode}: {r.stderr.strip()}")
        r = client_psql(p.uri("kd3", "kd3"), "/dev/null", "SELECT 1")
        check(r.returncode != 0 and "no password supplied" in r.stderr,
              f"no password: exit {r.returncode}: {r.stderr.strip()}")

    def step_standby(self):
        c = self.c
        self.standby = s = c.start_standby(self.primary)
        check(s.port != self.primary.port and s.pid() is not None, "standby address/pid")
        check(c.sql(s, "SELECT pg_is_in_recovery()") == "t", "standby in recovery")
        check(listeners(s.port) == ["0100007F"], "standby listens on 127.0.0.1 alone")
        repl = os.path.join(s.dir, "repl.pgpass")
        check(os.stat(repl).st_mode & 0o777 == 0o600, "replication passfile mode")
        self.pids.update(node_pids(self.primary) + node_pids(s))

    def step_replayed_row_on_standby(self):
        c, s = self.c, self.standby
        c.wait_replayed(s)
        anyport = c.passfile([("*", "kd3", "kd3", PASSWORD)])
        check(ok_psql(s.uri("kd3", "kd3"), anyport, "SELECT v FROM t WHERE id = 1") == "one",
              "row on the standby")
        check(c.sql(s, "SELECT status FROM pg_stat_wal_receiver") == "streaming",
              "streaming")

    def step_wait_replayed_has_no_race(self):
        # Commits are asynchronous: wait_replayed must not return before the commit
        # just made is on the standby. A slow walwriter leaves it unwritten for long
        # (comparing with pg_current_wal_lsn() alone missed most rows so).
        c, p, s = self.c, self.primary, self.standby
        c.sql(p, "ALTER SYSTEM SET wal_writer_delay = '1s'; SELECT pg_reload_conf()")
        try:
            for i in range(2, 32):
                c.sql(p, f"INSERT INTO t VALUES ({i}, 'x')", db="kd3")
                c.wait_replayed(s)
                got = c.sql(s, f"SELECT count(*) FROM t WHERE id = {i}", db="kd3")
                check(got == "1", f"row {i} not on the standby after wait_replayed")
            ok_psql(p.uri("kd3", "kd3"), self.pass_file, "INSERT INTO t VALUES (32, 'x')")
            c.wait_replayed(s)
            check(c.sql(s, "SELECT count(*) FROM t WHERE id = 32", db="kd3") == "1",
                  "a client's row not on the standby after wait_replayed")
        finally:
            c.sql(p, "ALTER SYSTEM RESET wal_writer_delay; SELECT pg_reload_conf()")

    def step_standby_refuses_writes(self):
        anyport = self.c.passfile([("*", "kd3", "kd3", PASSWORD)])
        r = client_psql(self.standby.uri("kd3", "kd3"), anyport, "INSERT INTO t VALUES (99, 'no')")
        check(r.returncode != 0 and "read-only transaction" in r.stderr,
              f"write on the standby: exit {r.returncode}: {r.stderr.strip()}")

    def step_errors_carry_the_log(self):
        try:
            self.c.sql(self.primary, "SELEC 1")
        except RuntimeError as e:
            check("syntax error" in str(e) and "primary log" in str(e), str(e))
        else:
            check(False, "bad SQL raised nothing")

    def step_kill9_primary(self):
        c, p = self.c, self.primary
        pids = node_pids(p)
        check(len(pids) > 3, f"postmaster and backends: {pids}")
        shmid = pgcluster._pidfile(p.data)[6].split()[1]
        before = shm_ids()
        c.kill9(p)
        check(p.pid() is None, "primary still up")
        check(not any(pgcluster._alive(x) for x in pids), "a primary process lives on")
        check(listeners(p.port) == [], "primary port still listening")
        check(shmid in before and shmid not in shm_ids(), "System V segment left behind")
        r = client_psql(p.uri("kd3", "kd3"), self.pass_file, "SELECT 1", timeout=10)
        check(r.returncode != 0, "connected to a killed primary")

    def step_promote(self):
        c, s = self.c, self.standby
        c.promote(s)
        check(c.sql(s, "SELECT pg_is_in_recovery()") == "f", "still in recovery")
        check(c.primary is s, "promoted node is not the cluster's primary")
        anyport = c.passfile([("*", "kd3", "kd3", PASSWORD)])
        ok_psql(s.uri("kd3", "kd3"), anyport, "INSERT INTO t VALUES (100, 'after')")
        check(ok_psql(s.uri("kd3", "kd3"), anyport, "SELECT count(*) FROM t") == "33",
              "rows on the promoted standby")
        c.create_role("later", "pw")  # goes to the new primary
        self.pids.update(node_pids(s))

    def step_close_leaves_nothing(self):
        c = self.c
        c.close()
        check(not os.path.exists(c.dir), f"{c.dir} left behind")
        live = [x for x in self.pids if pgcluster._alive(x)]
        check(not live, f"processes left: {live}")
        check(wait_gone([c.watchdog_pid], c.dir, timeout=5), "watchdog still running")
        c.close()  # twice is harmless


def test_exception_in_with_block():
    """A test failing midway: the with block still stops the server and cleans up."""
    pids, path = [], None
    try:
        with pgcluster.PgCluster() as c:
            path = c.dir
            n = c.start_primary()
            s = c.start_standby(n)
            pids = node_pids(n) + node_pids(s)
            raise KeyError("midway")
    except KeyError:
        pass
    check(pids and path, "nothing started")
    check(wait_gone(pids, path, timeout=1), "server or folder left after an exception")


def test_given_workdir():
    """A workdir of the caller's: made 0711 if missing, ours removed, theirs kept."""
    base = pgcluster.tempfile.mkdtemp(prefix="kd3-pgself-", dir="/tmp")
    os.chmod(base, 0o711)
    keep = os.path.join(base, "keep")
    open(keep, "w").close()
    try:
        work = os.path.join(base, "a", "b")
        with pgcluster.PgCluster(workdir=work) as c:
            n = c.start_primary()
            check(os.stat(os.path.join(base, "a")).st_mode & 0o777 == 0o711, "parent mode")
            c.stop_node(n)
            check(n.pid() is None, "stop_node left it running")
        check(not os.path.exists(os.path.join(base, "a")), "made folders left behind")
        check(os.path.exists(keep), "the caller's file removed")
        with pgcluster.PgCluster(workdir=base) as c:
            c.start_primary("p")
            pf = c.passfile([("*", "*", "x", "y")])
        check(os.listdir(base) == ["keep"], f"left in the caller's folder: {os.listdir(base)}")
        check(not os.path.exists(pf), "passfile left behind")
    finally:
        pgcluster.shutil.rmtree(base, ignore_errors=True)


def descendants(pid):
    kids = pgcluster._children(pid)
    return kids + [d for k in kids for d in descendants(k)]


def test_sigkill_of_the_test_process():
    """A test process killed outright, as ctest does on a timeout (SIGKILL to it and
    all its descendants; no atexit): the watchdog, no descendant, cleans up."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {HERE!r})
        import pgcluster
        c = pgcluster.PgCluster()
        p = c.start_primary()
        c.start_standby(p)
        pids = [n.pid() for n in c.nodes]
        pids += [k for pid in pids for k in pgcluster._children(pid)]
        print(c.dir, c.watchdog_pid, *pids, flush=True)
        time.sleep(120)
    """)
    child = subprocess.Popen([sys.executable, "-B", "-c", code], stdout=subprocess.PIPE,
                             text=True)
    try:
        ready, _, _ = pgcluster.select.select([child.stdout], [], [], 60)
        words = child.stdout.readline().split() if ready else []
        check(len(words) > 3, f"child said {words}")
        path, watchdog, pids = words[0], int(words[1]), [int(x) for x in words[2:]]
        tree = [child.pid, *descendants(child.pid)]
        check(watchdog not in tree, "the watchdog is a descendant of the test")
        for pid in tree:
            os.kill(pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
        child.stdout.close()
    check(path.startswith("/tmp/kd3-pg-"), path)
    check(wait_gone(pids + [watchdog], path), f"server or {path} left after SIGKILL")


def main():
    start = time.monotonic()
    passed = failed = 0

    def report(name, err=None, t0=None):
        nonlocal passed, failed
        if err is None:
            passed += 1
            print(f"ok   {name} ({time.monotonic() - t0:.2f} s)", flush=True)
        else:
            failed += 1
            print(f"FAIL {name}: {err}", flush=True)

    sc = Scenario()
    steps = [m for m in Scenario.__dict__ if m.startswith("step_")]
    broken = None
    try:
        for name in steps:
            if broken:
                report(name, f"not run: {broken} failed")
                continue
            t0 = time.monotonic()
            try:
                getattr(sc, name)()
                report(name, t0=t0)
            except Exception as e:  # noqa: BLE001 - each failure is reported, then on
                report(name, f"{e}\n{traceback.format_exc()}" if not isinstance(e, Failed)
                       else e)
                broken = name
    finally:
        sc.c.close()
    for test in (test_exception_in_with_block, test_given_workdir,
                 test_sigkill_of_the_test_process):
        t0 = time.monotonic()
        try:
            test()
            report(test.__name__, t0=t0)
        except Exception as e:  # noqa: BLE001
            report(test.__name__, f"{e}\n{traceback.format_exc()}")
    print(f"total {time.monotonic() - start:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
