"""kdc administration end to end: the real `kdc` executable on a throwaway realm.

Every admin command with its success and its failures (one line on stderr, a non-zero
exit, the database and stash byte for byte unchanged); keys at rest (a wrong, missing
or readable stash, a corrupt or foreign database, a kd3 0.1 database and `kdc upgrade`);
rotation end to end (the old key file works during the grace period, stops after it,
and purge drops it); rekey-master killed between its two files; and 200 `kdc` processes
killed at random points in a loop of admin writes, each leaving a consistent database.
"""
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

import kd3db
import kd3e2e as k

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_HANDSHAKE = 0, 1, 2, 3


class Kdc:
    """A folder, the realm's database (a file in it, or a PostgreSQL database:
    kd3db.py) and the kdc commands run on it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kd3-admin-")
        self.store = kd3db.TestDb(self.dir)
        self.db, self.stash = self.store.db, self.store.stash
        self.stashes = {self.db: self.stash}

    def path(self, name):
        return os.path.join(self.dir, name)

    def other(self, name):
        """Another database, not created yet (or, on PostgreSQL, empty): where."""
        store = kd3db.TestDb(self.dir, name)
        self.stashes[store.db] = store.stash
        return store.db

    def run(self, *args, db=None, env=None, timeout=60, cwd=None):
        env = dict(os.environ, **(env or {}))
        db = db or self.db
        stash = []
        if kd3db.POSTGRES and "--stash" not in args and db in self.stashes:
            stash = ["--stash", self.stashes[db]]  # a URI has no path to put it beside
        return k.run([k.exe("kdc"), *args, "--db", db, *stash], timeout=timeout, env=env,
                     cwd=cwd)

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        if r.rc != 0:
            raise AssertionError(f"kdc {' '.join(args)}: {r}")
        return r

    def state(self):
        """The database and stash bytes (and whatever else is in the folder), and on
        PostgreSQL every row of the realm."""
        out = {}
        for name in sorted(os.listdir(self.dir)):
            with open(self.path(name), "rb") as f:
                out[name] = f.read()
        if kd3db.POSTGRES:
            out["postgresql"] = self.store.state()
        return out

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def staging_files(folder):
    """What kdc stages files under: .kd3-stage.XXXXXX, and before 0.2 NAME.tmp.XXXXXX."""
    return sorted(n for n in os.listdir(folder)
                  if n.startswith(".kd3-stage.") or ".tmp." in n)


def keyfile_keys(path):
    keys = {}
    with open(path) as f:
        for line in f:
            if line.startswith("key = "):
                kvno, hexkey = line[6:].strip().split(":")
                keys[int(kvno)] = hexkey
    return keys


def make_v2(path):
    """A kd3 0.1 database (schema 2, keys in the clear) with alice (kvnos 1, 2) and bob."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE principals (name TEXT PRIMARY KEY NOT NULL, enabled INTEGER NOT NULL
          DEFAULT 1 CHECK (enabled IN (0, 1)), created INTEGER NOT NULL);
        CREATE TABLE keys (name TEXT NOT NULL REFERENCES principals(name) ON DELETE CASCADE,
          kvno INTEGER NOT NULL CHECK (kvno BETWEEN 1 AND 4294967295), key BLOB NOT NULL
          CHECK (length(key) = 32), created INTEGER NOT NULL, PRIMARY KEY (name, kvno));
        CREATE TABLE realm (id INTEGER PRIMARY KEY CHECK (id = 1), secret BLOB NOT NULL
          CHECK (length(secret) = 32));
        PRAGMA user_version = 2;
    """)
    keys = {("alice", 1): os.urandom(32), ("alice", 2): os.urandom(32), ("bob", 1): os.urandom(32)}
    db.executemany("INSERT INTO principals VALUES (?, 1, 1700000000)", [("alice",), ("bob",)])
    db.executemany("INSERT INTO keys VALUES (?, ?, ?, 1700000000)",
                   [(n, v, key) for (n, v), key in keys.items()])
    db.execute("INSERT INTO realm VALUES (1, ?)", (os.urandom(32),))
    db.commit()
    db.close()
    return keys


class Commands(unittest.TestCase):
    """Each admin command: success, and each failure with one line and nothing changed."""

    def setUp(self):
        self.k = Kdc()
        self.addCleanup(self.k.close)

    def realm(self):
        self.k.ok("init")
        self.k.ok("add", "alice", "--keyfile", self.k.path("alice.key"))
        self.k.ok("add", "bob", "--keyfile", self.k.path("bob.key"))

    def fails(self, rc, text, *args, **kw):
        before = self.k.state()
        r = self.k.run(*args, **kw)
        self.assertEqual(r.rc, rc, r)
        self.assertIn(text, r.stderr, r)
        self.assertEqual(len(r.stderr.splitlines()), 1, r)
        self.assertTrue(r.stderr.startswith("kdc: error: "), r)
        self.assertEqual(r.stdout, "", r)
        self.assertEqual(self.k.state(), before, "the database folder changed")
        return r

    def test_init(self):
        r = self.k.ok("init")
        self.assertRegex(r.stdout, r"created database \S+, master key [0-9a-f]{16} in "
                                   r"stash .*kd3.db.stash")
        for f in (self.k.db, self.k.stash) if not kd3db.POSTGRES else (self.k.stash,):
            self.assertEqual(os.stat(f).st_mode & 0o777, 0o600)
        self.fails(EXIT_RUNTIME, "refusing to overwrite it", "init")
        # A stash already there (another realm's, or left by a crash): refused, kept.
        other = self.k.other("other.db")
        self.fails(EXIT_RUNTIME, "kd3.db.stash: already exists", "init", "--stash",
                   self.k.stash, db=other)
        self.assertIn("create it with 'kdc init'", self.k.run("list", db=other).stderr)
        if not kd3db.POSTGRES:
            self.fails(EXIT_RUNTIME, "No such file or directory", "init",
                       db=self.k.path("missing/kd3.db"))

    def test_add(self):
        self.realm()
        self.assertEqual(list(keyfile_keys(self.k.path("alice.key"))), [1])
        self.fails(EXIT_RUNTIME, "principal 'alice' already exists", "add", "alice",
                   "--keyfile", self.k.path("again.key"))
        self.fails(EXIT_USAGE, "invalid principal name", "add", "no spaces")
        self.fails(EXIT_USAGE, "expected NAME", "add")
        self.fails(EXIT_RUNTIME, "create it with 'kdc init'", "add", "x",
                   db=self.k.other("none.db"))

    def test_list(self):
        self.realm()
        self.k.ok("rotate", "alice", "--keyfile", self.k.path("alice.key"))
        self.k.ok("disable", "bob")
        out = self.k.ok("list").stdout.splitlines()
        self.assertRegex(out[0], r"^NAME +KVNOS +STATE +CREATED +LAST USED$")
        self.assertRegex(out[1], r"^alice +1\(until 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ\),2 +enabled"
                                 r" +20\d\d-\S+ +never$")
        self.assertRegex(out[2], r"^bob +1 +disabled +20\d\d-\S+ +never$")
        for key in keyfile_keys(self.k.path("alice.key")).values():
            self.assertNotIn(key[:16], "\n".join(out))
        self.fails(EXIT_USAGE, "unexpected argument", "list", "alice")

    def test_export(self):
        self.realm()
        self.k.ok("rotate", "alice", "--keyfile", self.k.path("alice.key"))
        self.k.ok("export", "alice", "--keyfile", self.k.path("e.key"))
        self.assertEqual(keyfile_keys(self.k.path("e.key")),
                         keyfile_keys(self.k.path("alice.key")))
        self.k.ok("export", "alice", "--kvno", "2", "--keyfile", self.k.path("e2.key"))
        self.assertEqual(list(keyfile_keys(self.k.path("e2.key"))), [2])
        self.fails(EXIT_RUNTIME, "e.key: already exists", "export", "alice", "--keyfile",
                   self.k.path("e.key"))
        self.fails(EXIT_RUNTIME, "no principal 'carol'", "export", "carol", "--keyfile",
                   self.k.path("c.key"))
        self.fails(EXIT_RUNTIME, "has no kvno 7", "export", "alice", "--kvno", "7",
                   "--keyfile", self.k.path("a7.key"))
        self.fails(EXIT_USAGE, "--kvno: 'x' is not a number", "export", "alice", "--kvno", "x")
        self.fails(EXIT_USAGE, "--kvno: '0' is not a number", "export", "alice", "--kvno", "0")
        self.k.ok("export", "alice", "--force", "--keyfile", self.k.path("e.key"))

    def test_rotate_purge_retire(self):
        self.realm()
        r = self.k.ok("rotate", "alice", "--keyfile", self.k.path("alice.key"),
                      "--grace-period-seconds", "0")
        self.assertIn("kvno 2", r.stdout)
        self.assertIn("older kvnos are no longer live", r.stdout)
        self.assertEqual(list(keyfile_keys(self.k.path("alice.key"))), [2])
        self.assertIn("1(expired),2", self.k.ok("list").stdout)
        self.fails(EXIT_RUNTIME, "no principal 'carol'", "rotate", "carol")
        self.fails(EXIT_USAGE, "grace-period-seconds", "rotate", "alice",
                   "--grace-period-seconds", "-1")
        self.fails(EXIT_RUNTIME, "no principal 'carol'", "purge", "carol")
        self.fails(EXIT_USAGE, "expected NAME or --all", "purge")
        self.assertIn("purged 1 expired key version of alice", self.k.ok("purge", "alice").stdout)
        self.assertIn("purged 0 expired key versions of every principal",
                      self.k.ok("purge", "--all").stdout)
        self.fails(EXIT_RUNTIME, "principal 'alice' has no kvno 1", "retire", "alice", "1")
        self.fails(EXIT_USAGE, "kvno 2 is the last key of 'alice'", "retire", "alice", "2")
        for i in range(7):
            self.k.ok("rotate", "bob", "--keyfile", self.k.path("bob.key"))
        self.fails(EXIT_RUNTIME, "has 8 key versions; drop expired ones with 'kdc purge bob'",
                   "rotate", "bob", "--keyfile", self.k.path("bob.key"))
        self.k.ok("retire", "bob", "1")

    def test_disable_enable_remove(self):
        self.realm()
        for cmd in ("disable", "enable", "remove"):
            self.assertIn(f"{cmd}d principal bob", self.k.ok(cmd, "bob").stdout)
            if cmd != "remove":
                continue
            for again in ("disable", "enable", "remove"):
                self.fails(EXIT_RUNTIME, "no principal 'bob'", again, "bob")

    def test_rekey_master(self):
        self.realm()
        before = keyfile_keys(self.k.path("alice.key"))
        with open(self.k.stash) as f:
            old_stash = f.read()
        r = self.k.ok("rekey-master")
        self.assertRegex(r.stdout, r"re-sealed 2 keys and the realm secret under master key "
                                   r"[0-9a-f]{16} \(was [0-9a-f]{16}\)")
        with open(self.k.stash) as f:
            self.assertNotEqual(f.read(), old_stash)
        self.k.ok("export", "alice", "--keyfile", self.k.path("after.key"))
        self.assertEqual(keyfile_keys(self.k.path("after.key")), before)
        with open(self.k.path("old.stash"), "w") as f:
            f.write(old_stash)
        os.chmod(self.k.path("old.stash"), 0o600)
        self.fails(EXIT_RUNTIME, "is not in the stash", "rekey-master", "--stash",
                   self.k.path("old.stash"))

    def test_dump_load(self):
        self.realm()
        self.k.ok("rotate", "alice", "--keyfile", self.k.path("alice.key"))
        dump = self.k.path("backup.json")
        r = self.k.ok("dump", dump)
        self.assertIn("dumped 2 principals and 3 keys", r.stdout)
        self.assertEqual(os.stat(dump).st_mode & 0o777, 0o600)
        with open(dump) as f:
            doc = json.load(f)
        self.assertEqual((doc["format"], doc["version"]), ("kd3-dump", 1))
        for key in keyfile_keys(self.k.path("alice.key")).values():
            self.assertNotIn(key, json.dumps(doc))
        self.fails(EXIT_RUNTIME, "backup.json: already exists", "dump", dump)
        restored = self.k.other("restored.db")
        self.fails(EXIT_RUNTIME, "restored.db.stash: no such stash file", "load", dump,
                   db=restored)
        self.k.ok("load", dump, "--stash", self.k.stash, db=restored)
        self.assertEqual(self.k.ok("list", "--stash", self.k.stash, db=restored).stdout,
                         self.k.ok("list").stdout)
        self.fails(EXIT_RUNTIME, "refusing to overwrite it", "load", dump, "--stash",
                   self.k.stash, db=restored)
        doc["principals"][1]["enabled"] = False
        with open(self.k.path("altered.json"), "w") as f:
            json.dump(doc, f)
        self.fails(EXIT_RUNTIME, "the dump's MAC does not verify", "load",
                   self.k.path("altered.json"), "--stash", self.k.stash,
                   db=self.k.other("r2.db"))
        self.fails(EXIT_RUNTIME, "not JSON", "load", self.k.stash, "--stash", self.k.stash,
                   db=self.k.other("r3.db"))

    @kd3db.sqlite_only
    def test_upgrade(self):
        keys = make_v2(self.k.db)
        for args in (("list",), ("add", "carol"), ("rekey-master",), ("serve",)):
            self.fails(EXIT_RUNTIME, "a kd3 0.1 database (schema 2, keys not sealed); convert "
                       "it with 'kdc upgrade --db", *args)
        r = self.k.ok("upgrade")
        self.assertIn("3 keys and the realm secret sealed", r.stdout)
        self.assertEqual(os.stat(self.k.stash).st_mode & 0o777, 0o600)
        self.k.ok("export", "alice", "--keyfile", self.k.path("alice.key"))
        self.assertEqual(keyfile_keys(self.k.path("alice.key")),
                         {1: keys[("alice", 1)].hex(), 2: keys[("alice", 2)].hex()})
        with open(self.k.db, "rb") as f:
            raw = f.read()
        for key in keys.values():
            self.assertNotIn(key, raw)
        self.fails(EXIT_RUNTIME, "schema version 3, not 2 (kd3 0.1): nothing to upgrade",
                   "upgrade")

    def test_bad_stash_and_database(self):
        self.realm()
        with open(self.k.stash) as f:
            good = f.read()
        os.chmod(self.k.stash, 0o644)
        for args in (("list",), ("add", "carol"), ("serve",), ("dump", self.k.path("d"))):
            self.fails(EXIT_RUNTIME, "stash file is readable by group or others (mode 0644)",
                       *args)
        os.chmod(self.k.stash, 0o600)
        os.rename(self.k.stash, self.k.path("moved"))
        self.fails(EXIT_RUNTIME, "kd3.db.stash: no such stash file; the database", "serve")
        os.symlink(self.k.path("moved"), self.k.stash)
        self.fails(EXIT_RUNTIME, "is a symbolic link; refusing to follow it", "list")
        os.unlink(self.k.stash)
        other = Kdc()
        self.addCleanup(other.close)
        other.ok("init")
        r = self.fails(EXIT_RUNTIME, "is not in the stash", "serve", "--stash", other.stash)
        self.assertIn(self.k.db, r.stderr)
        self.assertIn(other.stash, r.stderr)
        with open(self.k.stash, "w") as f:
            f.write(good.replace("master = ", "master = 0"))
        os.chmod(self.k.stash, 0o600)
        self.fails(EXIT_RUNTIME, "kd3.db.stash:3: expected 'master = ID:KEY'", "list")
        os.rename(self.k.path("moved"), self.k.stash)
        self.k.ok("list")

    @kd3db.sqlite_only
    def test_not_a_kd3_database(self):
        self.realm()
        # A corrupt database, a SQLite database that is not kd3's.
        with open(self.k.path("junk.db"), "wb") as f:
            f.write(os.urandom(8192))
        os.chmod(self.k.path("junk.db"), 0o600)
        self.fails(EXIT_RUNTIME, "junk.db: cannot read the schema version: file is not a "
                   "database", "list", db=self.k.path("junk.db"))
        foreign = self.k.path("foreign.db")
        sqlite3.connect(foreign).executescript("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        os.chmod(foreign, 0o600)
        self.fails(EXIT_RUNTIME, "not a kd3 database (schema version 0, expected 3)", "add",
                   "carol", db=foreign)
        self.k.ok("list")


@kd3db.sqlite_only
class HotJournal(unittest.TestCase):
    def test_read_only_commands_after_a_killed_write(self):
        """A writer killed mid-transaction after SQLite spilled pages into the database
        file leaves a hot journal. The read-only commands (serve, list, export, dump)
        roll it back and see the database as it was before that transaction."""
        kd = Kdc()
        self.addCleanup(kd.close)
        kd.ok("init")
        kd.ok("add", "alice", "--keyfile", kd.path("alice.key"))
        listed = kd.ok("list").stdout
        code = ("import os, signal, sqlite3, sys\n"
                "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "db.execute('PRAGMA cache_size = 2')\n"
                "db.execute('BEGIN IMMEDIATE')\n"
                "db.execute(\"UPDATE principals SET enabled = 0\")\n"
                "db.execute('CREATE TABLE junk (x)')\n"
                "for i in range(400):\n"
                "    db.execute('INSERT INTO junk VALUES (?)', (os.urandom(1000),))\n"
                "os.kill(os.getpid(), signal.SIGKILL)\n")
        r = k.run(["/usr/bin/python3", "-c", code, kd.db])
        self.assertEqual(r.rc, -signal.SIGKILL, r)
        self.assertTrue(os.path.exists(kd.db + "-journal"))
        self.assertEqual(kd.ok("list").stdout, listed)  # alice still enabled, no junk
        kd.ok("export", "alice", "--keyfile", kd.path("again.key"))
        self.assertEqual(keyfile_keys(kd.path("again.key")), keyfile_keys(kd.path("alice.key")))
        db = sqlite3.connect(f"file:{kd.db}?mode=ro", uri=True)
        self.assertEqual(db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'junk'")
                         .fetchone(), (0,))
        db.close()


class Rotation(unittest.TestCase):
    """A rotation with no downtime: the old key file works during the grace period; the
    KDC stops accepting it once the grace period is over; purge drops it."""

    def session(self, realm, resp, keyfile):
        return realm.run_initiator(resp.port, ["hello"], "--keyfile", keyfile)

    def restart_kdc(self, realm, kdc):
        port = kdc.port
        kdc.stop()
        return realm.start_kdc(port=port)

    def test_rotation_with_grace_then_purge(self):
        with k.Realm(("alice", "bob")) as realm:
            kdc = realm.start_kdc()
            resp = realm.start_responder("--exec", "cat")
            old = os.path.join(realm.dir, "alice-kvno1.key")
            shutil.copy(realm.keyfile("alice"), old)
            grace = 4
            r = k.run([k.exe("kdc"), "rotate", "alice", *realm.dbargs, "--keyfile",
                       realm.keyfile("alice"), "--grace-period-seconds", str(grace)])
            self.assertEqual(r.rc, 0, r)
            rotated = time.monotonic()
            self.assertEqual(list(keyfile_keys(realm.keyfile("alice"))), [1, 2])
            kdc = self.restart_kdc(realm, kdc)
            for keyfile in (old, realm.keyfile("alice")):
                r = self.session(realm, resp, keyfile)
                self.assertEqual((r.rc, r.stdout), (0, "hello\n"), r)
            time.sleep(max(0.0, grace + 1.1 - (time.monotonic() - rotated)))
            self.assertIn("1(expired),2", k.run([k.exe("kdc"), "list",
                                                 *realm.dbargs]).stdout)
            kdc = self.restart_kdc(realm, kdc)  # loads live kvnos only
            r = self.session(realm, resp, old)
            self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
            self.assertIn("KVNO_UNKNOWN", r.stderr)
            r = self.session(realm, resp, realm.keyfile("alice"))
            self.assertEqual((r.rc, r.stdout), (0, "hello\n"), r)
            r = k.run([k.exe("kdc"), "purge", "alice", *realm.dbargs])
            self.assertIn("purged 1 expired key version of alice", r.stdout)
            r = k.run([k.exe("kdc"), "export", "alice", *realm.dbargs, "--keyfile",
                       os.path.join(realm.dir, "after.key")])
            self.assertEqual(list(keyfile_keys(os.path.join(realm.dir, "after.key"))), [2])
            kdc = self.restart_kdc(realm, kdc)
            self.assertEqual(self.session(realm, resp, old).rc, EXIT_HANDSHAKE)
            self.assertEqual(self.session(realm, resp, realm.keyfile("alice")).rc, 0)

    def test_rekey_master_killed_then_serve(self):
        """Killed at each point between the stash and the database: kdc serve starts, and
        both principals' key files still work; the next rekey-master finishes."""
        with k.Realm(("alice", "bob")) as realm:
            for point in ("rekey-stash-both", "rekey-resealed", "rekey-committed"):
                with self.subTest(point=point):
                    r = k.run([k.exe("kdc"), "rekey-master", *realm.dbargs],
                              env=dict(os.environ, KD3_KDC_CRASH_AT=point))
                    self.assertEqual(r.rc, -signal.SIGKILL, r)
                    kdc = realm.start_kdc()
                    self.assertIn("holds a master key", kdc.text())
                    resp = realm.start_responder("--exec", "cat")
                    r = realm.run_initiator(resp.port, ["hi"])
                    self.assertEqual((r.rc, r.stdout), (0, "hi\n"), r)
                    resp.stop()
                    kdc.stop()
                    r = k.run([k.exe("kdc"), "rekey-master", *realm.dbargs])
                    self.assertEqual(r.rc, 0, r)
                    self.assertNotIn("warning", r.stderr)


