"""kdc on PostgreSQL, bad input: a wrong URI, an unreachable server, a wrong password, a
password in the URI, a database of another schema or no realm, the stash of another
realm, a write sent to a hot standby, no --stash. Each is one clear line on stderr and
a non-zero exit, and the database is unchanged (every row compared). Also the schema
itself: kd3_schema says 3, names sort as the KDC's table sorts them (bytes), and the
keys are sealed at rest.
"""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import kd3e2e as k  # noqa: E402
import pgcluster  # noqa: E402

EXIT_RUNTIME, EXIT_USAGE = 1, 2


class PostgresStore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = pgcluster.PgCluster()
        cls.primary = cls.pg.start_primary()
        cls.password = os.urandom(12).hex()
        cls.pg.create_role("kd3", cls.password)
        for db in ("kd3", "other", "empty"):
            cls.pg.create_database(db, "kd3")
        cls.dir = tempfile.mkdtemp(prefix="kd3-pgstore-")
        cls.passfile = cls.pg.passfile([("*", "*", "kd3", cls.password)])
        os.environ["PGPASSFILE"] = cls.passfile
        cls.uri = cls.primary.uri("kd3", "kd3")
        cls.stash = os.path.join(cls.dir, "kd3.stash")
        cls.other_stash = os.path.join(cls.dir, "other.stash")
        cls.kdc("init", "--db", cls.uri, "--stash", cls.stash, check=True)
        cls.kdc("add", "alice", "--db", cls.uri, "--stash", cls.stash, "--keyfile",
                os.path.join(cls.dir, "alice.key"), check=True)
        cls.kdc("init", "--db", cls.primary.uri("kd3", "other"), "--stash", cls.other_stash,
                check=True)
        cls.standby = cls.pg.start_standby(cls.primary)
        cls.pg.wait_replayed(cls.standby)

    @classmethod
    def tearDownClass(cls):
        cls.pg.close()

    @classmethod
    def kdc(cls, *args, env=None, check=False):
        r = k.run([k.exe("kdc"), *args], env=env, timeout=60)
        if check and r.rc != 0:
            raise AssertionError(f"kdc {args}: {r}")
        return r

    def rows(self, db="kd3"):
        out = []
        for t in ("kd3_schema", "principals", "keys", "realm", "unlocks", "last_used"):
            out.append(self.pg.sql(self.primary, f"SELECT string_agg(x::text, ',' ORDER BY "
                                                 f"x::text) FROM {t} x", db=db))
        return out

    def refused(self, rc, text, *args, env=None):
        before = self.rows()
        r = self.kdc(*args, env=env)
        self.assertEqual(r.rc, rc, r)
        self.assertEqual(len(r.stderr.splitlines()), 1, r)
        self.assertTrue(r.stderr.startswith("kdc: error: "), r)
        self.assertIn(text, r.stderr)
        self.assertEqual(r.stdout, "", r)
        self.assertEqual(self.rows(), before, "the database changed")
        return r.stderr

    def test_unreachable_and_wrong_uris(self):
        dead = f"postgresql://kd3@127.0.0.1:{pgcluster._free_port()}/kd3"
        for cmd in (["list"], ["add", "bob"], ["serve", "--listen", f"127.0.0.1:{k.free_port()}"]):
            with self.subTest(cmd=cmd[0]):
                self.refused(EXIT_RUNTIME, "cannot connect: connection to server at", *cmd,
                             "--db", dead, "--stash", self.stash)
        self.refused(EXIT_RUNTIME, "cannot connect: invalid", "list", "--db",
                     "postgresql://kd3@127.0.0.1:notaport/kd3", "--stash", self.stash)
        self.refused(EXIT_RUNTIME, 'database "nosuch" does not exist', "list", "--db",
                     self.primary.uri("kd3", "nosuch"), "--stash", self.stash)

    def test_passwords(self):
        wrong = self.pg.passfile([("*", "*", "kd3", "not-the-password")])
        self.refused(EXIT_RUNTIME, 'password authentication failed for user "kd3"', "list",
                     "--db", self.uri, "--stash", self.stash,
                     env=dict(os.environ, PGPASSFILE=wrong))
        with_pw = f"postgresql://kd3:{self.password}@127.0.0.1:{self.primary.port}/kd3"
        err = self.refused(EXIT_USAGE, "a password in the URI would be seen", "list", "--db",
                           with_pw, "--stash", self.stash)
        self.assertNotIn(self.password, err)
        self.assertIn("kd3:***@", err)
        err = self.refused(EXIT_USAGE, "passfile", "list", "--db",
                           self.uri + f"?password={self.password}", "--stash", self.stash)
        self.assertNotIn(self.password, err)
        # Every spelling libpq takes: percent-encoded names, sslpassword, user info that
        # holds a '?' (libpq ends it at the '@', not at the '?').
        host = f"127.0.0.1:{self.primary.port}"
        for uri in (f"{self.uri}?pass%77ord={self.password}",
                    f"{self.uri}?sslmode=disable&sslpassword={self.password}",
                    f"postgresql://kd3:{self.password}?x@{host}/kd3"):
            with self.subTest(uri=uri.replace(self.password, "PW")):
                err = self.refused(EXIT_USAGE, "passfile", "list", "--db", uri, "--stash",
                                   self.stash)
                self.assertNotIn(self.password, err)
        err = self.refused(EXIT_USAGE, 'not a valid PostgreSQL connection URI: invalid URI '
                           'query parameter: "nosuch"', "list", "--db", self.uri + "?nosuch=1",
                           "--stash", self.stash)

    def test_other_schema_and_realm(self):
        self.refused(EXIT_RUNTIME, "holds no kd3 realm; create it with 'kdc init'", "list",
                     "--db", self.primary.uri("kd3", "empty"), "--stash", self.stash)
        # Another kd3 realm's stash: its master key is not this database's.
        self.refused(EXIT_RUNTIME, "is not in the stash", "list", "--db", self.uri, "--stash",
                     self.other_stash)
        self.refused(EXIT_RUNTIME, "is not in the stash", "serve", "--db", self.uri,
                     "--stash", self.other_stash, "--listen", f"127.0.0.1:{k.free_port()}")
        self.refused(EXIT_RUNTIME, "refusing to overwrite it", "init", "--db", self.uri,
                     "--stash", os.path.join(self.dir, "new.stash"))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "new.stash")))
        # A schema from a newer kdc.
        self.pg.sql(self.primary, "UPDATE kd3_schema SET version = 99", db="other")
        try:
            r = self.kdc("list", "--db", self.primary.uri("kd3", "other"), "--stash",
                         self.other_stash)
            self.assertEqual(r.rc, EXIT_RUNTIME, r)
            self.assertIn("schema version 99 is newer than this kdc reads (3)", r.stderr)
        finally:
            self.pg.sql(self.primary, "UPDATE kd3_schema SET version = 3", db="other")

    def test_no_stash_and_standby_writes(self):
        self.refused(EXIT_USAGE, "give the master key stash, a local file on this host, with "
                     "--stash FILE", "list", "--db", self.uri)
        standby = self.standby.uri("kd3", "kd3")
        before = self.rows()
        r = self.kdc("add", "bob", "--db", standby, "--stash", self.stash, "--keyfile",
                     os.path.join(self.dir, "bob.key"))
        self.assertEqual(r.rc, EXIT_RUNTIME, r)
        self.assertIn("a read-only server (a hot standby?): run admin commands against the "
                      "primary", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "bob.key")))
        self.assertEqual(self.rows(), before)
        r = self.kdc("list", "--db", standby, "--stash", self.stash)  # reads are fine
        self.assertEqual(r.rc, 0, r)
        self.assertIn("alice", r.stdout)

    def test_schema(self):
        self.assertEqual(self.pg.sql(self.primary, "SELECT version FROM kd3_schema", db="kd3"),
                         "3")
        # Sealed at rest: the key file's bytes are nowhere in the database.
        with open(os.path.join(self.dir, "alice.key")) as f:
            key = [l.split(":", 1)[1].strip() for l in f if l.startswith("key = ")][0]
        dump = self.pg.sql(self.primary, "SELECT encode(sealed, 'hex') FROM keys", db="kd3")
        self.assertEqual(len(dump), 2 * 61)
        self.assertNotIn(key, dump)
        # Names in byte order ("C"), the order the KDC's table binary-searches.
        r = self.pg.sql(self.primary, "SELECT collation_name FROM information_schema.columns "
                                      "WHERE table_name = 'principals' AND column_name = 'name'",
                        db="kd3")
        self.assertEqual(r, "C")


if __name__ == "__main__":
    unittest.main(verbosity=2)
