"""Frozen clients dropped for a full queue must not crash the server (libev fd assertion).

Regression: dropping a subscriber while its hang-up watcher still waited on the socket let
the handler close the fd under a live libev watcher: SIGABRT ("invalid fd found in
epoll_ctl"). Here a few clients stop reading while a fast publisher overflows their tiny
queues; the server must stay up and the reading clients must get every event, in order.
The last test checks that a frozen client is cut off at a low event rate too (issue 2).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import sseclient

PROGRAM = Path(__file__).with_name("drop_program.py")
EVENTS = 600
PAD = 8000
FROZEN = 8
READERS = 3


def frozen_client(port: int) -> socket.socket:
    """Opens ``/events`` and never reads: its buffers fill and its queue overflows."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock


def reader(port: int, seen: list[int], ready: threading.Event) -> None:
    response = requests.get(f"http://127.0.0.1:{port}/events", stream=True, timeout=60)
    try:
        for event in sseclient.SSEClient(response).events():
            if event.event == "connected":
                ready.set()
            elif event.event == "tick":
                seen.append(int(event.id))
                if len(seen) >= EVENTS:
                    return
    except (requests.RequestException, OSError):
        return
    finally:
        response.close()


def dropped(port: int) -> int:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=15).text
    for line in text.splitlines():
        if line.startswith("diveanalyzer_sse_clients_dropped_total"):
            return int(float(line.split()[-1]))
    raise AssertionError("no clients_dropped metric")


@pytest.mark.parametrize(
    ("queue_size", "client_timeout"),
    [("4", "30"), ("100000", "1")],
    ids=["queue-full", "write-deadline"],
)
def test_dropping_frozen_clients_keeps_server_alive(tmp_path, queue_size, client_timeout):
    process = subprocess.Popen(
        [sys.executable, str(PROGRAM), str(tmp_path / "gallery.html"), queue_size, client_timeout],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    frozen: list[socket.socket] = []
    try:
        line = process.stdout.readline()
        assert line.startswith("READY"), line + process.stderr.read()
        port = int(line.split()[1])
        seen = [[] for _ in range(READERS)]
        ready = [threading.Event() for _ in range(READERS)]
        threads = [
            threading.Thread(target=reader, args=(port, seen[n], ready[n]), daemon=True)
            for n in range(READERS)
        ]
        for thread in threads:
            thread.start()
        for event in ready:
            assert event.wait(15), "a reading client did not connect"
        frozen = [frozen_client(port) for _ in range(FROZEN)]
        # Let the server reach every frozen stream's live loop before publishing.
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=15).json()
        for _ in range(100):
            if health["subscribers"] >= READERS + FROZEN:
                break
            threading.Event().wait(0.05)
            health = requests.get(f"http://127.0.0.1:{port}/health", timeout=15).json()
        assert health["subscribers"] == READERS + FROZEN

        process.stdin.write(f"publish {EVENTS} {PAD}\n")
        process.stdin.flush()
        reply = process.stdout.readline()
        assert reply.startswith("DONE"), f"server died: {reply!r} {process.stderr.read()}"
        for thread in threads:
            thread.join(30)
        assert process.poll() is None, process.stderr.read()
        deadline = time.monotonic() + 30
        while dropped(port) < FROZEN and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dropped(port) >= FROZEN  # every frozen client was cut off
        time.sleep(0.5)  # the crash, when it came, came while the dropped streams closed
        assert process.poll() is None, process.stderr.read()
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=15).json()
        assert health["status"] == "ok"
        for ids in seen:
            assert ids == list(range(1, EVENTS + 1))
    finally:
        for sock in frozen:
            sock.close()
        if process.poll() is None:
            process.stdin.write("quit\n")
            process.stdin.flush()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_client_that_stops_reading_is_dropped_at_low_rate(make_server, open_stream):
    """A few hundred KiB to a frozen client must not vanish into a multi-MiB send buffer."""
    server = make_server(client_timeout=2.0)
    port = int(server.get_url().rsplit(":", 1)[1])
    reading = open_stream(server.get_events_url())
    assert reading.next().event == "connected"
    frozen = frozen_client(port)
    try:
        deadline = time.monotonic() + 15
        while dropped(port) == 0 and time.monotonic() < deadline:
            # About 100 KB/s: a default (autotuned, several MiB) send buffer would absorb
            # this for far longer than the test waits; a capped one fills in about a second.
            server.emit("tick", {"pad": "x" * 8000})
            time.sleep(0.08)
        assert dropped(port) == 1
        received = 0
        while received < 5:
            if reading.next().event == "tick":
                received += 1
    finally:
        frozen.close()
