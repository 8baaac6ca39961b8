"""Fixtures for the live event server tests: real servers on free ports, real clients."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest

from diveanalyzer.server import EventServer
from tests.server.helpers import (
    SOON_S,
    Stream,
    closed_afterwards,
    free_port,
    start_on_free_port,
    wait_until,
)


@pytest.fixture
def gallery_path(tmp_path):
    """Where the gallery will be written (absent at first, as while processing runs)."""
    return tmp_path / "out" / "review_gallery.html"


@pytest.fixture
def make_server(gallery_path) -> Iterator[Callable[..., EventServer]]:
    """Factory for started servers (stopped again after the test)."""
    gallery_path.parent.mkdir(parents=True, exist_ok=True)

    def make(**settings) -> EventServer:
        settings.setdefault("heartbeat_interval", 30.0)
        return start_on_free_port(settings.pop("gallery_path", gallery_path), **settings)

    with closed_afterwards(make, EventServer.stop) as tracked:
        yield tracked


@pytest.fixture
def server(make_server) -> EventServer:
    return make_server()


@pytest.fixture
def open_stream() -> Iterator[Callable[..., Stream]]:
    """Factory for SSE clients, all closed after the test."""
    with closed_afterwards(Stream, Stream.close) as open_:
        yield open_


class RedisServer:
    """A ``redis-server`` subprocess on ``port`` that a test may stop and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start (empty: no persistence) and wait until it answers PING."""
        import redis

        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)

        def answers() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited with code {self.process.returncode}")
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        wait_until(answers, what="redis-server to answer PING")
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=SOON_S)
        self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free port, without persistence; killed afterwards."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (.ci/run installs it)")
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
