"""Adversary scenario support: the real kdc, responder and initiator on 127.0.0.1 with
kd3adv (this folder's man in the middle, built as <build>/tests/adversary/kd3adv) between
them:

    initiator --TCP--> kd3adv --TCP--> responder --UDP/TCP--> kd3adv --> kdc

A scenario is a file of rules under scenarios/ (grammar: kd3adv --help, README.md).
Every scenario test runs the attack and asserts its exact outcome, then an honest
session through the same responder and KDC (the man in the middle disarmed by SIGUSR1,
the initiator connecting to the responder directly), and then runs the same scenario
with --disarm: the rules still match and say so, nothing is changed, and the session
must complete; so a refusal the test asserts is the attack's doing.

KD3_BIN: the build directory. KD3_ADV_SHOW=1 prints every process's log at the end.
KD3_ADV_DISARM=1 runs every kd3adv disarmed, also in the attacked runs: then every
scenario test must fail (`KD3_ADV_DISARM=1 python3 test_adv_replay.py`), a check that
no assertion holds without the attack.
"""
import os
import re
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import kd3e2e as k  # noqa: E402
from kd3e2e import Proc, Realm  # noqa: E402

SCENARIOS = os.path.join(HERE, "scenarios")

# Initiator exit codes (initiator --help).
EXIT_OK, EXIT_HANDSHAKE, EXIT_AUTH, EXIT_GONE = 0, 3, 4, 5

# One-line texts (shared/err.c, shared/kdc_core.c) the scenarios look for.
T_BLOB = "sealed session key failed to open (wrong key or tampered)"
T_CONFIRM = "key confirmation failed (tampered or spliced exchange)"
T_SEQ = "record out of sequence (replayed, dropped or reordered)"
T_RAUTH = "record failed authentication (tampered or reflected)"
T_TRUNC = "session truncated: connection ended without CLOSE"
T_NO_KDC = "no KDC answered"
T_AUTH_I = "initiator authenticator did not verify"
T_AUTH_R = "responder authenticator did not verify"
T_UNEXPECTED = "unexpected message for this state of the exchange"
CODE_SEQ, CODE_RAUTH = 69, 70  # shared/err.h: KD3_E_RECORD_SEQ, KD3_E_RECORD_AUTH

RESPONDER_ARGS = ("--kdc-timeout-ms", "100", "--handshake-timeout", "3")
SHOW = os.environ.get("KD3_ADV_SHOW") == "1"
FORCE_DISARM = os.environ.get("KD3_ADV_DISARM") == "1"


def kd3adv():
    path = os.path.join(k.BIN, "tests", "adversary", "kd3adv")
    if not os.path.exists(path):
        raise RuntimeError(f"missing {path} (set KD3_BIN to the build dir)")
    return path


def rx(text):
    return re.escape(text)


def lines_for(tag, n):
    """n lines unique to this run, none of a length a guess could mistake (adv.h)."""
    return [f"{tag} line {i} {time.monotonic_ns()}" for i in range(1, n + 1)]


def changed(line):
    """The "(N bytes changed)" of a kd3adv edit line."""
    return int(re.search(r"\((\d+) bytes changed\)", line).group(1))


def read_tape(path):
    """A kd3adv recording: [(dir/transport, {kind: index}, bytes)]."""
    out = []
    with open(path) as f:
        for line in f:
            tok = line.split()
            tags = dict(t.split("#") for t in tok[1:-1])
            out.append((tok[0], {kk: int(v) for kk, v in tags.items()}, bytes.fromhex(tok[-1])))
    return out


def tape_frame(tape, where, kind, index):
    for w, tags, frame in tape:
        if w.split("/")[0] == where and tags.get(kind) == index:
            return frame
    raise AssertionError(f"{where} {kind}#{index} is not on the tape")


class Adv:
    """One kd3adv process: --tcp to the responder's port, --kdc to the KDC's."""

    def __init__(self, resp_port, kdc_port, scenario=None, rules=(), load=None, record=None,
                 disarm=False, seconds=60):
        argv = [kd3adv(), "--tcp", f"127.0.0.1:0=127.0.0.1:{resp_port}",
                "--kdc", f"127.0.0.1:0=127.0.0.1:{kdc_port}", "--seconds", str(seconds)]
        if scenario:
            argv += ["--scenario", os.path.join(SCENARIOS, scenario + ".rules")]
        for r in rules:
            argv += ["--rule", r]
        if load:
            argv += ["--load", load]
        if record:
            argv += ["--record", record]
        if disarm or FORCE_DISARM:
            argv.append("--disarm")
        self.proc = Proc(argv)
        self.tcp_port = int(self.proc.wait_for(r"relaying tcp 127\.0\.0\.1:(\d+) ").group(1))
        self.kdc_port = int(self.proc.wait_for(r"relaying udp\+tcp 127\.0\.0\.1:(\d+) ").group(1))
        self.proc.wait_for(r"^kd3adv: ready")

    def fired(self, rule, pattern, timeout=5.0):
        """The log line of rule number `rule` whose text matches pattern (a regex)."""
        return self.proc.wait_for(rf"^kd3adv: rule {rule}: {pattern}", timeout=timeout).string

    def actions(self, rule, expect=0, timeout=5.0):
        """The actions rule number `rule` took while armed. With expect, first waits (up
        to timeout) until that many are logged: kd3adv's stderr is read by a pump
        thread, which may not have passed on the last line yet when the test asks."""
        def taken():
            return [l for l in self.proc.lines
                    if l.startswith(f"kd3adv: rule {rule}: ") and "[disarmed" not in l]
        deadline = time.monotonic() + timeout
        with self.proc.cond:
            while len(taken()) < expect and time.monotonic() < deadline:
                self.proc.cond.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            return taken()

    def disarm(self):
        self.proc.p.send_signal(signal.SIGUSR1)
        self.proc.wait_for(r"disarmed \(SIGUSR1\)")

    def stop(self):
        rc = self.proc.stop()
        return rc


