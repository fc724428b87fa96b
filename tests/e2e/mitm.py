"""A man in the middle for end-to-end attack tests, on loopback only.

TcpMitm sits between initiator and responder, UdpMitm between responder and KDC. Both
cut the byte streams into kd3 frames (4-byte header: version, type, u16 length) and pass
each frame to a hook, which decides what goes on: the hook returns a list of frames to
forward (empty: drop), or None to cut the connection. conn.back(frame) sends a frame back
to where the current one came from (reflection). Every frame seen is logged with its
direction, so a later run can replay frames of an earlier one.
"""
import socket
import struct
import threading

T_M1, T_M2, T_M3, T_M4, T_RECORD, T_ERROR = 0x01, 0x02, 0x03, 0x04, 0x10, 0x7F
HDR = 4


def frame_type(frame):
    return frame[1]


def flip(frame, at, mask=0x01):
    """frame with one bit changed at offset at (negative: from the end)."""
    b = bytearray(frame)
    b[at] ^= mask
    return bytes(b)


def record_seq(frame):
    return struct.unpack(">Q", frame[HDR:HDR + 8])[0]


def honest(conn, direction, n, frame):
    return [frame]


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(sock):
    hdr = _recv_exact(sock, HDR)
    if hdr is None:
        return None
    (length,) = struct.unpack(">H", hdr[2:4])
    body = _recv_exact(sock, length)
    return None if body is None else hdr + body


class _TcpConn:
    def __init__(self, mitm, client, server):
        self.mitm, self.client, self.server = mitm, client, server
        self.counts = {"I->R": 0, "R->I": 0}
        self.lock = threading.Lock()
        self.closed = False
        self.ended = 0  # directions whose sender ended its stream (half_close)
        self._current_src = None

    def back(self, frame):
        """Send frame back to the sender of the frame being handled."""
        self._current_src.sendall(frame)

    def cut(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _pass_eof(self, dst):
        """half_close: passes an end of stream on as one (shutdown SHUT_WR), as a real
        peer sees it. True while the other direction still runs."""
        with self.lock:
            if self.closed:
                return False
            self.ended += 1
            if self.ended == 2:
                return False
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        return True

    def pump(self, src, dst, direction):
        eof = False
        try:
            while True:
                frame = read_frame(src)
                if frame is None:
                    eof = True
                    break
                with self.lock:
                    n = self.counts[direction]
                    self.counts[direction] += 1
                    self.mitm.log.append((direction, frame))
                self._current_src = src
                out = self.mitm.hook(self, direction, n, frame)
                if out is None:
                    break
                for f in out:
                    dst.sendall(f)
        except OSError:
            pass
        if eof and self.mitm.half_close and self._pass_eof(dst):
            return
        self.cut()


class TcpMitm:
    """Listens on 127.0.0.1:port and relays to 127.0.0.1:upstream_port.

    By default the end of either stream cuts both. half_close=True passes an end of
    stream on as a half-close instead (the other direction goes on until it ends too),
    so that a peer which shuts down its writing side and lingers (the responder after
    its CLOSE) is seen as such, not as a reset connection."""

    def __init__(self, upstream_port, hook=honest, half_close=False):
        self.upstream_port = upstream_port
        self.hook = hook
        self.half_close = half_close
        self.log = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def frames(self, direction):
        return [f for d, f in self.log if d == direction]

    def _accept(self):
        while self.running:
            try:
                client, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            server.settimeout(None)
            conn = _TcpConn(self, client, server)
            threading.Thread(target=conn.pump, args=(client, server, "I->R"), daemon=True).start()
            threading.Thread(target=conn.pump, args=(server, client, "R->I"), daemon=True).start()

    def close(self):
        self.running = False
        self.sock.close()


class _UdpConn:
    def __init__(self, mitm, peer):
        self.mitm, self.peer = mitm, peer
        self.counts = {"R->KDC": 0, "KDC->R": 0}
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.connect(("127.0.0.1", mitm.upstream_port))
        self.up.settimeout(0.5)
        threading.Thread(target=self._replies, daemon=True).start()

    def back(self, frame):
        self.mitm.sock.sendto(frame, self.peer)

    def handle(self, direction, frame, send):
        n = self.counts[direction]
        self.counts[direction] += 1
        self.mitm.log.append((direction, frame))
        out = self.mitm.hook(self, direction, n, frame)
        for f in out or []:
            send(f)

    def _replies(self):
        while self.mitm.running:
            try:
                data = self.up.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.handle("KDC->R", data, lambda f: self.mitm.sock.sendto(f, self.peer))


class UdpMitm:
    """Receives datagrams on 127.0.0.1:port and relays them to the KDC's UDP port."""

    def __init__(self, upstream_port, hook=honest):
        self.upstream_port = upstream_port
        self.hook = hook
        self.log = []
        self.conns = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    def frames(self, direction):
        return [f for d, f in self.log if d == direction]

    def _serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            conn = self.conns.get(peer)
            if conn is None:
                conn = self.conns[peer] = _UdpConn(self, peer)
            conn.handle("R->KDC", data, conn.up.send)

    def close(self):
        self.running = False
        self.sock.close()


class TcpRelay:
    """Listens for TCP on 127.0.0.1:port (the same number as a UDP man in the middle)
    and relays each connection to upstream_port."""

    def __init__(self, port, upstream_port):
        self.upstream_port = upstream_port
        self.accepted = 0
        self.conns = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError:
            self.sock.close()  # the caller tries another port
            raise
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _serve(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            u = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()
        for s in self.conns:
            s.close()
