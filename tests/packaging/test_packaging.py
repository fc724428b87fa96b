"""Install rules, the Debian package, man pages and bash completion.

  - `cmake --install` into a scratch prefix puts the three programs, the man pages,
    the examples, the docs, the Wireshark dissector and the completions where they
    belong, and the installed programs run;
  - `cpack -G DEB` makes three packages: libkd3-0 (the shared library by its SONAME,
    with a shlibs file), libkd3-dev (headers, the .so link, libkd3.a, kd3.pc, kd3(3),
    depending on exactly this libkd3-0), and kd3_VERSION_ARCH.deb whose Depends name the runtime
    libraries the programs link (each an installed Debian package), whose files sit
    under /usr, and which, unpacked into a scratch root, runs `kdc --version`; in CI
    (root) it is also installed for real with apt and removed again;
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


class DebianPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="kd3-deb-")
        r = run(["cpack", "-G", "DEB", "-B", cls.out, "--config",
                 os.path.join(BIN, "CPackConfig.cmake")], cwd=BIN)
        assert r.returncode == 0, r.stdout + r.stderr
        debs = glob.glob(os.path.join(cls.out, "kd3_*.deb"))
        assert len(debs) == 1, debs
        cls.deb = debs[0]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def field(self, name):
        r = run(["dpkg-deb", "-f", self.deb, name])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    def test_control(self):
        self.assertEqual(self.field("Package"), "kd3")
        self.assertEqual(self.field("Version"), version())
        fields = self.field("Depends").split(", ")
        depends = [d.split()[0] for d in fields]
        for lib in ("libmbedcrypto7", "libsqlite3-0", "libinih1", "libcjson1", "libedit2"):
            self.assertIn(lib, depends)
        # The initiator links libkd3.so.0: the library package of this very build.
        self.assertIn(f"libkd3-0 (= {version()})", fields)
        for d in depends:  # each other one a real Debian package, installed here
            if d == "libkd3-0":
                continue
            r = run(["dpkg-query", "-W", "-f=${Status}", d])
            self.assertIn("install ok installed", r.stdout, d)

    def test_contents_and_run_from_a_scratch_root(self):
        r = run(["dpkg-deb", "-c", self.deb])
        names = {line.split()[-1] for line in r.stdout.splitlines()}
        for p in PROGRAMS:
            self.assertIn(f"./usr/bin/{p}", names)
        self.assertIn("./usr/share/man/man8/kdc.8", names)
        self.assertTrue(any(n.endswith("/wireshark/plugins/kd3.lua") for n in names))
        self.assertTrue(all(n.startswith("./usr/") or n in ("./",) or n.startswith("./usr")
                            for n in names), names)
        root = tempfile.mkdtemp(prefix="kd3-root-")
        try:
            self.assertEqual(run(["dpkg", "-x", self.deb, root]).returncode, 0)
            r = run([os.path.join(root, "usr/bin/kdc"), "--version"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(version(), r.stdout + r.stderr)
            # The initiator finds the libkd3.so.0 of the library package beside it.
            lib = glob.glob(os.path.join(self.out, "libkd3-0_*.deb"))
            self.assertEqual(run(["dpkg", "-x", lib[0], root]).returncode, 0)
            r = run([os.path.join(root, "usr/bin/initiator"), "--version"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(version(), r.stdout + r.stderr)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def library_package(self, name):
        debs = glob.glob(os.path.join(self.out, f"{name}_*.deb"))
        self.assertEqual(len(debs), 1, debs)
        r = run(["dpkg-deb", "-c", debs[0]])
        return debs[0], {line.split()[5] for line in r.stdout.splitlines()}

    def test_library_packages(self):
        deb, names = self.library_package("libkd3-0")
        fields = run(["dpkg-deb", "-f", deb, "Package", "Section"]).stdout
        self.assertIn("Package: libkd3-0", fields)
        self.assertIn("Section: libs", fields)
        libs = {os.path.basename(n) for n in names if "/lib/" in n and not n.endswith("/")}
        self.assertEqual(libs, {"libkd3.so.0", f"libkd3.so.{version()}"})
        r = run(["dpkg-deb", "-I", deb, "shlibs"])
        self.assertIn("libkd3 0 libkd3-0", r.stdout)
        deb, names = self.library_package("libkd3-dev")
        self.assertEqual(run(["dpkg-deb", "-f", deb, "Depends"]).stdout.strip(),
                         f"libkd3-0 (= {version()})")
        for want in ("/usr/include/kd3/kd3.h", "/usr/include/kd3/error.h", "/libkd3.so",
                     "/libkd3.a", "/pkgconfig/kd3.pc", "/usr/share/man/man3/kd3.3",
                     "/examples/lib/echo_client.c"):
            self.assertTrue(any(n.endswith(want) for n in names), (want, names))
        self.assertFalse(any(n.startswith("./usr/bin/") for n in names), names)
        _, names = self.library_package("kd3")
        self.assertFalse(any("libkd3" in n or "/include/" in n for n in names), names)

    @unittest.skipUnless(IN_CI, "installs the package system-wide: CI only (root)")
    def test_apt_install_for_real(self):
        # The programs' package with the library package it depends on (the initiator
        # links libkd3.so.0), both from this build.
        lib = glob.glob(os.path.join(self.out, "libkd3-0_*.deb"))
        self.assertEqual(len(lib), 1, lib)
        r = run(["apt-get", "install", "-y", self.deb, lib[0]],
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        try:
            r = run(["/usr/bin/kdc", "--version"])
            self.assertEqual(r.returncode, 0, r.stderr)
            r = run(["/usr/bin/initiator", "--version"])
            self.assertEqual(r.returncode, 0, r.stderr)
            r = run(["man", "-w", "kdc"])
            self.assertIn("/usr/share/man/man8/kdc.8", r.stdout)
        finally:
            run(["dpkg", "-r", "kd3", "libkd3-0"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
