"""Scale-out through Redis: real ``redis-server``, real server processes, real SSE clients.

Server processes are ``python -m diveanalyzer.serve DIR --broker URL`` subprocesses (the
monkey-patched way); the publisher is a third process (`BrokerPublisher`, or a real
``diveanalyzer process --broker`` run), or, for the outage test, this process.
"""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from diveanalyzer.cli import cli
from diveanalyzer.errors import BrokerError
from diveanalyzer.server import EventServer
from diveanalyzer.server.broker import BrokerPublisher, RedisBroker
from tests.server.helpers import SOON_S, Stream, free_port, metric, wait_until

REPO = Path(__file__).resolve().parents[2]
PUBLISH_PROGRAM = """
import sys
from diveanalyzer.server.broker import BrokerPublisher

publisher = BrokerPublisher(sys.argv[1], key=sys.argv[2])
for number in range(int(sys.argv[3]), int(sys.argv[4])):
    publisher.emit("tick", {"n": number})
sys.exit(1 if publisher.close(timeout=10) else 0)
"""


class Served:
    """A ``python -m diveanalyzer.serve`` subprocess and the URL it printed."""

    def __init__(self, directory: Path, *args: str) -> None:
        command = [sys.executable, "-m", "diveanalyzer.serve", str(directory), *args]
        self.process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline()
        found = re.search(r"http://[^/\s]+", line)
        if not found:
            self.process.kill()
            pytest.fail(f"serve printed {line!r}; stderr: {self.process.communicate()[1]}")
        self.url = found.group(0)

    def health(self) -> dict:
        response = requests.get(self.url + "/health", timeout=SOON_S)
        assert response.status_code == 200
        return response.json()

    def history_ids(self) -> list[int]:
        events = requests.get(self.url + "/events/history", timeout=SOON_S).json()
        return [event["id"] for event in events]

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            _, err = self.process.communicate(timeout=SOON_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err


@pytest.fixture
def serve(tmp_path):
    """Factory of serve subprocesses (stopped after the test; each must exit with 0)."""
    started: list[Served] = []

    def start(*args: str) -> Served:
        served = Served(tmp_path, *args)
        started.append(served)
        return served

    yield start
    for served in started:
        code, err = served.stop()
        assert code == 0, err
        assert "Traceback" not in err, err


def publish(redis_url: str, first: int, end: int, key: str = "diveanalyzer:events") -> None:
    """Events ``tick`` {"n": first} .. {"n": end - 1}, from another process."""
    command = [sys.executable, "-c", PUBLISH_PROGRAM, redis_url, key, str(first), str(end)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def ticks(events) -> list[tuple[int, int]]:
    """(id, n) of each ``tick`` event, in order."""
    return [(int(event.id), json.loads(event.data)["n"]) for event in events]


def fresh_stream(url: str, headers: dict | None = None) -> Stream:
    stream = Stream(url + "/events", headers=headers)
    assert stream.next().event == "connected"
    return stream


# -- several processes, one stream ----------------------------------------------------------


def test_two_servers_show_one_publishers_events_with_the_same_ids(redis_server, serve):
    first = serve("--port", "0", "--broker", redis_server.url)
    second = serve("--port", "0", "--broker", redis_server.url)
    clients = [fresh_stream(first.url), fresh_stream(second.url), fresh_stream(second.url)]
    publish(redis_server.url, 0, 20)
    seen = [ticks(client.take(20)) for client in clients]
    assert seen[0] == seen[1] == seen[2]
    ids = [event_id for event_id, _ in seen[0]]
    assert [n for _, n in seen[0]] == list(range(20))
    assert ids == list(range(ids[0], ids[0] + 20))  # integers, consecutive, shared
    assert first.health()["broker"] == second.health()["broker"] == "up"


def test_a_client_resumes_on_another_process_without_gap_or_duplicate(redis_server, serve):
    first = serve("--port", "0", "--broker", redis_server.url)
    second = serve("--port", "0", "--broker", redis_server.url)
    client = fresh_stream(first.url)
    publish(redis_server.url, 0, 30)
    part = client.take(12)
    client.close()
    last_id = int(part[-1].id)
    wait_until(lambda: last_id + 18 in second.history_ids(), what="the second server's history")
    resumed = Stream(second.url + "/events", headers={"Last-Event-ID": str(last_id)})
    assert resumed.next().event == "connected"
    rest = resumed.take(18)  # a resync would arrive here instead of event last_id + 1
    resumed.close()
    assert [event.event for event in rest] == ["tick"] * 18
    assert ticks(part + rest) == [(last_id - 11 + n, n) for n in range(30)]


def test_a_server_started_later_replays_the_streams_history(redis_server, serve):
    publish(redis_server.url, 0, 5)
    late = serve("--port", "0", "--broker", redis_server.url)
    history = requests.get(late.url + "/events/history", timeout=SOON_S).json()
    assert [event["payload"]["n"] for event in history] == list(range(5))
    replay = Stream(late.url + "/events", headers={"Last-Event-ID": str(history[1]["id"])})
    assert replay.next().event == "connected"
    assert [n for _, n in ticks(replay.take(3))] == [2, 3, 4]
    replay.close()


def test_redis_restart_keeps_viewers_and_delivers_what_was_published_meanwhile(redis_server, serve):
    server = serve("--port", "0", "--broker", redis_server.url)
    client = fresh_stream(server.url)
    publisher = BrokerPublisher(redis_server.url)
    try:
        for number in range(3):
            publisher.emit("tick", {"n": number})
        before = ticks(client.take(3))
        redis_server.stop()
        wait_until(lambda: server.health()["broker"] == "down", what='"broker": "down"')
        for number in range(3, 8):  # Redis is down: must return at once, buffered
            assert publisher.emit("tick", {"n": number}) is True
        assert server.health()["subscribers"] == 1  # the viewer is still connected
        redis_server.start()  # empty: the ids carry on from what the processes saw
        wait_until(lambda: server.health()["broker"] == "up", what='"broker": "up" again')
        after = ticks(client.take(5))
    finally:
        assert publisher.close(timeout=SOON_S) == 0
        client.close()
    first_id = before[0][0]
    assert before + after == [(first_id + n, n) for n in range(8)]


def test_a_server_starts_without_redis_and_follows_it_once_it_is_there(redis_server, serve):
    redis_server.stop()
    server = serve("--port", "0", "--broker", redis_server.url)
    assert server.health()["broker"] == "down"
    client = fresh_stream(server.url)
    redis_server.start()
    wait_until(lambda: server.health()["broker"] == "up", what='"broker": "up"')
    publish(redis_server.url, 0, 2)
    assert [n for _, n in ticks(client.take(2))] == [0, 1]
    client.close()
    code, err = server.stop()
    assert code == 0
    assert err.startswith("Note: Redis is not reachable yet"), err


# -- workers ------------------------------------------------------------------------------


def test_workers_share_one_port_and_all_show_the_events(redis_server, serve):
    workers = serve("--port", "0", "--broker", redis_server.url, "--workers", "2")
    clients = [fresh_stream(workers.url) for _ in range(16)]
    # A new connection lands on either worker: both must answer, and hold the 16 streams.
    counts = {workers.health()["subscribers"] for _ in range(30)}
    assert any(0 < count < 16 and 16 - count in counts for count in counts), counts
    publish(redis_server.url, 0, 5)
    seen = [ticks(client.take(5)) for client in clients]
    assert all(events == seen[0] for events in seen)
    assert [n for _, n in seen[0]] == list(range(5))
    pids = _worker_pids(workers.process.pid)
    code, err = workers.stop(signal.SIGINT)  # Ctrl-C: the parent stops every worker
    assert code == 0, err
    assert all(client.rest() == [] for client in clients)  # streams ended cleanly
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_a_worker_that_dies_is_reported(redis_server, tmp_path):
    workers = Served(tmp_path, "--port", "0", "--broker", redis_server.url, "--workers", "2")
    try:
        pids = _worker_pids(workers.process.pid)
        assert len(pids) == 2
        subprocess.run(["kill", "-KILL", str(pids[0])], check=True)
        readable, _, _ = select.select([workers.process.stderr], [], [], SOON_S)
        assert readable, "the parent said nothing about the dead worker"
        report = workers.process.stderr.readline()
        workers.health()  # the other worker still serves the port
    finally:
        code, err = workers.stop()
    assert code == 0, err
    assert re.fullmatch(rf"Error: worker \d \(pid {pids[0]}\) exited with code -9\n", report)


def _worker_pids(parent: int) -> list[int]:
    def children() -> list[int]:
        path = Path(f"/proc/{parent}/task/{parent}/children")
        return [int(pid) for pid in path.read_text().split()]

    return wait_until(lambda: len(children()) == 2 and children(), what="two workers")


# -- the pipeline as publisher -------------------------------------------------------------


def test_process_publishes_the_pipelines_events_to_redis(
    redis_server, serve, synth_quiet_session, tmp_path
):
    server = serve("--port", "0", "--broker", redis_server.url)
    client = fresh_stream(server.url)
    command = [sys.executable, "-m", "diveanalyzer", "process", str(synth_quiet_session.path)]
    command += ["-o", str(tmp_path / "out"), "--no-person", "--broker", redis_server.url]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "could not be sent" not in done.stderr
    names = []
    while not names or names[-1] != "processing_complete":
        names.append(client.next().event)
    client.close()
    assert names[0] == "processing_started"
    assert "dive_detected" in names or "dives_detected" in names


# -- errors and the default ----------------------------------------------------------------


def _serve_fails(tmp_path, *args: str) -> str:
    command = [sys.executable, "-m", "diveanalyzer.serve", str(tmp_path), *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr


@pytest.mark.parametrize("url", ["http://localhost:6379", "redis://localhost:port/0"])
def test_a_bad_broker_url_is_one_line_and_exit_code_2(tmp_path, url):
    err = _serve_fails(tmp_path, "--port", str(free_port()), "--broker", url)
    assert err.startswith("Error: invalid broker URL")


def test_workers_without_broker_is_a_usage_error(tmp_path):
    err = _serve_fails(tmp_path, "--port", str(free_port()), "--workers", "2")
    assert err.startswith("Error: --workers needs --broker")


def test_process_with_a_bad_broker_url_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["process", str(tmp_path / "v.mp4"), "--broker", "http://x"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: invalid broker URL")


def test_the_library_rejects_a_bad_url_at_construction(tmp_path):
    with pytest.raises(BrokerError, match="invalid broker URL"):
        EventServer(tmp_path / "g.html", broker="mysql://localhost")
    with pytest.raises(BrokerError):
        RedisBroker("")


def test_without_broker_health_has_no_broker_and_ids_are_local(serve, tmp_path):
    server = serve("--port", "0")
    assert "broker" not in server.health()


def test_in_process_servers_share_events_through_redis(redis_server, make_server):
    """The unpatched way (each server on its own thread): same events, same ids."""
    servers = [make_server(broker=redis_server.url) for _ in range(2)]
    clients = [fresh_stream(server.get_url()) for server in servers]
    servers[0].emit("tick", {"n": 0})
    servers[1].emit("tick", {"n": 1})
    seen = [sorted(ticks(client.take(2)), key=lambda tick: tick[1]) for client in clients]
    assert seen[0] == seen[1]
    assert metric(servers[0], "diveanalyzer_broker_up") == 1
    assert metric(servers[0], "diveanalyzer_broker_published_total") == 1
    assert metric(servers[1], "diveanalyzer_broker_dropped_total") == 0
    for client in clients:
        client.close()


def test_ids_keep_growing_when_redis_loses_the_counter(redis_server):
    """The counter key gone but not the stream: a new publisher continues after the stream."""
    import redis

    got: list = []
    reader = RedisBroker(redis_server.url, key="lost")
    reader.start(lambda batch, live: got.extend(batch))
    try:
        for number in range(3):
            reader.publish("tick", str(number), 1.0)
        wait_until(lambda: len(got) == 3, what="the first three events")
        redis.Redis.from_url(redis_server.url).delete("lost:last_id")
        newcomer = RedisBroker(redis_server.url, key="lost")  # has seen nothing: floor 0
        newcomer.start()
        newcomer.publish("tick", "3", 1.0)
        assert newcomer.stop(timeout=SOON_S) is True
        wait_until(lambda: len(got) == 4, what="the event after the counter was lost")
    finally:
        assert reader.stop() is True
    assert [(event_id, data) for event_id, _, data, _ in got] == [
        (got[0][0] + n, str(n)) for n in range(4)
    ]
    assert newcomer.published == 1 and newcomer.dropped == 0


def _broker_and_sink(url: str, key: str) -> tuple[RedisBroker, list]:
    got: list = []
    broker = RedisBroker(url, key=key)
    broker.start(lambda batch, live: got.extend(batch))
    return broker, got


def test_events_redis_refuses_for_now_are_sent_once_it_takes_them_again(redis_server, caplog):
    """OOM (maxmemory reached) is a refusal Redis lifts: keep the events, retry, in order."""
    import redis

    admin = redis.Redis.from_url(redis_server.url)
    broker, got = _broker_and_sink(redis_server.url, "oom")
    try:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # every write is refused with OOM
        for number in range(5):
            assert broker.publish("tick", str(number), 1.0) is True
        wait_until(lambda: "refuses events for now" in caplog.text, what="the OOM warning")
        assert (broker.pending, broker.published, broker.dropped) == (5, 0, 0)
        admin.config_set("maxmemory", "0")
        wait_until(lambda: len(got) == 5, what="the kept events once Redis takes them")
    finally:
        assert broker.stop(timeout=SOON_S) is True
        admin.close()
    assert [(event_id, data) for event_id, _, data, _ in got] == [
        (got[0][0] + n, str(n)) for n in range(5)
    ]
    assert (broker.published, broker.dropped) == (5, 0)
    assert caplog.text.count("refuses events for now") == 1  # once per spell, not per retry


def test_an_event_redis_refuses_for_good_is_dropped_and_counted(redis_server):
    """The stream key holds a string (WRONGTYPE): no retry can help, later events go on."""
    import redis

    admin = redis.Redis.from_url(redis_server.url)
    admin.set("clash", "not a stream")
    broker = RedisBroker(redis_server.url, key="clash")
    broker.start()
    try:
        broker.publish("tick", "0", 1.0)
        wait_until(lambda: broker.dropped == 1, what="the refused event counted")
        admin.delete("clash")
        broker.publish("tick", "1", 1.0)
        wait_until(lambda: broker.published == 1, what="the next event written")
    finally:
        assert broker.stop(timeout=SOON_S) is True
        admin.close()
    assert broker.pending == 0


def test_stop_finishes_in_time_while_redis_hangs(make_server):
    """A Redis that accepts connections and never answers must not make stop() overrun."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes handshakes; nobody ever reads or answers
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        server = make_server(broker=url)
        assert server.broker_state == "down"
        assert server.emit("tick", {"n": 0}) is True  # the publisher now waits on Redis
        assert server.stop() is True  # finished within its own deadline
    assert server.broker_unsent == 1
    assert not server.is_running()


def test_history_sets_what_a_server_keeps_for_resume(redis_server, serve):
    served = serve("--port", "0", "--broker", redis_server.url, "--history", "3")
    publish(redis_server.url, 0, 8)

    def kept() -> list[int]:
        events = requests.get(served.url + "/events/history", timeout=SOON_S).json()
        return [event["payload"]["n"] for event in events]

    wait_until(lambda: kept()[-1:] == [7], what="the last event")
    assert kept() == [5, 6, 7]  # only the newest three