@kd3db.sqlite_only
class KilledAdmin(unittest.TestCase):
    """200 kdc processes killed (SIGKILL) at random points in a loop of admin writes:
    after each, the database opens with its stash, every sealed key opens, SQLite's own
    checks pass, and each principal has exactly one kvno without a retire time, its
    newest (a rotation is whole or absent)."""

    KILLS = 200
    DEADLINE_S = 240

    def command(self, rnd, i):
        names = [f"p{j}" for j in range(6)]
        name = rnd.choice(names)
        keyfile = self.k.path(f"k{i}.key")
        return rnd.choice([
            ["add", f"p{rnd.randrange(6)}", "--keyfile", keyfile],
            ["add", f"n{i}", "--keyfile", keyfile],
            ["rotate", name, "--keyfile", keyfile, "--grace-period-seconds",
             rnd.choice(["0", "3600"])],
            ["rotate", name, "--keyfile", keyfile, "--grace-period-seconds", "0"],
            ["disable", name], ["enable", name], ["remove", name],
            ["purge", "--all"], ["purge", name],
            ["rekey-master"], ["rekey-master"],
        ])

    def spawn(self, args):
        return subprocess.Popen([k.exe("kdc"), *args, "--db", self.k.db],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def typical_run_s(self):
        """How long one admin write takes here (median of a few), to aim the kills."""
        times = []
        for i in range(9):
            t = time.monotonic()
            p = self.spawn(["rekey-master"] if i % 3 == 0 else
                           ["rotate", "warm", "--keyfile", self.k.path("warm.key"),
                            "--grace-period-seconds", "0"])
            p.communicate(timeout=30)
            times.append(time.monotonic() - t)
            self.k.ok("purge", "--all")
        return sorted(times)[len(times) // 2]

    def check_consistent(self, i, cmd):
        where = f"after kill {i} ({' '.join(cmd)})"
        self.left_behind += len(staging_files(self.k.dir))
        r = self.k.run("list")
        self.assertEqual(r.rc, 0, f"{where}: {r}")
        # The next command wiped and removed what the killed one had staged (a key, a
        # whole master key): no secret is left under a temporary name.
        self.assertEqual(staging_files(self.k.dir), [], f"{where}: {r.stderr}")
        r = self.k.run("dump", self.k.path("check.json"), "--force")
        self.assertEqual(r.rc, 0, f"{where}: {r}")  # every key and the secret open
        db = sqlite3.connect(f"file:{self.k.db}?mode=ro", uri=True)
        try:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)], where)
            self.assertEqual(db.execute("PRAGMA foreign_key_check").fetchall(), [], where)
            bad = db.execute("""
                SELECT p.name FROM principals p WHERE
                  (SELECT count(*) FROM keys k WHERE k.name = p.name AND k.retire_at IS NULL)
                  != 1 OR
                  (SELECT kvno FROM keys k WHERE k.name = p.name AND k.retire_at IS NULL)
                  != (SELECT max(kvno) FROM keys k WHERE k.name = p.name)""").fetchall()
            self.assertEqual(bad, [], f"{where}: half a rotation")
        finally:
            db.close()
        with open(self.k.stash) as f:
            n = sum(1 for line in f if line.startswith("master = "))
        self.assertIn(n, (1, 2), where)
        return n

    def test_random_kills(self):
        self.k = Kdc()
        self.addCleanup(self.k.close)
        self.k.ok("init")
        for name in ("alice", "bob", "warm", *[f"p{j}" for j in range(6)]):
            self.k.ok("add", name, "--keyfile", self.k.path(f"{name}.key"))
        typical = self.typical_run_s()
        rnd = random.Random(int(os.environ.get("KD3_TEST_SEED", "0")) or None)
        landed = two_keys = self.left_behind = 0
        by_cmd = {}
        deadline = time.monotonic() + self.DEADLINE_S
        for i in range(self.KILLS):
            self.assertLess(time.monotonic(), deadline, f"only {i} kills in the time allowed")
            cmd = self.command(rnd, i)
            p = self.spawn(cmd)
            time.sleep(rnd.uniform(0, typical))
            p.send_signal(signal.SIGKILL)
            _, err = p.communicate(timeout=30)
            if p.returncode == -signal.SIGKILL:
                landed += 1
                by_cmd[cmd[0]] = by_cmd.get(cmd[0], 0) + 1
            else:  # it finished first: then it must have said why, if it failed
                self.assertTrue(p.returncode == 0 or err.strip(), f"{cmd}: rc {p.returncode}")
            two = self.check_consistent(i, cmd) == 2
            two_keys += two and cmd[0] == "rekey-master" and p.returncode == -signal.SIGKILL
        print(f"\n{self.KILLS} kills (typical run {typical * 1000:.1f} ms): {landed} landed "
              f"mid-command {dict(sorted(by_cmd.items()))}; {two_keys} killed rekey-masters left "
              "the stash with two master keys; the database was consistent after every one; "
              f"{self.left_behind} staging files left by kills, each removed by the next "
              "command")
        self.assertGreaterEqual(landed, self.KILLS // 4, "too few kills landed to mean much")
        # alice and bob were never touched by the loop: their key files still work.
        self.k.ok("rekey-master")
        with k.Realm(()) as realm:
            realm.db, realm.dbargs = self.k.db, self.k.store.args
            for name in ("alice", "bob"):
                shutil.copy(self.k.path(f"{name}.key"), realm.keyfile(name))
            realm.start_kdc()
            resp = realm.start_responder("--exec", "cat")
            r = realm.run_initiator(resp.port, ["still here"])
            self.assertEqual((r.rc, r.stdout), (0, "still here\n"), r)


if __name__ == "__main__":
    unittest.main()
