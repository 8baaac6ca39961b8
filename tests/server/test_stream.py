"""The event stream: order, payloads, emitters on every kind of thread, many subscribers,
resume, resync, filtering, and clients that are slow, stalled or gone."""

from __future__ import annotations

import gc
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import gevent
import pytest

from diveanalyzer.server.hub import Subscriber
from tests.server.helpers import SOON_S, Stream, metric, payload, subscribers, wait_until


def _ids(events) -> list[int]:
    return [int(e.id) for e in events]


def test_events_arrive_in_order_with_exact_payloads(server, open_stream):
    stream = open_stream(server.get_events_url())
    assert stream.next().event == "connected"
    sent = [
        ("splash_detection_complete", {"peak_count": 5, "threshold_db": -25.0}),
        ("dives_detected", {"dive_count": 5, "signal_type": "audio + motion"}),
        ("note", {"text": "Sprung — 3 m «board»", "nested": {"list": [1, 2, {"x": None}]}}),
        ("note", {"text": "line one\nline two\r\nline three"}),
        ("processing_complete", {}),
    ]
    for event_type, data in sent:
        assert server.emit(event_type, data) is True
    received = stream.take(len(sent))
    assert [(e.event, payload(e)) for e in received] == sent
    assert _ids(received) == [1, 2, 3, 4, 5]


