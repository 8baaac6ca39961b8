"""Client side of ``bench/sse_load.py``: one process holding many raw SSE streams.

Each stream is a greenlet on a gevent socket speaking HTTP/1.1 to ``127.0.0.1`` and parsing
``id:``/``event:``/``data:`` lines itself (cheaper than any client library). The server's
body is chunked with whole SSE messages per chunk, so the chunk-size lines fall between
messages and match no field: they are skipped without de-chunking. The process
takes one JSON command per stdin line and answers one JSON line on stdout:

* ``{"cmd": "connect", "port", "n", "frozen", "concurrency"}``: open n streams (the first
  ``frozen`` of them stop reading on ``freeze``); replies with connect times and errors.
* ``{"cmd": "freeze"}`` / ``{"cmd": "kick", "trials", "over_s"}``: frozen streams stop
  reading / ``trials`` random streams are cut and resume with ``Last-Event-ID`` over ``over_s``.
* ``{"cmd": "report", "phase", "first", "last"}``: latency histogram and sequence check.
* ``{"cmd": "churn", "port", "rate", "duration"}``: open and close ``rate`` streams a second.
* ``{"cmd": "close"}``: close everything and exit.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402

HOST = "127.0.0.1"  # loopback only, by design
CONNECT_TIMEOUT_S = 30.0


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
    """One SSE client; `run` keeps it connected (resuming) until `closing`."""

    def __init__(self, worker: "Worker", port: int, frozen: bool) -> None:
        self.worker = worker
        self.port = port
        self.frozen = frozen
        self.sock: socket.socket | None = None
        self.last_id: int | None = None
        self.connect_s: float | None = None
        self.buffer = b""
        self.closing = False
        self.kicked = False
        self.tallies: dict[str, PhaseTally] = {}

    def open(self) -> None:
        """Connect and read up to the ``connected`` event (so the server has subscribed us)."""
        started = time.perf_counter()
        sock = socket.create_connection((HOST, self.port), timeout=CONNECT_TIMEOUT_S)
        self.sock = sock
        self.connect_s = None
        resume = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id is not None else ""
        request = (
            f"GET /events HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Accept: text/event-stream\r\n{resume}\r\n"
        )
        sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status:
            raise ConnectionError(f"HTTP status {status[:40]!r}")
        while self.connect_s is None:
            # A resume's replay often arrives in the same read as ``connected``: keep it.
            self._handle(self._messages(), started)
            if self.connect_s is None:
                self._fill()
        sock.settimeout(None)

    def _handle(self, messages, started: float | None = None) -> None:
        now = time.time()
        for event_type, event_id, data in messages:
            if event_type == "bench":
                self.last_id = event_id
                self.worker.on_event(self, event_id, data, now)
            elif event_type == "connected" and started is not None:
                self.connect_s = time.perf_counter() - started
            elif event_type == "resync":
                self.worker.errors["resync"] += 1

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the stream")
        self.buffer += chunk

    def _messages(self):
        """Complete messages in the buffer as (event, id, data); keeps the partial tail."""
        *complete, self.buffer = self.buffer.split(b"\n\n")
        for block in complete:
            event_type, event_id, data = "message", None, None
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    data = line[6:]
                elif line.startswith(b"id: "):
                    event_id = int(line[4:])
                elif line.startswith(b"event: "):
                    event_type = line[7:].decode()
            if event_type == "message" and data is None:
                continue  # a comment (keepalive) or a bare retry: line
            yield event_type, event_id, data

    def read_forever(self) -> None:
        """Receive until closed; on a kick, reconnect with Last-Event-ID and carry on."""
        while not self.closing:
            try:
                self._read_until_kicked()
            except (OSError, ConnectionError, ValueError) as exc:
                if self.closing:
                    return
                if not self.kicked:
                    self.worker.errors[type(exc).__name__] += 1
                    return
            if self.closing or not self.kicked:
                return
            self.kicked = False
            try:
                self.open()
                self.worker.resumes += 1
            except (OSError, ConnectionError, ValueError) as exc:
                self.worker.errors["resume " + type(exc).__name__] += 1
                return

    def _read_until_kicked(self) -> None:
        while not self.kicked and not self.closing:
            if self.frozen and self.worker.frozen_now:
                gevent.sleep(3600)  # stops reading; the server must cut it off
                return
            self._fill()
            self._handle(self._messages())

    def kick(self) -> None:
        """Cut the connection abruptly, as a network failure would."""
        self.kicked = True
        if self.sock is not None:
            self.sock.close()

    def close(self) -> None:
        self.closing = True
        if self.sock is not None:
            self.sock.close()


class Worker:
    """All the streams of this process, and what they measured."""

    def __init__(self) -> None:
        self.streams: list[Stream] = []
        self.readers = gevent.pool.Group()
        self.errors: Counter = Counter()
        self.latency_ms: dict[str, Counter] = {}
        self.max_ms: dict[str, float] = {}
        self.frozen_now = False
        self.resumes = 0

    def on_event(self, stream: Stream, event_id: int, data: bytes, now: float) -> None:
        payload = json.loads(data)
        phase = payload["phase"]
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
        delay_ms = (now - payload["t"]) * 1000.0
        histogram = self.latency_ms.setdefault(phase, Counter())
        histogram[int(delay_ms)] += 1
        if delay_ms > self.max_ms.get(phase, 0.0):
            self.max_ms[phase] = delay_ms

    def connect(self, port: int, n: int, frozen: int, concurrency: int) -> dict:
        pool = gevent.pool.Pool(concurrency)
        fresh = [Stream(self, port, frozen=i < frozen) for i in range(n)]
        started = time.perf_counter()
        ok = []

        def open_one(stream: Stream) -> None:
            try:
                stream.open()
            except (OSError, ConnectionError, ValueError) as exc:
                self.errors["connect " + type(exc).__name__] += 1
                stream.close()
                return
            ok.append(stream)
            self.readers.spawn(stream.read_forever)

        for stream in fresh:
            pool.spawn(open_one, stream)
        pool.join(timeout=n / 10 + 60)
        self.streams += ok
        times = sorted(round(s.connect_s * 1000, 2) for s in ok)
        wall = time.perf_counter() - started
        return {
            "connected": len(ok),
            "connect_ms": times,
            "wall_s": round(wall, 3),
            "errors": dict(self.errors),
        }

    def kick(self, trials: int, over_s: float) -> dict:
        candidates = [s for s in self.streams if not s.frozen and not s.closing]
        kicked = 0
        for _ in range(trials):
            gevent.sleep(random.uniform(0, 2 * over_s / max(trials, 1)))
            # Only streams that are up: a stream cut while it reconnects is a second trial.
            for _attempt in range(50):
                stream = random.choice(candidates) if candidates else None
                if stream is not None and not stream.kicked and stream.connect_s is not None:
                    stream.kick()
                    kicked += 1
                    break
        return {"kicked": kicked}

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
        histogram = self.latency_ms.get(phase, Counter())
        return {
            "checked": checked,
            "lost": lost,
            "dups": dups,
            "bad_streams": bad,
            "histogram": {str(k): v for k, v in histogram.items()},
            "max_ms": round(self.max_ms.get(phase, 0.0), 2),
            "errors": dict(self.errors),
            "resumes": self.resumes,
        }

    def churn(self, port: int, rate: int, duration: float) -> dict:
        """Each second open ``rate`` streams and close the ``rate`` opened a second before."""
        opened = closed = 0
        previous: list[Stream] = []
        start = time.monotonic()
        for tick in range(int(duration)):
            batch = [Stream(self, port, frozen=False) for _ in range(rate)]
            jobs = [gevent.spawn(self._open_churn, s) for s in batch]
            gevent.joinall(jobs, timeout=5)
            opened += sum(1 for s in batch if s.connect_s is not None)
            for stream in previous:
                stream.close()
                closed += 1
            previous = [s for s in batch if s.connect_s is not None]
            delay = start + tick + 1 - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
        for stream in previous:
            stream.close()
            closed += 1
        return {"opened": opened, "closed": closed, "errors": dict(self.errors)}

    def _open_churn(self, stream: Stream) -> None:
        try:
            stream.open()
        except (OSError, ConnectionError, ValueError) as exc:
            self.errors["churn " + type(exc).__name__] += 1
            stream.close()
            return
        self.readers.spawn(stream.read_forever)

    def close(self) -> None:
        for stream in self.streams:
            stream.close()
        self.readers.join(timeout=5)
        self.readers.kill(block=False)


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    worker = Worker()
    commands = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    for _ in range(10_000):  # bounded; the benchmark sends a handful of commands
        line = commands.readline()
        if not line:
            break
        order = json.loads(line)
        cmd = order["cmd"]
        if cmd == "connect":
            reply = worker.connect(order["port"], order["n"], order["frozen"], order["concurrency"])
        elif cmd == "freeze":
            worker.frozen_now = True
            reply = {"frozen": sum(s.frozen for s in worker.streams)}
        elif cmd == "kick":
            reply = worker.kick(order["trials"], order["over_s"])
        elif cmd == "report":
            reply = worker.report(order["phase"], order["first"], order["last"])
        elif cmd == "churn":
            reply = worker.churn(order["port"], order["rate"], order["duration"])
        elif cmd == "close":
            worker.close()
            print(json.dumps({"closed": True}), flush=True)
            break
        else:
            reply = {"error": f"unknown command {cmd!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
