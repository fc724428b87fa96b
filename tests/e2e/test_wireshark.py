"""End to end: the Wireshark dissector (contrib/wireshark/kd3.lua) on a real capture.

A realm runs on loopback while tshark captures only kd3's ports (a capture filter on the
KDC's and the responder's ports). Two sessions run (forward secrecy off and on), each
with lines carrying a unique marker, and the responder writes a --transcript. Then:
  - with the dissector loaded, every M1, M2, M3 and M4 in the capture decodes, and each
    field (names, nonces, kvnos, e_i/e_r, authenticators, lifetime, blobs, confirm_r)
    equals the value the responder's transcript recorded for that frame;
  - every record shows its sequence number and is marked encrypted;
  - no frame of the honest run raises a "malformed" expert item, while a garbage
    datagram sent to the KDC during the capture does (so the check can fail);
  - no plaintext of the conversation appears anywhere in the capture file, in any form
    (raw, hex, base64).
Needs tshark (Debian package) and the right to capture on lo (root or CAP_NET_RAW);
outside CI the test is skipped when either is missing, in CI it fails.
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import unittest

import kd3e2e as k

DISSECTOR = os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "wireshark",
                         "kd3.lua")
FIELDS = ["frame.number", "kd3.type", "kd3.id_i", "kd3.id_r", "kd3.n_i", "kd3.kvno_i",
          "kd3.e_i", "kd3.auth_i", "kd3.n_r", "kd3.kvno_r", "kd3.e_r", "kd3.auth_r",
          "kd3.lifetime", "kd3.blob_r", "kd3.blob_i", "kd3.confirm_r", "kd3.record.seq",
          "kd3.suite", "kd3.m2.m1_length"]
TYPE_CODES = {"M1": "0x01", "M2": "0x02", "M3": "0x03", "M4": "0x04"}


def capture_possible():
    if not shutil.which("tshark"):
        return "tshark is not installed"
    if os.geteuid() != 0:
        return "capturing on lo needs root"
    return None


class Capture:
    """tshark writing a pcap of the given ports on lo, until stop(). tshark says
    "Capturing on" before its capture is live, so start() sends probe datagrams to a port
    of their own (in the filter, not decoded as kd3) until the file grows."""

    def __init__(self, path, tcp_ports, udp_ports):
        self.probe_port = k.free_port()
        flt = " or ".join([f"tcp port {p}" for p in tcp_ports] +
                          [f"udp port {p}" for p in udp_ports + [self.probe_port]])
        self.path = path
        self.p = subprocess.Popen(["tshark", "-i", "lo", "-f", flt, "-w", path, "-q"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        seen = ""
        while time.monotonic() < deadline:
            line = self.p.stderr.readline()
            seen += line
            if "Capturing on" in line and self.wait_live(deadline):
                return
            if not line or self.p.poll() is not None:
                break
        self.p.kill()
        raise AssertionError("tshark did not start capturing:\n" + seen)

    def wait_live(self, deadline):
        size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while time.monotonic() < deadline:
                s.sendto(b"probe", ("127.0.0.1", self.probe_port))
                time.sleep(0.05)
                if os.path.exists(self.path) and os.path.getsize(self.path) > size:
                    return True
        return False

    def stop(self):
        time.sleep(0.5)  # let the last segments reach the capture
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def dissect(pcap, tcp_ports, udp_ports, *extra):
    argv = ["tshark", "-r", pcap, "-X", f"lua_script:{DISSECTOR}"]
    for p in tcp_ports:
        argv += ["-d", f"tcp.port=={p},kd3"]
    for p in udp_ports:
        argv += ["-d", f"udp.port=={p},kd3"]
    r = subprocess.run(argv + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Lua: Error" not in r.stderr, r.stderr
    return r.stdout


def frames_by_field(out):
    """tshark -T fields rows: one dict per kd3 PDU (a packet may carry several)."""
    pdus = []
    for row in out.splitlines():
        cols = row.split("\t")
        values = dict(zip(FIELDS, cols))
        types = values["kd3.type"].split("|") if values["kd3.type"] else []
        for i, t in enumerate(types):
            pdu = {"type": t, "frame": values["frame.number"]}
            for name in FIELDS[2:]:
                parts = values.get(name, "").split("|")
                if len(types) == 1:
                    pdu[name] = values.get(name, "")
                elif name == "kd3.record.seq" and len(parts) == len(types):
                    pdu[name] = parts[i]
            pdus.append(pdu)
    return pdus


def hexs(v):
    return v.replace(":", "").lower()


@unittest.skipIf(capture_possible() and os.environ.get("CI") != "true", capture_possible())
class Wireshark(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.realm = k.Realm(("alice", "bob"))
        d = cls.realm.dir
        cls.pcap = os.path.join(d, "kd3.pcap")
        cls.tr = os.path.join(d, "responder.tr")
        kdc_port, resp_port = k.free_port(), k.free_port()
        cls.tcp, cls.udp = [resp_port, kdc_port], [kdc_port]
        cls.capture = Capture(cls.pcap, cls.tcp, cls.udp)
        try:
            cls.realm.start_kdc(port=kdc_port)
            echo = cls.realm.start_responder("--exec", "cat", "--transcript", cls.tr,
                                             port=resp_port)
            cls.secrets = []
            for fs in ("no", "yes"):
                lines = [f"plaintext-marker-{fs}-{i}-{os.urandom(6).hex()}" for i in range(3)]
                cls.secrets += lines
                r = cls.realm.run_initiator(echo.port, lines, "--batch",
                                            f"--forward-secret={fs}")
                assert r.rc == 0, r
                assert r.stdout.split() == lines, r
            # Not a kd3 frame: the KDC ignores it, the dissector must flag it.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"\x01\x02\xff\xffgarbage", ("127.0.0.1", kdc_port))
            echo.wait_for(r"session 2 .*closed")
        finally:
            cls.capture.stop()

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()

    def transcript_frames(self):
        with open(self.tr) as f:
            lines = [json.loads(l) for l in f]
        return [l for l in lines if l["kind"] == "frame" and l["type"] in TYPE_CODES]

    def test_messages_1_to_4_match_the_transcript(self):
        pdus = frames_by_field(dissect(self.pcap, self.tcp, self.udp, "-Y", "kd3", "-T",
                                       "fields", "-E", "occurrence=a", "-E", "aggregator=|",
                                       *sum([["-e", f] for f in FIELDS], [])))
        recorded = self.transcript_frames()
        self.assertEqual(len(recorded), 8, "two sessions, M1..M4 each")
        for fr in recorded:
            with self.subTest(type=fr["type"], dir=fr["dir"]):
                code = TYPE_CODES[fr["type"]]
                f_ = fr["fields"]
                key = f_.get("n_i") or f_.get("m1", {}).get("n_i") or f_.get("n_r")
                cand = [p for p in pdus if p["type"] == code and
                        key in (hexs(p["kd3.n_i"]), hexs(p["kd3.n_r"]))]
                self.assertEqual(len(cand), 1, f"{fr['type']} not found once in the capture")
                p = cand[0]
                m1 = f_ if fr["type"] == "M1" else f_.get("m1")
                if m1:
                    self.assertEqual(p["kd3.id_i"], m1["id_i"])
                    self.assertEqual(p["kd3.id_r"], m1["id_r"])
                    self.assertEqual(hexs(p["kd3.n_i"]), m1["n_i"])
                    self.assertEqual(int(p["kd3.kvno_i"]), m1["kvno_i"])
                    self.assertEqual(hexs(p["kd3.auth_i"]), m1["auth_i"])
                    self.assertEqual(int(p["kd3.suite"], 16), m1["suite"])
                    self.assertEqual(hexs(p["kd3.e_i"]), m1.get("e_i", ""))
                for name in ("n_r", "auth_r", "e_r", "blob_r", "blob_i", "confirm_r"):
                    if name in f_:
                        self.assertEqual(hexs(p["kd3." + name]), f_[name], name)
                for name in ("kvno_r", "lifetime"):
                    if name in f_:
                        self.assertEqual(int(p["kd3." + name]), f_[name], name)
        # Records: as many as the responder recorded, each with its sequence number.
        with open(self.tr) as f:
            records = [json.loads(l) for l in f]
        records = [l for l in records if l["kind"] == "frame" and l["type"] == "RECORD"]
        seqs = [p["kd3.record.seq"] for p in pdus if p["type"] == "0x10"]
        self.assertEqual(sorted(int(s) for s in seqs),
                         sorted(l["fields"]["seq"] for l in records))

    def test_records_marked_encrypted_and_only_garbage_malformed(self):
        bad = dissect(self.pcap, self.tcp, self.udp, "-Y", "kd3.malformed", "-T", "fields",
                      "-e", "udp.dstport", "-e", "_ws.expert.message")
        rows = bad.splitlines()
        self.assertEqual(len(rows), 1, bad)  # the garbage datagram, nothing else
        self.assertTrue(rows[0].startswith(f"{self.udp[0]}\t"), rows)
        self.assertIn("Body longer than the data", rows[0])
        enc = dissect(self.pcap, self.tcp, self.udp, "-Y", "kd3.encrypted", "-T", "fields",
                      "-e", "frame.number")
        self.assertGreater(len(enc.splitlines()), 10)

    def test_no_plaintext_in_the_capture(self):
        with open(self.pcap, "rb") as f:
            raw = f.read()
        self.assertGreater(len(raw), 2000)
        for s in self.secrets:
            b = s.encode()
            for form in (b, b.hex().encode(), base64.b64encode(b), s.split("-")[-1].encode()):
                self.assertNotIn(form, raw, f"plaintext {s!r} found in the capture")
        # And the dissector's full text output shows none of it either.
        text = dissect(self.pcap, self.tcp, self.udp, "-V")
        for s in self.secrets:
            self.assertNotIn(s, text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
