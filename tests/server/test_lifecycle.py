"""EventServer lifecycle in a plain (not monkey-patched) process: own server thread."""

from __future__ import annotations

import logging
import math
import socket
import threading

import pytest
import requests

from diveanalyzer.errors import PortInUseError
from diveanalyzer.server import EventServer
from tests.server.helpers import SOON_S, free_port, get_json, start_on_free_port, wait_until


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("EventServer-")]


def test_start_reports_urls_and_serves(server):
    assert server.is_running()
    port = server.get_url().rsplit(":", 1)[1]
    assert server.get_url() == f"http://127.0.0.1:{port}"
    assert server.get_events_url() == f"http://127.0.0.1:{port}/events"
    assert get_json(server, "/health")["status"] == "ok"


def test_default_urls_use_localhost(gallery_path):
    server = EventServer(gallery_path)
    assert server.get_url() == "http://localhost:8765"
    assert server.get_events_url() == "http://localhost:8765/events"
    assert not server.is_running()


def test_unpatched_process_gets_its_own_server_thread_and_stop_ends_it(gallery_path):
    before = len(_server_threads())
    server = start_on_free_port(gallery_path)
    assert len(_server_threads()) == before + 1
    assert server.stop() is True
    assert len(_server_threads()) == before


def test_stop_frees_the_port_at_once_and_restart_works(server, open_stream):
    port = int(server.get_url().rsplit(":", 1)[1])
    stream = open_stream(server.get_events_url())
    stream.next()  # connected
    requests.get(server.get_url() + "/health", timeout=SOON_S)

    assert server.stop() is True
    assert not server.is_running()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.get_url() + "/health", timeout=SOON_S)

    assert server.start() is True  # same object, same port
    assert server.get_url().endswith(f":{port}")
    assert get_json(server, "/health")["status"] == "ok"
    assert server.stop() is True

    other = EventServer(server.gallery_path, host="127.0.0.1", port=port)
    assert other.start() is True  # a different server can take the port too
    assert other.stop() is True


def test_ids_keep_growing_across_a_restart(server):
    server.emit("first", {})
    server.stop()
    server.start()
    server.emit("second", {})
    history = _wait_for_history(server, 2)
    assert [(e["id"], e["event_type"]) for e in history] == [(1, "first"), (2, "second")]


def test_port_busy_returns_false_with_a_one_line_reason(gallery_path, caplog):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = EventServer(gallery_path, host="127.0.0.1", port=port)
        with caplog.at_level(logging.ERROR, logger="diveanalyzer.server"):
            assert server.start() is False
    assert not server.is_running()
    assert isinstance(server.start_error, PortInUseError)
    assert str(port) in str(server.start_error) and "in use" in str(server.start_error)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0].getMessage()
    assert "in use" in errors[0].getMessage()
    assert server.stop() is True  # stopping a server that never started is fine


def test_second_server_on_a_taken_port_fails_and_first_keeps_serving(server):
    port = int(server.get_url().rsplit(":", 1)[1])
    rival = EventServer(server.gallery_path, host="127.0.0.1", port=port)
    assert rival.start() is False
    assert isinstance(rival.start_error, PortInUseError)
    assert get_json(server, "/health")["status"] == "ok"


def test_start_and_stop_are_idempotent(server):
    assert server.start() is True
    assert server.stop() is True
    assert server.stop() is True
    assert not server.is_running()


def test_context_manager_starts_and_stops(gallery_path):
    port = free_port()
    with EventServer(gallery_path, host="127.0.0.1", port=port) as server:
        assert server.is_running()
        assert get_json(server, "/health")["status"] == "ok"
    assert not server.is_running()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=SOON_S)


def test_context_manager_raises_when_the_port_is_busy(server):
    port = int(server.get_url().rsplit(":", 1)[1])
    with (
        pytest.raises(PortInUseError),
        EventServer(server.gallery_path, host="127.0.0.1", port=port),
    ):
        pass


def test_stop_ends_every_open_stream_after_delivering_queued_events(server, open_stream):
    streams = [open_stream(server.get_events_url()) for _ in range(3)]
    for stream in streams:
        assert stream.next().event == "connected"
    server.emit("last_words", {"n": 1})
    assert server.stop() is True
    for stream in streams:
        rest = stream.rest()  # ends instead of hanging: the server closed the stream
        assert [e.event for e in rest] == ["last_words"]


def test_emit_while_stopped_is_dropped(server, gallery_path):
    server.stop()
    assert server.emit("ignored", {"x": 1}) is False
    server.start()
    assert get_json(server, "/events/history") == []


@pytest.mark.parametrize(
    ("event_type", "error"),
    [
        ("", ValueError),
        ("has space", ValueError),
        ("new\nline", ValueError),
        ("9starts_with_digit", ValueError),
        ("x" * 65, ValueError),
        ("connected", ValueError),
        ("resync", ValueError),
        (None, ValueError),
    ],
)
def test_emit_rejects_bad_event_types(server, event_type, error):
    with pytest.raises(error):
        server.emit(event_type, {})


def test_emit_rejects_bad_payloads(server):
    with pytest.raises(TypeError):
        server.emit("ok", [1, 2])
    with pytest.raises(TypeError):
        server.emit("ok", {"obj": object()})


def test_payload_is_snapshotted_and_made_json_safe(server):
    data = {"dive_count": 5, "score": math.nan, "tags": ("a", "b")}
    server.emit("dives_detected", data)
    data["dive_count"] = 99  # a later change must not leak into the event
    [event] = _wait_for_history(server, 1)
    assert event["payload"] == {"dive_count": 5, "score": None, "tags": ["a", "b"]}


def test_settings_are_validated(gallery_path):
    with pytest.raises(ValueError):
        EventServer(gallery_path, port=70000)
    with pytest.raises(ValueError):
        EventServer(gallery_path, heartbeat_interval=0)
    with pytest.raises(ValueError):
        EventServer(gallery_path, history_size=0)


def _wait_for_history(server, count: int) -> list[dict]:
    return wait_until(
        lambda: (h := get_json(server, "/events/history")) and len(h) >= count and h,
        what=f"{count} events in history",
    )
