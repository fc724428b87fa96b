#!/usr/bin/python3
"""Adversary scenarios: replays of M1-M4 (within a run and from an earlier run's
recording), Denning-Sacco, the Otway-Rees different-key attempt and splicing.

Each test runs its scenario (scenarios/NAME.rules) through kd3adv against the real
executables, asserts who refuses and how, that nothing is delivered and no party is
established, then that the same responder and KDC serve an honest session, and then
that the same rules disarmed let the session complete (advnet.py says more).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from advnet import (EXIT_AUTH, EXIT_HANDSHAKE, EXIT_OK, T_BLOB, T_NO_KDC, T_RAUTH,  # noqa: E402
                    T_UNEXPECTED, AdvTest, changed, finish, lines_for, read_tape, rx, tape_frame)

TIMEOUT_I = f"initiator: error: responder reported TIMEOUT: {T_NO_KDC}"


def refused_blob_i(session=1):
    """The responder's line when the initiator's blob_i did not open."""
    return (rf"session {session} \(claiming alice\) failed: initiator sent ERROR BAD_AUTH "
            rf"\({rx(T_BLOB)}\)$")


class Replays(AdvTest):
    def gave_up(self, net, session):
        """The responder ignored every KDC answer (each the replayed or a replay's M3): three
        over UDP, one over TCP; then it gave up. Returns nothing; asserts the log."""
        log = net.resp.text()
        self.assertEqual(log.count(f"session {session}: ignored a reply from the KDC that is "
                                   "not for this exchange"), 4, log)
        self.assertIn(f"session {session}: KDC 127.0.0.1:{net.adv.kdc_port}: TCP reply not "
                      "for this exchange", log)

    def test_m1_replayed_on_the_same_connection(self):
        """M1 twice on one connection: the responder, waiting for M3, refuses the second as
        unexpected and answers ERROR MALFORMED; the initiator exits 3."""
        net = self.net("replay_m1_same_conn")
        self.refused_handshake(
            net, EXIT_HANDSHAKE, f"initiator: error: responder reported MALFORMED: {T_UNEXPECTED}",
            rf"session 1 \(claiming alice\) failed: {rx(T_UNEXPECTED)}$")
        net.adv.fired(1, r"I->R/tcp M1#1: duplicated$")
        self.disarmed("replay_m1_same_conn", [1])

    def test_m1_replayed_from_an_earlier_run(self):
        """An earlier run's M1 instead of this run's: the responder cannot check auth_i
        (only the KDC can), and the KDC grants the request, since auth_i is genuine and n_r
        fresh. The key is for a TH with the old n_i: the initiator of this run cannot open
        blob_i (exit 4, ERROR BAD_AUTH to R) and the attacker cannot send FINISHED, so no
        one is established."""
        rec = self.recording()
        net = self.net("replay_m1_later", load=rec)
        self.refused_handshake(net, EXIT_AUTH, f"initiator: error: handshake failed: {T_BLOB}",
                               refused_blob_i())
        net.adv.fired(1, r"I->R/tcp M1#1: replaced by earlier:I->R:M1#1 \(84 bytes\)$")
        self.kdc_said(r"udp \S+ alice -> bob kvno 1/1 OK")
        self.disarmed("replay_m1_later", [1], load=rec)

    def test_m3_replayed_in_the_same_run(self):
        """Session 1 honest; each M3 of session 2 replaced by session 1's: the responder
        drops each as not for this exchange (its n_r is session 1's), retries, asks over
        TCP, then gives up: ERROR TIMEOUT to the initiator, exit 3."""
        net = self.net("replay_m3_same_run")
        first = lines_for("first", 1)
        self.assertEqual(net.run(first).rc, EXIT_OK)
        net.wait_delivered(1)
        self.refused_handshake(net, EXIT_HANDSHAKE, TIMEOUT_I,
                               rf"session 2 \(claiming alice\) failed: {T_NO_KDC} \(1 KDC tried",
                               session=2, before=first)
        self.assertEqual(len(net.adv.actions(1, expect=4)), 4)
        net.adv.fired(1, r"KDC->R/tcp M3#5: replaced by KDC->R:M3#1 \(136 bytes\)$")
        self.gave_up(net, 2)
        self.disarmed("replay_m3_same_run", [1], first=True)

    def test_m3_replayed_from_an_earlier_run(self):
        """Every M3 replaced by an earlier run's: ignored four times, ERROR TIMEOUT."""
        rec = self.recording()
        net = self.net("replay_m3_later", load=rec)
        self.refused_handshake(net, EXIT_HANDSHAKE, TIMEOUT_I,
                               rf"session 1 \(claiming alice\) failed: {T_NO_KDC} \(1 KDC tried")
        self.assertEqual(len(net.adv.actions(1, expect=4)), 4)
        self.gave_up(net, 1)
        self.disarmed("replay_m3_later", [1], load=rec)

    def test_m3_replayed_with_the_current_n_r(self):
        """An earlier M3's lifetime and blobs under this run's n_r: it passes the n_r check,
        but blob_r is sealed to the old TH: the responder refuses it (BAD_AUTH to I, exit
        3) and the initiator never sees a blob."""
        rec = self.recording()
        net = self.net("replay_m3_current_nr", load=rec)
        self.refused_handshake(net, EXIT_HANDSHAKE,
                               f"initiator: error: responder reported BAD_AUTH: {T_BLOB}",
                               rf"session 1 \(claiming alice\) failed: {rx(T_BLOB)}$")
        line = net.adv.fired(1, r"KDC->R/udp M3#1: spliced lifetime,blob_r,blob_i from "
                                r"earlier:KDC->R:M3#1 \(\d+ bytes changed\)$")
        self.assertGreater(changed(line), 80)  # two random 48-byte blobs
        self.disarmed("replay_m3_current_nr", [1], load=rec)

    def test_m4_replayed_on_the_same_connection(self):
        """M4 twice: the initiator takes the first (established, FINISHED sent) and refuses
        the second as unexpected; it closes with reason 64, which R logs; nothing is
        delivered. Its exit code is 1 (a failure after the handshake that is not about
        authentication). Its stdin stays open and empty, so that nothing it reads there
        goes out before it handles the second M4."""
        net = self.net("replay_m4_same_conn")
        p = net.start()
        rc, out, err = finish(p, close_stdin=False)
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, [])
        self.assertIn(f"initiator: error: {T_UNEXPECTED}", err)
        net.resp_log(rf"session 1 with alice closed \(initiator closed with reason 64: "
                     rf"{rx(T_UNEXPECTED)}\)$")
        net.adv.fired(1, r"R->I/tcp M4#1: duplicated$")
        net.control()
        self.disarmed("replay_m4_same_conn", [1])

    def test_m4_replayed_from_an_earlier_run(self):
        """An earlier M4 instead of this run's: its blob_i is sealed to a TH with another
        n_i: the initiator exits 4 and tells R ERROR BAD_AUTH."""
        rec = self.recording()
        net = self.net("replay_m4_later", load=rec)
        self.refused_handshake(net, EXIT_AUTH, f"initiator: error: handshake failed: {T_BLOB}",
                               refused_blob_i())
        net.adv.fired(1, r"R->I/tcp M4#1: replaced by earlier:R->I:M4#1 \(124 bytes\)$")
        self.disarmed("replay_m4_later", [1], load=rec)

    def test_denning_sacco(self):
        """The attacker replays an old run to the responder: the old M1 (the KDC grants a
        key, for a TH with a fresh n_r), then, in place of the initiator's FINISHED, the
        old run's FINISHED, which is what a holder of the old SK can make (kd3 never
        reveals SK; a recorded FINISHED stands for any record under the old keys). The
        new keys come from the new TH: the FINISHED fails its tag, R is never established
        and tells the initiator ERROR BAD_AUTH (exit 3)."""
        rec = self.recording()
        net = self.net("denning_sacco", load=rec)
        self.refused_handshake(net, EXIT_HANDSHAKE,
                               f"initiator: error: responder reported BAD_AUTH: {T_RAUTH}",
                               rf"session 1 \(claiming alice\) failed: {rx(T_RAUTH)}$")
        net.adv.fired(2, r"R->I/tcp M4#1: dropped, answered with earlier:I->R:FINISHED#1 "
                         r"\(61 bytes\) to its sender$")
        self.kdc_said(r"udp \S+ alice -> bob kvno 1/1 OK")
        self.disarmed("denning_sacco", [1, 2], load=rec)

    def test_splice_blob_i_from_another_exchange(self):
        """blob_i of an earlier exchange's M3 in this one: R opens its own blob_r and
        forwards the spliced blob_i in M4; the initiator cannot open it (another TH):
        exit 4, ERROR BAD_AUTH to R."""
        rec = self.recording()
        net = self.net("splice_other_exchange", load=rec)
        self.refused_handshake(net, EXIT_AUTH, f"initiator: error: handshake failed: {T_BLOB}",
                               refused_blob_i())
        line = net.adv.fired(1, r"KDC->R/udp M3#1: spliced blob_i from earlier:KDC->R:M3#1 "
                                r"\(\d+ bytes changed\)$")
        self.assertGreater(changed(line), 40)
        self.disarmed("splice_other_exchange", [1], load=rec)


class ReplaysWithoutCache(AdvTest):
    """A KDC without its lookaside cache: every M2 it gets is sealed again, so a replay
    that yields the same M3 shows that SK is a function of TH (section 11), not a cache."""

    KDC_ARGS = ("--cache-window-ms", "0")

    def same_m3s(self, tape, first, last, want):
        got = [tape_frame(tape, "KDC->R", "M3", i) for i in range(first, last + 1)]
        self.assertEqual(got, [want] * len(got))

    def test_m2_replayed_in_the_same_run(self):
        """Session 1 honest; each M2 of session 2 (UDP tries and TCP) replaced by session
        1's: the KDC seals session 1's M3 again, byte for byte; R ignores it (another
        n_r), gives up: ERROR TIMEOUT, exit 3."""
        rec = os.path.join(self.realm.dir, "m2-same-run.rec")
        net = self.net("replay_m2_same_run", record=rec)
        first = lines_for("first", 1)
        self.assertEqual(net.run(first).rc, EXIT_OK)
        net.wait_delivered(1)
        r = net.run(lines_for("attacked", 2))
        self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
        self.assertIn(TIMEOUT_I, r.stderr)
        net.resp_log(rf"session 2 \(claiming alice\) failed: {T_NO_KDC} \(1 KDC tried")
        self.assertEqual(len(net.adv.actions(1, expect=4)), 4)
        self.kdc_said(r"alice -> bob kvno 1/1 OK \d+us$", count=5)
        tape = read_tape(rec)
        self.same_m3s(tape, 2, 5, tape_frame(tape, "KDC->R", "M3", 1))
        net.control(before=first)
        self.disarmed("replay_m2_same_run", [1], first=True)

    def test_m2_replayed_from_an_earlier_run(self):
        """Every M2 replaced by an earlier run's: the KDC answers with the earlier run's
        M3, byte for byte, which R ignores: ERROR TIMEOUT, exit 3."""
        rec = self.recording()
        now = os.path.join(self.realm.dir, "m2-later.rec")
        net = self.net("replay_m2_later", load=rec, record=now)
        self.refused_handshake(net, EXIT_HANDSHAKE, TIMEOUT_I,
                               rf"session 1 \(claiming alice\) failed: {T_NO_KDC} \(1 KDC tried")
        self.assertEqual(len(net.adv.actions(1, expect=4)), 4)
        self.same_m3s(read_tape(now), 1, 4, tape_frame(read_tape(rec), "KDC->R", "M3", 1))
        self.disarmed("replay_m2_later", [1], load=rec)

    def test_otway_rees_different_key(self):
        """The KDC gets M2 twice and seals twice (no cache); R gets the second M3 with
        blob_r spliced from the first. In the design note's KDC each sealing drew a new
        SK, so I and R would hold different keys (and the two seals under one key and
        nonce would leak their XOR). In kd3 both M3s are byte-identical, the splice
        changes nothing, and the session completes with one key. (Had the second M3
        carried another key, blob_r from the first would not match it: the splice of an
        earlier exchange's blob shows such a splice is refused.)"""
        rec = os.path.join(self.realm.dir, "otway-rees.rec")
        net = self.net("otway_rees", record=rec)
        lines = lines_for("otway-rees", 3)
        r = net.run(lines)
        self.assertEqual(r.rc, EXIT_OK, r)
        net.adv.fired(1, r"R->KDC/udp M2#1: duplicated, the copy 50 ms later$")
        net.adv.fired(2, r"KDC->R/udp M3#1: dropped$")
        net.adv.fired(3, r"KDC->R/udp M3#2: spliced blob_r from KDC->R:M3#1 "
                         r"\(0 bytes changed\)$")
        self.kdc_said(r"alice -> bob kvno 1/1 OK \d+us$", count=2)
        tape = read_tape(rec)
        self.same_m3s(tape, 2, 2, tape_frame(tape, "KDC->R", "M3", 1))
        net.control(before=lines)


if __name__ == "__main__":
    unittest.main(verbosity=2)
