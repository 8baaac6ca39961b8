"""Client side of ``bench/sse_load.py``: one process holding many raw SSE streams.

One thread, one ``epoll`` set, non-blocking sockets: a stream costs a socket and a small
object, and an event costs one ``recvmsg`` and a few byte operations, so a few processes
can read tens of thousands of streams on the same small machine as the server without
becoming the bottleneck themselves (a greenlet per stream cost about three times as much).

Latency is taken twice: at *arrival*, from the kernel's receive timestamp of the segment
(``SO_TIMESTAMPNS``: what the server achieved), and when this process *handled* it (which
adds this load generator's own lag). The server's body is chunked; chunk-size lines fall
between SSE messages and match no field, so they are skipped without de-chunking.

Commands, one JSON line each on stdin, each answered by one JSON line on stdout:

* ``{"cmd": "connect", "port", "n", "frozen", "concurrency"}``: open n streams (the first
  ``frozen`` of them stop reading on ``freeze``); replies with connect times and errors.
* ``{"cmd": "freeze"}`` / ``{"cmd": "kick", "trials", "over_s"}``: frozen streams stop
  reading / ``trials`` random streams are cut and resume with ``Last-Event-ID`` over ``over_s``.
* ``{"cmd": "report", "phase", "first", "last"}``: latency histograms and sequence check.
* ``{"cmd": "churn", "port", "rate", "duration"}``: open and close ``rate`` streams a second.
* ``{"cmd": "close"}``: close everything and exit.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import json
import os
import random
import resource
import select
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable

HOST = "127.0.0.1"  # loopback only, by design
SO_TIMESTAMPNS = 35  # Linux; the ancillary message has the same number
TIMESPEC = struct.Struct("qq")
CONNECT_TIMEOUT_S = 30.0
IN, OUT, ERR = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR | select.EPOLLHUP


class PhaseTally:
    """What one stream saw of one publish phase: O(1) memory however long the phase."""

    __slots__ = ("count", "dups", "first", "gaps", "last")

    def __init__(self) -> None:
        self.first = None
        self.last = None
        self.count = 0
        self.dups = 0
        self.gaps = 0


class Stream:
    """One SSE client: a small state machine driven by the worker's epoll loop."""

    __slots__ = (
        "buffer",
        "closing",
        "connect_s",
        "frozen",
        "kicked",
        "last_id",
        "on_open",
        "port",
        "sock",
        "started",
        "state",
        "tallies",
        "worker",
    )  # fmt: skip

    def __init__(self, worker: Worker, port: int, frozen: bool = False) -> None:
        self.worker = worker
        self.port = port
        self.frozen = frozen
        self.sock: socket.socket | None = None
        self.last_id: int | None = None
        self.started = 0.0
        self.connect_s: float | None = None
        self.buffer = b""
        self.state = "new"
        self.kicked = False
        self.closing = False
        self.tallies: dict[str, PhaseTally] = {}
        self.on_open: Callable[[Stream, str | None], None] | None = None

    def open(self, on_open: Callable[[Stream, str | None], None] | None = None) -> None:
        """Start connecting; ``on_open(stream, error)`` runs once ``connected`` arrived or not."""
        self.on_open = on_open
        self.started = time.perf_counter()
        self.connect_s = None
        self.buffer = b""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock = sock
        self.state = "connecting"
        code = sock.connect_ex((HOST, self.port))
        if code not in (0, errno.EINPROGRESS):
            self.fail(f"connect {errno.errorcode.get(code, code)}")
            return
        self.worker.watch(self, OUT)

    def on_ready(self, events: int) -> None:
        if self.state == "connecting":
            self._send_request()
        elif events & (IN | ERR):
            self._receive()

    def _send_request(self) -> None:
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.fail(f"connect {errno.errorcode.get(code, code)}")
            return
        resume = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id is not None else ""
        request = (
            f"GET /events HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Accept: text/event-stream\r\n{resume}\r\n"
        )
        self.sock.send(request.encode())  # tiny: always fits a fresh socket's buffer
        self.state = "head"
        self.worker.rewatch(self, IN)

    def _receive(self) -> None:
        try:
            data, ancillary, _flags, _address = self.sock.recvmsg(32768, 64)
        except BlockingIOError:
            return
        except OSError as exc:
            self.fail(type(exc).__name__)
            return
        if not data:
            self.fail("server closed the stream")
            return
        arrived = 0.0
        for level, kind, stamp in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = TIMESPEC.unpack_from(stamp)
                arrived = seconds + nanoseconds / 1e9
        self.buffer += data
        if self.state == "head" and not self._parse_head():
            return
        self._handle(arrived)

    def _parse_head(self) -> bool:
        if b"\r\n\r\n" not in self.buffer:
            return False
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            self.fail(f"HTTP status {head[:40]!r}")
            return False
        self.state = "opening"
        return True

    def _handle(self, arrived: float) -> None:
        *complete, self.buffer = self.buffer.split(b"\n\n")
        now = time.time()
        # The kernel stamps a read with the arrival of its last byte: that is the arrival of
        # the last message only, and only when the read ended on a message boundary.
        stamped = len(complete) - 1 if arrived and self.buffer in (b"", b"\r\n") else -1
        for index, block in enumerate(complete):
            event_type, event_id, data = None, None, None
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    data = line[6:]
                elif line.startswith(b"id: "):
                    event_id = int(line[4:])
                elif line.startswith(b"event: "):
                    event_type = line[7:]
            if event_type == b"bench":
                self.last_id = event_id
                self.worker.on_event(self, event_id, data, arrived if index == stamped else 0, now)
            elif event_type == b"connected" and self.state == "opening":
                self.state = "live"
                self.connect_s = time.perf_counter() - self.started
                self._opened(None)
            elif event_type == b"resync":
                self.worker.errors["resync"] += 1

    def _opened(self, error: str | None) -> None:
        callback, self.on_open = self.on_open, None
        if callback is not None:
            callback(self, error)

    def fail(self, why: str) -> None:
        """The connection ended without being asked to: an error, unless kicked or closing."""
        self._drop_socket()
        if self.closing:
            return
        if self.state in ("connecting", "head", "opening"):
            self.state = "failed"
            self._opened(why)
            return
        self.state = "failed"
        self.worker.errors[why] += 1

    def kick(self) -> None:
        """Cut the connection abruptly, as a network failure would, and resume at once."""
        self._drop_socket()
        self.worker.resume(self)

    def freeze(self) -> None:
        """Stop reading for good: the server must notice and cut this stream off."""
        if self.sock is not None:
            self.worker.unwatch(self)  # not even hang-ups: epoll reports those unasked

    def close(self) -> None:
        self.closing = True
        self._drop_socket()

    def _drop_socket(self) -> None:
        if self.sock is not None:
            self.worker.unwatch(self)
            self.sock.close()
            self.sock = None


