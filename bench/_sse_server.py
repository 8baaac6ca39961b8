"""Server side of ``bench/sse_load.py``: one `EventServer` driven by commands on stdin.

Run by the benchmark as a subprocess; uses only the public `EventServer` API. It prints
``READY <port> <pid>`` once listening, then answers one JSON line per command line:

* ``publish PHASE COUNT RATE PAD``: emit COUNT ``bench`` events at RATE per second, each
  payload ``{"phase", "seq", "t": time.time() at emit, "pad"}``; replies when done.
* ``stats``: RSS, open file descriptors and live greenlets of this process.
* ``quit``: stop the server and exit.

Every loop is bounded: a publish takes at most COUNT / RATE + 5 s, and stdin EOF ends it.
"""

from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402
from greenlet import greenlet  # noqa: E402

from diveanalyzer.server import EventServer  # noqa: E402


def raise_fd_limit() -> int:
    """Lift the soft open-file limit to the hard one (each stream holds one socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def process_stats() -> dict:
    """RSS (KiB), open fds and greenlets of this process."""
    rss_kb = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    greenlets = sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet))
    return {"rss_kb": rss_kb, "fds": len(os.listdir("/proc/self/fd")), "greenlets": greenlets}


def publish(server: EventServer, phase: str, count: int, rate: float, pad: int) -> dict:
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
        if server.emit("bench", payload):
            sent += 1
    gevent.sleep(0)
    return {"phase": phase, "sent": sent, "elapsed_s": round(time.monotonic() - start, 3)}


def serve(port: int, max_connections: int, heartbeat: float, client_timeout: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="sse-bench-"))
    server = EventServer(
        folder / "review_gallery.html",
        host="127.0.0.1",
        port=port,
        log_level="ERROR",
        heartbeat_interval=heartbeat,
        client_timeout=client_timeout,
        max_connections=max_connections,
    )
    if not server.start():
        print(f"ERROR {server.start_error}", flush=True)
        sys.exit(2)
    port = int(server.get_url().rsplit(":", 1)[1])
    print(f"READY {port} {os.getpid()}", flush=True)
    commands = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    try:
        for _ in range(100_000):  # bounded; the benchmark sends a few dozen commands
            line = commands.readline()
            if not line:
                break
            words = line.decode().split()
            if not words:
                continue
            if words[0] == "quit":
                break
            if words[0] == "publish":
                phase, count, rate, pad = words[1], int(words[2]), float(words[3]), int(words[4])
                reply = publish(server, phase, count, rate, pad)
            elif words[0] == "stats":
                reply = process_stats()
            else:
                reply = {"error": f"unknown command {words[0]!r}"}
            print(json.dumps(reply), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    limit = raise_fd_limit()
    port_arg, max_conn, heartbeat_s, timeout_s = sys.argv[1:5]
    serve(int(port_arg), min(int(max_conn), limit - 100), float(heartbeat_s), float(timeout_s))
