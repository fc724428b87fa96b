"""The KDC database a test runs on: a SQLite file (the default) or, with
KD3_TEST_DB=postgresql in the environment, a fresh database on a PostgreSQL server
this process starts on loopback (tests/support/pgcluster.py) and stops at exit.

The same tests run on both (tests/CMakeLists.txt registers the suites twice). A
test that reads the SQLite file itself is marked with sqlite_only: on PostgreSQL it
is reported as skipped, with the reason, and its SQLite run stands.
"""
import atexit
import itertools
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

BACKEND = os.environ.get("KD3_TEST_DB", "sqlite")
if BACKEND not in ("sqlite", "postgresql"):
    raise RuntimeError(f"KD3_TEST_DB={BACKEND!r}: expected sqlite or postgresql")
POSTGRES = BACKEND == "postgresql"

sqlite_only = unittest.skipIf(POSTGRES, "reads or writes the SQLite file itself")

ROLE = "kd3"


class _Server:
    """One PostgreSQL primary for the whole test process, a role that may create
    databases, and a passfile the kdc processes find through PGPASSFILE."""

    cluster = None
    primary = None
    counter = itertools.count(1)

    @classmethod
    def get(cls):
        if cls.cluster is None:
            import pgcluster
            cls.cluster = pgcluster.PgCluster()
            atexit.register(cls.cluster.close)
            cls.primary = cls.cluster.start_primary()
            password = os.urandom(12).hex()
            cls.cluster.create_role(ROLE, password)
            os.environ["PGPASSFILE"] = cls.cluster.passfile(
                [("*", "*", ROLE, password)])
        return cls

    @classmethod
    def new_database(cls):
        name = f"kd3_{os.getpid()}_{next(cls.counter)}"
        cls.cluster.create_database(name, ROLE)
        return name


class TestDb:
    """Where a realm lives: db (a path or a URI, for --db), stash (a path), and args
    (the options every kdc command of that realm takes)."""

    def __init__(self, folder, name="kd3.db"):
        self.folder = folder
        if POSTGRES:
            server = _Server.get()
            self.dbname = server.new_database()
            self.db = server.primary.uri(ROLE, self.dbname)
            self.stash = os.path.join(folder, name + ".stash")
            self.args = ["--db", self.db, "--stash", self.stash]
        else:
            self.dbname = None
            self.db = os.path.join(folder, name)
            self.stash = self.db + ".stash"
            self.args = ["--db", self.db]

    def state(self):
        """Every row of the realm (PostgreSQL) or the file's bytes (SQLite): equal
        before and after a command that must change nothing."""
        if not POSTGRES:
            if not os.path.exists(self.db):
                return None
            with open(self.db, "rb") as f:
                return f.read()
        out = []
        for t in ("kd3_schema", "principals", "keys", "realm", "unlocks", "last_used",
                  "auth_failures"):
            rows = _Server.cluster.sql(
                _Server.primary,
                f"SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM {t} x",
                db=self.dbname)
            out += [t, rows]
        return "\n".join(out)


    def holds(self, raw):
        """Whether bytes raw are stored anywhere as they are (a key not sealed)."""
        if not POSTGRES:
            return raw in self.state()
        return raw.hex() in self.state()  # bytea reads as \x and hex digits

    def count(self, table):
        """The rows of table, read by the database itself, not through kdc."""
        if not POSTGRES:
            import sqlite3
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as c:
                return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return int(_Server.cluster.sql(_Server.primary, f"SELECT count(*) FROM {table}",
                                       db=self.dbname))


def server():
    """The PostgreSQL cluster and primary of this process (KD3_TEST_DB=postgresql)."""
    return _Server.get()
