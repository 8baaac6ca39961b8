"""Helpers for the server tests: free ports, polling, SSE clients, endpoint readers."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests
import sseclient

from diveanalyzer.errors import PortInUseError
from diveanalyzer.server import EventServer

#: Generous bound for anything that should happen "soon" on a loaded 2-core machine.
SOON_S = 15.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float = SOON_S, what: str = "") -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


class Stream:
    """One SSE client the way users write it: ``SSEClient(requests.get(url, stream=True))``."""

    def __init__(self, url: str, headers: dict | None = None, timeout: float = SOON_S) -> None:
        self.response = requests.get(url, stream=True, headers=headers, timeout=timeout)
        self.response.raise_for_status()
        self._events = sseclient.SSEClient(self.response).events()

    def next(self):
        return next(self._events)

    def take(self, count: int) -> list:
        return [next(self._events) for _ in range(count)]

    def rest(self) -> list:
        """Every remaining event until the server ends the stream."""
        return list(self._events)

    def close(self) -> None:
        self.response.close()


def payload(event) -> dict:
    return json.loads(event.data)


def get_json(server: EventServer, path: str) -> dict | list:
    response = requests.get(server.get_url() + path, timeout=SOON_S)
    response.raise_for_status()
    return response.json()


def subscribers(server: EventServer) -> int:
    return get_json(server, "/health")["subscribers"]


def metric(server: EventServer, name: str) -> float:
    text = requests.get(server.get_url() + "/metrics", timeout=SOON_S).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} missing from:\n{text}")


@contextmanager
def closed_afterwards(make: Callable, close: Callable) -> Iterator[Callable]:
    """Wrap the factory `make`; whatever it made is closed with `close` when the block ends."""
    made: list = []

    def tracked(*args, **kwargs):
        thing = make(*args, **kwargs)
        made.append(thing)
        return thing

    try:
        yield tracked
    finally:
        for thing in made:
            close(thing)


def start_on_free_port(gallery_path, **settings) -> EventServer:
    """Start a server on a free port, retrying if another process grabs the port first."""
    for _ in range(5):
        server = EventServer(gallery_path, host="127.0.0.1", port=free_port(), **settings)
        if server.start():
            return server
        if not isinstance(server.start_error, PortInUseError):
            raise AssertionError(f"server did not start: {server.start_error}")
    raise AssertionError("no free port found in 5 tries")
