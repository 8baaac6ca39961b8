"""Every HTTP endpoint, its headers and its errors, against a real server."""

from __future__ import annotations

import re
import socket

import requests

from tests.server.helpers import SOON_S, get_json, metric, payload, subscribers, wait_until

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _raw_request(server, request: bytes, read_until: bytes = b"\r\n\r\n") -> bytes:
    """Send raw bytes, return what comes back up to ``read_until`` (or the connection end)."""
    port = int(server.get_url().rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=SOON_S) as sock:
        sock.sendall(request)
        received = b""
        while read_until not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _assert_json_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and body["error"] and body["message"]
    return body


# -- / and the gallery ----------------------------------------------------------------------


def test_root_serves_live_page_until_the_gallery_appears(server, gallery_path):
    live = requests.get(server.get_url() + "/", timeout=SOON_S)
    assert live.status_code == 200
    assert live.headers["Content-Type"].startswith("text/html")
    assert "EventSource" in live.text and "/events" in live.text
    assert get_json(server, "/health")["gallery_ready"] is False

    gallery_path.write_text("<!doctype html><title>Gallery</title><h1>3 dives</h1>")

    page = requests.get(server.get_url() + "/", timeout=SOON_S)
    assert page.status_code == 200
    assert "<h1>3 dives</h1>" in page.text
    assert page.headers["Cache-Control"] == "no-cache"
    assert get_json(server, "/health")["gallery_ready"] is True


def test_files_next_to_the_gallery_are_served_but_nothing_else(server, gallery_path, tmp_path):
    (gallery_path.parent / "thumbs").mkdir()
    (gallery_path.parent / "thumbs" / "dive_001.jpg").write_bytes(b"\xff\xd8fakejpeg")
    (gallery_path.parent / "notes.txt").write_text("not a gallery asset")
    (gallery_path.parent / ".secret.json").write_text("{}")
    (tmp_path / "outside.json").write_text("{}")
    base = server.get_url()

    thumb = requests.get(base + "/thumbs/dive_001.jpg", timeout=SOON_S)
    assert thumb.status_code == 200 and thumb.content == b"\xff\xd8fakejpeg"
    absolute = "/" + str(tmp_path / "outside.json")  # "//tmp/.../outside.json"
    for path in (
        "/notes.txt",
        "/.secret.json",
        "/../outside.json",
        "/%2e%2e/outside.json",
        absolute,
    ):
        _assert_json_error(requests.get(base + path, timeout=SOON_S), 404)


# -- /health, /metrics, /events/history -----------------------------------------------------


def test_health_reports_status_time_subscribers_and_uptime(server, open_stream):
    health = get_json(server, "/health")
    assert health["status"] == "ok"
    assert ISO_Z.fullmatch(health["timestamp"])
    assert health["subscribers"] == 0
    assert isinstance(health["uptime_s"], int | float) and health["uptime_s"] >= 0

    stream = open_stream(server.get_events_url())
    stream.next()
    assert subscribers(server) == 1


def test_metrics_are_prometheus_text(server, open_stream):
    stream = open_stream(server.get_events_url())
    stream.next()
    for n in range(3):
        server.emit("tick", {"n": n})
    stream.take(3)

    response = requests.get(server.get_url() + "/metrics", timeout=SOON_S)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for name, kind in [
        ("diveanalyzer_sse_subscribers", "gauge"),
        ("diveanalyzer_events_published_total", "counter"),
        ("diveanalyzer_sse_clients_dropped_total", "counter"),
        ("diveanalyzer_uptime_seconds", "gauge"),
    ]:
        assert f"# TYPE {name} {kind}" in text
        assert f"# HELP {name} " in text
    assert metric(server, "diveanalyzer_sse_subscribers") == 1
    assert metric(server, "diveanalyzer_events_published_total") == 3
    assert metric(server, "diveanalyzer_sse_clients_dropped_total") == 0
    assert metric(server, "diveanalyzer_uptime_seconds") >= 0


def test_history_lists_newest_last_and_honours_limit(make_server):
    server = make_server(history_size=5)
    for n in range(8):
        server.emit("step", {"n": n})
    wait_until(lambda: len(get_json(server, "/events/history")) == 5, what="history of 5")

    history = get_json(server, "/events/history")
    assert [e["id"] for e in history] == [4, 5, 6, 7, 8]
    assert [e["payload"]["n"] for e in history] == [3, 4, 5, 6, 7]
    assert all(set(e) == {"id", "event_type", "timestamp", "payload"} for e in history)
    assert all(ISO_Z.fullmatch(e["timestamp"]) and e["event_type"] == "step" for e in history)

    assert [e["id"] for e in get_json(server, "/events/history?limit=2")] == [7, 8]
    assert get_json(server, "/events/history?limit=0") == []
    assert len(get_json(server, "/events/history?limit=100")) == 5
    for bad in ("-1", "abc", "1.5", "9" * 30):
        response = requests.get(f"{server.get_url()}/events/history?limit={bad}", timeout=SOON_S)
        _assert_json_error(response, 400)


