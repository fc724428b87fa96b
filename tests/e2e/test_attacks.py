#!/usr/bin/python3
"""End-to-end attacks: the real kdc, responder and initiator on 127.0.0.1, with a man in
the middle between initiator and responder (TCP) and between responder and KDC (UDP).

    initiator --TCP--> TcpMitm --> responder --UDP--> UdpMitm --> kdc

Each test asserts the exact outcome of one attack: which party refuses, the initiator's
exit code and one-line error, the responder's log line, and that no session data was
delivered after the point of failure (byte for byte). Each test checks that the man in
the middle saw and altered the frame it targets, and after each attack an honest run
through the same responder and KDC must still succeed.

KD3_BIN: the build directory (default ../../build from this file).
KD3_E2E_DISARM=1: every attack forwards its frames unchanged (it still counts what it
would have altered), so every attack test must FAIL: a check that the assertions are not
vacuous (`KD3_E2E_DISARM=1 python3 test_attacks.py` reports a failure for each test).
KD3_E2E_SHOW=1: print the responder's and the KDC's logs at the end of each test.
"""
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mitm as M  # noqa: E402
from kd3e2e import Proc, Realm  # noqa: E402

DISARM = os.environ.get("KD3_E2E_DISARM") == "1"

# Exit codes of the initiator (initiator --help).
EXIT_OK, EXIT_RUNTIME, EXIT_HANDSHAKE, EXIT_AUTH, EXIT_GONE = 0, 1, 3, 4, 5

# One-line texts (shared/err.c, shared/kdc_core.c) the tests look for.
T_BLOB = "sealed session key failed to open (wrong key or tampered)"
T_CONFIRM = "key confirmation failed (tampered or spliced exchange)"
T_SEQ = "record out of sequence (replayed, dropped or reordered)"
T_RAUTH = "record failed authentication (tampered or reflected)"
T_TRUNC = "session truncated: connection ended without CLOSE"
T_NO_KDC = "no KDC answered"
T_AUTH_I = "initiator authenticator did not verify"
T_AUTH_R = "responder authenticator did not verify"
CODE_SEQ, CODE_RAUTH = 69, 70  # shared/err.h: KD3_E_RECORD_SEQ, KD3_E_RECORD_AUTH
CODE_BAD_AUTH = 4

HDR = M.HDR


# ---- frame layouts (docs/PROTOCOL.md, section 4): offsets into whole frames ------------

SIZES = {"suite": 1, "flags": 1, "kvno_i": 4, "kvno_r": 4, "lifetime": 4, "blob_r": 48,
         "blob_i": 48}  # every other field is 32 bytes


def m1_offsets(frame):
    off = HDR + 2
    off += 1 + frame[off]  # id_i
    off += 1 + frame[off]  # id_r
    o = {"suite": HDR, "flags": HDR + 1, "n_i": off, "kvno_i": off + 32}
    off += 36
    if frame[HDR + 1] & 1:
        o["e_i"] = off
        off += 32
    o["auth_i"] = off
    return o


def m2_offsets(frame):
    (m1_len,) = struct.unpack(">H", frame[HDR:HDR + 2])
    m1 = frame[:HDR] + frame[HDR + 2:HDR + 2 + m1_len]  # the inner M1 with a header
    o = {"m1." + k: v + 2 for k, v in m1_offsets(m1).items()}
    n_r = HDR + 2 + m1_len
    o.update(n_r=n_r, kvno_r=n_r + 32, auth_r=len(frame) - 32)
    return o


M3_OFFSETS = {"n_r": 4, "lifetime": 36, "blob_r": 40, "blob_i": 88}  # 136-byte frame


def m4_offsets(frame):
    o = {"n_r": 4, "kvno_r": 36}
    off = 40
    if len(frame) == HDR + 152:  # forward-secret: e_r
        o["e_r"] = off
        off += 32
    o.update(lifetime=off, blob_i=off + 4, confirm_r=off + 52)
    return o


def is_type(frame, t):
    return len(frame) >= HDR and frame[1] == t