class Worker:
    """All the streams of this process, the epoll loop, and what they measured."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.by_fd: dict[int, Stream] = {}
        self.timers: list = []
        self.timer_ids = itertools.count()
        self.streams: list[Stream] = []
        self.errors: Counter = Counter()
        self.histograms: dict[str, tuple[Counter, Counter]] = {}  # arrival, handled (ms)
        self.max_ms: dict[str, float] = {}
        self.resumes = 0
        self.running = True

    # -- the loop ---------------------------------------------------------------------------

    def watch(self, stream: Stream, mask: int) -> None:
        fd = stream.sock.fileno()
        self.by_fd[fd] = stream
        self.epoll.register(fd, mask)

    def rewatch(self, stream: Stream, mask: int) -> None:
        self.epoll.modify(stream.sock.fileno(), mask)

    def unwatch(self, stream: Stream) -> None:
        fd = stream.sock.fileno()
        if self.by_fd.pop(fd, None) is not None:
            self.epoll.unregister(fd)

    def later(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self.timer_ids), action))

    def run(self, on_command: Callable[[bytes], None]) -> None:
        stdin = sys.stdin.fileno()
        os.set_blocking(stdin, False)
        self.epoll.register(stdin, IN)
        pending = b""
        while self.running:
            timeout = -1.0
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            for fd, events in self.epoll.poll(timeout, 4096):
                if fd == stdin:
                    pending = self._read_commands(stdin, pending, on_command)
                    continue
                stream = self.by_fd.get(fd)
                if stream is not None:
                    stream.on_ready(events)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                heapq.heappop(self.timers)[2]()

    def _read_commands(self, stdin: int, pending: bytes, on_command) -> bytes:
        try:
            data = os.read(stdin, 65536)
        except BlockingIOError:
            return pending
        if not data:
            self.running = False
            return b""
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                on_command(line)
        return pending

    # -- measurements -----------------------------------------------------------------------

    def on_event(
        self, stream: Stream, event_id: int, data: bytes, arrived: float, now: float
    ) -> None:
        """Tally one event; its latency at arrival (when known) and when handled here."""
        phase, sent_at = parse_payload(data)
        tally = stream.tallies.get(phase)
        if tally is None:
            tally = stream.tallies[phase] = PhaseTally()
            tally.first = event_id
        elif event_id <= tally.last:
            tally.dups += 1
            return
        elif event_id != tally.last + 1:
            tally.gaps += event_id - tally.last - 1
        tally.last = event_id
        tally.count += 1
        histograms = self.histograms.get(phase)
        if histograms is None:
            histograms = self.histograms[phase] = (Counter(), Counter())
        histograms[1][int((now - sent_at) * 1000.0)] += 1
        if arrived:
            delay_ms = (arrived - sent_at) * 1000.0
            histograms[0][int(delay_ms)] += 1
            if delay_ms > self.max_ms.get(phase, 0.0):
                self.max_ms[phase] = delay_ms

    # -- commands ---------------------------------------------------------------------------

    def connect(self, port: int, n: int, frozen: int, concurrency: int, reply) -> None:
        """Open ``n`` streams, at most ``concurrency`` at a time; reply when all are settled."""
        fresh = [Stream(self, port, frozen=i < frozen) for i in range(n)]
        queue = iter(fresh)
        started = time.perf_counter()
        settled = []

        def opened(stream: Stream, error: str | None) -> None:
            settled.append(stream)
            if error is not None:
                self.errors["connect " + error] += 1
                stream.close()
            else:
                self.streams.append(stream)
            start_next()
            if len(settled) == n:
                times = sorted(round(s.connect_s * 1000, 2) for s in fresh if s.connect_s)
                reply(
                    {
                        "connected": len(times),
                        "connect_ms": times,
                        "wall_s": round(time.perf_counter() - started, 3),
                        "errors": dict(self.errors),
                    }
                )

        def start_next() -> None:
            stream = next(queue, None)
            if stream is not None:
                stream.open(opened)

        for _ in range(min(concurrency, n)):
            start_next()
        if n == 0:
            reply({"connected": 0, "connect_ms": [], "wall_s": 0.0, "errors": {}})

    def resume(self, stream: Stream) -> None:
        def reopened(again: Stream, error: str | None) -> None:
            if error is None:
                self.resumes += 1
            else:
                self.errors["resume " + error] += 1

        stream.open(reopened)

    def kick(self, trials: int, over_s: float, reply) -> None:
        """Cut ``trials`` random live streams at random moments spread over ``over_s``."""
        candidates = [s for s in self.streams if not s.frozen and not s.closing]
        moments = sorted(random.uniform(0, over_s) for _ in range(trials))
        kicked = []

        def kick_one() -> None:
            # Only streams that are up: a stream cut while it reconnects is a second trial.
            for _attempt in range(50):
                stream = random.choice(candidates) if candidates else None
                if stream is not None and stream.state == "live":
                    stream.kick()
                    kicked.append(stream)
                    break

        for moment in moments:
            self.later(moment, kick_one)
        self.later(over_s + 0.01, lambda: reply({"kicked": len(kicked)}))

    def report(self, phase: str, first: int, last: int) -> dict:
        expected = last - first + 1 if last >= first else 0
        lost = dups = bad = checked = 0
        for stream in self.streams:
            if stream.frozen or stream.closing:
                continue
            checked += 1
            tally = stream.tallies.get(phase)
            if tally is None:
                lost += expected
                bad += expected > 0
                continue
            missing = expected - tally.count
            lost += max(missing, 0)
            dups += tally.dups
            if missing or tally.dups or tally.first != first or tally.last != last:
                bad += 1
        return {
            "checked": checked,
            "lost": lost,
            "dups": dups,
            "bad_streams": bad,
            "histogram": _counts(self.histograms.get(phase, (None, None))[0]),
            "handled": _counts(self.histograms.get(phase, (None, None))[1]),
            "max_ms": round(self.max_ms.get(phase, 0.0), 2),
            "errors": dict(self.errors),
            "resumes": self.resumes,
            "live": sum(1 for s in self.streams if s.state == "live" and not s.closing),
        }

    def churn(self, port: int, rate: int, duration: float, reply) -> None:
        """Each second open ``rate`` streams and close the ``rate`` opened a second before."""
        tally = {"opened": 0, "closed": 0}
        previous: list[Stream] = []

        def opened(stream: Stream, error: str | None) -> None:
            if error is None:
                tally["opened"] += 1
            else:
                self.errors["churn " + error] += 1
                stream.close()

        def tick(second: int) -> None:
            nonlocal previous
            for stream in previous:
                if stream.state == "live":
                    tally["closed"] += 1
                stream.close()
            if second >= duration:
                reply({**tally, "errors": dict(self.errors)})
                return
            previous = [Stream(self, port) for _ in range(rate)]
            for stream in previous:
                stream.open(opened)
            self.later(1.0, lambda: tick(second + 1))

        tick(0)

    def close(self) -> None:
        for stream in self.streams:
            stream.close()
        self.running = False


def parse_payload(data: bytes) -> tuple[str, float]:
    """``phase`` and ``t`` of the bench server's payload, ``{"phase": P, "seq": N, "t": T,
    ...}`` (json.dumps keeps that order), without a JSON parser: this is the hot path."""
    phase = data.split(b'"', 4)[3].decode()
    start = data.index(b'"t": ') + 5
    return phase, float(data[start : data.index(b",", start)])


def _counts(histogram: Counter | None) -> dict[str, int]:
    return {str(k): v for k, v in (histogram or Counter()).items()}


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    worker = Worker()

    def reply(message: dict) -> None:
        print(json.dumps(message), flush=True)

    def on_command(line: bytes) -> None:
        order = json.loads(line)
        cmd = order["cmd"]
        if cmd == "connect":
            worker.connect(order["port"], order["n"], order["frozen"], order["concurrency"], reply)
        elif cmd == "freeze":
            frozen = [s for s in worker.streams if s.frozen]
            for stream in frozen:
                stream.freeze()
            reply({"frozen": len(frozen)})
        elif cmd == "kick":
            worker.kick(order["trials"], order["over_s"], reply)
        elif cmd == "report":
            reply(worker.report(order["phase"], order["first"], order["last"]))
        elif cmd == "churn":
            worker.churn(order["port"], order["rate"], order["duration"], reply)
        elif cmd == "close":
            worker.close()
            reply({"closed": True})
        else:
            reply({"error": f"unknown command {cmd!r}"})

    worker.run(on_command)


if __name__ == "__main__":
    main()
