"""Streams that own their connection: limits, frozen readers, framing, the generator fallback.

Real servers on free ports and raw sockets where a library client would hide the detail
(HTTP/1.0 framing, a client that never reads).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from wsgiref.util import setup_testing_defaults

import gevent
import requests

from diveanalyzer.server.app import AppConfig, EventApp
from diveanalyzer.server.hub import Hub
from tests.server.helpers import SOON_S, Stream, metric, payload, subscribers, wait_until


def _port(server) -> int:
    return int(server.get_url().rsplit(":", 1)[1])


def _raw_stream(server, request: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", _port(server)), timeout=SOON_S)
    sock.sendall(request)
    return sock


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = sock.recv(65536)
        assert chunk, f"stream ended before {marker!r}; got {received[-200:]!r}"
        received += chunk
    return received


def test_streams_beyond_max_connections_get_503_and_the_open_ones_go_on(make_server):
    server = make_server(max_connections=3)
    streams = [Stream(server.get_events_url()) for _ in range(3)]
    try:
        for stream in streams:
            assert stream.next().event == "connected"
        refused = requests.get(server.get_events_url(), timeout=SOON_S)
        assert refused.status_code == 503
        assert "viewers" in refused.json()["message"]
        assert refused.headers["Retry-After"] == "5"
        server.emit("after", {"n": 1})
        assert all(payload(s.next()) == {"n": 1} for s in streams)
        streams.pop().close()
        wait_until(lambda: subscribers(server) == 2, what="a free place")
        streams.append(Stream(server.get_events_url()))
        assert streams[-1].next().event == "connected"
    finally:
        for stream in streams:
            stream.close()


def test_client_that_stops_reading_is_dropped_before_our_writes_ever_block(make_server):
    """Its window closes while the kernel still takes our bytes: that alone gets it dropped."""
    server = make_server(client_timeout=1.0, heartbeat_interval=2.0)
    frozen = _raw_stream(server, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        _read_until(frozen, b"event: connected")
        wait_until(lambda: subscribers(server) == 1)
        # ~160 KB: fills the client's window, yet far less than both sockets' buffers hold.
        for n in range(80):
            server.emit("chunk", {"n": n, "blob": "x" * 2000})
            time.sleep(0.005)
        wait_until(lambda: subscribers(server) == 0, what="the frozen reader to be dropped")
        assert metric(server, "diveanalyzer_sse_clients_dropped_total") == 1
    finally:
        frozen.close()


def test_a_reader_that_keeps_up_is_never_taken_for_frozen(make_server):
    server = make_server(client_timeout=1.0, heartbeat_interval=2.0)
    stream = Stream(server.get_events_url())
    try:
        stream.next()
        for n in range(150):
            server.emit("chunk", {"n": n, "blob": "x" * 2000})
            assert payload(stream.next())["n"] == n
            time.sleep(0.01)  # 1.5 s: longer than the write deadline
        assert metric(server, "diveanalyzer_sse_clients_dropped_total") == 0
    finally:
        stream.close()


def test_a_slow_reader_gets_every_event_in_order(make_server):
    """A reader slower than the publisher: its socket is full, then has room, again and
    again, so bytes go out both ways, written by the hub at once and from the stream's
    queue by its greenlet. Nothing may be lost, reordered or doubled."""
    server = make_server(client_timeout=10.0)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.settimeout(SOON_S)
    sock.connect(("127.0.0.1", _port(server)))
    sock.sendall(b"GET /events HTTP/1.0\r\n\r\n")  # no chunk framing: events end at \n\n
    count, blob = 300, "x" * 2000  # ~600 KB, many times both sockets' buffers
    last = f'"n": {count - 1},'.encode()
    received = [_read_until(sock, b"event: connected")]

    def read_slowly() -> None:
        while last not in received[-1] and (more := sock.recv(2048)):
            received[-1] += more
            time.sleep(0.002)  # ~1 MB/s: half as fast as the events come

    reader = threading.Thread(target=read_slowly)
    reader.start()
    try:
        for n in range(count):
            server.emit("chunk", {"n": n, "blob": blob})
            time.sleep(0.001)
        reader.join(timeout=SOON_S)
        assert not reader.is_alive(), "the reader never saw the last event"
    finally:
        sock.close()
    numbers = [int(n) for n in re.findall(rb'"n": (\d+),', received[-1])]
    assert numbers == list(range(count))
    assert metric(server, "diveanalyzer_sse_clients_dropped_total") == 0


def test_http_1_0_client_gets_a_plain_body(server):
    sock = _raw_stream(server, b"GET /events HTTP/1.0\r\n\r\n")
    try:
        head = _read_until(sock, b"event: connected")
        assert b"Transfer-Encoding" not in head
        server.emit("plain", {"n": 1})
        body = head.split(b"\r\n\r\n", 1)[1] + _read_until(sock, b'data: {"n": 1}\n\n')
        assert body.startswith(b"retry: ")
        assert b"\r\n" not in body  # no chunk framing
    finally:
        sock.close()


def test_chunked_stream_ends_with_the_last_chunk_when_the_server_stops(make_server):
    server = make_server()
    sock = _raw_stream(server, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        _read_until(sock, b"event: connected")
        server.emit("bye", {"n": 1})
        _read_until(sock, b"event: bye")
        server.stop()
        assert _read_until(sock, b"0\r\n\r\n").endswith(b"0\r\n\r\n")
    finally:
        sock.close()


def test_a_client_that_talks_while_listening_keeps_its_stream(server):
    sock = _raw_stream(server, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        _read_until(sock, b"event: connected")
        sock.sendall(b"unexpected bytes\r\n" * 100)
        server.emit("still", {"n": 1})
        _read_until(sock, b"event: still")
        assert subscribers(server) == 1
    finally:
        sock.close()


def test_app_under_another_wsgi_server_streams_from_a_generator(tmp_path):
    """No socket to take over: the response body itself yields every event."""
    hub = Hub(heartbeat_s=0.2)
    hub.reopen()
    app = EventApp(hub, AppConfig(gallery_path=tmp_path / "g.html", uptime=lambda: 0.0))
    environ = {"PATH_INFO": "/events", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    statuses = []
    response = app.wsgi(environ, lambda status, headers, exc=None: statuses.append(status))
    body = iter(response)
    try:
        assert statuses == ["200 OK"]
        assert b"event: connected" in next(body)
        gevent.spawn_later(0.05, hub.publish, "one", '{"n": 1}')
        assert next(body) == b'id: 1\nevent: one\ndata: {"n": 1}\n\n'
        assert next(body) == b": keepalive\n\n"  # the hub's timer, nothing else running
        assert hub.subscriber_count == 1
    finally:
        response.close()  # what a WSGI server does when the client goes
    assert hub.subscriber_count == 0
    hub.close_all()


def test_resume_finds_its_place_when_broker_ids_have_gaps():
    hub = Hub()
    for event_id in (3, 4, 9, 12):
        hub.publish_numbered(event_id, "e", "{}", 0.0)
    assert [event.id for event in hub.after(4)[0]] == [9, 12]
    assert [event.id for event in hub.after(9)[0]] == [12]
    assert hub.after(12) == ([], False)
    assert hub.after(13)[1] is True  # newer than anything here: resync
    assert hub.publish_numbered(9, "e", "{}", 0.0) is None  # seen already


def test_catch_up_waits_for_a_process_that_lags_behind_redis():
    hub = Hub()
    gevent.spawn_later(0.05, hub.publish_numbered, 5, "e", "{}", 0.0)
    assert hub.catch_up(5, timeout=SOON_S)
    assert not hub.catch_up(6, timeout=0.05)


def test_a_client_that_half_closes_gets_its_opening_and_a_clean_end(server):
    sock = _raw_stream(server, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        sock.shutdown(socket.SHUT_WR)  # as `nc -N` and some proxies do
        received = _read_until(sock, b"0\r\n\r\n")
        assert b"event: connected" in received
        wait_until(lambda: subscribers(server) == 0, what="the stream to end")
    finally:
        sock.close()


def test_history_read_from_the_broker_at_start_is_not_sent_as_new(tmp_path):
    """Old events (the Redis stream's tail) fill the history; open streams do not get them."""
    hub = Hub(heartbeat_s=60.0)
    live = hub.subscribe()
    hub.publish_numbered(7, "old", "{}", 0.0, live=False)
    hub.publish_numbered(8, "new", "{}", 0.0)
    gevent.sleep(0.01)  # the fan-out runs on the loop
    assert live.queue.get_nowait() == b"id: 8\nevent: new\ndata: {}\n\n"
    assert live.queue.empty()
    assert [event.id for event in hub.after(0)[0]] == [7, 8]
    hub.close_all()
