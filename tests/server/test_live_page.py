"""The live page's script (views/live.html) against a real server, run by Node.js.

No browser is installed on these machines; Node (>= 20, with its experimental EventSource)
runs the page's own script with a minimal DOM stand-in, so the real EventSource, fetch and
reconnection logic talk to a real server.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from diveanalyzer.server.app import LIVE_PAGE
from tests.server.helpers import SOON_S, subscribers, wait_until

HARNESS = Path(__file__).with_name("live_page_harness.mjs")
NODE = shutil.which("node")


def _node_has_eventsource() -> bool:
    if NODE is None:
        return False
    probe = [
        NODE,
        "--experimental-eventsource",
        "-e",
        "process.exit(typeof EventSource === 'function' ? 0 : 1)",
    ]
    return subprocess.run(probe, capture_output=True, timeout=60).returncode == 0


pytestmark = pytest.mark.skipif(
    not _node_has_eventsource(),
    reason="running the page's script needs Node.js >= 20 (with --experimental-eventsource)",
)


class PageRunner:
    """The harness process; `states` yields its JSON state lines, `lines` gets every line."""

    def __init__(self, base_url: str) -> None:
        self.process = subprocess.Popen(
            [
                NODE,
                "--experimental-eventsource",
                "--no-warnings",
                str(HARNESS),
                base_url,
                str(LIVE_PAGE),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put("")

    def wait_for(self, predicate, what: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=SOON_S)
            except queue.Empty:
                pytest.fail(f"live page never showed {what}")
            if not line and self.process.poll() is not None:
                pytest.fail(f"live page harness exited: {self.process.stderr.read()}")
            if predicate(line):
                return line

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def _state(line: str) -> dict:
    return json.loads(line) if line.startswith("{") else {}


def test_live_page_shows_events_and_switches_to_the_gallery(server, gallery_path):
    page = PageRunner(server.get_url())
    try:
        page.wait_for(lambda line: _state(line).get("state") == "open", "a live connection")
        wait_until(lambda: subscribers(server) == 1, what="the page's stream")

        server.emit("dives_detected", {"dive_count": 5})
        server.emit("brand_new_type", {"note": "learned from /events/history"})

        def shows_both(line: str) -> bool:
            shown = {tuple(item[1:]) for item in _state(line).get("items", [])}
            return {
                ("dives_detected", '{"dive_count":5}'),
                ("brand_new_type", '{"note":"learned from /events/history"}'),
            } <= shown

        page.wait_for(shows_both, "both events")

        gallery_path.write_text("<!doctype html><title>Gallery</title>")
        server.emit("processing_complete", {"status": "success"})
        page.wait_for(lambda line: line == "RELOAD", "the switch to the gallery")
    finally:
        page.close()
