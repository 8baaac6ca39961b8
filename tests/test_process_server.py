"""A real `diveanalyzer process --enable-server` subprocess, watched by a real SSE client."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import sseclient

from diveanalyzer.output.manifest import read_manifest
from diveanalyzer.pipeline import ProcessOptions, process_videos
from tests.server.helpers import free_port

STARTUP_S = 60.0  # a loaded machine imports numpy/OpenCV/PyAV slowly
DETECTION_EVENTS = (
    "splash_detection_complete",
    "motion_detection_complete",
    "person_detection_complete",
)


def start(*args) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "diveanalyzer", "process", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_health(proc: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"process exited early: {proc.communicate()}")
        try:
            if requests.get(f"http://localhost:{port}/health", timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.02)
    pytest.fail("the live server never answered /health")


def stream(port: int):
    """Every event since the first one (history replay), then live ones, until the end."""
    url = f"http://localhost:{port}/events?last_event_id=0"
    response = requests.get(url, stream=True, timeout=(5, 60))
    assert response.headers["Content-Type"].startswith("text/event-stream")
    for event in sseclient.SSEClient(response).events():
        yield event.event, json.loads(event.data)


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_live_events_of_a_real_run(synth_session, tmp_path):
    port = free_port()
    out = tmp_path / "out"
    proc = start(synth_session.path, "-o", out, "--enable-server", "--server-port", port)
    try:
        wait_for_health(proc, port)
        events = list(stream(port))  # ends when the server shuts down after processing
        code, stdout, stderr = finish(proc)
    finally:
        proc.kill()
    assert code == 0, stderr
    types = [t for t, _ in events]
    assert types[0] == "connected"
    assert types[1] == "processing_started" and types[-1] == "processing_complete"
    started = events[1][1]
    assert started["video"] == str(synth_session.path)
    assert started["duration"] == pytest.approx(synth_session.settings.duration, abs=0.1)
    for name in DETECTION_EVENTS:
        assert types.count(name) == 1
    payload = {t: p for t, p in events}
    assert {"peak_count", "threshold_db"} <= set(payload["splash_detection_complete"])
    assert {"burst_count", "proxy_height"} <= set(payload["motion_detection_complete"])
    assert {"departure_count", "confidence_threshold"} <= set(payload["person_detection_complete"])
    detected = [p for t, p in events if t == "dive_detected"]
    assert len(detected) == 2
    assert all({"id", "entry", "takeoff", "start", "end", "confidence"} <= set(d) for d in detected)
    assert payload["dives_detected"]["dive_count"] == 2
    assert {"signal_type", "confidence_threshold"} <= set(payload["dives_detected"])
    extracted = [p for t, p in events if t == "dive_extracted"]
    assert [e["id"] for e in extracted] == [1, 2]
    folder = out / "session"
    for event in extracted:
        assert event["size_bytes"] == (folder / event["clip"]).stat().st_size
        assert set(event["thumbnails"]) == {"takeoff", "entry", "end"}
    assert payload["extraction_complete"] == {"total_dives": 2, "successful": 2, "failed": 0}
    assert payload["processing_complete"]["status"] == "success"
    assert payload["processing_complete"]["output_directory"] == str(folder)
    progress = [p for t, p in events if t == "progress"]
    assert len(progress) >= 2 and all({"stage", "percent", "eta_s"} <= set(p) for p in progress)
    order = [types.index(n) for n in ("processing_started", *DETECTION_EVENTS)]
    order += [types.index(n) for n in ("dives_detected", "dive_extracted", "extraction_complete")]
    assert order == sorted(order)
    assert f"python -m diveanalyzer.serve {folder}" in stdout


@pytest.fixture
def reviewed_before(synth_quiet_session, tmp_path) -> tuple[Path, Path]:
    """A video processed once already (library call), ready to be processed again."""
    video = tmp_path / "quiet.mp4"
    shutil.copy(synth_quiet_session.path, video)
    out = tmp_path / "out"
    [outcome] = process_videos([video], ProcessOptions(out_dir=out))
    assert outcome.ok
    return video, outcome.folder


def test_ctrl_c_mid_run_leaves_no_session_looking_complete(reviewed_before):
    video, folder = reviewed_before
    port = free_port()
    proc = start(video, "-o", folder.parent, "--enable-server", "--server-port", port)
    try:
        wait_for_health(proc, port)
        for event_type, _ in stream(port):
            if event_type == "processing_started":
                break
        proc.send_signal(signal.SIGINT)
        code, _stdout, stderr = finish(proc)
    finally:
        proc.kill()
    assert code == 130
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if line.startswith("Error:")] == [
        "Error: interrupted; the video being processed was left incomplete"
    ]
    assert read_manifest(folder) is None
    assert not (folder / "review_gallery.html").exists()
    assert not list(folder.rglob(".*.part.*"))


def test_keep_serving_serves_the_gallery_until_ctrl_c(reviewed_before):
    video, folder = reviewed_before
    port = free_port()
    proc = start(video, "-o", folder.parent, "--enable-server", "--server-port", port,
                 "--keep-serving", "--no-person")  # fmt: skip
    try:
        wait_for_health(proc, port)
        for event_type, _ in stream(port):
            if event_type == "processing_complete":
                break
        base = f"http://localhost:{port}"
        assert requests.get(f"{base}/health", timeout=5).json()["gallery_ready"] is True
        page = requests.get(f"{base}/", timeout=5)
        assert page.ok and page.headers["Content-Type"].startswith("text/html")
        clip = requests.get(f"{base}/dive_001.mp4", timeout=5)
        assert clip.ok and clip.content == (folder / "dive_001.mp4").read_bytes()
        while "Serving the review gallery" not in proc.stdout.readline():
            assert proc.poll() is None
        assert proc.poll() is None  # still serving
        proc.send_signal(signal.SIGINT)
        code, _stdout, stderr = finish(proc)
    finally:
        proc.kill()
    assert code == 0, stderr
    assert "Traceback" not in stderr
