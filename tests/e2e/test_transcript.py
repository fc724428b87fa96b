"""End to end: --transcript on all three programs, checked against docs/transcript.schema.json
and against the protocol itself.

One realm runs a KDC and an echo responder (`--exec cat`), both writing transcripts with
--reveal-keys, and initiators writing their own. The tests check that:
  - every line of every transcript validates against the documented schema;
  - a rekey-every-5 run shows the key generations: each key seals at most 5 records and
    then a KEY_UPDATE, seq restarts at 0 under each new key, key_update lines count up;
  - the revealed keys really are the session's: key and IV follow from the traffic
    secret (HKDF, as docs/PROTOCOL.md says), each generation's secret is next() of the
    one before, and every record in the transcript opens under them to exactly the
    bytes the initiator sent and received;
  - the KDC, the responder and the initiator agree on TH and SK, and the M2/M3 bytes the
    KDC recorded are the ones the responder recorded;
  - without --reveal-keys no key appears; the file is mode 0600; a symbolic link as the
    transcript path is refused with exit code 2.
"""
import json
import os
import stat
import unittest

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
import jsonschema

import kd3e2e as k

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                           "transcript.schema.json")
EXIT_OK, EXIT_USAGE = 0, 2
R_FINISHED, R_DATA, R_KEY_UPDATE, R_CLOSE = 1, 2, 3, 4


def load_schema():
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


VALIDATOR = load_schema()


def read_transcript(path):
    """Every line parsed and validated; the file must end with a whole line."""
    with open(path) as f:
        text = f.read()
    assert text.endswith("\n"), f"{path}: last line not whole"
    lines = [json.loads(l) for l in text.splitlines()]
    for line in lines:
        errors = sorted(VALIDATOR.iter_errors(line), key=str)
        assert not errors, f"{path}: {line}\n{errors[0]}"
    return lines


def hkdf_expand(key, info, n):
    return HKDFExpand(algorithm=hashes.SHA256(), length=n, info=info).derive(key)


def key_iv(ts):
    return hkdf_expand(ts, b"kd3/1 key", 32), hkdf_expand(ts, b"kd3/1 iv", 12)


def open_record(suite, key, iv, frame):
    """The inner type and payload of one RECORD frame (docs/PROTOCOL.md, Records)."""
    header, seq = frame[:4], frame[4:12]
    pad = bytes(4) + seq
    nonce = bytes(a ^ b for a, b in zip(iv, pad))
    aead = ChaCha20Poly1305(key) if suite == "chacha20-poly1305" else AESGCM(key)
    pt = aead.decrypt(nonce, frame[12:], header + seq)
    return pt[0], pt[1:]


def of_kind(lines, kind, **match):
    return [l for l in lines if l["kind"] == kind and all(l.get(a) == b for a, b in match.items())]


