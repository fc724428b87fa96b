"""Slow TCP clients: each connects, then sends the next byte of a real frame once a
second and never finishes it, and never closes on its own (it keeps sending after the
server's FIN, as an attacker would), until the server resets it or the run ends."""
import errno
import select
import socket
import time


class SlowClient:
    def __init__(self, sock, payload):
        self.sock, self.payload = sock, payload
        self.sent = 0
        self.received = b""
        self.t_connect = time.monotonic()
        self.t_eof = None     # the server's FIN (or reset) seen
        self.t_reset = None   # a send or receive failed: the server closed the socket
        self.refused = None   # an ERROR frame came back


class SlowLoris:
    def __init__(self, port, count, payload, connect_timeout=10.0):
        self.clients = []
        self.poll = select.poll()
        self.by_fd = {}
        self.connect_failures = 0
        self.t0 = time.monotonic()
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(connect_timeout)
            try:
                s.connect(("127.0.0.1", port))
            except OSError:
                s.close()
                self.connect_failures += 1
                continue
            s.setblocking(False)
            c = SlowClient(s, payload)
            self.clients.append(c)
            self.by_fd[s.fileno()] = c
            self.poll.register(s, select.POLLIN)
        self.connect_s = time.monotonic() - self.t0
        self.next_tick = time.monotonic()

    def _read(self, c, now):
        try:
            data = c.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = None
        if data:
            c.received += data
            return
        if c.t_eof is None:
            c.t_eof = now
        if data is None and c.t_reset is None:
            c.t_reset = now
        self.poll.unregister(c.sock)

    def _tick(self, now):
        """One byte from every client whose server has not reset it yet."""
        for c in self.clients:
            if c.t_reset is not None:
                continue
            try:
                c.sock.send(c.payload[c.sent % len(c.payload):][:1])
                c.sent += 1
            except BlockingIOError:
                pass
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.ECONNRESET):
                    c.t_reset = now
                    if c.t_eof is None:
                        c.t_eof = now
                else:
                    raise

    def run_for(self, seconds):
        """Serves the clients for seconds (reads, a byte each per second)."""
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if now >= self.next_tick:
                self._tick(now)
                self.next_tick += 1.0
            if now >= end:
                return
            for fd, _ in self.poll.poll(int(1000 * max(0.0, min(end, self.next_tick) - now))):
                self._read(self.by_fd[fd], time.monotonic())

    def run_until(self, cond, timeout):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() >= deadline:
                return False
            self.run_for(0.2)
        return True

    def open_count(self):
        """Clients whose server has not yet sent FIN or reset."""
        return sum(1 for c in self.clients if c.t_eof is None)

    def close(self):
        for c in self.clients:
            c.sock.close()
