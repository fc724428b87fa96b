"""kdc import end to end: principals with keys the caller holds, in one transaction.

The import file is key files one after another. Imported keys are the ones served (a
session with a key file written here, not by the KDC), rows are sealed like any other,
every refusal names file:line and leaves the database byte for byte unchanged, and a
process killed just before its commit leaves nothing imported.
"""
import os
import signal
import tempfile
import unittest

import kd3e2e as k

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def keyfile_text(name, keys):
    lines = [f"# kd3 key file: keep secret (mode 0600)", f"principal = {name}"]
    lines += [f"key = {kvno}:{key.hex()}" for kvno, key in keys]
    return "\n".join(lines) + "\n"


def write_private(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class Import(unittest.TestCase):
    def setUp(self):
        self.realm = k.Realm(("alice", "bob"))
        self.addCleanup(self.realm.close)

    def kdc(self, *args, env=None):
        env = dict(os.environ, **(env or {}))
        return k.run([k.exe("kdc"), *args, *self.realm.dbargs], env=env, timeout=120)

    def path(self, name):
        return os.path.join(self.realm.dir, name)

    def refused(self, text, rc=EXIT_RUNTIME, mode=0o600, name="bad.import"):
        """The import of text fails with one line naming the reason; nothing changes."""
        write_private(self.path(name), text, mode)
        before = self.realm.store.state()
        r = self.kdc("import", self.path(name))
        self.assertEqual(r.rc, rc, r)
        self.assertEqual(len(r.stderr.splitlines()), 1, r)
        self.assertTrue(r.stderr.startswith("kdc: error: "), r)
        self.assertEqual(r.stdout, "", r)
        self.assertEqual(self.realm.store.state(), before, "the database changed")
        return r.stderr

    def test_imported_keys_are_served(self):
        carol = [(1, os.urandom(32)), (3, os.urandom(32))]
        dave = [(1, os.urandom(32))]
        write_private(self.path("batch"), keyfile_text("carol", carol) + "\n" +
                      keyfile_text("dave", dave))
        r = self.kdc("import", self.path("batch"))
        self.assertEqual(r.rc, 0, r)
        self.assertIn("imported 2 principals, 3 keys from", r.stdout)
        listing = self.kdc("list").stdout
        # The newest kvno is current; the older one lives out the grace period only.
        self.assertRegex(listing, r"\ncarol +1\(until 20\d\d-\d\d-\d\dT[\d:]+Z\),3 +enabled")
        self.assertRegex(listing, r"\ndave +1 +enabled")
        for key in carol + dave:  # sealed at rest like every other key
            self.assertFalse(self.realm.store.holds(key[1]))
        r = self.kdc("export", "carol", "--keyfile", self.path("carol.export"))
        self.assertEqual(r.rc, 0, r)
        with open(self.path("carol.export")) as f:
            self.assertEqual(f.read(), keyfile_text("carol", sorted(carol)))

        # carol's key file as we wrote it opens a session to bob through the KDC.
        write_private(self.path("carol.key"), keyfile_text("carol", carol))
        self.realm.start_kdc()
        resp = self.realm.start_responder("--exec", "cat")
        r = self.realm.run_initiator(resp.port, ["imported"], name="carol")
        self.assertEqual((r.rc, r.stdout), (0, "imported\n"), r)
        # The same name with a key the KDC does not hold fails.
        write_private(self.path("carol.key"), keyfile_text("carol", [(3, os.urandom(32))]))
        r = self.realm.run_initiator(resp.port, ["imported"], name="carol")
        self.assertNotEqual(r.rc, 0, r)

    def test_older_kvnos_retire_after_the_grace_period(self):
        erin = [(2, os.urandom(32)), (1, os.urandom(32))]
        write_private(self.path("batch"), keyfile_text("erin", erin))
        r = self.kdc("import", self.path("batch"), "--grace-period-seconds", "0")
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(self.kdc("list").stdout, r"\nerin +1\(expired\),2 +enabled")

    def test_refusals_leave_the_database_unchanged(self):
        good = keyfile_text("carol", [(1, os.urandom(32))])
        key = os.urandom(32).hex()
        cases = [
            (good + keyfile_text("alice", [(1, os.urandom(32))]),
             "bad.import:5: principal alice is already in the database"),
            (good + good, "bad.import:5: principal carol is already in the database"),
            (good + "principal = dave\n", "bad.import: principal dave has no 'key"),
            (good + "principal = dave\nprincipal = erin\nkey = 1:" + key + "\n",
             "bad.import:5: principal dave has no 'key"),
            ("key = 1:" + key + "\n", "bad.import:1: a key before any 'principal"),
            ("principal = x y\n", "bad.import:1: principal name must be"),
            (f"principal = dave\nkey = 1:{key}\nkey = 1:{key}\n",
             "bad.import:3: duplicate kvno"),
            ("principal = dave\nkey = 0:" + key + "\n", "bad.import:2: kvno is out of range"),
            ("principal = dave\nkey = 1:abcd\n", "bad.import:2: key must be exactly 64"),
            ("principal = dave\nrealm = x\n", "bad.import:2: unknown key"),
            ("principal = dave\n" + "".join(f"key = {i}:{key}\n" for i in range(1, 10)),
             "bad.import:10: too many keys"),
            ("# nothing\n\n", "bad.import: no 'principal = NAME' line"),
        ]
        for text, expected in cases:
            with self.subTest(expected=expected):
                self.assertIn(expected, self.refused(text))
        self.assertIn("group or others", self.refused(good, mode=0o640))
        r = self.kdc("import", self.path("missing"))
        self.assertEqual(r.rc, EXIT_RUNTIME, r)
        self.assertIn("missing: no such import file", r.stderr)
        r = self.kdc("import")
        self.assertEqual(r.rc, EXIT_USAGE, r)
        write_private(self.path("x"), good)
        os.symlink(self.path("x"), self.path("link"))
        r = self.kdc("import", self.path("link"))
        self.assertEqual(r.rc, EXIT_RUNTIME, r)
        self.assertNotIn("carol", self.kdc("list").stdout)

    def test_killed_before_commit_imports_nothing(self):
        text = "".join(keyfile_text(f"p{i}", [(1, os.urandom(32))]) for i in range(500))
        write_private(self.path("many"), text)
        before = self.kdc("list").stdout
        r = self.kdc("import", self.path("many"),
                     env={"KD3_KDC_CRASH_AT": "import-before-commit"})
        self.assertEqual(r.rc, -signal.SIGKILL, r)
        self.assertEqual(self.kdc("list").stdout, before)
        self.assertEqual(self.realm.store.count("principals"), 2)
        r = self.kdc("import", self.path("many"))
        self.assertEqual(r.rc, 0, r)
        self.assertIn("imported 500 principals, 500 keys", r.stdout)
        self.assertEqual(len(self.kdc("list").stdout.splitlines()), 1 + 2 + 500)


if __name__ == "__main__":
    unittest.main()