class Transcript(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.realm = k.Realm(("alice", "bob"))
        d = cls.realm.dir
        cls.kdc_tr = os.path.join(d, "kdc.tr")
        cls.resp_tr = os.path.join(d, "responder.tr")
        cls.kdc = cls.realm.start_kdc("--transcript", cls.kdc_tr, "--reveal-keys")
        cls.echo = cls.realm.start_responder("--exec", "cat", "--transcript", cls.resp_tr,
                                             "--reveal-keys", "--rekey-after-messages", "5")

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()

    def run_initiator(self, name, lines, *extra):
        path = os.path.join(self.realm.dir, name)
        r = self.realm.run_initiator(self.echo.port, lines, "--batch", "--transcript", path,
                                     *extra)
        return r, path

    # ---- the initiator's own transcript ------------------------------------------------

    def test_rekey_every_5_and_keys_open_every_record(self):
        lines = [f"message {i:02d}" for i in range(12)]
        for suite, fs in (("chacha20-poly1305", "no"), ("aes-256-gcm", "yes")):
            with self.subTest(suite=suite, fs=fs):
                r, path = self.run_initiator(f"i-{suite}.tr", lines, "--suite", suite,
                                             f"--forward-secret={fs}", "--reveal-keys",
                                             "--rekey-after-messages", "5")
                self.assertEqual(r.rc, EXIT_OK, r)
                self.assertIn("WARNING: --reveal-keys", r.stderr)
                self.assertEqual(r.stdout, "".join(l + "\n" for l in lines))
                tr = read_transcript(path)
                self.assertEqual(tr[0]["kind"], "start")
                self.assertEqual(tr[0]["program"], "initiator")
                self.assertTrue(tr[0]["reveal_keys"])
                self.assertEqual(tr[-1], {**tr[-1], "kind": "end", "exit_code": 0})
                types = [l["type"] for l in of_kind(tr, "frame")][:2]
                self.assertEqual(types, ["M1", "M4"])
                sess = of_kind(tr, "session")[0]
                self.assertEqual((sess["suite"], sess["forward_secrecy"]), (suite, fs == "yes"))
                self.assertEqual(sess["rekey_after_messages"], 5)
                m1 = of_kind(tr, "frame", type="M1")[0]["fields"]
                self.assertEqual(("e_i" in m1), fs == "yes")
                sent = self.check_generations(tr, "I->R", 5)
                self.assertGreaterEqual(sent, 2, "12 messages at 5 per key: at least 2 updates")
                got = self.open_all(tr, suite, "I->R", "sent")
                self.assertEqual([p for t, p in got if t == R_DATA],
                                 [l.encode() for l in lines])
                self.assertEqual(got[0][0], R_FINISHED)
                self.assertEqual(got[-1][0], R_CLOSE)
                back = self.open_all(tr, suite, "R->I", "received")
                self.assertEqual([p for t, p in back if t == R_DATA],
                                 [l.encode() for l in lines])
                self.check_generations(tr, "R->I", 5)  # the responder's policy: also 5
                self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)

    def check_generations(self, tr, direction, per_key):
        """Records of one direction: generations count up by KEY_UPDATEs, seq restarts,
        at most per_key records and then the KEY_UPDATE under each key. Returns the number
        of key updates."""
        records = [l["fields"] for l in of_kind(tr, "frame", dir=direction, type="RECORD")]
        self.assertTrue(records)
        gen, seq, under_key, updates = 0, 0, 0, 0
        for f in records:
            self.assertEqual(f["key_generation"], gen, records)
            self.assertEqual(f["seq"], seq, records)
            under_key += 1
            seq += 1
            if f["inner"] == "KEY_UPDATE":
                self.assertLessEqual(under_key, per_key + 1, records)
                gen, seq, under_key, updates = gen + 1, 0, 0, updates + 1
        self.assertLessEqual(under_key, per_key + 1)
        return updates

    def open_all(self, tr, suite, direction, keys_direction):
        """Every record of one direction opened with the revealed keys, checking the key
        schedule on the way: key/iv from the traffic secret, next() between generations."""
        keys = {l["generation"]: l for l in of_kind(tr, "keys", direction=keys_direction)}
        self.assertIn(0, keys)
        for gen in sorted(keys):
            ts = bytes.fromhex(keys[gen]["traffic_secret"])
            key, iv = key_iv(ts)
            self.assertEqual((key.hex(), iv.hex()), (keys[gen]["key"], keys[gen]["iv"]))
            if gen + 1 in keys:
                nxt = hkdf_expand(ts, b"kd3/1 update", 32)
                self.assertEqual(nxt.hex(), keys[gen + 1]["traffic_secret"])
        out = []
        for l in of_kind(tr, "frame", dir=direction, type="RECORD"):
            k_ = keys[l["fields"]["key_generation"]]
            inner, payload = open_record(suite, bytes.fromhex(k_["key"]),
                                         bytes.fromhex(k_["iv"]), bytes.fromhex(l["hex"]))
            self.assertEqual(inner, {"FINISHED": 1, "DATA": 2, "KEY_UPDATE": 3,
                                     "CLOSE": 4}[l["fields"]["inner"]])
            self.assertEqual(len(payload), l["fields"]["payload_size"])
            out.append((inner, payload))
        return out

    # ---- all three agree ------------------------------------------------------------------

    def test_three_transcripts_agree(self):
        r, path = self.run_initiator("agree.tr", ["hi"], "--reveal-keys")
        self.assertEqual(r.rc, EXIT_OK, r)
        tr_i = read_transcript(path)
        th = of_kind(tr_i, "session")[0]["th"]
        sk = of_kind(tr_i, "keys")[0]["sk"]
        # The responder and the KDC write as they go: their lines for this session are
        # there once the initiator has its CLOSE back.
        tr_r = read_transcript(self.resp_tr)
        sess_r = [l for l in of_kind(tr_r, "session") if l["th"] == th]
        self.assertEqual(len(sess_r), 1, "the responder recorded the same TH")
        sid = sess_r[0]["session"]
        self.assertEqual(sess_r[0]["peer"], "alice")
        self.assertEqual(of_kind(tr_r, "keys", session=sid)[0]["sk"], sk)
        tr_k = read_transcript(self.kdc_tr)
        verdict = [l for l in of_kind(tr_k, "kdc") if l.get("th") == th]
        self.assertEqual(len(verdict), 1)
        self.assertEqual((verdict[0]["outcome"], verdict[0]["sk"]), ("OK", sk))
        req = verdict[0]["session"]
        m2_k = of_kind(tr_k, "frame", session=req, dir="R->KDC")[0]
        m3_k = of_kind(tr_k, "frame", session=req, dir="KDC->R")[0]
        self.assertEqual(m2_k["transport"], "udp")
        m2_r = of_kind(tr_r, "frame", session=sid, dir="R->KDC")
        m3_r = of_kind(tr_r, "frame", session=sid, dir="KDC->R")
        self.assertIn(m2_k["hex"], [f["hex"] for f in m2_r])
        self.assertEqual(m3_r[0]["hex"], m3_k["hex"])
        # M1 as the initiator sent it is M1 as the responder received it.
        m1_i = of_kind(tr_i, "frame", type="M1")[0]["hex"]
        self.assertEqual(of_kind(tr_r, "frame", session=sid, type="M1")[0]["hex"], m1_i)

    # ---- no keys without --reveal-keys; bad paths -----------------------------------------

    def test_no_keys_without_reveal(self):
        r, path = self.run_initiator("plain.tr", ["secret words"])
        self.assertEqual(r.rc, EXIT_OK, r)
        self.assertNotIn("reveal-keys", r.stderr)
        tr = read_transcript(path)
        self.assertFalse(tr[0]["reveal_keys"])
        self.assertEqual(of_kind(tr, "keys"), [])
        with open(path) as f:
            self.assertNotIn("secret words".encode().hex(), f.read())
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)

    def test_existing_file_is_truncated_and_made_private(self):
        path = os.path.join(self.realm.dir, "old.tr")
        with open(path, "w") as f:
            f.write("old content that is not JSON\n" * 100)
        os.chmod(path, 0o644)
        r, _ = self.run_initiator("old.tr", ["x"])
        self.assertEqual(r.rc, EXIT_OK, r)
        read_transcript(path)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)

    def test_symlink_refused(self):
        target = os.path.join(self.realm.dir, "elsewhere")
        link = os.path.join(self.realm.dir, "link.tr")
        os.symlink(target, link)
        r = self.realm.run_initiator(self.echo.port, ["x"], "--transcript", link)
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertIn("symbolic link", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertFalse(os.path.exists(target))
        r = k.run([k.exe("responder"), "--listen", "127.0.0.1:1", "--keyfile",
                   self.realm.keyfile("bob"), "--transcript", link])
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertIn("symbolic link", r.stderr)

    def test_reveal_keys_needs_a_transcript(self):
        r = self.realm.run_initiator(self.echo.port, ["x"], "--reveal-keys")
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertIn("--reveal-keys needs --transcript", r.stderr)
        r = k.run([k.exe("responder"), "--listen", "127.0.0.1:1", "--keyfile",
                   self.realm.keyfile("bob"), "--reveal-keys"])
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertIn("--reveal-keys needs --transcript", r.stderr)

    def test_failed_run_ends_with_error_and_exit_code(self):
        r, path = self.run_initiator("fail.tr", ["x"], "--peer", "nobody")
        self.assertNotEqual(r.rc, EXIT_OK, r)
        tr = read_transcript(path)
        self.assertEqual(of_kind(tr, "error")[0]["code"], "UNKNOWN_PRINCIPAL")
        self.assertEqual(tr[-1]["exit_code"], r.rc)
        self.assertEqual([l["type"] for l in of_kind(tr, "frame")], ["M1", "ERROR"])
        self.assertEqual(of_kind(tr, "frame", type="ERROR")[0]["fields"]["code_name"],
                         "UNKNOWN_PRINCIPAL")


if __name__ == "__main__":
    unittest.main(verbosity=2)