class Net:
    """A responder of the realm, and a kd3adv in front of it and of the realm's KDC."""

    def __init__(self, test, realm, kdc_port, scenario=None, rules=(), load=None, record=None,
                 disarm=False, resp_args=()):
        self.test, self.realm = test, realm
        self.echo = "--exec" in resp_args
        self.closed = False
        for _ in range(5):
            port = k.free_port()
            self.adv = Adv(port, kdc_port, scenario, rules, load, record, disarm)
            self.resp = Proc([k.exe("responder"), "--listen", f"127.0.0.1:{port}",
                              "--keyfile", realm.keyfile("bob"),
                              "--kdc", f"127.0.0.1:{self.adv.kdc_port}",
                              *RESPONDER_ARGS, *resp_args])
            try:
                self.resp.wait_for("listening on")
                break
            except AssertionError:
                self.resp.stop()
                self.adv.stop()
                if "Address already in use" not in self.resp.text():
                    raise
        else:
            raise AssertionError("no free port after 5 tries")
        self.resp.port = port
        test.addCleanup(self.close)

    def close(self):
        """Stops both; each must exit 0 on SIGTERM (so neither crashed nor, under the
        sanitizers, leaked)."""
        if self.closed:
            return
        self.closed = True
        rc_resp, rc_adv = self.resp.stop(), self.adv.stop()
        if SHOW:
            print(f"\n--- kd3adv\n{self.adv.proc.text()}\n--- responder\n{self.resp.text()}")
        self.test.assertEqual(rc_resp, 0, "the responder did not stop cleanly:\n" +
                              self.resp.text())
        self.test.assertEqual(rc_adv, 0, "kd3adv did not stop cleanly:\n" +
                              self.adv.proc.text())

    # -- initiator runs --

    def run(self, lines=(), *extra, direct=False, timeout=20):
        """One initiator run, all of stdin at once, through kd3adv (or directly)."""
        port = self.resp.port if direct else self.adv.tcp_port
        return self.realm.run_initiator(port, lines, "--timeout", "5", *extra, timeout=timeout)

    def start(self, *extra):
        """An initiator through kd3adv whose stdin is a pipe written line by line."""
        p = Proc(self.realm.initiator_argv(self.adv.tcp_port, "--timeout", "5", *extra),
                 stdin=subprocess.PIPE)
        self.test.addCleanup(p.stop)
        return p

    # -- what the responder said and delivered --

    def delivered(self):
        with self.resp.cond:
            return list(self.resp.out_lines)

    def wait_delivered(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.resp.cond:
            while len(self.resp.out_lines) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"responder delivered {self.resp.out_lines}; "
                                         f"{count} lines expected")
                self.resp.cond.wait(left)

    def resp_log(self, pattern, timeout=5.0):
        return self.resp.wait_for(pattern, timeout=timeout).string

    def control(self, *extra, before=()):
        """After the attack: kd3adv disarmed, an honest initiator straight to the same
        responder (which asks the same KDC through kd3adv) must get a session. The
        responder must have delivered exactly `before` (what the attacked runs got
        through), then the control's lines: checked once the control's lines are in, as
        the responder's stdout comes in order, so nothing of the attack can come later."""
        t = self.test
        self.adv.disarm()
        lines = lines_for("control", 3)
        r = self.run(lines, *extra, direct=True)
        t.assertEqual(r.rc, EXIT_OK, f"the honest run after the attack failed: {r}")
        t.assertIn("initiator: session with bob established", r.stderr)
        if self.echo:
            t.assertEqual(r.stdout, "".join(line + "\n" for line in lines))
        else:
            self.wait_delivered(len(before) + len(lines))
            t.assertEqual(self.delivered(), list(before) + lines)
        return lines


def send_line(p, line):
    """Writes one line to a streaming initiator; False when it has gone."""
    try:
        p.p.stdin.write(line.encode() + b"\n")
        p.p.stdin.flush()
        return True
    except (BrokenPipeError, ValueError):
        return False


def exited(p, timeout=8.0):
    try:
        return p.p.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("the initiator did not exit; stderr:\n" + p.text())


