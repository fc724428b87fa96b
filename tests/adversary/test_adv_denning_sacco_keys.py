"""Denning-Sacco with the old session key really in the attacker's hands.

test_adv_replay.Replays.test_denning_sacco replays an old run's FINISHED. Here the
attacker has more: the old run's SK and traffic keys, taken from that run's transcript
(--transcript --reveal-keys), as if the old session key had leaked. The attacker
replays the old M1 to the responder, reads the M4 the responder makes for it (a fresh
n_r, so a fresh TH), and forges FINISHED and a DATA record from the old SK under the
new TH (docs/PROTOCOL.md §5: PRK = HKDF-Extract(TH, SK)), and also with the old run's
own traffic key. Both are refused: the responder's SK for the new TH is a new key the
KDC derived for that TH, which the attacker does not have, and nothing is delivered.

The control: the same forging code given the new SK (read from the KDC's own
--reveal-keys transcript, which only a test can do) completes the handshake and gets
its DATA echoed back by `--exec cat`. So the code would succeed with the right key, and
what stops the attack is exactly the freshness of SK.
"""
import json
import os
import socket
import struct
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "vectors"))

import check_vectors as cv  # noqa: E402  (an independent implementation of the schedule)
import kd3e2e as k  # noqa: E402

T_RECORD, R_FINISHED, R_DATA = 0x10, 1, 2
SUITES = {"chacha20-poly1305": cv.SUITE_CHACHAPOLY, "aes-256-gcm": cv.SUITE_AES256GCM}


def read_frame(sock, deadline):
    buf = b""
    need = 4
    while len(buf) < need:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = sock.recv(need - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
        if len(buf) == 4:
            need = 4 + struct.unpack(">H", buf[2:4])[0]
    return buf


def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f]


class Attacker:
    """Replays an old M1 on a fresh connection and forges records from a given SK."""

    def __init__(self, port, m1_frame):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(m1_frame)
        self.m1_body = m1_frame[4:]
        m4 = read_frame(self.sock, time.monotonic() + 10)
        assert m4[1] == 0x04, m4[:2]
        body = m4[4:]
        assert len(body) == 120, "forward secrecy off in this test"
        self.n_r, self.kvno_r = body[:32], struct.unpack(">I", body[32:36])[0]
        self.confirm_r = body[-32:]
        prefix = cv.blob16(self.m1_body) + self.n_r + cv.u32(self.kvno_r)
        self.th = cv.transcript_hash(prefix)

    def forge(self, suite, sk, data):
        s = cv.session_secrets(self.th, sk, None)
        key, iv = cv.traffic_key_iv(s["ts_i2r"])
        self.rx_key, self.rx_iv = cv.traffic_key_iv(s["ts_r2i"])
        self.sock.sendall(cv.record_frame(suite, key, iv, 0, R_FINISHED, s["confirm_i"]) +
                          cv.record_frame(suite, key, iv, 1, R_DATA, data))
        return s["confirm_r"] == self.confirm_r

    def forge_with_traffic_key(self, suite, ts_i2r, confirm_i, data):
        key, iv = cv.traffic_key_iv(ts_i2r)
        self.sock.sendall(cv.record_frame(suite, key, iv, 0, R_FINISHED, confirm_i) +
                          cv.record_frame(suite, key, iv, 1, R_DATA, data))

    def frames(self, seconds=5):
        """Every frame the responder sends until it closes (bounded)."""
        out, deadline = [], time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                out.append(read_frame(self.sock, deadline))
        except (EOFError, socket.timeout, ConnectionResetError):
            pass
        return out

    def close(self):
        self.sock.close()


class DenningSaccoWithKeys(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.realm = k.Realm(("alice", "bob"))
        d = cls.realm.dir
        cls.kdc_tr = os.path.join(d, "kdc.tr")
        cls.kdc = cls.realm.start_kdc("--transcript", cls.kdc_tr, "--reveal-keys")
        cls.resp = cls.realm.start_responder("--exec", "cat")
        # The old run, whose keys "leak": its transcript holds SK and the traffic keys.
        old = os.path.join(d, "old.tr")
        r = cls.realm.run_initiator(cls.resp.port, ["old secret"], "--batch", "--transcript",
                                    old, "--reveal-keys")
        assert r.rc == 0, r
        tr = lines(old)
        cls.suite_name = next(l for l in tr if l["kind"] == "session")["suite"]
        cls.suite = SUITES[cls.suite_name]
        cls.m1 = bytes.fromhex(next(l for l in tr if l["kind"] == "frame" and l["type"] == "M1")
                               ["hex"])
        cls.sk_old = bytes.fromhex(next(l for l in tr if l["kind"] == "keys" and "sk" in l)["sk"])
        sent = next(l for l in tr if l["kind"] == "keys" and l.get("direction") == "sent")
        cls.ts_old = bytes.fromhex(sent["traffic_secret"])
        cls.confirm_i_old = cv.session_secrets(
            bytes.fromhex(next(l for l in tr if l["kind"] == "session")["th"]), cls.sk_old,
            None)["confirm_i"]

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()

    def sk_from_kdc(self, th):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for l in lines(self.kdc_tr):
                if l["kind"] == "kdc" and l.get("th") == th.hex():
                    return bytes.fromhex(l["sk"])
            time.sleep(0.05)
        self.fail("the KDC's transcript has no SK for this TH")

    def assert_refused(self, a, session_line):
        frames = a.frames()
        a.close()
        self.assertTrue(all(f[1] != T_RECORD for f in frames),
                        "the responder must not answer with a record (it has no session)")
        self.resp.wait_for(session_line)
        self.assertNotIn("old secret", "".join(self.resp.out_lines))

    def test_old_sk_does_not_open_a_new_session(self):
        a = Attacker(self.resp.port, self.m1)
        self.assertNotEqual(self.sk_from_kdc(a.th), self.sk_old, "a fresh TH, a fresh SK")
        self.assertFalse(a.forge(self.suite, self.sk_old, b"attacker data"),
                         "confirm_r in the new M4 is not the one the old SK predicts")
        self.assert_refused(a, r"\(claiming alice\) failed: record failed authentication")

    def test_old_traffic_key_does_not_open_a_new_session(self):
        a = Attacker(self.resp.port, self.m1)
        a.forge_with_traffic_key(self.suite, self.ts_old, self.confirm_i_old, b"attacker data")
        self.assert_refused(a, r"\(claiming alice\) failed: record failed authentication")

    def test_control_the_new_sk_would_succeed(self):
        """The forging code is right: with the SK the KDC made for this TH it works."""
        a = Attacker(self.resp.port, self.m1)
        sk_new = self.sk_from_kdc(a.th)
        self.assertTrue(a.forge(self.suite, sk_new, b"control data"))
        frames = a.frames(seconds=2)
        a.close()
        echoed = []
        for f in frames:
            if f[1] == T_RECORD:
                seq = struct.unpack(">Q", f[4:12])[0]
                pt = cv.aead(self.suite, a.rx_key).decrypt(cv.record_nonce(a.rx_iv, seq),
                                                          f[12:], f[:12])
                if pt[0] == R_DATA:
                    echoed.append(pt[1:])
        self.assertEqual(echoed, [b"control data"])
        self.resp.wait_for(r"session \d+ with alice established")


if __name__ == "__main__":
    unittest.main(verbosity=2)