# -- /events headers and framing ------------------------------------------------------------


def test_events_headers_follow_the_sse_rules(server, open_stream):
    stream = open_stream(server.get_events_url(), headers={"Accept-Encoding": "gzip, br"})
    headers = stream.response.headers
    assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Content-Encoding" not in headers

    first = stream.next()
    assert first.event == "connected" and first.id is None and first.retry == "3000"
    assert payload(first)["message"] == "SSE stream established"


def test_raw_stream_starts_with_retry_then_connected_then_events(server):
    port = int(server.get_url().rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=SOON_S) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"event: connected" not in received:
            received += sock.recv(65536)
        server.emit("dives_detected", {"dive_count": 5})
        while b'data: {"dive_count": 5}\n\n' not in received:
            received += sock.recv(65536)
    body = received.split(b"\r\n\r\n", 1)[1]
    text = b"".join(_dechunk(body)).decode()
    connected, event = text.split("\n\n")[:2]
    lines = connected.split("\n")
    assert lines[0] == "retry: 3000"
    assert lines[1] == "event: connected"
    assert lines[2].startswith("data: {") and not any(x.startswith("id:") for x in lines)
    assert event == 'id: 1\nevent: dives_detected\ndata: {"dive_count": 5}'


def test_idle_stream_gets_keepalive_comments(make_server):
    server = make_server(heartbeat_interval=0.2)
    port = int(server.get_url().rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=SOON_S) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while received.count(b": keepalive\n\n") < 2:
            received += sock.recv(65536)


def test_head_on_events_does_not_leave_a_subscriber(server):
    response = requests.head(server.get_events_url(), timeout=SOON_S)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    wait_until(lambda: subscribers(server) == 0, what="no subscribers")


# -- errors ---------------------------------------------------------------------------------


def test_unknown_path_and_wrong_method_get_json_errors(server):
    base = server.get_url()
    _assert_json_error(requests.get(base + "/nope", timeout=SOON_S), 404)
    _assert_json_error(requests.get(base + "/events/nope", timeout=SOON_S), 404)
    response = requests.post(base + "/events", data=b"x", timeout=SOON_S)
    _assert_json_error(response, 405)
    assert "GET" in response.headers["Allow"]
    _assert_json_error(requests.delete(base + "/health", timeout=SOON_S), 405)


def test_malformed_last_event_id_and_types_are_rejected(server):
    url = server.get_events_url()
    for headers, query in [
        ({"Last-Event-ID": "abc"}, ""),
        ({"Last-Event-ID": "-3"}, ""),
        ({"Last-Event-ID": "1e3"}, ""),
        ({}, "?last_event_id=12x"),
        ({}, "?types=ok,not%20ok"),
        ({}, "?types=" + ",".join(f"t{n}" for n in range(100))),
    ]:
        response = requests.get(url + query, headers=headers, timeout=SOON_S)
        body = _assert_json_error(response, 400)
        assert "\n" not in body["message"]
    assert subscribers(server) == 0


def test_bad_requests_get_json_4xx_and_do_not_disturb_a_stream(server, open_stream):
    stream = open_stream(server.get_events_url())
    stream.next()

    huge = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 60000 + b"\r\n\r\n"
    many = b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(150)) + b"\r\n"
    long_line = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    garbage = b"\x16\x03\x01 not http at all\r\n\r\n"
    for request, status in [(huge, 431), (many, 400), (long_line, 414), (garbage, 400)]:
        reply = _raw_request(server, request, read_until=b"}")
        assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:80]
        assert b"Content-Type: application/json" in reply and b'"status": %d' % status in reply

    server.emit("still_here", {"ok": True})
    event = stream.next()
    assert (event.event, payload(event)) == ("still_here", {"ok": True})
    assert get_json(server, "/health")["subscribers"] == 1


def _dechunk(body: bytes):
    """Undo HTTP/1.1 chunked transfer encoding (enough for these tests)."""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        if not size_line:
            return
        size = int(size_line, 16)
        if size == 0:
            return
        yield rest[:size]
        body = rest[size + 2 :]
