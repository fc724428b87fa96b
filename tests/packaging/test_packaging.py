"""Install rules, the Debian package, man pages and bash completion.

  - `cmake --install` into a scratch prefix puts the three programs, the man pages,
    the examples, the docs, the Wireshark dissector and the completions where they
    belong, and the installed programs run;
  - `dpkg-buildpackage` (debian/) makes three packages, lintian-clean: libkd3-0 (the
    shared library by its SONAME in the multiarch folder, with shlibs, a symbols file
    equal to tests/lib/abi.txt and an ldconfig trigger), libkd3-dev (headers, the .so
    link, libkd3.a, kd3.pc, kd3(3), depending on exactly this libkd3-0), and kd3, whose
    Depends name the runtime libraries the programs link (each an installed Debian
    package), with the unit in /lib/systemd/system running /usr/bin/kdc, /etc/kd3/kdc.conf
    a conffile, and programs that run from a scratch root; in CI (root) they are
    installed for real with apt (the kd3 user, /var/lib/kd3, systemd-analyze verify)
    and purged;
  - every man page renders with `man -l`;
  - the completion offers kdc's commands and each program's options from --help.

usage: test_packaging.py (KD3_BIN: the build directory; KD3_SOURCE: the source tree)
"""
import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

BIN = os.environ["KD3_BIN"]
SRC = os.environ["KD3_SOURCE"]
IN_CI = os.environ.get("CI") == "true" and os.geteuid() == 0
PROGRAMS = ("kdc", "responder", "initiator")
MAN = {"man1": ["initiator.1"], "man5": ["kd3.conf.5"], "man8": ["kdc.8", "responder.8"]}


def run(argv, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=kw.pop("timeout", 300), **kw)
    return r