def test_emit_from_plain_threads_keeps_each_threads_order(server, open_stream):
    stream = open_stream(server.get_events_url())
    stream.next()
    threads, per_thread = 4, 50

    def emitter(name: str) -> None:
        for seq in range(per_thread):
            server.emit("tick", {"thread": name, "seq": seq})

    workers = [threading.Thread(target=emitter, args=(f"t{n}",)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    received = stream.take(threads * per_thread)
    assert _ids(received) == list(range(1, threads * per_thread + 1))
    by_thread: dict[str, list[int]] = {}
    for event in received:
        data = payload(event)
        by_thread.setdefault(data["thread"], []).append(data["seq"])
    assert by_thread == {f"t{n}": list(range(per_thread)) for n in range(threads)}


def test_emit_from_greenlets_and_gevent_threadpool(server, open_stream):
    """This process is not monkey-patched: greenlets run on the main thread's own hub and the
    threadpool's workers are real threads; both reach the server thread's hub."""
    stream = open_stream(server.get_events_url())
    stream.next()

    def emitter(kind: str, name: str, count: int) -> None:
        for seq in range(count):
            server.emit("tick", {"who": f"{kind}{name}", "seq": seq})
            if kind == "g":
                gevent.sleep(0)  # let the other greenlets interleave

    greenlets = [gevent.spawn(emitter, "g", str(n), 20) for n in range(3)]
    pool = gevent.get_hub().threadpool
    pooled = [pool.spawn(emitter, "p", str(n), 20) for n in range(3)]
    gevent.joinall(greenlets + pooled, raise_error=True)

    received = stream.take(120)
    order: dict[str, list[int]] = {}
    for event in received:
        data = payload(event)
        order.setdefault(data["who"], []).append(data["seq"])
    assert order == {f"{k}{n}": list(range(20)) for k in "gp" for n in range(3)}


def test_200_concurrent_subscribers_all_receive_every_event(server):
    clients, events = 200, 20
    ready = threading.Barrier(clients + 1, timeout=60)

    def subscribe_and_read() -> list[tuple[int, int]]:
        stream = Stream(server.get_events_url(), timeout=60)
        try:
            assert stream.next().event == "connected"
            ready.wait()
            return [(int(e.id), payload(e)["n"]) for e in stream.take(events)]
        finally:
            stream.close()

    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(subscribe_and_read) for _ in range(clients)]
        ready.wait()
        assert subscribers(server) == clients
        for n in range(events):
            server.emit("tick", {"n": n})
        results = [future.result(timeout=120) for future in futures]

    expected = [(n + 1, n) for n in range(events)]
    assert all(result == expected for result in results)
    assert metric(server, "diveanalyzer_sse_clients_dropped_total") == 0


# -- resume and resync ----------------------------------------------------------------------


def test_last_event_id_resumes_exactly(server, open_stream):
    for n in range(1, 11):
        server.emit("step", {"n": n})
    wait_until(lambda: metric(server, "diveanalyzer_events_published_total") == 10)

    stream = open_stream(server.get_events_url(), headers={"Last-Event-ID": "4"})
    assert stream.next().event == "connected"
    assert _ids(stream.take(6)) == [5, 6, 7, 8, 9, 10]
    server.emit("step", {"n": 11})
    server.emit("step", {"n": 12})
    assert [(int(e.id), payload(e)["n"]) for e in stream.take(2)] == [(11, 11), (12, 12)]

    by_query = open_stream(server.get_events_url() + "?last_event_id=9")
    by_query.next()
    assert _ids(by_query.take(3)) == [10, 11, 12]

    # On reconnection browsers send the header while the URL keeps its query: header wins.
    both = open_stream(server.get_events_url() + "?last_event_id=2", {"Last-Event-ID": "11"})
    both.next()
    server.emit("step", {"n": 13})
    assert _ids(both.take(1)) == [12]
    assert _ids(both.take(1)) == [13]


def test_resume_while_events_are_flowing_has_no_gap_and_no_duplicate(server, open_stream):
    """Clients reconnect mid-stream while a thread emits: each must see a contiguous run."""
    total = 400
    stop = threading.Event()

    def emitter() -> None:
        for n in range(1, total + 1):
            server.emit("step", {"n": n})
            if n % 10 == 0:
                stop.wait(0.002)

    worker = threading.Thread(target=emitter)
    worker.start()
    try:
        resumed = []
        for _ in range(5):
            last = int(metric(server, "diveanalyzer_events_published_total"))
            stream = open_stream(server.get_events_url(), {"Last-Event-ID": str(max(last - 3, 0))})
            stream.next()
            resumed.append((max(last - 3, 0), stream))
    finally:
        worker.join()
    for after, stream in resumed:
        assert _ids(stream.take(total - after)) == list(range(after + 1, total + 1))


def test_resync_when_the_client_is_older_than_history(make_server, open_stream):
    server = make_server(history_size=5)
    for n in range(1, 13):
        server.emit("step", {"n": n})
    wait_until(lambda: metric(server, "diveanalyzer_events_published_total") == 12)

    stream = open_stream(server.get_events_url(), headers={"Last-Event-ID": "2"})
    assert stream.next().event == "connected"
    resync = stream.next()
    assert resync.event == "resync" and resync.id is None
    assert payload(resync) == {"oldest_id": 8}
    assert _ids(stream.take(5)) == [8, 9, 10, 11, 12]

    # Exactly at the edge of history: no resync needed.
    edge = open_stream(server.get_events_url(), headers={"Last-Event-ID": "7"})
    edge.next()
    assert [e.event for e in edge.take(2)] == ["step", "step"]

    # An id from another server's numbering (newer than anything here): resync, full replay.
    future = open_stream(server.get_events_url(), headers={"Last-Event-ID": "500"})
    future.next()
    assert future.next().event == "resync"
    assert _ids(future.take(5)) == [8, 9, 10, 11, 12]


def test_types_filter_live_and_on_replay(server, open_stream):
    server.emit("a", {"n": 1})
    server.emit("b", {"n": 2})
    wait_until(lambda: metric(server, "diveanalyzer_events_published_total") == 2)

    live = open_stream(server.get_events_url() + "?types=a,c")
    assert live.next().event == "connected"
    replay = open_stream(server.get_events_url() + "?types=b&last_event_id=0")
    assert replay.next().event == "connected"

    for event_type, n in [("a", 3), ("b", 4), ("c", 5), ("d", 6), ("a", 7)]:
        server.emit(event_type, {"n": n})
    assert [(e.event, payload(e)["n"]) for e in live.take(3)] == [("a", 3), ("c", 5), ("a", 7)]
    assert [(e.event, payload(e)["n"]) for e in replay.take(2)] == [("b", 2), ("b", 4)]


# -- clients that are slow, stalled or gone -------------------------------------------------


def _stalled_client(server) -> socket.socket:
    """A client that opens /events and then never reads (tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(SOON_S)
    sock.connect(("127.0.0.1", int(server.get_url().rsplit(":", 1)[1])))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def _feed_until_dropped(server, fast: Stream, max_events: int = 400) -> int:
    """Emit big events one by one (the fast client keeps up) until the stalled one is dropped."""
    blob = "x" * 64 * 1024
    for n in range(1, max_events + 1):
        server.emit("chunk", {"n": n, "blob": blob})
        event = fast.next()
        assert payload(event)["n"] == n
        if metric(server, "diveanalyzer_sse_clients_dropped_total") >= 1:
            return n
    pytest.fail("the stalled client was never dropped")


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"queue_size": 8}, id="queue-full"),
        pytest.param({"queue_size": 1000, "client_timeout": 1.0}, id="write-deadline"),
    ],
)
def test_client_that_stops_reading_is_dropped_while_others_continue(make_server, settings):
    server = make_server(**settings)
    fast = Stream(server.get_events_url())
    stalled = _stalled_client(server)
    try:
        assert fast.next().event == "connected"
        wait_until(lambda: subscribers(server) == 2, what="two subscribers")
        sent = _feed_until_dropped(server, fast)
        wait_until(lambda: subscribers(server) == 1, what="the stalled client to be gone")
        server.emit("after", {"n": sent + 1})
        assert fast.next().event == "after"
        assert metric(server, "diveanalyzer_sse_clients_dropped_total") == 1
    finally:
        stalled.close()
        fast.close()


def test_dropped_client_can_resume_without_loss(make_server):
    server = make_server(queue_size=8)
    fast = Stream(server.get_events_url())
    stalled = _stalled_client(server)
    try:
        fast.next()
        wait_until(lambda: subscribers(server) == 2)
        sent = _feed_until_dropped(server, fast)
    finally:
        stalled.close()
        fast.close()
    # The stalled client reconnects from the start; history still covers everything.
    again = Stream(server.get_events_url(), headers={"Last-Event-ID": "0"})
    try:
        again.next()
        assert [payload(e)["n"] for e in again.take(sent)] == list(range(1, sent + 1))
    finally:
        again.close()


def test_client_that_goes_away_is_unsubscribed_at_once(make_server):
    server = make_server(heartbeat_interval=600)  # no heartbeat write could notice it
    stream = Stream(server.get_events_url())
    stream.next()
    assert subscribers(server) == 1
    stream.close()
    wait_until(lambda: subscribers(server) == 0, what="the subscriber to go")
    server.emit("nobody_listens", {"n": 1})  # publishing afterwards is harmless
    assert metric(server, "diveanalyzer_sse_clients_dropped_total") == 0


def test_nothing_is_left_behind_when_clients_go_away(server):
    """No subscriber, greenlet or socket survives its client (checked from the inside)."""
    fds_before = len(os.listdir("/proc/self/fd"))
    streams = [Stream(server.get_events_url()) for _ in range(20)]
    for stream in streams:
        stream.next()
    assert subscribers(server) == 20
    for stream in streams:
        stream.close()
    wait_until(lambda: subscribers(server) == 0, what="no subscribers")

    def leftovers() -> list:
        gc.collect()
        return [
            obj
            for obj in gc.get_objects()
            if isinstance(obj, Subscriber) or (isinstance(obj, gevent.Greenlet) and not obj.dead)
        ]

    wait_until(lambda: not leftovers(), what="subscribers and greenlets to be gone")
    wait_until(lambda: len(os.listdir("/proc/self/fd")) <= fds_before, what="sockets to be closed")