def finish(p, close_stdin=True):
    """Ends a streaming initiator's stdin (or not), waits for its exit: (rc, stdout lines,
    stderr)."""
    if close_stdin:
        try:
            p.p.stdin.close()
        except BrokenPipeError:
            pass
    rc = exited(p)
    p.stop()
    return rc, list(p.out_lines), p.text()


class AdvTest(unittest.TestCase):
    """A realm (alice, bob, carol) and a KDC shared by the tests of a class; each test
    makes its own responder and kd3adv with Net()."""

    KDC_ARGS = ()
    BUDGET_S = 20.0  # each test, armed and disarmed runs together

    @classmethod
    def prepare_realm(cls, realm):
        """Changes to the realm's database before its KDC starts."""

    @classmethod
    def setUpClass(cls):
        cls.realm = Realm(principals=("alice", "bob", "carol"))
        try:
            cls.prepare_realm(cls.realm)
            cls.kdc = cls.realm.start_kdc(*cls.KDC_ARGS, workers=1)
        except BaseException:
            cls.realm.close()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.kdc.stop()
        if SHOW:
            print("\n--- kdc\n" + cls.kdc.text())
        cls.realm.close()
        if rc != 0:
            raise AssertionError(f"the KDC did not stop cleanly (exit {rc}):\n" + cls.kdc.text())

    def setUp(self):
        self.t0 = time.monotonic()

    def tearDown(self):
        took = time.monotonic() - self.t0
        self.assertLess(took, self.BUDGET_S, f"{self.id()} took {took:.1f} s")

    def net(self, scenario=None, **kw):
        self.kdc_mark = len(self.kdc.lines)
        return Net(self, self.realm, self.realm.kdc_port, scenario, **kw)

    def kdc_said(self, pattern, count=None, timeout=5.0):
        """The KDC's log lines since the last net() that match pattern (a regex): at least
        one, or exactly count."""
        rxp = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            with self.kdc.cond:
                got = [l for l in self.kdc.lines[self.kdc_mark:] if rxp.search(l)]
            if (got and count is None) or (count is not None and len(got) == count):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"KDC lines matching {pattern!r}: {got}; "
                                     f"{count or 'some'} expected; log:\n" +
                                     "\n".join(self.kdc.lines[self.kdc_mark:]))
            time.sleep(0.05)

    def recording(self, *extra, name="run1"):
        """An honest earlier run through a recording kd3adv; the recording's path."""
        path = os.path.join(self.realm.dir, f"{name}-{time.monotonic_ns()}.rec")
        net = self.net(record=path)
        r = net.run(lines_for("earlier", 2), *extra)
        self.assertEqual(r.rc, EXIT_OK, r)
        net.close()
        return path

    # -- the honest outcome with the same rules disarmed --

    def disarmed(self, scenario, rules_fired, extra=(), load=None, resp_args=(), lines=3,
                 stream=None, first=False):
        """The scenario with --disarm: each rule of rules_fired logs that it matched
        (and changed nothing), the session completes, every line is delivered. first:
        an honest session goes first (for rules on the second session of a run)."""
        net = self.net(scenario, load=load, disarm=True, resp_args=resp_args)
        if first:
            self.assertEqual(net.run(["first session"], *extra).rc, EXIT_OK)
            net.wait_delivered(1)
            with net.resp.cond:
                net.resp.out_lines.clear()
        sent = lines_for("disarmed", lines)
        if stream:
            rc, out, err = stream(net, sent)
        else:
            r = net.run(sent, *extra)
            rc, out, err = r.rc, r.stdout.splitlines(), r.stderr
        self.assertEqual(rc, EXIT_OK, f"the disarmed scenario did not complete:\n{err}")
        self.assertIn("initiator: session with bob established", err)
        for rule in rules_fired:
            net.adv.fired(rule, r".*\[disarmed: forwarded unchanged\]$")
        if "--exec" in resp_args:
            self.assertEqual(out, sent)
        else:
            net.wait_delivered(len(sent))
            self.assertEqual(net.delivered(), sent)
        return net

    # -- common outcomes --

    def refused_handshake(self, net, rc, i_text, r_line, extra=(), session=1, before=()):
        """The initiator exits rc with i_text on stderr, never established; the
        responder logs r_line (a regex), never establishes this session and delivers
        nothing of it (only `before`); then the control."""
        r = net.run(lines_for("attacked", 2), *extra)
        self.assertEqual(r.rc, rc, r)
        self.assertIn(i_text, r.stderr)
        self.assertNotIn("established", r.stderr)
        self.assertEqual(r.stdout, "")
        line = net.resp_log(r_line)
        self.assertNotRegex(net.resp.text(), rf"session {session} with \S+ established")
        net.control(*extra, before=before)
        return line

    def kdc_refused(self, net, which, code="BAD_AUTH", text=None, extra=()):
        """The KDC refused the request (code and text); the responder passed it on."""
        text = text or (T_AUTH_I if which == "i" else T_AUTH_R)
        self.refused_handshake(
            net, EXIT_HANDSHAKE, f"initiator: error: responder reported {code}: KDC: {text}",
            rf"session 1 \(claiming \S+\) failed: KDC sent ERROR {code} \({rx(text)}\)$",
            extra)
