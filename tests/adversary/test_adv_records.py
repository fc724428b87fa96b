#!/usr/bin/python3
"""Adversary scenarios on the records of an established session: a record replayed
(from this session and from an earlier run), dropped, reordered, reflected (to its
sender, and into the other direction at the seq it expects), flipped, and the
connection cut in the middle of a record.

The initiator sends lines; the responder (default mode) prints each DATA it accepts.
Records I->R are numbered as kd3adv counts them: RECORD#1 is FINISHED, RECORD#2 the
DATA of line 1, RECORD#3 of line 2, ... Each test asserts which lines were delivered
before the failure, byte for byte, then an honest session through the same responder
and KDC, then the same rules disarmed (advnet.py).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from advnet import (CODE_RAUTH, CODE_SEQ, EXIT_AUTH, EXIT_GONE, T_RAUTH, T_SEQ,  # noqa: E402
                    T_TRUNC, AdvTest, finish, lines_for, rx, send_line)

ECHO = ("--exec", "cat")


class Records(AdvTest):
    def refused_by_responder(self, scenario, code, text, kept, load=None):
        """Three lines at once through the scenario: the responder delivers exactly
        lines[:kept], refuses the next record with text and closes with reason code,
        which the initiator names (exit 4). Then the control and the disarmed run."""
        net = self.net(scenario, load=load)
        lines = lines_for("sent", 3)
        r = net.run(lines)
        self.assertEqual(r.rc, EXIT_AUTH, r)
        self.assertIn("initiator: session with bob established", r.stderr)
        self.assertIn(f"initiator: error: responder closed the session with reason {code} "
                      f"({text}): {text}", r.stderr)
        net.resp_log(rf"session 1 with alice failed: {rx(text)}$")
        net.control(before=lines[:kept])
        self.disarmed(scenario, [1], load=load)
        return net

    def test_record_replayed(self):
        """After line 2, line 1's record again (seq 1 where 3 is due): lines 1 and 2 are
        delivered, the replay is out of sequence (reason 69)."""
        net = self.refused_by_responder("record_replayed", CODE_SEQ, T_SEQ, kept=2)
        net.adv.fired(1, r"I->R/tcp RECORD#3: forwarded, then replay I->R:RECORD#2 "
                         r"\(\d+ bytes\)$")

    def test_record_replayed_from_an_earlier_run(self):
        """Line 1's record replaced by an earlier run's line 1 record: the same seq (1),
        another session's key: it fails its tag (reason 70); nothing is delivered."""
        rec = self.recording()
        net = self.refused_by_responder("record_replayed_later", CODE_RAUTH, T_RAUTH, kept=0,
                                        load=rec)
        net.adv.fired(1, r"I->R/tcp RECORD#2: replaced by earlier:I->R:RECORD#2")

    def test_record_dropped(self):
        """Line 2's record dropped: line 3's is out of sequence; only line 1 delivered."""
        net = self.refused_by_responder("record_dropped", CODE_SEQ, T_SEQ, kept=1)
        net.adv.fired(1, r"I->R/tcp RECORD#3: dropped$")

    def test_record_reordered(self):
        """Line 2's record held back and sent after line 3's: line 3's is out of
        sequence; only line 1 delivered."""
        net = self.refused_by_responder("record_reordered", CODE_SEQ, T_SEQ, kept=1)
        net.adv.fired(1, r"I->R/tcp RECORD#3: held, to go after the next frame$")

    def test_record_flipped(self):
        """The last bit of line 2's record (its tag) flipped: it fails authentication
        (reason 70); only line 1 delivered."""
        net = self.refused_by_responder("record_flipped", CODE_RAUTH, T_RAUTH, kept=1)
        net.adv.fired(1, r"I->R/tcp RECORD#3: flipped bit -1 \(1 bytes changed\)$")

    def test_bad_record_read_with_finished(self):
        """FINISHED and line 1's record (its tag flipped) in one write: the responder
        reads both at once. FINISHED established the session, so its end names alice
        ("with alice", not "claiming alice"); nothing is delivered. (CI's ASan run found
        this: the reflected test's FINISHED and next record came in one read.)"""
        net = self.refused_by_responder("finished_joined_flipped", CODE_RAUTH, T_RAUTH,
                                        kept=0)
        net.adv.fired(1, r"I->R/tcp FINISHED#1: held, to go with the next frame in one "
                         r"write$")
        net.adv.fired(2, r"I->R/tcp RECORD#2: flipped bit -1 \(1 bytes changed\)$")
        net.resp_log("session 1 with alice established")

    def test_record_reflected(self):
        """Line 1's record (I->R seq 1) sent back to the initiator, which expects R's seq
        0: out of sequence (the seq is checked before the tag): exit 4. The responder never
        gets seq 1, so what comes next from the initiator is out of sequence too; nothing
        is delivered."""
        net = self.net("record_reflected")
        r = net.run(lines_for("sent", 3))
        self.assertEqual(r.rc, EXIT_AUTH, r)
        self.assertIn(f"initiator: error: {T_SEQ}", r.stderr)
        net.adv.fired(1, r"I->R/tcp RECORD#2: reflected to its sender$")
        net.resp_log(rf"session 1 with alice failed: {rx(T_SEQ)}$")
        net.control()
        self.disarmed("record_reflected", [1])

    def test_record_reflected_at_the_expected_seq(self):
        """With --exec cat: right after the echo of line 1 (R->I seq 0) the initiator gets
        its own line 1 record (I->R seq 1), the seq it expects next from R: the seq fits,
        the tag does not (each direction has its own key): exit 4, record failed
        authentication; its stdout has exactly line 1. Its stdin stays open, so that it
        ends by the failure, not by its own CLOSE."""
        net = self.net("record_reflected_same_seq", resp_args=ECHO)
        p = net.start()
        lines = lines_for("echo", 1)
        self.assertTrue(send_line(p, lines[0]))
        rc, out, err = finish(p, close_stdin=False)
        self.assertEqual(rc, EXIT_AUTH, err)
        self.assertIn(f"initiator: error: {T_RAUTH}", err)
        self.assertEqual(out, lines)
        net.adv.fired(1, r"R->I/tcp RECORD#1: forwarded, then replay I->R:RECORD#2")
        net.resp_log(r"session 1 with alice closed")
        net.control()
        self.disarmed("record_reflected_same_seq", [1], resp_args=ECHO, lines=1)

    def test_connection_cut_inside_a_record(self):
        """Lines 1 and 2 delivered (each waited for), then 10 bytes of line 3's record
        and the connection cut both ways: the responder reports the session truncated
        (no CLOSE); so does the initiator (exit 5). The initiator's stdin stays open, so
        that it writes nothing after line 3 and sees the end of the stream."""
        net = self.net("record_truncated")
        p = net.start()
        lines = lines_for("cut", 3)
        for i, line in enumerate(lines[:2]):
            self.assertTrue(send_line(p, line))
            net.wait_delivered(i + 1)
        self.assertTrue(send_line(p, lines[2]))
        rc, out, err = finish(p, close_stdin=False)
        self.assertEqual(rc, EXIT_GONE, err)
        self.assertIn(f"initiator: error: {T_TRUNC}", err)
        net.adv.fired(1, r"I->R/tcp RECORD#4: 10 of \d+ bytes forwarded, then the connection "
                         r"cut$")
        net.resp_log(rf"session 1 with alice failed: {rx(T_TRUNC)}$")
        net.control(before=lines[:2])
        self.disarmed("record_truncated", [1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
