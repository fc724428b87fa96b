#!/usr/bin/python3
"""Adversary scenarios on the life of a session: FINISHED missing, sent twice, or after
DATA; a KEY_UPDATE dropped; a CLOSE suppressed in either direction.

Records I->R as kd3adv counts them with three lines sent: RECORD#1 FINISHED (also
FINISHED#1), #2..#4 the DATA of lines 1-3, #5 the initiator's CLOSE. The responder, in
default mode, sends one record: its CLOSE. Each test asserts the outcome on both sides
and what was delivered, then an honest session through the same responder and KDC,
then the same rules disarmed (advnet.py).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from advnet import (CODE_SEQ, EXIT_AUTH, EXIT_GONE, T_SEQ, T_TRUNC, AdvTest,  # noqa: E402
                    lines_for, rx)

REKEY = ("--rekey-after-messages", "2")
# The initiator's line when the responder refused its first records before FINISHED.
REFUSED_BEFORE_FINISHED = ("initiator: error: responder closed the session with reason 4 "
                           f"(BAD_AUTH): {T_SEQ}")


class Lifecycle(AdvTest):
    def refused_before_finished(self, scenario):
        """The responder, still waiting for FINISHED, gets a record out of sequence: it
        refuses it, is never established, delivers nothing and tells the initiator
        (which thinks itself established) ERROR BAD_AUTH "record out of sequence"."""
        net = self.net(scenario)
        r = net.run(lines_for("sent", 3))
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn(REFUSED_BEFORE_FINISHED, r.stderr)
        net.resp_log(rf"session 1 \(claiming alice\) failed: {rx(T_SEQ)}$")
        self.assertNotIn("session 1 with alice established", net.resp.text())
        net.control()
        self.disarmed(scenario, [1])
        return net, r

    def test_finished_missing(self):
        """FINISHED dropped: line 1's record (seq 1) comes where seq 0 is due."""
        net, _ = self.refused_before_finished("finished_missing")
        net.adv.fired(1, r"I->R/tcp FINISHED#1: dropped$")

    def test_data_before_finished(self):
        """FINISHED held back until line 1's record has gone: that record comes first and
        is out of sequence (seq is checked before the inner type, so no DATA is ever
        looked at before FINISHED)."""
        net, _ = self.refused_before_finished("data_before_finished")
        net.adv.fired(1, r"I->R/tcp FINISHED#1: held, to go after the next frame$")

    def test_exit_code_when_the_responder_refuses_records_before_finished(self):
        """`initiator --help` says exit 4 when "the responder reports that our FINISHED or
        records failed": a record refused before FINISHED (out of sequence: dropped,
        replayed or reordered) is answered with ERROR BAD_AUTH, like a FINISHED that
        fails its tag, and the initiator exits 4. (This found a bug: RECORD_SEQ was
        reported as MALFORMED and the initiator exited 1.)"""
        _, r = self.refused_before_finished("finished_missing")
        self.assertEqual(r.rc, EXIT_AUTH, r)

    def test_finished_twice(self):
        """FINISHED sent twice: the first establishes the responder, the second (seq 0
        again) is out of sequence: CLOSE with reason 69; nothing delivered; exit 4."""
        net = self.net("finished_twice")
        r = net.run(lines_for("sent", 3))
        self.assertEqual(r.rc, EXIT_AUTH, r)
        self.assertIn(f"initiator: error: responder closed the session with reason {CODE_SEQ} "
                      f"({T_SEQ}): {T_SEQ}", r.stderr)
        net.resp_log("session 1 with alice established")
        net.resp_log(rf"session 1 with alice failed: {rx(T_SEQ)}$")
        net.adv.fired(1, r"I->R/tcp FINISHED#1: duplicated$")
        net.control()
        self.disarmed("finished_twice", [1])

    def test_key_update_dropped(self):
        """The initiator updates its key every 2 records (FINISHED, line 1, then
        KEY_UPDATE); the KEY_UPDATE is dropped: line 2's record, seq 0 under the next key,
        comes where seq 2 is due: out of sequence (reason 69); only line 1 delivered."""
        net = self.net("key_update_dropped")
        lines = lines_for("sent", 3)
        r = net.run(lines, *REKEY)
        self.assertEqual(r.rc, EXIT_AUTH, r)
        self.assertIn(f"initiator: error: responder closed the session with reason {CODE_SEQ} "
                      f"({T_SEQ}): {T_SEQ}", r.stderr)
        net.resp_log(rf"session 1 with alice failed: {rx(T_SEQ)}$")
        net.adv.fired(1, r"I->R/tcp KEY_UPDATE#1: dropped$")
        net.control(*REKEY, before=lines[:1])
        self.disarmed("key_update_dropped", [1], extra=REKEY)

    def test_initiator_close_suppressed(self):
        """The initiator's CLOSE never arrives: every line is delivered, but the responder
        sees the stream end without CLOSE (truncated, not a clean end), and the initiator
        times out waiting for the responder's CLOSE (exit 5)."""
        net = self.net("close_suppressed_i")
        lines = lines_for("sent", 3)
        r = net.run(lines, "--timeout", "2")
        self.assertEqual(r.rc, EXIT_GONE, r)
        self.assertIn("initiator: error: timed out waiting for the responder to close the "
                      "session", r.stderr)
        net.resp_log(rf"session 1 with alice failed: {rx(T_TRUNC)}$")
        self.assertNotIn("session 1 with alice closed", net.resp.text())
        net.adv.fired(1, r"I->R/tcp RECORD#5: dropped$")
        net.control(before=lines)
        self.disarmed("close_suppressed_i", [1])

    def test_responder_close_suppressed(self):
        """The responder's CLOSE never arrives: the responder ends cleanly (it got the
        initiator's CLOSE and sent its own), but the initiator sees the stream end without
        it: truncated, exit 5; every line was delivered."""
        net = self.net("close_suppressed_r")
        lines = lines_for("sent", 3)
        r = net.run(lines)
        self.assertEqual(r.rc, EXIT_GONE, r)
        self.assertIn(f"initiator: error: {T_TRUNC}", r.stderr)
        net.resp_log(r"session 1 with alice closed$")
        net.adv.fired(1, r"R->I/tcp RECORD#1: dropped$")
        net.control(before=lines)
        self.disarmed("close_suppressed_r", [1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