def flip_in(frame, field, at):
    """frame with one bit flipped in the middle of field (at its offset at)."""
    return M.flip(frame, at + SIZES.get(field, 32) // 2, 0x10)


def rx(text):
    return re.escape(text)


# ---- attacks -------------------------------------------------------------------------

class Ev:
    """One frame passing the man in the middle, as an attack function sees it."""

    def __init__(self, direction, n, frame):
        self.direction, self.n, self.frame = direction, n, frame
        self.backs = []

    @property
    def type(self):
        return self.frame[1] if len(self.frame) >= 2 else -1

    def record_seq(self):
        return M.record_seq(self.frame) if self.type == M.T_RECORD else -1

    def back(self, frame):
        """Sends frame back to where this one came from (reflection)."""
        self.backs.append(frame)


class Attack:
    """Wraps an attack function fn(ev) -> the frames to forward (a list; None cuts the
    connection). Counts the frames it altered; with KD3_E2E_DISARM=1 it forwards every
    frame unchanged."""

    def __init__(self, fn):
        self.fn = fn
        self.altered = 0
        self.lock = threading.Lock()

    def __call__(self, conn, direction, n, frame):
        ev = Ev(direction, n, frame)
        out = self.fn(ev)
        if out == [frame] and not ev.backs:
            return out
        with self.lock:
            self.altered += 1
        if DISARM:
            return [frame]
        for b in ev.backs:
            # The socket of the frame's sender, named explicitly: conn.back() relies on
            # the last frame handled, which the other direction's thread may change.
            (conn.client if direction == "I->R" else conn.server).sendall(b)
        return out


def replace_type(t, new):
    """Every frame of type t is replaced by new(frame)."""
    return lambda ev: [new(ev.frame)] if ev.type == t else [ev.frame]


def flip_field(t, offsets, field):
    """Every frame of type t gets one bit flipped in field."""
    def fn(ev):
        if ev.type != t:
            return [ev.frame]
        o = offsets(ev.frame) if callable(offsets) else offsets
        return [flip_in(ev.frame, field, o[field])]
    return fn


def is_record(ev, direction, seq):
    """ev is the record of seq in direction (I->R: FINISHED is 0, the first DATA 1)."""
    return ev.direction == direction and ev.record_seq() == seq


# ---- the network under test -----------------------------------------------------------

def reserve_tcp(port):
    """Binds 127.0.0.1:port for TCP without listening: the responder's TCP fallback to the
    UDP man in the middle is then refused at once (and nothing else holds the port)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


def retry_bind(start, tries=3):
    """start() a server; again on another port if another process took the free port
    between kd3e2e.free_port() and the server's bind (seen with parallel test runs)."""
    for i in range(tries):
        try:
            return start()
        except AssertionError as e:
            if "Address already in use" not in str(e) or i == tries - 1:
                raise


class Net:
    """A realm with a KDC, a UdpMitm in front of it, a responder asking the KDC through
    it, and a TcpMitm in front of the responder. An attack is set per run."""

    def __init__(self, test, resp_args=()):
        self.test = test
        self.realm = Realm()
        test.addCleanup(self.realm.close)
        self.kdc = retry_bind(self.realm.start_kdc)
        self.udp_attack = self.tcp_attack = None
        for _ in range(20):
            self.udp = M.UdpMitm(self.realm.kdc_port, hook=self._udp_hook)
            self.tcp_block = reserve_tcp(self.udp.port)
            if self.tcp_block:
                break
            self.udp.close()
        test.addCleanup(self._close_udp)
        self.resp = retry_bind(lambda: self.realm.start_responder(
            "--kdc-timeout-ms", "100", "--handshake-timeout", "3", *resp_args,
            kdc=[f"127.0.0.1:{self.udp.port}"]))
        self.tcp = M.TcpMitm(self.resp.port, hook=self._tcp_hook, half_close=True)
        test.addCleanup(self.tcp.close)
        self.echo = "--exec" in resp_args

    def _close_udp(self):
        if os.environ.get("KD3_E2E_SHOW"):
            print("\n--- responder\n" + self.resp.text() + "\n--- kdc\n" + self.kdc.text())
        self.udp.close()
        self.tcp_block.close()
        for conn in list(self.udp.conns.values()):
            conn.up.close()

    def _udp_hook(self, conn, direction, n, frame):
        a = self.udp_attack
        return a(conn, direction, n, frame) if a else [frame]

    def _tcp_hook(self, conn, direction, n, frame):
        a = self.tcp_attack
        return a(conn, direction, n, frame) if a else [frame]

    def attack(self, tcp=None, udp=None):
        self.tcp_attack = Attack(tcp) if tcp else None
        self.udp_attack = Attack(udp) if udp else None
        return self.tcp_attack or self.udp_attack

    # -- what the responder delivered (default mode: one line on stdout per DATA) --

    def mark(self):
        with self.resp.cond:
            return len(self.resp.out_lines)

    def delivered(self, since):
        with self.resp.cond:
            return list(self.resp.out_lines[since:])

    def wait_delivered(self, since, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.resp.cond:
            while len(self.resp.out_lines) - since < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"responder delivered {self.resp.out_lines[since:]}; "
                                         f"{count} lines expected")
                self.resp.cond.wait(left)

    def resp_log(self, pattern, timeout=5.0):
        """The responder's log line matching pattern (a regex); fails if none comes."""
        return self.resp.wait_for(pattern, timeout=timeout).string

    # -- initiator runs --

    def run(self, lines=(), *extra):
        """One initiator run with all of stdin at once."""
        return self.realm.run_initiator(self.tcp.port, lines, "--timeout", "5", *extra,
                                        timeout=20)

    def start(self, *extra):
        """An initiator whose stdin is a pipe we write line by line."""
        p = Proc(self.realm.initiator_argv(self.tcp.port, "--timeout", "5", *extra),
                 stdin=subprocess.PIPE)
        self.test.addCleanup(p.stop)
        return p

    def control(self, *extra):
        """An honest run through the same responder and KDC must still succeed; its
        lines, which are all the responder delivers for it."""
        self.tcp_attack = self.udp_attack = None
        since = self.mark()
        lines = [f"control {i} {time.monotonic_ns()}" for i in range(3)]
        r = self.run(lines, *extra)
        self.test.assertEqual(r.rc, EXIT_OK, f"the honest run after the attack failed: {r}")
        self.test.assertIn("initiator: session with bob established", r.stderr)
        if self.echo:
            self.test.assertEqual(r.stdout, "".join(line + "\n" for line in lines))
        else:
            self.test.assertEqual(r.stdout, "")
            self.wait_delivered(since, len(lines))
        return lines


def send_line(p, line):
    """Writes one line to a streaming initiator; False when it has gone."""
    try:
        p.p.stdin.write(line.encode() + b"\n")
        p.p.stdin.flush()
        return True
    except (BrokenPipeError, ValueError):
        return False


def exited(p, timeout=6.0):
    """Waits for the initiator to exit by itself (its stdin still open)."""
    try:
        return p.p.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("the initiator did not exit; stderr:\n" + p.text())


def finish(p):
    """Closes the initiator's stdin, waits for its exit; (rc, stdout lines, stderr)."""
    try:
        p.p.stdin.close()
    except BrokenPipeError:
        pass
    rc = exited(p)
    p.stop()  # joins the pumps: every line is in
    return rc, list(p.out_lines), p.text()


def wait_until(cond, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# ---- the tests ---------------------------------------------------------------------------

class AttackTest(unittest.TestCase):
    def setUp(self):
        self.t0 = time.monotonic()

    def tearDown(self):
        took = time.monotonic() - self.t0
        self.assertLess(took, 10.0, f"{self.id()} took {took:.1f} s")

    def honest_first(self, net):
        """Run 1, honest: its frames are in the MITM logs for the replays."""
        since = net.mark()
        r = net.run(["run 1"])
        self.assertEqual(r.rc, EXIT_OK, r)
        net.wait_delivered(since, 1)  # so that the next mark() is after it

    def handshake_refused(self, net, attack, rc, i_text, r_line, extra=()):
        """An attacked handshake: the attack fired, the initiator exits rc with i_text on
        stderr, the responder logs r_line (a regex), nothing of the run is delivered, and
        an honest run afterwards succeeds."""
        since = net.mark()
        r = net.run(["must not arrive 1", "must not arrive 2"], *extra)
        self.assertGreaterEqual(attack.altered, 1, "the attack never fired")
        self.assertEqual(r.rc, rc, r)
        self.assertIn(i_text, r.stderr)
        self.assertNotIn("established", r.stderr)
        self.assertEqual(r.stdout, "")
        net.resp_log(r_line)
        ctl = net.control(*extra)
        self.assertEqual(net.delivered(since), ctl)  # nothing of the attacked run

    # -- replays -----------------------------------------------------------------------

    def test_replayed_m3_is_ignored(self):
        """Run 2's M3 replaced by run 1's at the UDP MITM: the responder ignores an M3
        for another n_r as not for this exchange and retransmits M2; every answer is
        replaced again; after 3 UDP tries and a refused TCP try it gives up and tells
        the initiator ERROR TIMEOUT: exit 3."""
        net = Net(self)
        self.honest_first(net)
        old = net.udp.frames("KDC->R")
        self.assertEqual(len(old), 1)
        self.assertTrue(is_type(old[0], M.T_M3))
        a = net.attack(udp=replace_type(M.T_M3, lambda f: old[0]))
        self.handshake_refused(net, a, EXIT_HANDSHAKE,
                               f"initiator: error: responder reported TIMEOUT: {T_NO_KDC}",
                               rf"session 2 \(claiming alice\) failed: {T_NO_KDC} \(1 KDC tried")
        self.assertEqual(a.altered, 3)  # the first try and two retransmits
        log = net.resp.text()
        self.assertEqual(log.count("session 2: ignored a reply from the KDC that is not for "
                                   "this exchange"), 3)
        self.assertNotIn("session 2 with alice established", log)

    def test_replayed_m3_with_current_n_r(self):
        """Run 1's M3 with its public n_r rewritten to run 2's: it passes the responder's
        n_r check, but blob_r does not open (TH differs): ERROR BAD_AUTH to I; exit 3."""
        net = Net(self)
        self.honest_first(net)
        old = net.udp.frames("KDC->R")[0]
        a = net.attack(udp=replace_type(M.T_M3, lambda f: old[:4] + f[4:36] + old[36:]))
        self.handshake_refused(net, a, EXIT_HANDSHAKE,
                               f"initiator: error: responder reported BAD_AUTH: {T_BLOB}",
                               rf"session 2 \(claiming alice\) failed: {rx(T_BLOB)}$")
        self.assertEqual(a.altered, 1)

    def test_replayed_m4(self):
        """Run 2's M4 replaced by run 1's at the TCP MITM: its blob_i is sealed under
        run 1's TH (another n_i): the initiator exits 4 and tells R ERROR BAD_AUTH."""
        net = Net(self)
        self.honest_first(net)
        old = net.tcp.frames("R->I")[0]
        self.assertTrue(is_type(old, M.T_M4))
        a = net.attack(tcp=replace_type(M.T_M4, lambda f: old))
        self.handshake_refused(
            net, a, EXIT_AUTH, f"initiator: error: handshake failed: {T_BLOB}",
            rf"session 2 \(claiming alice\) failed: initiator sent ERROR BAD_AUTH "
            rf"\({rx(T_BLOB)}\)$")
        self.assertEqual(a.altered, 1)

    # -- a flipped bit in each handshake message -----------------------------------------

    def kdc_refuses(self, net, a, which, extra=()):
        """The KDC answered BAD_AUTH naming which authenticator; R passed it on."""
        text = T_AUTH_I if which == "i" else T_AUTH_R
        self.handshake_refused(
            net, a, EXIT_HANDSHAKE, f"initiator: error: responder reported BAD_AUTH: KDC: {text}",
            rf"session \d+ \(claiming alice\) failed: KDC sent ERROR BAD_AUTH \({text}\)$", extra)
        net.kdc.wait_for(rf"udp 127\.0\.0\.1:\d+ alice -> bob kvno 1/1 BAD_AUTH \({text}\)")

    def test_flip_m1(self):
        """A bit of M1 (n_i, auth_i) flipped: R cannot tell; the KDC refuses auth_i."""
        net = Net(self)
        for field in ("n_i", "auth_i"):
            with self.subTest(field=field):
                a = net.attack(tcp=flip_field(M.T_M1, m1_offsets, field))
                self.kdc_refuses(net, a, "i")
                self.assertEqual(a.altered, 1)

    def test_flip_m2(self):
        """A bit of M2 flipped at the UDP MITM: in the inner M1 the KDC refuses auth_i,
        in R's part auth_r (kvno_r: KVNO_UNKNOWN, checked before the authenticators);
        R forwards the ERROR, the initiator exits 3."""
        net = Net(self)
        for field, which in (("m1.n_i", "i"), ("m1.auth_i", "i"), ("n_r", "r"),
                             ("kvno_r", "r"), ("auth_r", "r")):
            with self.subTest(field=field):
                a = net.attack(udp=flip_field(M.T_M2, m2_offsets, field))
                if field == "kvno_r":  # kvno 1 -> 4097: not live, refused before auth_r
                    self.handshake_refused(
                        net, a, EXIT_HANDSHAKE,
                        "initiator: error: responder reported KVNO_UNKNOWN: KDC: responder "
                        "key version is not live",
                        r"session \d+ \(claiming alice\) failed: KDC sent "
                        r"ERROR KVNO_UNKNOWN \(responder key version is not live\)$")
                else:
                    self.kdc_refuses(net, a, which)
                self.assertEqual(a.altered, 1)

    def test_flip_m3_blob_r(self):
        """A bit of M3's blob_r, or of its lifetime (in both blobs' AD), flipped: R's blob
        does not open; R sends ERROR BAD_AUTH to I, which exits 3."""
        net = Net(self)
        for field in ("blob_r", "lifetime"):
            with self.subTest(field=field):
                a = net.attack(udp=flip_field(M.T_M3, M3_OFFSETS, field))
                self.handshake_refused(
                    net, a, EXIT_HANDSHAKE,
                    f"initiator: error: responder reported BAD_AUTH: {T_BLOB}",
                    rf"session \d+ \(claiming alice\) failed: {rx(T_BLOB)}$")
                self.assertEqual(a.altered, 1)

    def test_flip_m3_blob_i(self):
        """A bit of M3's blob_i flipped: R opens blob_r and forwards blob_i in M4; the
        initiator's blob does not open: exit 4, ERROR BAD_AUTH to R."""
        net = Net(self)
        a = net.attack(udp=flip_field(M.T_M3, M3_OFFSETS, "blob_i"))
        self.handshake_refused(
            net, a, EXIT_AUTH, f"initiator: error: handshake failed: {T_BLOB}",
            rf"session 1 \(claiming alice\) failed: initiator sent ERROR BAD_AUTH "
            rf"\({rx(T_BLOB)}\)$")
        self.assertEqual(a.altered, 1)

    def test_flip_m4(self):
        """A bit of each M4 field flipped: the initiator refuses (the sealed key for n_r,
        kvno_r, lifetime, blob_i; the confirmation for confirm_r): exit 4, and it tells R
        ERROR BAD_AUTH."""
        net = Net(self)
        cases = [("n_r", T_BLOB), ("kvno_r", T_BLOB), ("lifetime", T_BLOB),
                 ("blob_i", T_BLOB), ("confirm_r", T_CONFIRM)]
        for field, text in cases:
            with self.subTest(field=field):
                a = net.attack(tcp=flip_field(M.T_M4, m4_offsets, field))
                self.handshake_refused(
                    net, a, EXIT_AUTH, f"initiator: error: handshake failed: {text}",
                    r"session \d+ \(claiming alice\) failed: initiator sent ERROR BAD_AUTH "
                    rf"\({rx(text)}\)$")
                self.assertEqual(a.altered, 1)

    def test_flip_finished(self):
        """A bit of FINISHED's tag flipped: R refuses the record and answers ERROR code 4
        (BAD_AUTH) "record failed authentication"; the initiator, which counts itself
        established once it sent FINISHED, exits 4 (authentication failure) naming it.
        Five times: stable."""
        net = Net(self)
        for i in range(5):
            with self.subTest(run=i):
                a = net.attack(tcp=lambda ev: [M.flip(ev.frame, -1)]
                               if is_record(ev, "I->R", 0) else [ev.frame])
                since = net.mark()
                r = net.run(["must not arrive 1", "must not arrive 2"])
                self.assertEqual(a.altered, 1)
                self.assertEqual(r.rc, EXIT_AUTH, r)
                self.assertIn("initiator: error: responder closed the session with reason "
                              f"{CODE_BAD_AUTH} (BAD_AUTH): {T_RAUTH}", r.stderr)
                self.assertEqual(r.stdout, "")
                session = 2 * i + 1
                net.resp_log(rf"session {session} \(claiming alice\) failed: {rx(T_RAUTH)}$")
                self.assertNotIn(f"session {session} with alice established", net.resp.text())
                ctl = net.control()
                self.assertEqual(net.delivered(since), ctl)

    # -- records ---------------------------------------------------------------------------

    def stream(self, net, attack_fn, waited, attacked, after):
        """A streaming initiator writes `waited` lines, each waited for at the responder,
        then `attacked` lines, each waited for at the MITM (the attack fires on each),
        then `after` lines at once; then its stdin ends.
        Returns (attack, rc, stdout lines, stderr, lines, responder mark)."""
        since = net.mark()
        a = net.attack(tcp=attack_fn)
        p = net.start()
        lines = [f"line {k} {time.monotonic_ns()}" for k in range(1, waited + attacked + after + 1)]
        for k, line in enumerate(lines[:waited + attacked]):
            self.assertTrue(send_line(p, line))
            if k < waited:
                net.wait_delivered(since, k + 1)
            else:
                wait_until(lambda: a.altered >= k - waited + 1, "the attack")
        for line in lines[waited + attacked:]:
            send_line(p, line)
        rc, out, err = finish(p)
        return a, rc, out, err, lines, since

    def assert_r_refused(self, net, res, code, text, kept):
        """R refused an I->R record: the initiator exits 4 (R reports an authentication
        failure of our records) naming R's CLOSE reason; R delivered exactly lines[:kept]."""
        a, rc, out, err, lines, since = res
        self.assertGreaterEqual(a.altered, 1, "the attack never fired")
        self.assertEqual(rc, EXIT_AUTH, err)
        self.assertIn(f"initiator: error: responder closed the session with reason {code} "
                      f"({text}): {text}", err)
        self.assertEqual(out, [])
        net.resp_log(rf"session 1 with alice failed: {rx(text)}$")
        ctl = net.control()
        self.assertEqual(net.delivered(since), lines[:kept] + ctl)

    def test_record_replayed(self):
        """DATA 2 forwarded, then DATA 1 replayed: R delivers lines 1 and 2, refuses the
        replay (out of sequence) and CLOSEs with reason 69, which the initiator names."""
        net = Net(self)
        saved = {}

        def fn(ev):
            if is_record(ev, "I->R", 1):
                saved[1] = ev.frame
            if is_record(ev, "I->R", 2):
                return [ev.frame, saved[1]]
            return [ev.frame]
        res = self.stream(net, fn, waited=1, attacked=1, after=3)
        self.assert_r_refused(net, res, CODE_SEQ, T_SEQ, kept=2)

    def test_record_dropped(self):
        """DATA 2 dropped: DATA 3 is out of sequence at R; only line 1 is delivered."""
        net = Net(self)
        res = self.stream(net, lambda ev: [] if is_record(ev, "I->R", 2) else [ev.frame],
                          waited=1, attacked=1, after=3)
        self.assert_r_refused(net, res, CODE_SEQ, T_SEQ, kept=1)

    def test_record_reordered(self):
        """DATA 2 held back and sent after DATA 3: R refuses DATA 3 (out of sequence)."""
        net = Net(self)
        held = {}

        def fn(ev):
            if is_record(ev, "I->R", 2):
                held[2] = ev.frame
                return []
            if is_record(ev, "I->R", 3):
                return [ev.frame, held[2]]
            return [ev.frame]
        res = self.stream(net, fn, waited=1, attacked=2, after=2)
        self.assert_r_refused(net, res, CODE_SEQ, T_SEQ, kept=1)
        self.assertEqual(res[0].altered, 2)

    def test_flip_data_i2r(self):
        """A bit of DATA 2 (I->R) flipped: R refuses it (record failed authentication)
        and CLOSEs with reason 70; only line 1 is delivered."""
        net = Net(self)
        res = self.stream(
            net, lambda ev: [M.flip(ev.frame, -1)] if is_record(ev, "I->R", 2) else [ev.frame],
            waited=1, attacked=1, after=3)
        self.assert_r_refused(net, res, CODE_RAUTH, T_RAUTH, kept=1)
        self.assertEqual(res[0].altered, 1)

    def echo_session(self, net, attack_fn, waited, after, close=True):
        """With --exec cat: `waited` lines, each waited for as the echo on the initiator's
        stdout, then `after` lines at once. Returns (attack, rc, stdout lines, stderr,
        lines)."""
        a = net.attack(tcp=attack_fn)
        p = net.start()
        lines = [f"echo {k} {time.monotonic_ns()}" for k in range(1, waited + after + 1)]
        for line in lines[:waited]:
            self.assertTrue(send_line(p, line))
            p.wait_for("^" + rx(line) + "$", stream="out", timeout=5)
        for line in lines[waited:]:
            send_line(p, line)
        if not close:
            exited(p)
        rc, out, err = finish(p)
        return a, rc, out, err, lines

    def test_flip_data_r2i(self):
        """With --exec cat: a bit of the echo of line 2 (R->I) flipped: the initiator
        refuses it (exit 4, record failed authentication) and CLOSEs with reason 70;
        its stdout holds exactly line 1."""
        net = Net(self, resp_args=("--exec", "cat"))
        a, rc, out, err, lines = self.echo_session(
            net, lambda ev: [M.flip(ev.frame, -1)] if is_record(ev, "R->I", 1) else [ev.frame],
            waited=1, after=1, close=False)
        self.assertEqual(a.altered, 1)
        self.assertEqual(rc, EXIT_AUTH, err)
        self.assertIn(f"initiator: error: {T_RAUTH}", err)
        self.assertEqual(out, lines[:1])
        # In --exec mode the responder's log does not name the initiator's reason 70.
        net.resp_log(r"session 1 with alice closed \(command exited with status 0\)$")
        net.control()

    def test_reflected_record_out_of_sequence(self):
        """I's DATA 1 (seq 1) reflected back to I, which expects R's seq 0: out of
        sequence (the seq is checked before the tag): exit 4; I CLOSEs with reason 69,
        which R logs."""
        net = Net(self)
        since = net.mark()
        a = net.attack(tcp=lambda ev: (ev.back(ev.frame), [ev.frame])[1]
                       if is_record(ev, "I->R", 1) else [ev.frame])
        p = net.start()
        line = f"reflected {time.monotonic_ns()}"
        self.assertTrue(send_line(p, line))
        exited(p)  # stdin still open: it must not end by its own CLOSE
        rc, out, err = finish(p)
        self.assertEqual(a.altered, 1)
        self.assertEqual(rc, EXIT_AUTH, err)
        self.assertIn(f"initiator: error: {T_SEQ}", err)
        self.assertEqual(out, [])
        net.resp_log(rf"session 1 with alice closed \(initiator closed with reason {CODE_SEQ}: "
                     rf"{rx(T_SEQ)}\)$")
        ctl = net.control()
        self.assertEqual(net.delivered(since), [line] + ctl)

    def test_reflected_record_same_seq(self):
        """With --exec cat: after R's echo of line 1 (R->I seq 0), I's own DATA 1 (seq 1,
        the seq I expects next from R) is sent towards I: the seq fits, the tag does not
        (each direction has its own key): exit 4, record failed authentication; stdout
        holds exactly line 1."""
        net = Net(self, resp_args=("--exec", "cat"))
        saved = {}

        def fn(ev):
            if is_record(ev, "I->R", 1):
                saved[1] = ev.frame
            if is_record(ev, "R->I", 0):
                return [ev.frame, saved[1]]
            return [ev.frame]
        a, rc, out, err, lines = self.echo_session(net, fn, waited=1, after=0, close=False)
        self.assertEqual(a.altered, 1)
        self.assertEqual(rc, EXIT_AUTH, err)
        self.assertIn(f"initiator: error: {T_RAUTH}", err)
        self.assertEqual(out, lines[:1])
        net.resp_log(rf"session 1 with alice closed \(command exited with status 0\)$")
        net.control()

    def test_truncated(self):
        """The MITM cuts the TCP connection when DATA 3 (of 5 lines) comes: the initiator
        exits 5 (truncated), R logs truncated; R delivered exactly lines 1 and 2. (Lines
        4 and 5 would follow; they are not written, so that the initiator sees the end of
        the stream, not a reset of its next write.)"""
        net = Net(self)
        res = self.stream(net, lambda ev: None if is_record(ev, "I->R", 3) else [ev.frame],
                          waited=2, attacked=1, after=0)
        a, rc, out, err, lines, since = res
        self.assertEqual(a.altered, 1)
        self.assertEqual(rc, EXIT_GONE, err)
        self.assertIn(f"initiator: error: {T_TRUNC}", err)
        self.assertEqual(out, [])
        net.resp_log(rf"session 1 with alice failed: {rx(T_TRUNC)}")
        ctl = net.control()
        self.assertEqual(net.delivered(since), lines[:2] + ctl)

    # -- downgrades ------------------------------------------------------------------------

    def test_suite_downgrade(self):
        """M1's suite byte rewritten 0x02 -> 0x01 (R allows both): the KDC refuses auth_i,
        the initiator exits 3; the M2 that reached the KDC carried suite 0x01."""
        net = Net(self)

        def fn(ev):
            if ev.type != M.T_M1 or ev.frame[HDR] != 0x02:
                return [ev.frame]
            return [ev.frame[:HDR] + b"\x01" + ev.frame[HDR + 1:]]
        a = net.attack(tcp=fn)
        self.kdc_refuses(net, a, "i")
        self.assertEqual(a.altered, 1)
        m2 = [f for f in net.udp.frames("R->KDC") if is_type(f, M.T_M2)]
        self.assertEqual(m2[0][HDR + 2], 0x02 if DISARM else 0x01)

    def test_flag_downgrade(self):
        """--forward-secret: the MITM clears M1's flag bit 0 and removes e_i (so the frame
        parses): the KDC refuses auth_i, the initiator exits 3."""
        net = Net(self)

        def fn(ev):
            if ev.type != M.T_M1 or not ev.frame[HDR + 1] & 1:
                return [ev.frame]
            e_i = m1_offsets(ev.frame)["e_i"]
            body = bytearray(ev.frame[HDR:e_i] + ev.frame[e_i + 32:])
            body[1] &= 0xFE
            return [ev.frame[:2] + struct.pack(">H", len(body)) + bytes(body)]
        a = net.attack(tcp=fn)
        self.kdc_refuses(net, a, "i", extra=("--forward-secret",))
        self.assertEqual(a.altered, 1)
        m2 = [f for f in net.udp.frames("R->KDC") if is_type(f, M.T_M2)]
        self.assertEqual(m2[0][HDR + 2 + 1], 0x01 if DISARM else 0x00)
        self.assertEqual(len(m2[0]), len(m2[-1]) if DISARM else len(m2[-1]) - 64)


if __name__ == "__main__":
    unittest.main(verbosity=2)
