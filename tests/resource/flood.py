#!/usr/bin/python3
"""UDP flood at a KDC on loopback, run as its own process (so it does not share the
test's interpreter lock with the honest client being measured).

usage: flood.py PORT INITIATOR_KEYFILE RESPONDER_KEYFILE GARBAGE BAD_M2 RATE SOCKETS

Sends GARBAGE datagrams that are not requests (random bytes; frames of other types,
ERRORs and M3s among them; M2 headers too short or with a wrong length) and BAD_M2
valid-looking M2s for the real principals and kvnos with forged authenticators (half a
forged auth_i, half a genuine M1 with a forged auth_r), interleaved, RATE datagrams a
second in 10 ms bursts (RATE 0: as fast as it can), from SOCKETS source ports (so
SO_REUSEPORT spreads them over the workers). Prints "flooding" when it starts, then one
JSON line of counts at the end: what was sent, and what came back, by type, for each
kind.
"""
import json
import os
import random
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kd3proto as P  # noqa: E402


def garbage(rng):
    """A datagram the KDC must never answer (docs/PROTOCOL.md, KDC processing, 1)."""
    kind = rng.randrange(6)
    if kind == 0:  # random bytes
        return os.urandom(rng.randrange(1, 1400))
    if kind == 1:  # a frame of another type, length matching
        ftype = rng.choice([P.T_M1, P.T_M3, P.T_M4, P.T_RECORD, P.T_ERROR, 0x00, 0x55, 0xFF])
        return P.frame(ftype, os.urandom(rng.randrange(0, 400)))
    if kind == 2:  # an ERROR: answering it could start two servers answering each other
        text = b"forged"
        return P.frame(P.T_ERROR, struct.pack(">H", rng.randrange(1, 10)) + bytes([len(text)])
                       + text)
    if kind == 3:  # an M2 header shorter than any M2 (148 bytes)
        return P.frame(P.T_M2, os.urandom(rng.randrange(0, 148 - P.HDR)))
    if kind == 4:  # an M2 whose length field does not match the datagram
        body = os.urandom(rng.randrange(150, 700))
        return bytes([1, P.T_M2]) + struct.pack(">H", len(body) + 1 + rng.randrange(50)) + body
    # Another version with a length field that does not match (with a matching one the
    # KDC rightly answers UNSUPPORTED).
    return bytes([rng.choice([0, 2, 0xFF]), P.T_M2]) + struct.pack(">H", 1000) + os.urandom(200)


def drain(socks, kinds, replies):
    while True:
        ready, _, _ = select.select(socks, [], [], 0)
        if not ready:
            return
        for s in ready:
            try:
                data = s.recv(4096)
            except OSError:
                continue
            name = {P.T_M3: "M3", P.T_ERROR: "ERROR"}.get(data[1] if len(data) > 1 else -1,
                                                           "other")
            key = kinds[s]
            replies[key][name] = replies[key].get(name, 0) + 1


def main(argv):
    port = int(argv[1])
    ini, resp = P.load_keyfile(argv[2]), P.load_keyfile(argv[3])
    n_garbage, n_bad, rate, nsocks = (int(a) for a in argv[4:8])
    rng = random.Random()
    plan = ["garbage"] * n_garbage + ["bad_m2"] * n_bad
    rng.shuffle(plan)
    socks, kinds = [], {}
    for i in range(nsocks):
        for kind in ("garbage", "bad_m2"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            socks.append(s)
            kinds[s] = kind
    by_kind = {kind: [s for s in socks if kinds[s] == kind] for kind in ("garbage", "bad_m2")}
    sent = {"garbage": 0, "bad_m2": 0, "dropped_by_sender": 0}
    replies = {"garbage": {}, "bad_m2": {}}
    print("flooding", flush=True)
    start = time.monotonic()
    burst = max(1, rate // 100) if rate > 0 else 64
    for i in range(0, len(plan), burst):
        for j, kind in enumerate(plan[i:i + burst]):
            data = garbage(rng) if kind == "garbage" else P.bad_auth_m2(ini, resp, j % 2 == 0)
            try:
                by_kind[kind][(i + j) % nsocks].send(data)
                sent[kind] += 1
            except (BlockingIOError, ConnectionRefusedError):
                sent["dropped_by_sender"] += 1
        drain(socks, kinds, replies)
        # Pace: burst k leaves at start + k * 10 ms.
        wait = start + (i // burst + 1) * 0.01 - time.monotonic()
        if rate > 0 and wait > 0:
            time.sleep(wait)
    end = time.monotonic()
    # Replies still in flight.
    settle = time.monotonic() + 0.5
    while time.monotonic() < settle:
        drain(socks, kinds, replies)
        time.sleep(0.02)
    print(json.dumps({"sent": sent, "replies": replies, "seconds": round(end - start, 3)}),
          flush=True)


if __name__ == "__main__":
    main(sys.argv)
