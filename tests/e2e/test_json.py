"""End to end: the initiator's --json events (and --batch, which changes nothing today).

Every stdout line is one JSON object; an honest session shows the handshake steps,
the session established, each message sent and echoed back by `responder --exec cat`,
and a CLOSE both ways. Binary payloads come back as data_base64, key updates carry
growing generations, and a failed run ends with an error event naming its exit code.
"""
import base64
import json
import subprocess
import unittest

import kd3e2e as k

EXIT_OK, EXIT_HANDSHAKE = 0, 3


def events(r):
    """Each stdout line parsed; every line must be one JSON object with event and t_us."""
    out = []
    for line in r.stdout.splitlines():
        ev = json.loads(line)
        assert isinstance(ev, dict) and "event" in ev and isinstance(ev["t_us"], int), line
        out.append(ev)
    return out


def run_bytes(argv, data, timeout=30):
    p = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return k.Result(p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace"))


class Json(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.realm = k.Realm(("alice", "bob"))
        cls.kdc = cls.realm.start_kdc()
        cls.echo = cls.realm.start_responder("--exec", "cat")

    @classmethod
    def tearDownClass(cls):
        cls.realm.close()

    def run_json(self, data, *extra):
        return run_bytes(self.realm.initiator_argv(self.echo.port, "--json", "--batch", *extra),
                         data)

    def test_honest_session(self):
        lines = ["hello bob", 'quote " backslash \\ tab \t', "", "caf\u00e9"]
        for suite, fs in (("chacha20-poly1305", "no"), ("aes-256-gcm", "yes")):
            with self.subTest(suite=suite, fs=fs):
                data = "".join(l + "\n" for l in lines).encode()
                r = self.run_json(data, "--suite", suite, f"--forward-secret={fs}")
                self.assertEqual(r.rc, EXIT_OK, r)
                evs = events(r)
                steps = [e["step"] for e in evs if e["event"] == "handshake"]
                self.assertEqual(steps, ["M1 sent", "M4 received", "FINISHED sent"])
                self.assertEqual([e["event"] for e in evs[:4]],
                                 ["handshake"] * 3 + ["established"])
                est = evs[3]
                self.assertEqual(est["peer"], "bob")
                self.assertEqual(est["suite"], suite)
                self.assertIs(est["forward_secrecy"], fs == "yes")
                self.assertGreater(est["lifetime_s"], 0)
                msgs = [e for e in evs if e["event"] == "message"]
                sent = [e for e in msgs if e["direction"] == "sent"]
                got = [e for e in msgs if e["direction"] == "received"]
                self.assertEqual([e["size"] for e in sent], [len(l.encode()) for l in lines])
                self.assertTrue(all("data" not in e and "data_base64" not in e for e in sent))
                self.assertEqual([e["data"] for e in got], lines)
                self.assertEqual([e["size"] for e in got], [len(l.encode()) for l in lines])
                closes = [(e["by"], e["reason"]) for e in evs if e["event"] == "close"]
                self.assertEqual(closes, [("us", 0), ("peer", 0)])
                self.assertEqual(evs[-1]["event"], "close")
                times = [e["t_us"] for e in evs]
                self.assertEqual(times, sorted(times))
                self.assertFalse(any(e["event"] == "error" for e in evs))

    def test_binary_payload_base64(self):
        binary = bytes(range(0x80, 0x100))
        r = self.run_json(b"text\n" + binary + b"\n")
        self.assertEqual(r.rc, EXIT_OK, r)
        got = [e for e in events(r) if e["event"] == "message" and e["direction"] == "received"]
        self.assertEqual(len(got), 2, r)
        self.assertEqual(got[0]["data"], "text")
        self.assertNotIn("data", got[1])
        self.assertEqual(base64.b64decode(got[1]["data_base64"], validate=True), binary)
        self.assertEqual(got[1]["size"], len(binary))

    def test_key_updates(self):
        lines = [f"message {i}" for i in range(5)]
        r = self.run_json("".join(l + "\n" for l in lines).encode(),
                          "--rekey-after-messages", "1")
        self.assertEqual(r.rc, EXIT_OK, r)
        evs = events(r)
        gens = [e["generation"] for e in evs
                if e["event"] == "key_update" and e["direction"] == "sent"]
        self.assertGreaterEqual(len(gens), len(lines), r.stdout)
        self.assertTrue(all(b > a for a, b in zip(gens, gens[1:])), gens)
        # Each sent message follows its key update.
        kinds = [(e["event"], e.get("direction")) for e in evs
                 if e.get("direction") == "sent"]
        for i, kind in enumerate(kinds):
            if kind == ("message", "sent"):
                self.assertEqual(kinds[i - 1], ("key_update", "sent"), kinds)

    def test_peer_key_updates(self):
        resp = self.realm.start_responder("--exec", "cat", "--rekey-after-messages", "1")
        argv = self.realm.initiator_argv(resp.port, "--json")
        r = run_bytes(argv, b"one\ntwo\nthree\n")
        self.assertEqual(r.rc, EXIT_OK, r)
        gens = [e["generation"] for e in events(r)
                if e["event"] == "key_update" and e["direction"] == "received"]
        self.assertGreaterEqual(len(gens), 3, r.stdout)
        self.assertTrue(all(b > a for a, b in zip(gens, gens[1:])), gens)

    def test_batch_changes_nothing(self):
        data = b"plain line\n\x80\xff\n"
        for extra in ((), ("--batch",), ("--batch=yes",)):
            with self.subTest(extra=extra):
                p = subprocess.run(self.realm.initiator_argv(self.echo.port, *extra),
                                   input=data, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=30)
                self.assertEqual(p.returncode, EXIT_OK, p.stderr)
                self.assertEqual(p.stdout, data)  # bare messages, byte for byte

    def test_help_lists_options(self):
        r = k.run([k.exe("initiator"), "--help"])
        self.assertEqual(r.rc, EXIT_OK)
        self.assertIn("--batch", r.stdout)
        self.assertIn("--json", r.stdout)

    def test_failure_ends_with_error_event(self):
        # A key file for "alice" from another realm: the KDC answers BAD_AUTH.
        with k.Realm(("alice",)) as other:
            argv = [k.exe("initiator"), "--connect", f"127.0.0.1:{self.echo.port}",
                    "--keyfile", other.keyfile("alice"), "--peer", "bob", "--json"]
            r = run_bytes(argv, b"never sent\n")
        self.assertEqual(r.rc, EXIT_HANDSHAKE, r)
        evs = events(r)
        self.assertEqual(evs[0], {"event": "handshake", "t_us": evs[0]["t_us"],
                                  "step": "M1 sent"})
        last = evs[-1]
        self.assertEqual(last["event"], "error")
        self.assertEqual(last["code"], "BAD_AUTH")
        self.assertEqual(last["exit"], EXIT_HANDSHAKE)
        self.assertIn("BAD_AUTH", last["message"])
        self.assertIn(last["message"], r.stderr)  # the same line on stderr
        self.assertFalse(any(e["event"] in ("established", "message") for e in evs))

    def test_connect_failure_error_event(self):
        port = k.free_port()
        r = run_bytes(self.realm.initiator_argv(port, "--json"), b"")
        self.assertEqual(r.rc, 5, r)
        evs = events(r)
        self.assertEqual(len(evs), 1, r)
        self.assertEqual(evs[0]["event"], "error")
        self.assertEqual(evs[0]["code"], "IO")
        self.assertEqual(evs[0]["exit"], 5)
        self.assertIn("cannot connect", evs[0]["message"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
