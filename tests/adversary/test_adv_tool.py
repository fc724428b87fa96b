#!/usr/bin/python3
"""kd3adv itself: its grammar refuses what it does not know (exit 2, one line saying
why), it attacks loopback only, it ends on SIGTERM or at --seconds with a summary, its
field edits go through the project's codec byte for byte (a no-op edit of each message
changes no byte and the session completes), it delays, and its recordings can be read
back (and a corrupt one is refused).
"""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from advnet import (EXIT_HANDSHAKE, EXIT_OK, AdvTest, Adv, kd3adv, lines_for,  # noqa: E402
                    read_tape)

EXIT_USAGE = 2


def adv_run(*args, timeout=10):
    p = subprocess.run([kd3adv(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Grammar(unittest.TestCase):
    RELAY = ("--tcp", "127.0.0.1:0=127.0.0.1:9", "--seconds", "1")

    def refused(self, rule, why, *extra):
        rc, out, err = adv_run(*self.RELAY, "--rule", rule, *extra)
        self.assertEqual(rc, EXIT_USAGE, err)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn(why, err)
        self.assertNotIn("ready", err)

    def test_rules_it_does_not_know(self):
        cases = [
            ("I->R M1#1", "not a rule: 'I->R M1#1'"),
            ("X->Y M1 drop", "not a rule"),
            ("I->R M9 drop", "not a rule"),
            ("I->R M1#0 drop", "not a rule"),
            ("I->R M1 delay 60001", "not a rule"),
            ("I->R M1 drop now", "not a rule"),
            ("I->R M1 inject 0g", "not a rule"),
            ("I->R M1 set nosuch=1", "M1 frames have no field 'nosuch'"),
            ("I->R M1 set kvno_i", "not a rule"),
            ("KDC->R M3 splice blob_i M1#1", "M1 frames have no field 'blob_i' to splice from"),
            ("I->R ANY flip n_i", "ANY frames have no field 'n_i'"),
            ("I->R M1 replace M1", "not a rule"),
        ]
        for rule, why in cases:
            with self.subTest(rule=rule):
                self.refused(rule, why)

    def test_earlier_needs_a_recording(self):
        self.refused("I->R M1 replace earlier:M1#1", "--load is required")

    def test_loopback_only(self):
        for pair in ("10.0.0.1:0=127.0.0.1:9", "127.0.0.1:0=192.168.1.1:9",
                     "127.0.0.1:0=127.0.0.1:0", "localhost:0=127.0.0.1:9"):
            with self.subTest(pair=pair):
                rc, _, err = adv_run("--tcp", pair)
                self.assertEqual(rc, EXIT_USAGE, err)
                self.assertIn("IPv4 loopback literals", err)

    def test_help(self):
        rc, out, _ = adv_run("--help")
        self.assertEqual(rc, 0)
        for word in ("RULE", "SRC", "splice", "earlier:", "SIGUSR1"):
            self.assertIn(word, out)

    def test_ends_at_seconds_with_a_summary(self):
        t0 = time.monotonic()
        rc, _, err = adv_run(*self.RELAY, "--rule", "I->R M1 drop")
        self.assertEqual(rc, 0, err)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("kd3adv: time is up", err)
        self.assertIn("kd3adv: rule 1 never fired: I->R M1 drop", err)
        self.assertIn("kd3adv: end: 0 frames, 0 rule actions, 0 failed", err)

    def test_ends_on_sigterm(self):
        a = Adv(9, 9, rules=["I->R M1 drop"])
        a.proc.p.send_signal(signal.SIGTERM)
        self.assertEqual(a.proc.p.wait(5), 0)
        a.proc.wait_for(r"kd3adv: end: 0 frames")
        a.stop()

    def test_scenario_files_parse(self):
        """Every scenario file of the suite is accepted (those that take earlier: frames
        with a recording)."""
        folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
        empty = os.path.join(folder, "..", "__no_such__")
        for name in sorted(os.listdir(folder)):
            with self.subTest(scenario=name):
                path = os.path.join(folder, name)
                load = ("--load", os.devnull) if "earlier:" in open(path).read() else ()
                rc, _, err = adv_run(*self.RELAY, "--check", "--scenario", path, *load)
                self.assertEqual(rc, 0, err)
                self.assertRegex(err, r"^kd3adv: [1-9] rules, all good\n$")
        rc, _, err = adv_run(*self.RELAY, "--check", "--scenario", empty)
        self.assertEqual(rc, EXIT_USAGE, err)


class Tool(AdvTest):
    NOOP = ["I->R M1#1 set kvno_i=1", "R->KDC M2#1 set kvno_r=1", "KDC->R M3#1 set lifetime=3600",
            "R->I M4#1 set lifetime=3600", "I->R RECORD#2 set seq=1", "R->I RECORD#1 set seq=0"]

    def test_noop_edits_change_no_byte(self):
        """Each message decoded and encoded again with a field set to the value it had:
        no byte changes and the session completes, in both modes (forward secrecy adds
        e_i, e_r)."""
        for extra in ((), ("--forward-secret",)):
            with self.subTest(extra=extra):
                net = self.net(rules=self.NOOP)
                lines = lines_for("noop", 2)
                r = net.run(lines, *extra)
                self.assertEqual(r.rc, EXIT_OK, r)
                for i in range(1, len(self.NOOP) + 1):
                    net.adv.fired(i, r".*\(0 bytes changed\)$")
                net.wait_delivered(2)
                self.assertEqual(net.delivered(), lines)

    def test_noop_edit_of_an_error(self):
        """An ERROR (the KDC's KVNO_UNKNOWN, code 5) decoded and encoded again unchanged."""
        net = self.net(rules=["I->R M1#1 set kvno_i=9", "KDC->R ERROR set code=5"])
        r = net.run(["x"])
        self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
        self.assertIn("KVNO_UNKNOWN", r.stderr)
        net.adv.fired(2, r"KDC->R/udp ERROR#1: set code=5 \(0 bytes changed\)$")

    def test_an_edit_that_cannot_apply_says_so(self):
        """A swap of unlike fields fails at run time: one line, the frame goes on."""
        net = self.net(rules=["I->R M1#1 swap id_i kvno_i"])
        r = net.run(["x"])
        self.assertEqual(r.rc, EXIT_OK, r)
        net.adv.fired(1, r"I->R/tcp M1#1: failed: id_i and kvno_i are not alike: cannot swap; "
                         r"forwarded unchanged$")

    def test_delay(self):
        """M4 delayed 400 ms: the session completes, no sooner."""
        net = self.net(rules=["R->I M4#1 delay 400"])
        t0 = time.monotonic()
        r = net.run(["late"])
        self.assertEqual(r.rc, EXIT_OK, r)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        net.adv.fired(1, r"R->I/tcp M4#1: delayed 400 ms$")

    def test_recording(self):
        """A recording holds every frame once, in order, with its kinds and indexes; a
        line that is not a frame makes --load fail (exit 1)."""
        rec = self.recording()
        tape = read_tape(rec)
        where = [(w, sorted(t)) for w, t, _ in tape]
        self.assertEqual(where[:5], [("I->R/tcp", ["ANY", "M1"]), ("R->KDC/udp", ["ANY", "M2"]),
                                     ("KDC->R/udp", ["ANY", "M3"]), ("R->I/tcp", ["ANY", "M4"]),
                                     ("I->R/tcp", ["ANY", "FINISHED", "RECORD"])])
        for _, _, frame in tape:
            self.assertEqual(len(frame), 4 + int.from_bytes(frame[2:4], "big"))
        bad = rec + ".bad"
        with open(bad, "w") as f:
            f.write(open(rec).read() + "I->R/tcp M1#9 0g\n")
        rc, _, err = adv_run(*Grammar.RELAY, "--load", bad)
        self.assertEqual(rc, 1, err)
        self.assertIn(f"--load: {bad}:{len(tape) + 1}: not a recorded frame", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
