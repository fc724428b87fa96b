#!/usr/bin/python3
"""Independent cross-check of kd3 protocol v1 test vectors.

Written from the design note (protocol-v1.md) only, not from the C sources.
It recomputes every derived value and every frame of the four vector runs
(suite 0x02 / 0x01, forward secrecy off / on) and compares them byte for byte
with what the C generator prints.

Usage:  check_vectors.py path/to/gen_vectors
Exit:   0 all OK, 1 any mismatch (or the generator could not be run/parsed).

Needs Debian's python3-cryptography (38 or later).
"""

import hashlib
import hmac
import re
import struct
import subprocess
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import (X25519PrivateKey,
                                                              X25519PublicKey)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

# --- Constants from the design note ("Framing", "Suites", "Records") ---------

VERSION = 1
T_M1, T_M2, T_M3, T_M4, T_RECORD = 0x01, 0x02, 0x03, 0x04, 0x10
SUITE_AES256GCM, SUITE_CHACHAPOLY = 0x01, 0x02
FLAG_FS = 0x01
R_FINISHED, R_DATA = 0x01, 0x02
KEYLEN = 32  # both suites use 256-bit AEAD keys
IVLEN = 12
ROLE_I, ROLE_R = b"initiator", b"responder"
SUITE_NAMES = {SUITE_AES256GCM: "aes-256-gcm", SUITE_CHACHAPOLY: "chacha20-poly1305"}


def seq_bytes(first, n):
    """n consecutive byte values starting at first (the harness's fill())."""
    return bytes((first + i) & 0xFF for i in range(n))


# --- Fixed inputs (tests/support/harness.c, h_inputs_default) ----------------

INPUTS = {
    "K_I": seq_bytes(0x00, 32),
    "K_R": seq_bytes(0x20, 32),
    "id_i": b"alice", "kvno_i": 1,
    "id_r": b"bob", "kvno_r": 2,
    "n_i": seq_bytes(0xA0, 32),
    "n_r": seq_bytes(0xB0, 32),
    "KDC secret": seq_bytes(0xC0, 32),
    "e_i_priv": seq_bytes(0x40, 32),
    "e_r_priv": seq_bytes(0x60, 32),
    "lifetime": 3600,
    "data_i2r": b"hello bob",
    "data_r2i": b"hello alice",
}

RUNS = [(SUITE_CHACHAPOLY, False), (SUITE_CHACHAPOLY, True),
        (SUITE_AES256GCM, False), (SUITE_AES256GCM, True)]


# --- Primitives: HMAC-SHA256, HKDF (RFC 5869), AEAD, X25519 ------------------

