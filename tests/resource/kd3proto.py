"""kd3 protocol v1 for the resource and memory tests: real frames from real keys.

Builds M1 and M2 for any principals from their key files, and checks an M3 or M4 the
way a responder or initiator would (n_r, lifetime, both sealed keys open to the same
SK, confirm_r). The primitives (HKDF, HMAC, AEAD, X25519, TH, sealing, the session
schedule) are the independent implementation in tests/vectors/check_vectors.py,
written from the design note, not from the C code.
"""
import os
import secrets
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors"))

import check_vectors as cv  # noqa: E402

T_M1, T_M2, T_M3, T_M4, T_RECORD, T_ERROR = 0x01, 0x02, 0x03, 0x04, 0x10, 0x7F
SUITE_AES, SUITE_CHACHA = cv.SUITE_AES256GCM, cv.SUITE_CHACHAPOLY
HDR = 4
ERROR_NAMES = {1: "MALFORMED", 2: "UNSUPPORTED", 3: "UNKNOWN_PRINCIPAL", 4: "BAD_AUTH",
               5: "KVNO_UNKNOWN", 6: "POLICY_DENIED", 7: "BUSY", 8: "INTERNAL", 9: "TIMEOUT"}


class Principal:
    """One principal's name, kvno and long-term key (the highest kvno of its key file)."""

    def __init__(self, name, kvno, key):
        self.name, self.kvno, self.key = name.encode(), kvno, key
        self.auth, self.wrap = cv.subkeys(key)


def load_keyfile(path):
    """A kd3 key file (docs/OPERATIONS.md): `principal = NAME`, `key = KVNO:HEX64`."""
    name, keys = None, {}
    with open(path, encoding="ascii") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, _, v = (s.strip() for s in line.partition("="))
            if k == "principal":
                name = v
            elif k == "key":
                kvno, _, hexkey = v.partition(":")
                keys[int(kvno)] = bytes.fromhex(hexkey)
    if name is None or not keys:
        raise ValueError(f"{path}: no principal or no key")
    kvno = max(keys)
    return Principal(name, kvno, keys[kvno])


def frame(ftype, body):
    return cv.frame(ftype, body)


def frame_split(data):
    """(type, body) of one whole frame; ValueError when the bytes are not one."""
    if len(data) < HDR or data[0] != 1:
        raise ValueError(f"not a kd3 frame: {data[:8].hex()}")
    (length,) = struct.unpack(">H", data[2:4])
    if len(data) != HDR + length:
        raise ValueError(f"frame length {length} but {len(data) - HDR} body bytes")
    return data[1], data[HDR:]


def error_text(body):
    """'NAME (text)' of an ERROR body."""
    (code,) = struct.unpack(">H", body[:2])
    return f"{ERROR_NAMES.get(code, code)} ({body[3:3 + body[2]].decode('ascii', 'replace')})"


def m1_body(ini, responder_name, suite=SUITE_CHACHA, n_i=None, e_i_pub=None):
    """M1 = suite | flags | id_i | id_r | n_i | kvno_i | [e_i] | auth_i, auth_i by ini."""
    signed = (bytes([suite, cv.FLAG_FS if e_i_pub else 0]) + cv.enc_str(ini.name)
              + cv.enc_str(responder_name) + (n_i or secrets.token_bytes(32))
              + cv.u32(ini.kvno) + (e_i_pub or b""))
    return signed + cv.hmac_sha256(ini.auth, b"kd3/1 M1" + signed)