def version():
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        return re.search(r"project\(kd3 VERSION ([0-9.]+)", f.read()).group(1)


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="kd3-install-")
        r = run(["cmake", "--install", BIN, "--prefix", cls.prefix])
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, ignore_errors=True)

    def test_programs_run(self):
        for p in PROGRAMS:
            r = run([os.path.join(self.prefix, "bin", p), "--version"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(version(), r.stdout + r.stderr)

    def test_files_in_place(self):
        for sec, pages in MAN.items():
            for page in pages:
                self.assertTrue(os.path.isfile(os.path.join(self.prefix, "share/man", sec, page)))
        for conf in ("kdc.conf", "responder.conf", "initiator.conf"):
            self.assertTrue(os.path.isfile(
                os.path.join(self.prefix, "share/doc/kd3/examples", conf)))
        for doc in ("README.md", "PROTOCOL.md", "OPERATIONS.md", "TRANSCRIPT.md"):
            self.assertTrue(os.path.isfile(os.path.join(self.prefix, "share/doc/kd3", doc)))
        self.assertEqual(len(glob.glob(os.path.join(self.prefix,
                                                    "lib/*/wireshark/plugins/kd3.lua")) +
                             glob.glob(os.path.join(self.prefix, "lib/wireshark/plugins/kd3.lua"))),
                         1)
        for p in PROGRAMS:
            self.assertTrue(os.path.isfile(
                os.path.join(self.prefix, "share/bash-completion/completions", p)))

    def test_man_pages_render(self):
        for sec, pages in MAN.items():
            for page in pages:
                path = os.path.join(self.prefix, "share/man", sec, page)
                r = run(["man", "-l", path], env={**os.environ, "MANWIDTH": "80",
                                                   "MANPAGER": "cat", "PAGER": "cat"})
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("NAME", r.stdout)
                self.assertIn("SEE ALSO", r.stdout)
                self.assertEqual(r.stderr.strip(), "", page)

    def test_completion(self):
        path = os.pathsep.join(os.path.join(self.prefix, "bin") for _ in (0,))
        script = (
            "source " + os.path.join(self.prefix, "share/bash-completion/completions/kdc") + "\n"
            't() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); '
            '_kd3_complete "$1"; echo "${COMPREPLY[*]}"; }\n'
            't kdc ""\nt kdc rek\nt kdc serve --work\nt initiator --pe\n'
            't initiator --suite = aes\nt responder --ex\nt initiator --trace = \n')
        r = run(["bash", "--norc", "-c", script],
                env={**os.environ, "PATH": path + os.pathsep + os.environ["PATH"]})
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.splitlines()
        self.assertTrue({"init", "add", "serve", "rotate", "dump"} <= set(out[0].split()), out)
        self.assertEqual(out[1:], ["rekey-master", "--workers=", "--peer=", "aes-256-gcm",
                                   "--exec=", "yes no"])


def source_copy(dest):
    """The source tree as git knows it (tracked and new files, no build folders) in
    dest: dpkg-buildpackage writes into its tree and beside it."""
    if os.path.isdir(os.path.join(SRC, ".git")):
        files = run(["git", "-C", SRC, "ls-files", "-co", "--exclude-standard", "-z"]).stdout
        for rel in filter(None, files.split("\0")):
            if rel.startswith("build") or not os.path.isfile(os.path.join(SRC, rel)):
                continue
            os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
            shutil.copy2(os.path.join(SRC, rel), os.path.join(dest, rel))
    else:
        shutil.copytree(SRC, dest, ignore=shutil.ignore_patterns("build*", "obj-*"))


class DebianPackage(unittest.TestCase):
    """debian/: dpkg-buildpackage makes kd3, libkd3-0 and libkd3-dev; lintian finds no
    error or warning in them; they hold what they should where Debian wants it."""

    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="kd3-deb-")
        tree = os.path.join(cls.out, "kd3")
        source_copy(tree)
        env = {**os.environ, "DEB_BUILD_OPTIONS": f"nocheck parallel={os.cpu_count() or 2}"}
        r = run(["dpkg-buildpackage", "-b", "-us", "-uc"], cwd=tree, env=env, timeout=900)
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
        cls.debs = {}
        for name in ("kd3", "libkd3-0", "libkd3-dev"):
            found = glob.glob(os.path.join(cls.out, f"{name}_*.deb"))
            assert len(found) == 1, (name, found)
            cls.debs[name] = found[0]
        cls.deb = cls.debs["kd3"]
        cls.changes = glob.glob(os.path.join(cls.out, "*.changes"))[0]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def field(self, name, deb=None):
        r = run(["dpkg-deb", "-f", deb or self.deb, name])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    def names(self, package):
        r = run(["dpkg-deb", "-c", self.debs[package]])
        return {line.split()[5] for line in r.stdout.splitlines()}

    def control_file(self, package, member):
        r = run(["dpkg-deb", "--info", self.debs[package], member])
        return r.stdout if r.returncode == 0 else None

    def test_lintian_clean(self):
        """No error and no warning, pedantic tags shown (each override in debian/ says
        why)."""
        r = run(["lintian", "--fail-on", "error,warning", "--pedantic", "--info",
                 self.changes], timeout=600)
        tags = [l for l in r.stdout.splitlines() if l[:2] in ("E:", "W:")]
        self.assertEqual((r.returncode, tags), (0, []), r.stdout + r.stderr)

    def test_control(self):
        self.assertEqual(self.field("Package"), "kd3")
        self.assertEqual(self.field("Version"), version())
        fields = self.field("Depends").split(", ")
        depends = [d.split()[0] for d in fields]
        for lib in ("libmbedcrypto7", "libsqlite3-0", "libinih1", "libcjson1", "libedit2",
                    "adduser"):
            self.assertIn(lib, depends)
        # The initiator links libkd3.so.0: the library package, by its symbols file.
        self.assertIn(f"libkd3-0 (>= {version()})", fields)
        for d in depends:  # each other one a real Debian package, installed here
            if d == "libkd3-0":
                continue
            r = run(["dpkg-query", "-W", "-f=${Status}", d])
            self.assertIn("install ok installed", r.stdout, d)
        for package in self.debs:  # a summary and a paragraph each
            self.assertGreater(len(self.field("Description", self.debs[package]).splitlines()), 2)

    def test_contents_and_run_from_a_scratch_root(self):
        names = self.names("kd3")
        for p in PROGRAMS:
            self.assertIn(f"./usr/bin/{p}", names)
        for page in ("man8/kdc.8", "man8/responder.8", "man1/initiator.1", "man5/kd3.conf.5"):
            self.assertIn(f"./usr/share/man/{page}.gz", names)
        for doc in ("copyright", "changelog.gz", "README.md.gz", "examples/kdc.conf"):
            self.assertIn(f"./usr/share/doc/kd3/{doc}", names)
        self.assertTrue(any(n.endswith("/wireshark/plugins/kd3.lua") for n in names))
        self.assertIn("./lib/systemd/system/kdc.service", names)
        self.assertIn("./etc/kd3/kdc.conf", names)
        self.assertEqual(self.control_file("kd3", "conffiles").split(), ["/etc/kd3/kdc.conf"])
        self.assertTrue(all(n.startswith(("./usr/", "./etc/kd3/", "./lib/systemd/"))
                            or n.endswith("/") for n in names), names)
        root = tempfile.mkdtemp(prefix="kd3-root-")
        try:
            for package in ("kd3", "libkd3-0"):
                self.assertEqual(run(["dpkg", "-x", self.debs[package], root]).returncode, 0)
            with open(os.path.join(root, "lib/systemd/system/kdc.service")) as f:
                unit = f.read()
            self.assertIn("\nExecStart=/usr/bin/kdc serve --config /etc/kd3/kdc.conf "
                          "--db /var/lib/kd3/kd3.db\n", unit)
            self.assertIn("\nConditionPathExists=/var/lib/kd3/kd3.db\n", unit)
            env = {**os.environ, "LD_LIBRARY_PATH": glob.glob(os.path.join(root, "usr/lib/*"))[0]}
            for p in PROGRAMS:
                r = run([os.path.join(root, "usr/bin", p), "--version"], env=env)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(version(), r.stdout + r.stderr)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def test_maintainer_scripts(self):
        postinst = self.control_file("kd3", "postinst")
        self.assertIn("adduser --system --group", postinst)
        self.assertIn("install -d -m 0700 -o kd3 -g kd3 /var/lib/kd3", postinst)
        self.assertIn("rmdir /var/lib/kd3", self.control_file("kd3", "postrm"))

    def test_library_packages(self):
        deb = self.debs["libkd3-0"]
        self.assertEqual(self.field("Section", deb), "libs")
        self.assertEqual(self.field("Multi-Arch", deb), "same")
        names = self.names("libkd3-0")
        libs = {n for n in names if "/libkd3.so" in n}
        self.assertEqual({os.path.basename(n) for n in libs},
                         {"libkd3.so.0", f"libkd3.so.{version()}"})
        # The multiarch folder, and ldconfig by trigger, not by maintainer script.
        self.assertTrue(all(re.match(r"\./usr/lib/[a-z0-9_]+-linux-gnu[a-z]*/", n) for n in libs),
                        libs)
        self.assertIn("libkd3 0 libkd3-0", self.control_file("libkd3-0", "shlibs"))
        self.assertIn("activate-noawait ldconfig", self.control_file("libkd3-0", "triggers"))
        self.assertIsNone(self.control_file("libkd3-0", "postinst"))
        symbols = self.control_file("libkd3-0", "symbols")
        with open(os.path.join(SRC, "tests/lib/abi.txt")) as f:
            abi = {l.strip() for l in f if l.strip() and not l.startswith("#")}
        self.assertEqual({l.split()[0].split("@")[0] for l in symbols.splitlines()
                          if l.startswith(" kd3_")}, abi)

        deb = self.debs["libkd3-dev"]
        self.assertEqual(self.field("Depends", deb).split(", ")[0], f"libkd3-0 (= {version()})")
        names = self.names("libkd3-dev")
        for want in ("/usr/include/kd3/kd3.h", "/usr/include/kd3/error.h", "/libkd3.so",
                     "/libkd3.a", "-linux-gnu/pkgconfig/kd3.pc", "/usr/share/man/man3/kd3.3.gz",
                     "/libkd3-dev/examples/lib/echo_client.c", "/libkd3-dev/LIBRARY.md.gz"):
            self.assertTrue(any(n.endswith(want) for n in names), (want, names))
        self.assertFalse(any(n.startswith("./usr/bin/") for n in names), names)
        self.assertFalse(any("libkd3" in n or "/include/" in n for n in self.names("kd3")))

    @unittest.skipUnless(IN_CI, "installs the packages system-wide: CI only (root)")
    def test_install_and_purge_for_real(self):
        """Installed with apt: the kd3 user, /var/lib/kd3 (0700, kd3's), the conffile,
        a unit systemd-analyze verifies, a database kd3 can create. Purged: the
        programs and /etc/kd3 gone; /var/lib/kd3 kept while it holds a database, and
        removed once empty."""
        apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", self.deb, self.debs["libkd3-0"]]
        purge = ["dpkg", "--purge", "kd3", "libkd3-0"]
        r = run(install, env=apt)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        try:
            user = run(["getent", "passwd", "kd3"]).stdout.strip().split(":")
            self.assertEqual((user[5], user[6]), ("/var/lib/kd3", "/usr/sbin/nologin"), user)
            st = os.stat("/var/lib/kd3")
            self.assertEqual((st.st_mode & 0o777, st.st_uid), (0o700, int(user[2])))
            r = run(["dpkg-query", "-W", "-f=${Conffiles}", "kd3"])
            self.assertIn("/etc/kd3/kdc.conf", r.stdout)
            r = run(["systemd-analyze", "verify", "/lib/systemd/system/kdc.service"])
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
            r = run(["runuser", "-u", "kd3", "--", "/usr/bin/kdc", "init",
                     "--db", "/var/lib/kd3/kd3.db"])
            self.assertEqual(r.returncode, 0, r.stderr)
            r = run(install, env=apt)  # again: the user and the folder are kept
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = run(purge)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("/var/lib/kd3 is not empty", r.stderr)
            self.assertTrue(os.path.exists("/var/lib/kd3/kd3.db"))
            for gone in ("/usr/bin/kdc", "/etc/kd3", "/lib/systemd/system/kdc.service"):
                self.assertFalse(os.path.exists(gone), gone)
            shutil.rmtree("/var/lib/kd3")
            r = run(install, env=apt)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = run(purge)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertFalse(os.path.exists("/var/lib/kd3"))
        finally:
            run(purge)
            shutil.rmtree("/var/lib/kd3", ignore_errors=True)
            run(["deluser", "--system", "kd3"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