def hmac_sha256(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def hkdf_extract(salt, ikm):
    """RFC 5869 section 2.2."""
    return hmac_sha256(salt, ikm)


def hkdf_expand(prk, info, length):
    """RFC 5869 section 2.3."""
    out, t, counter = b"", b"", 1
    while len(out) < length:
        t = hmac_sha256(prk, t + info + bytes([counter]))
        out += t
        counter += 1
    return out[:length]


def aead(suite, key):
    if suite == SUITE_AES256GCM:
        return AESGCM(key)
    if suite == SUITE_CHACHAPOLY:
        return ChaCha20Poly1305(key)
    raise ValueError("unknown suite 0x%02x" % suite)


def x25519_public(priv):
    """RFC 7748 X25519(k, 9); the library clamps k as RFC 7748 section 5 says."""
    pub = X25519PrivateKey.from_private_bytes(priv).public_key()
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def x25519_shared(priv, peer_pub):
    return X25519PrivateKey.from_private_bytes(priv).exchange(
        X25519PublicKey.from_public_bytes(peer_pub))


# --- Encoding helpers ("Framing": big-endian, str, blob16) -------------------

def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def enc_str(b):
    assert 1 <= len(b) <= 255
    return bytes([len(b)]) + b


def blob16(b):
    return u16(len(b)) + b


def frame_header(ftype, body_len):
    return bytes([VERSION, ftype]) + u16(body_len)


def frame(ftype, body):
    return frame_header(ftype, len(body)) + body


# --- Long-term key subkeys ("Parties and long-term keys") --------------------

def subkeys(k):
    prk = hkdf_extract(b"kd3/1 principal", k)
    return hkdf_expand(prk, b"kd3/1 auth", 32), hkdf_expand(prk, b"kd3/1 wrap", 32)


# --- The exchange: M1, M2, TH, blobs, M3, M4 ("The exchange") ----------------

def m1_body(suite, fs, e_i_pub, k_i_auth):
    """M1 = suite | flags | id_i str | id_r str | n_i | kvno_i | [e_i] | auth_i."""
    flags = FLAG_FS if fs else 0
    signed = (bytes([suite, flags]) + enc_str(INPUTS["id_i"]) + enc_str(INPUTS["id_r"])
              + INPUTS["n_i"] + u32(INPUTS["kvno_i"]) + (e_i_pub if fs else b""))
    auth_i = hmac_sha256(k_i_auth, b"kd3/1 M1" + signed)
    return signed + auth_i


def m2_prefix(m1, fs, e_r_pub):
    """M2 body bytes before auth_r: m1 blob16 | n_r | kvno_r | [e_r]."""
    return blob16(m1) + INPUTS["n_r"] + u32(INPUTS["kvno_r"]) + (e_r_pub if fs else b"")


def m2_body(prefix, k_r_auth):
    """M2 = prefix | auth_r, auth_r = HMAC(K_R.auth, "kd3/1 M2" || prefix)."""
    return prefix + hmac_sha256(k_r_auth, b"kd3/1 M2" + prefix)


def transcript_hash(prefix):
    """TH = SHA-256("kd3/1 TH" || M2 body bytes before auth_r)."""
    return hashlib.sha256(b"kd3/1 TH" + prefix).digest()


def derive_sk(secret, th):
    """The KDC's SK: a function of the request (docs/PROTOCOL.md, KDC processing)."""
    return hkdf_expand(secret, b"kd3/1 SK" + th, KEYLEN)


def blob_key_ad(wrap, role, th, lifetime):
    # The sealing key covers the lifetime too (docs/PROTOCOL.md, Sealing).
    key = hkdf_expand(wrap, b"kd3/1 seal " + role + th + u32(lifetime), KEYLEN)
    ad = b"kd3/1 M3 " + role + th + u32(lifetime)
    return key, ad


def blob_seal(suite, wrap, role, th, lifetime, sk):
    """KDC sealing of SK to one principal: zero nonce, 48 bytes out."""
    key, ad = blob_key_ad(wrap, role, th, lifetime)
    blob = aead(suite, key).encrypt(bytes(IVLEN), sk, ad)
    assert len(blob) == 48
    return blob


def blob_open(suite, wrap, role, th, lifetime, blob):
    """Raises InvalidTag when the blob does not authenticate."""
    key, ad = blob_key_ad(wrap, role, th, lifetime)
    return aead(suite, key).decrypt(bytes(IVLEN), blob, ad)


def m3_body(blob_r, blob_i):
    """M3 = n_r | lifetime | blob_r | blob_i."""
    return INPUTS["n_r"] + u32(INPUTS["lifetime"]) + blob_r + blob_i


def m4_body(fs, e_r_pub, blob_i, confirm_r):
    """M4 = n_r | kvno_r | [e_r] | lifetime | blob_i | confirm_r."""
    return (INPUTS["n_r"] + u32(INPUTS["kvno_r"]) + (e_r_pub if fs else b"")
            + u32(INPUTS["lifetime"]) + blob_i + confirm_r)


# --- Session key schedule ("Session key schedule") ---------------------------

def session_secrets(th, sk, dh):
    prk = hkdf_extract(th, sk + (dh or b""))
    return {
        "confirm_r": hkdf_expand(prk, b"kd3/1 confirm responder", 32),
        "confirm_i": hkdf_expand(prk, b"kd3/1 confirm initiator", 32),
        "ts_i2r": hkdf_expand(prk, b"kd3/1 traffic i2r", 32),
        "ts_r2i": hkdf_expand(prk, b"kd3/1 traffic r2i", 32),
    }


def traffic_key_iv(ts):
    return hkdf_expand(ts, b"kd3/1 key", KEYLEN), hkdf_expand(ts, b"kd3/1 iv", IVLEN)


def traffic_next(ts):
    return hkdf_expand(ts, b"kd3/1 update", 32)


# --- Records ("Records") -----------------------------------------------------

def record_nonce(iv, seq):
    """iv XOR (0^4 || seq u64)."""
    pad = bytes(4) + u64(seq)
    return bytes(a ^ b for a, b in zip(iv, pad))


def record_frame(suite, key, iv, seq, inner_type, payload):
    """Header | seq u64 | AEAD(key, nonce, ad = header || seq, inner_type || payload)."""
    pt = bytes([inner_type]) + payload
    body_len = 8 + len(pt) + 16
    header = frame_header(T_RECORD, body_len)
    ct = aead(suite, key).encrypt(record_nonce(iv, seq), pt, header + u64(seq))
    return header + u64(seq) + ct


# --- One whole run: everything the generator prints --------------------------

def compute_run(suite, fs):
    """Returns (values, frames) keyed exactly as the generator labels them."""
    v, f = {}, {}
    ki_auth, ki_wrap = subkeys(INPUTS["K_I"])
    kr_auth, kr_wrap = subkeys(INPUTS["K_R"])
    v.update({"K_I.auth": ki_auth, "K_I.wrap": ki_wrap,
              "K_R.auth": kr_auth, "K_R.wrap": kr_wrap})

    e_i_pub = e_r_pub = dh = None
    if fs:
        e_i_pub = x25519_public(INPUTS["e_i_priv"])
        e_r_pub = x25519_public(INPUTS["e_r_priv"])
        dh = x25519_shared(INPUTS["e_i_priv"], e_r_pub)
        assert dh == x25519_shared(INPUTS["e_r_priv"], e_i_pub)
        v.update({"e_i": e_i_pub, "e_r": e_r_pub, "X25519": dh})

    # M1 (I -> R), M2 (R -> KDC), TH.
    m1 = m1_body(suite, fs, e_i_pub, ki_auth)
    prefix = m2_prefix(m1, fs, e_r_pub)
    m2 = m2_body(prefix, kr_auth)
    th = transcript_hash(prefix)
    v["TH"] = th

    # KDC derives SK and seals it for both roles; M3 (KDC -> R).
    lifetime, sk = INPUTS["lifetime"], derive_sk(INPUTS["KDC secret"], th)
    v["SK"] = sk
    blob_r = blob_seal(suite, kr_wrap, ROLE_R, th, lifetime, sk)
    blob_i = blob_seal(suite, ki_wrap, ROLE_I, th, lifetime, sk)
    m3 = m3_body(blob_r, blob_i)

    # Session schedule, then M4 (R -> I) with confirm_r.
    s = session_secrets(th, sk, dh)
    v.update(s)
    m4 = m4_body(fs, e_r_pub, blob_i, s["confirm_r"])
    key_i2r, iv_i2r = traffic_key_iv(s["ts_i2r"])
    key_r2i, iv_r2i = traffic_key_iv(s["ts_r2i"])
    v.update({"key(i2r)": key_i2r, "iv(i2r)": iv_i2r, "next(i2r)": traffic_next(s["ts_i2r"])})

    f["M1 I->R"] = frame(T_M1, m1)
    f["M2 R->KDC"] = frame(T_M2, m2)
    f["M3 KDC->R"] = frame(T_M3, m3)
    f["M4 R->I"] = frame(T_M4, m4)
    # FINISHED: first I->R record, seq 0; then DATA I->R seq 1; DATA R->I seq 0.
    f["FINISHED I->R"] = record_frame(suite, key_i2r, iv_i2r, 0, R_FINISHED, s["confirm_i"])
    f["DATA I->R"] = record_frame(suite, key_i2r, iv_i2r, 1, R_DATA, INPUTS["data_i2r"])
    f["DATA R->I"] = record_frame(suite, key_r2i, iv_r2i, 0, R_DATA, INPUTS["data_r2i"])
    return v, f


# --- Parsing the generator's markdown output ---------------------------------

HEADING_RE = re.compile(r"^### Suite 0x([0-9a-fA-F]{2}) \(([^)]*)\), forward secrecy (on|off)\s*$")
VALUE_RE = re.compile(r"^(\S+)\s*=\s*([0-9a-f]+)\s*$")
FRAME_RE = re.compile(r"^(\S+(?: \S+)?) \((\d+) bytes\)\s*$")
HEXLINE_RE = re.compile(r"^\s+([0-9a-f]+)\s*$")


def parse_output(text):
    """Returns (inputs_lines, runs): runs maps (suite, fs) to a dict with
    'name', 'values', 'frames' and 'lengths' (the declared frame lengths)."""
    runs, cur, frame_name = {}, None, None
    inputs_lines, in_inputs = [], False
    for line in text.splitlines():
        if line.startswith("Inputs"):
            in_inputs = True
            continue
        m = HEADING_RE.match(line)
        if m:
            in_inputs = False
            key = (int(m.group(1), 16), m.group(3) == "on")
            if key in runs:
                raise ValueError("run %r printed twice" % (key,))
            cur = runs[key] = {"name": m.group(2), "values": {}, "frames": {}, "lengths": {}}
            frame_name = None
            continue
        if in_inputs:
            if line.strip() and line.strip() != "```":
                inputs_lines.append(line)
            continue
        if cur is None or line.strip() == "```" or not line.strip():
            continue
        m = HEXLINE_RE.match(line)
        if m and frame_name is not None:
            cur["frames"][frame_name] += bytes.fromhex(m.group(1))
            continue
        m = FRAME_RE.match(line)
        if m:
            frame_name = m.group(1)
            cur["frames"][frame_name] = b""
            cur["lengths"][frame_name] = int(m.group(2))
            continue
        m = VALUE_RE.match(line)
        if m:
            frame_name = None
            cur["values"][m.group(1)] = bytes.fromhex(m.group(2))
            continue
        raise ValueError("unparsed line: %r" % line)
    return inputs_lines, runs


# --- Comparison and reporting ------------------------------------------------

class Report:
    def __init__(self, quiet=False):
        self.failures = 0
        self.quiet = quiet

    def ok(self, label, detail=""):
        if not self.quiet:
            print("OK       %s%s" % (label, (" " + detail) if detail else ""))

    def bad(self, label, detail):
        self.failures += 1
        if not self.quiet:
            print("MISMATCH %s: %s" % (label, detail))

    def compare(self, label, expected, got):
        """Byte-for-byte comparison; names the first differing offset."""
        if got is None:
            self.bad(label, "missing from the C output")
        elif expected == got:
            self.ok(label, "(%d bytes)" % len(got))
        else:
            self.bad(label, first_difference(expected, got))


def first_difference(expected, got):
    n = min(len(expected), len(got))
    off = next((i for i in range(n) if expected[i] != got[i]), n)
    if off == n:
        return "length differs: expected %d bytes, C has %d" % (len(expected), len(got))
    return ("first difference at byte offset %d (expected %02x, C has %02x); "
            "expected %s, C has %s" % (off, expected[off], got[off],
                                      expected.hex(), got.hex()))


# --- Checks ------------------------------------------------------------------

def check_inputs(rep, lines):
    """The generator's 'Inputs' block must state the inputs this checker uses."""
    want = {
        "K_I": INPUTS["K_I"].hex(), "K_R": INPUTS["K_R"].hex(),
        "id_i": "alice, kvno 1", "id_r": "bob, kvno 2",
        "n_i": INPUTS["n_i"].hex(), "n_r": INPUTS["n_r"].hex(),
        "KDC secret": INPUTS["KDC secret"].hex(),
        "e_i (priv)": INPUTS["e_i_priv"].hex(), "e_r (priv)": INPUTS["e_r_priv"].hex(),
        "lifetime": "3600",
        "DATA": '"hello bob" (I->R), then "hello alice" (R->I)',
    }
    got = {}
    for line in lines:
        name, _, value = line.partition("=")
        got[name.strip()] = value.strip()
    for name, value in want.items():
        if got.get(name) == value:
            rep.ok("inputs %s" % name)
        else:
            rep.bad("inputs %s" % name, "expected %r, C printed %r" % (value, got.get(name)))


def check_run(rep, suite, fs, c_run):
    tag = "suite 0x%02x fs %s" % (suite, "on" if fs else "off")
    if c_run is None:
        rep.bad(tag, "run missing from the C output")
        return
    if c_run["name"] != SUITE_NAMES[suite]:
        rep.bad(tag + " heading", "suite named %r" % c_run["name"])
    values, frames = compute_run(suite, fs)
    for name, exp in values.items():
        rep.compare("%s %s" % (tag, name), exp, c_run["values"].get(name))
    for name in c_run["values"]:
        if name not in values:
            rep.bad("%s %s" % (tag, name), "value printed by C but not known to the checker")
    for name, exp in frames.items():
        got = c_run["frames"].get(name)
        if got is not None and c_run["lengths"][name] != len(got):
            rep.bad("%s %s" % (tag, name), "declared %d bytes but %d bytes of hex"
                    % (c_run["lengths"][name], len(got)))
        rep.compare("%s %s" % (tag, name), exp, got)
    for name in c_run["frames"]:
        if name not in frames:
            rep.bad("%s %s" % (tag, name), "frame printed by C but not known to the checker")
    check_c_frames_open(rep, tag, suite, values, c_run)


def check_c_frames_open(rep, tag, suite, values, c_run):
    """Open the C side's own ciphertexts with our keys (independent of the
    byte comparison), then the negative self-checks: one flipped bit in
    blob_i (M3), blob_r (M3) and a record must make our AEAD open fail."""
    m3 = c_run["frames"].get("M3 KDC->R")
    fin = c_run["frames"].get("FINISHED I->R")
    if m3 is None or len(m3) != 4 + 132 or fin is None:
        rep.bad(tag + " self-check", "C M3/FINISHED missing or wrong length, cannot self-check")
        return
    ki_wrap, kr_wrap, th = values["K_I.wrap"], values["K_R.wrap"], values["TH"]
    lifetime = struct.unpack(">I", m3[4 + 32:4 + 36])[0]
    blob_r, blob_i = m3[4 + 36:4 + 84], m3[4 + 84:4 + 132]

    # Positive: I and R open the C blobs and recover SK.
    for label, wrap, role, blob in (("blob_i", ki_wrap, ROLE_I, blob_i),
                                    ("blob_r", kr_wrap, ROLE_R, blob_r)):
        try:
            sk = blob_open(suite, wrap, role, th, lifetime, blob)
            rep.compare("%s open C %s -> SK" % (tag, label), values["SK"], sk)
        except InvalidTag:
            rep.bad("%s open C %s" % (tag, label), "AEAD open failed")

    # Negative: each of these must NOT open.
    flipped_i = flip_bit(blob_i, 0)
    expect_open_fails(rep, "%s negative: blob_i bit flipped" % tag,
                      lambda: blob_open(suite, ki_wrap, ROLE_I, th, lifetime, flipped_i))
    expect_open_fails(rep, "%s negative: blob_i tag bit flipped" % tag,
                      lambda: blob_open(suite, ki_wrap, ROLE_I, th, lifetime,
                                        flip_bit(blob_i, 47)))
    expect_open_fails(rep, "%s negative: blob_i opened as responder" % tag,
                      lambda: blob_open(suite, ki_wrap, ROLE_R, th, lifetime, blob_i))
    expect_open_fails(rep, "%s negative: blob_r lifetime+1" % tag,
                      lambda: blob_open(suite, kr_wrap, ROLE_R, th, lifetime + 1, blob_r))

    # Positive and negative on the C FINISHED record.
    key, iv = values["key(i2r)"], values["iv(i2r)"]
    hdr, seq = fin[:4], fin[4:12]
    open_fin = lambda rec: aead(suite, key).decrypt(
        record_nonce(iv, struct.unpack(">Q", rec[4:12])[0]), rec[12:], rec[:12])
    try:
        pt = open_fin(fin)
        rep.compare("%s open C FINISHED -> 01||confirm_i" % tag,
                    bytes([R_FINISHED]) + values["confirm_i"], pt)
    except InvalidTag:
        rep.bad("%s open C FINISHED" % tag, "AEAD open failed")
    expect_open_fails(rep, "%s negative: FINISHED header bit flipped" % tag,
                      lambda: open_fin(flip_bit(hdr, 0) + fin[4:]))
    expect_open_fails(rep, "%s negative: FINISHED ciphertext bit flipped" % tag,
                      lambda: open_fin(fin[:12] + flip_bit(fin[12:], 5)))
    # The compare routine itself must report a one-byte difference.
    probe = Report(quiet=True)
    probe.compare("probe", blob_i, flipped_i)
    if probe.failures == 1:
        rep.ok("%s negative: comparator flags a flipped bit" % tag)
    else:
        rep.bad("%s negative: comparator" % tag, "did not flag a flipped bit")


def flip_bit(b, offset):
    out = bytearray(b)
    out[offset] ^= 0x01
    return bytes(out)


def expect_open_fails(rep, label, fn):
    try:
        fn()
    except InvalidTag:
        rep.ok(label, "(AEAD open failed, as it must)")
        return
    rep.bad(label, "AEAD open SUCCEEDED on tampered input: the checker cannot fail")


def check_primitives(rep):
    """Known-answer tests of the primitives this checker relies on."""
    # RFC 5869 A.1 (HKDF-SHA256, basic test case).
    ikm = bytes([0x0B] * 22)
    salt = bytes(range(0x00, 0x0D))
    info = bytes(range(0xF0, 0xFA))
    prk = hkdf_extract(salt, ikm)
    rep.compare("RFC 5869 A.1 PRK", bytes.fromhex(
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"), prk)
    rep.compare("RFC 5869 A.1 OKM", bytes.fromhex(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        "34007208d5b887185865"), hkdf_expand(prk, info, 42))
    # RFC 7748 section 6.1 (X25519 Diffie-Hellman).
    a = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    b = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    rep.compare("RFC 7748 6.1 Alice public", bytes.fromhex(
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"), x25519_public(a))
    rep.compare("RFC 7748 6.1 Bob public", bytes.fromhex(
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"), x25519_public(b))
    rep.compare("RFC 7748 6.1 shared", bytes.fromhex(
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"),
        x25519_shared(a, x25519_public(b)))


def run_generator(path):
    proc = subprocess.run([path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError("%s exited with %d: %s" % (path, proc.returncode, proc.stderr.strip()))
    return proc.stdout


def main(argv):
    if len(argv) != 2:
        print("usage: %s path/to/gen_vectors" % argv[0], file=sys.stderr)
        return 1
    rep = Report()
    check_primitives(rep)
    try:
        inputs_lines, runs = parse_output(run_generator(argv[1]))
    except (OSError, RuntimeError, ValueError) as e:
        print("MISMATCH generator output: %s" % e)
        return 1
    check_inputs(rep, inputs_lines)
    for suite, fs in RUNS:
        check_run(rep, suite, fs, runs.get((suite, fs)))
    for key in runs:
        if key not in RUNS:
            rep.bad("run suite 0x%02x fs %s" % key, "unexpected run in the C output")
    print("%s: %d mismatch(es)" % ("FAIL" if rep.failures else "PASS", rep.failures))
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
