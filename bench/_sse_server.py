"""Server side of ``bench/sse_load.py``: the server under test, driven by commands on stdin.

Run by the benchmark as a subprocess. Two shapes:

* ``_sse_server.py PORT MAX_CONN HEARTBEAT TIMEOUT``: one `EventServer` in this process
  (the public API only); events are published with `EventServer.emit`.
* ``... --broker URL --workers N``: ``python -m diveanalyzer.serve --broker URL --workers N``
  as a child process (N worker processes on one port), events published to Redis from this
  process with `BrokerPublisher`, as a pipeline on another machine would.

It prints ``READY <port> <pid>[,<pid>...]`` (the processes that serve) once listening, then
answers one JSON line per command line:

* ``publish PHASE COUNT RATE PAD``: emit COUNT ``bench`` events at RATE per second, each
  payload ``{"phase", "seq", "t": time.time() at emit, "pad"}``; replies when done.
* ``stats``: RSS, open file descriptors (and greenlets, in-process only) of the server.
* ``process VIDEO OUT`` (in-process only): start `diveanalyzer.pipeline.process_videos` on
  VIDEO in this very process (its events go to the viewers; CPU work in gevent's threadpool,
  as in ``diveanalyzer process``); replies at once. ``wait`` replies when it has finished.
* ``quit``: stop the server and exit.

Every loop is bounded: a publish takes at most COUNT / RATE + 5 s, and stdin EOF ends it.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402
from greenlet import greenlet  # noqa: E402

from diveanalyzer.pipeline import ProcessOptions, process_videos  # noqa: E402
from diveanalyzer.server import EventServer  # noqa: E402
from diveanalyzer.server.broker import BrokerPublisher  # noqa: E402


def raise_fd_limit() -> int:
    """Lift the soft open-file limit to the hard one (each stream holds one socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_stats(pid: int | str = "self") -> dict:
    """RSS (KiB) and open fds of a process."""
    rss_kb = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return {"rss_kb": rss_kb, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


class InProcess:
    """One `EventServer` in this process."""

    def __init__(self, args: argparse.Namespace) -> None:
        folder = Path(tempfile.mkdtemp(prefix="sse-bench-"))
        self.server = EventServer(
            folder / "review_gallery.html",
            host="127.0.0.1",
            port=args.port,
            log_level="ERROR",
            heartbeat_interval=args.heartbeat,
            client_timeout=args.client_timeout,
            max_connections=args.max_connections,
        )
        if not self.server.start():
            raise SystemExit(f"ERROR {self.server.start_error}")
        self.port = int(self.server.get_url().rsplit(":", 1)[1])
        self.pids = [os.getpid()]
        self.emit = self.server.emit
        self.job: gevent.Greenlet | None = None

    def stats(self) -> dict:
        greenlets = sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet))
        return {**proc_stats(), "greenlets": greenlets}

    def start_processing(self, video: str, out: str) -> dict:
        """Run the real pipeline beside the streams, as `diveanalyzer process` does."""
        options = ProcessOptions(out_dir=Path(out))
        self.job = gevent.spawn(process_videos, [Path(video)], options, self.emit)
        return {"started": True}

    def processing_result(self) -> dict:
        if self.job is None:
            return {"error": "nothing is being processed"}
        outcomes = self.job.get(timeout=3600)
        return {"ok": all(o.ok for o in outcomes), "dives": sum(o.dives for o in outcomes)}

    def stop(self) -> None:
        self.server.stop()


class Brokered:
    """``python -m diveanalyzer.serve --broker --workers N`` fed through Redis from here."""

    def __init__(self, args: argparse.Namespace) -> None:
        folder = tempfile.mkdtemp(prefix="sse-bench-")
        key = f"sse-bench:{os.getpid()}"
        argv = [sys.executable, "-m", "diveanalyzer.serve", folder, "--host", "127.0.0.1"]
        argv += ["--port", str(args.port), "--broker", args.broker, "--broker-key", key]
        argv += ["--workers", str(args.workers), "--max-connections", str(args.max_connections)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        announced = self.proc.stdout.readline()
        found = re.search(r"http://[^:/]+:(\d+)/", announced)
        if found is None:
            raise SystemExit(f"ERROR serve said {announced.strip()!r}")
        self.port = int(found.group(1))
        self.pids = self._workers()
        self.publisher = BrokerPublisher(args.broker, key=key)
        self.emit = self.publisher.emit

    def _workers(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in children.split()] or [self.proc.pid]

    def stats(self) -> dict:
        every = [proc_stats(pid) for pid in self.pids]
        # Greenlets live in the workers' own heaps: this process cannot count them.
        return {key: sum(s[key] for s in every) for key in ("rss_kb", "fds")} | {"greenlets": None}

    def start_processing(self, video: str, out: str) -> dict:
        return {"error": "--health runs in-process only"}

    def processing_result(self) -> dict:
        return {"error": "--health runs in-process only"}

    def stop(self) -> None:
        self.publisher.close(timeout=2.0)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def publish(emit, phase: str, count: int, rate: float, pad: int) -> dict:
    """Emit ``count`` events paced at ``rate``/s; stays on time by sleeping to each slot."""
    padding = "x" * pad
    start = time.monotonic()
    deadline = start + count / rate + 5.0
    sent = 0
    for seq in range(count):
        delay = start + seq / rate - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        if time.monotonic() > deadline:
            break
        payload = {"phase": phase, "seq": seq, "t": time.time(), "pad": padding}
        if emit("bench", payload):
            sent += 1
    gevent.sleep(0)
    return {"phase": phase, "sent": sent, "elapsed_s": round(time.monotonic() - start, 3)}


def answer(target, words: list[str]) -> dict:
    if words[0] == "publish":
        phase, count, rate, pad = words[1], int(words[2]), float(words[3]), int(words[4])
        return publish(target.emit, phase, count, rate, pad)
    if words[0] == "stats":
        return target.stats()
    if words[0] == "process":
        return target.start_processing(words[1], words[2])
    if words[0] == "wait":
        return target.processing_result()
    return {"error": f"unknown command {words[0]!r}"}


def serve(target) -> None:
    print(f"READY {target.port} {','.join(map(str, target.pids))}", flush=True)
    commands = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    try:
        for _ in range(100_000):  # bounded; the benchmark sends a few dozen commands
            line = commands.readline()
            words = line.decode().split()
            if not line or words[:1] == ["quit"]:
                break
            if words:
                print(json.dumps(answer(target, words)), flush=True)
    finally:
        target.stop()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("max_connections", type=int)
    parser.add_argument("heartbeat", type=float)
    parser.add_argument("client_timeout", type=float)
    parser.add_argument("--broker")
    parser.add_argument("--workers", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    arguments.max_connections = min(arguments.max_connections, raise_fd_limit() - 100)
    serve(Brokered(arguments) if arguments.broker else InProcess(arguments))