class Request:
    """One honest M2 (R -> KDC) for ini -> resp, fresh nonces, and the check of its M3."""

    def __init__(self, ini, resp, suite=SUITE_CHACHA):
        self.ini, self.resp, self.suite = ini, resp, suite
        self.m1 = m1_body(ini, resp.name, suite)
        self.n_r = secrets.token_bytes(32)
        prefix = cv.blob16(self.m1) + self.n_r + cv.u32(resp.kvno)
        self.th = cv.transcript_hash(prefix)
        self.frame = frame(T_M2, prefix + cv.hmac_sha256(resp.auth, b"kd3/1 M2" + prefix))

    def check_m3(self, data):
        """The SK of a correct M3 for this request; AssertionError otherwise."""
        ftype, body = frame_split(data)
        if ftype == T_ERROR:
            raise AssertionError(f"KDC answered ERROR {error_text(body)}")
        if ftype != T_M3 or len(body) != 132:
            raise AssertionError(f"not an M3: type {ftype:#x}, {len(body)} bytes")
        n_r, (lifetime,) = body[:32], struct.unpack(">I", body[32:36])
        blob_r, blob_i = body[36:84], body[84:132]
        if n_r != self.n_r:
            raise AssertionError("M3 for another request (n_r differs)")
        try:
            sk_r = cv.blob_open(self.suite, self.resp.wrap, cv.ROLE_R, self.th, lifetime, blob_r)
            sk_i = cv.blob_open(self.suite, self.ini.wrap, cv.ROLE_I, self.th, lifetime, blob_i)
        except cv.InvalidTag:
            raise AssertionError("a sealed key in M3 did not open") from None
        if sk_r != sk_i:
            raise AssertionError("blob_r and blob_i hold different keys")
        return sk_r


def bad_auth_m2(ini, resp, valid_m1):
    """A valid-looking M2 for real principals and kvnos that must fail authentication:
    a forged auth_i (valid_m1 false) or a valid M1, as an eavesdropper could copy, with a
    forged auth_r (valid_m1 true, so the KDC checks both authenticators)."""
    if valid_m1:
        m1 = m1_body(ini, resp.name)
    else:
        m1 = m1_body(ini, resp.name)[:-32] + secrets.token_bytes(32)
    prefix = cv.blob16(m1) + secrets.token_bytes(32) + cv.u32(resp.kvno)
    return frame(T_M2, prefix + secrets.token_bytes(32))


def ask_udp(sock, req, timeout=2.0, retry_ms=200, tries=3):
    """Sends req over a connected UDP socket the way the responder does (a retry after
    retry_ms, doubling) and returns (data, tries used); (None, tries) on no answer."""
    deadline = time.monotonic() + timeout
    wait = retry_ms / 1000.0
    for n in range(1, tries + 1):
        sock.send(req.frame)
        until = min(deadline, time.monotonic() + wait)
        while True:
            left = until - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data = sock.recv(2048)
            except socket.timeout:
                break
            if len(data) >= HDR + 32 and data[1] == T_M3 and data[HDR:HDR + 32] != req.n_r:
                continue  # a late answer to an earlier request
            return data, n
        wait *= 2
    return None, tries


def recv_frame(sock, timeout):
    """One whole frame from a TCP socket; None on EOF or timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    need = HDR
    while len(buf) < need:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(need - len(buf))
        except (socket.timeout, ConnectionError):
            return None
        if not chunk:
            return None
        buf += chunk
        if len(buf) == HDR:
            need = HDR + struct.unpack(">H", buf[2:4])[0]
    return buf


def tcp_request(port, alice, bob, timeout=5.0):
    """(outcome, seconds) of one honest M2 over TCP: 'M3' (checked) or 'ERROR NAME (...)'."""
    req = Request(alice, bob)
    t = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.frame)
        data = recv_frame(s, timeout)
    took = time.monotonic() - t
    if data is None:
        return "no answer", took
    ftype, body = frame_split(data)
    if ftype == T_ERROR:
        return "ERROR " + error_text(body), took
    req.check_m3(data)
    return "M3", took


def check_m4(data, ini, resp_name, m1, suite=SUITE_CHACHA):
    """(SK, TH) of a correct M4 answering our M1 (blob_i opens, confirm_r verifies)."""
    ftype, body = frame_split(data)
    if ftype == T_ERROR:
        raise AssertionError(f"responder answered ERROR {error_text(body)}")
    if ftype != T_M4 or len(body) != 120:
        raise AssertionError(f"not an M4: type {ftype:#x}, {len(body)} bytes")
    n_r, kvno_r = body[:32], body[32:36]
    (lifetime,) = struct.unpack(">I", body[36:40])
    blob_i, confirm_r = body[40:88], body[88:120]
    th = cv.transcript_hash(cv.blob16(m1) + n_r + kvno_r)
    try:
        sk = cv.blob_open(suite, ini.wrap, cv.ROLE_I, th, lifetime, blob_i)
    except cv.InvalidTag:
        raise AssertionError("blob_i in M4 did not open") from None
    if cv.session_secrets(th, sk, None)["confirm_r"] != confirm_r:
        raise AssertionError("confirm_r in M4 did not verify")
    return sk, th


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))
