"""Both ways to run: in a monkey-patched program (a subprocess, since pytest itself is not
patched) and in a plain one (this process: see the other test files)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.server.helpers import SOON_S, Stream, free_port, get_json, payload

PROGRAM = Path(__file__).with_name("patched_program.py")
REPO = Path(__file__).resolve().parents[2]


class PatchedProgram:
    """The patched program as a subprocess, one command and one reply line at a time."""

    def __init__(self, gallery: Path, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(PROGRAM), str(gallery), str(port)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def reply(self) -> list[str]:
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"patched program died: {self.process.stderr.read()}")
        return line.split()

    def command(self, text: str) -> list[str]:
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        return self.reply()

    def close(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
        try:
            self.process.wait(timeout=SOON_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode, self.process.stderr.read()


@pytest.fixture
def patched(tmp_path):
    program = PatchedProgram(tmp_path / "review_gallery.html", free_port())
    yield program
    program.close()


def test_patched_program_serves_on_its_main_hub_and_takes_emits_from_anywhere(patched):
    word, started, url, native_threads = patched.reply()
    assert (word, started) == ("START", "True")
    assert native_threads == "1"  # no server thread: the main thread's hub serves

    stream = Stream(url + "/events")
    try:
        assert stream.next().event == "connected"
        assert patched.command("emit 25") == ["EMITTED", "175"]
        received = stream.take(175)
        order: dict[str, list[int]] = {}
        for event in received:
            data = payload(event)
            order.setdefault(data["who"], []).append(data["seq"])
        whos = ["main"] + [f"g{n}" for n in range(3)] + [f"p{n}" for n in range(3)]
        assert order == {who: list(range(25)) for who in whos}
        assert [int(e.id) for e in received] == list(range(1, 176))
        assert requests.get(url + "/health", timeout=SOON_S).json()["subscribers"] == 1

        assert patched.command("stop") == ["STOPPED", "True", "False"]
        assert stream.rest() == []  # the open stream was ended by stop()
    finally:
        stream.close()

    assert patched.command("start")[:2] == ["START", "True"]
    history = requests.get(url + "/events/history?limit=1", timeout=SOON_S).json()
    assert history[0]["id"] == 175
    returncode, stderr = patched.close()
    assert returncode == 0, stderr
    assert "Traceback" not in stderr


def test_patched_program_reports_a_busy_port(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        program = PatchedProgram(tmp_path / "g.html", blocker.getsockname()[1])
        try:
            assert program.reply()[:2] == ["START", "False"]
            reply = program.command("start")
            assert reply[:2] == ["START", "False"] and "in use" in " ".join(reply)
        finally:
            returncode, stderr = program.close()
    assert returncode == 0
    assert "Traceback" not in stderr


def test_unpatched_program_keeps_serving_while_the_main_thread_blocks(server):
    """Plain blocking code in the main thread (no gevent cooperation) does not stall it."""
    results: list[dict] = []

    def client() -> None:
        results.append(get_json(server, "/health"))

    worker = threading.Thread(target=client)
    worker.start()
    time.sleep(0.3)  # a real, non-cooperative sleep on the main thread
    worker.join(SOON_S)
    assert results and results[0]["status"] == "ok"
