"""Staging files of kdc admin commands that did not finish (issue 14, items 2 and 3).

Every admin write stages its file (a key file, the master key stash, a dump) under a
short name, .kd3-stage.XXXXXX, beside the target, holding an flock on it until it is in
place. Each command killed right after staging (KD3_KDC_CRASH_AT=file-staged) leaves one
such file, holding a key or a whole master key: the next kdc command (here `kdc list`,
and `kdc serve`) overwrites it with zeros, removes it and says so; one still held by a
running command is left alone; kd3 0.1's NAME.key.tmp.* and DB.stash.tmp.* are removed
the same way. Principal names of every valid length (up to 255 bytes) can be added with
the default key file.
"""
import fcntl
import os
import signal
import time
import unittest

import kd3db
import kd3e2e as k
from test_kdc_admin import Kdc, staging_files

REMOVED = "a staging file left by a kdc command that did not finish"
CRASH = dict(os.environ, KD3_KDC_CRASH_AT="file-staged")


@kd3db.sqlite_only
class Leftovers(unittest.TestCase):
    def setUp(self):
        self.k = Kdc()
        self.addCleanup(self.k.close)
        self.k.ok("init")
        self.k.ok("add", "alice", "--keyfile", self.k.path("alice.key"))

    def killed_then_swept(self, *cmd, cwd=None, then=("list",)):
        r = self.k.run(*cmd, env=CRASH, cwd=cwd)
        self.assertEqual(r.rc, -signal.SIGKILL, r)
        left = staging_files(cwd or self.k.dir)
        self.assertEqual(len(left), 1, f"{cmd}: {left}")
        with open(os.path.join(cwd or self.k.dir, left[0])) as f:
            staged = f.read()
        r = self.k.run(*then, cwd=cwd)
        self.assertEqual(r.rc, 0, r)
        self.assertIn(f"{left[0]} (", r.stderr)
        self.assertIn(REMOVED, r.stderr)
        self.assertEqual(staging_files(cwd or self.k.dir), [])
        return staged

    def test_each_writer_killed_after_staging(self):
        """add, rotate and export (a key file), rekey-master (the stash: a complete
        master key), dump: each killed with its file staged; the next command removes
        it. The database still opens and the stash still matches it."""
        key = self.killed_then_swept("add", "bob", "--keyfile", self.k.path("bob.key"))
        self.assertIn("principal = bob", key)
        key = self.killed_then_swept("rotate", "alice", "--keyfile", self.k.path("a2.key"))
        self.assertIn("principal = alice", key)
        self.killed_then_swept("export", "alice", "--keyfile", self.k.path("a3.key"))
        stash = self.killed_then_swept("rekey-master")
        self.assertIn("master = ", stash)
        self.killed_then_swept("dump", self.k.path("backup.json"))
        self.assertFalse(os.path.exists(self.k.path("bob.key")))
        self.k.ok("dump", self.k.path("check.json"))  # every sealed key still opens

    def test_default_key_file_in_the_current_folder(self):
        """kdc add NAME writes ./NAME.key: killed, it leaves its staging file in the
        current folder. The current folder may be anyone's (/tmp), so only a command
        that writes a default key file there sweeps it (add, rotate, export without
        --keyfile), not `kdc list` run there."""
        cwd = os.path.join(self.k.dir, "work")
        os.mkdir(cwd)
        self.k.run("add", "carol", env=CRASH, cwd=cwd)
        self.assertEqual(len(staging_files(cwd)), 1)
        r = self.k.run("list", cwd=cwd)
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn(REMOVED, r.stderr)
        self.assertEqual(len(staging_files(cwd)), 1)
        r = self.k.run("add", "dave", cwd=cwd)
        self.assertEqual(r.rc, 0, r)
        self.assertIn(REMOVED, r.stderr)
        self.assertEqual(staging_files(cwd), [])

    def test_a_second_name_of_the_stash_is_not_zeroed(self):
        """A staging name that is a second link to the live stash (what a move into
        place on a file system without RENAME_NOREPLACE leaves when it is cut between
        link() and unlink(), or a hard link planted in a shared folder): the next
        command removes the name only. kd3 0.2's first sweep zeroed the file, and with
        it the realm's master key."""
        with open(self.k.stash, "rb") as f:
            before = f.read()
        os.link(self.k.stash, self.k.path(".kd3-stage.Li9kEd"))
        r = self.k.run("list")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("another name links to the same file", r.stderr)
        self.assertEqual(staging_files(self.k.dir), [])
        with open(self.k.stash, "rb") as f:
            self.assertEqual(f.read(), before)
        self.k.ok("dump", self.k.path("check.json"))  # the master key still opens

    def test_serve_sweeps_too(self):
        self.k.run("rekey-master", env=CRASH)
        self.assertEqual(len(staging_files(self.k.dir)), 1)
        with k.Realm(()) as realm:
            realm.db, realm.dbargs = self.k.db, self.k.store.args
            kdc = realm.start_kdc()
            self.assertIn(REMOVED, kdc.text())
            kdc.stop()
        self.assertEqual(staging_files(self.k.dir), [])

    def test_a_file_still_being_written_is_left_alone(self):
        """A staging file whose writer holds its lock is a command at work, not a
        leftover: left until the lock goes."""
        path = self.k.path(".kd3-stage.Ab12Cd")
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            os.write(fd, b"key = 1:" + b"00" * 32 + b"\n")
            fcntl.flock(fd, fcntl.LOCK_EX)
            r = self.k.run("list")
            self.assertEqual(r.rc, 0, r)
            self.assertNotIn(REMOVED, r.stderr)
            self.assertTrue(os.path.exists(path))
        finally:
            os.close(fd)
        r = self.k.run("list")
        self.assertIn(REMOVED, r.stderr)
        self.assertFalse(os.path.exists(path))

    def test_staging_names_are_refused_as_targets(self):
        """A stash, database, key file or dump under a staging file's name would be
        swept as a leftover (a stash named .kd3-stage.Master was zeroed by the next
        command): refused, with the reason, before anything is written or swept."""
        other = self.k.path("other")
        os.mkdir(other)
        cases = [  # (command, database)
            (("init", "--stash", os.path.join(other, ".kd3-stage.Master")),
             os.path.join(other, "r.db")),
            (("init",), os.path.join(other, ".kd3-stage.DbFile")),
            (("export", "alice", "--keyfile", self.k.path(".kd3-stage.abcdef")), None),
            (("add", "zed", "--keyfile", self.k.path("zed.key.tmp.backup")), None),
            (("dump", self.k.path("x.stash.tmp.Ab12Cd")), None),
        ]
        for cmd, db in cases:
            r = self.k.run(*cmd, db=db)
            self.assertEqual(r.rc, 2, f"{cmd}: {r}")
            self.assertIn("are kd3's staging files, which kdc removes as crash leftovers",
                          r.stderr)
        self.assertEqual(os.listdir(other), [])
        self.assertEqual(staging_files(self.k.dir), [])
        self.assertNotIn("zed", self.k.ok("list").stdout)

    def test_kd3_0_1_leftovers(self):
        """The names kd3 0.1 staged under, whose writers held no lock: once 10 minutes
        old, removed, their bytes overwritten first; younger, perhaps a 0.1 command
        between its write and its rename, reported and left."""
        names = ["alice.key.tmp.Xy12Zw", os.path.basename(self.k.stash) + ".tmp.Qr34St"]
        for n in names + ["bob.key.tmp.Young1"]:
            fd = os.open(self.k.path(n), os.O_CREAT | os.O_WRONLY, 0o600)
            os.write(fd, b"master = 1:" + b"11" * 32 + b"\n")
            os.close(fd)
        old = time.time() - 3600
        for n in names:
            os.utime(self.k.path(n), (old, old))
        r = self.k.run("list")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stderr.count(REMOVED), 2, r.stderr)
        self.assertIn("bob.key.tmp.Young1 looks like a kd3 staging file but is left alone: "
                      "written in the last 10 minutes", r.stderr)
        self.assertEqual(staging_files(self.k.dir), ["bob.key.tmp.Young1"])

    def test_every_name_length(self):
        """Names of 1 to 255 bytes with the default key file (./NAME.key): up to 251
        bytes the file is NAME.key; past that NAME.key would be more than a file name
        may hold (255), so it is the first 230 bytes, '~' and 16 hex digits of the
        name's SHA-256, which the output names. Two long names that share their first
        230 bytes get two files. kd3 0.1 refused 241 bytes and up (File name too long)."""
        long_a = "a" * 230 + "b" * 25
        names = ["n" * 240, "n" * 241, "n" * 251, "n" * 252, "n" * 255, long_a,
                 "a" * 230 + "c" * 25, "web/" + "w" * 251]
        files = set()
        for name in names:
            r = self.k.run("add", name, cwd=self.k.dir)
            self.assertEqual(r.rc, 0, f"{len(name)} bytes: {r}")
            path = r.stdout.split("key file ")[-1].strip()
            base = os.path.basename(path)
            self.assertLessEqual(len(base.encode()), 255)
            if len(name) + 4 <= 255:
                self.assertEqual(base, name.replace("/", "_") + ".key")
            else:
                self.assertRegex(base, r"^[^~]{230}~[0-9a-f]{16}\.key$")
            full = os.path.join(self.k.dir, path)
            with open(full) as f:
                self.assertIn(f"principal = {name}\n", f.read())
            files.add(base)
        self.assertEqual(len(files), len(names))


if __name__ == "__main__":
    unittest.main()
