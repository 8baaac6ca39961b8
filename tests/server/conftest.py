"""Fixtures for the live event server tests: real servers on free ports, real clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from diveanalyzer.server import EventServer
from tests.server.helpers import Stream, closed_afterwards, start_on_free_port


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
