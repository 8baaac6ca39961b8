"""``python -m diveanalyzer.serve DIR`` as a real subprocess, and its library function."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import gevent.event
import pytest
import requests
from click.testing import CliRunner

from diveanalyzer.errors import PortInUseError, UsageError
from diveanalyzer.serve import main, serve_directory
from tests.server.helpers import SOON_S, Stream, free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLE_PAGE = "<!doctype html><title>sample gallery</title><h1>Sample review gallery</h1>"


@pytest.fixture
def sample(tmp_path) -> Path:
    """A session folder holding only a (hand-written) review_gallery.html."""
    folder = tmp_path / "sample_session"
    folder.mkdir()
    (folder / "review_gallery.html").write_text(SAMPLE_PAGE)
    return folder


def _serve(directory: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "diveanalyzer.serve", str(directory), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=SOON_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"serve did not exit: {err}")
    return process.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serves_the_sample_and_exits_cleanly_on_a_signal(sig, sample):
    process = _serve(sample, free_port())
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, f"no URL in {line!r} (stderr: {process.stderr.read() if not line else ''})"
        base = url.group(0)
        page = requests.get(base + "/", timeout=SOON_S)
        assert page.status_code == 200 and "sample" in page.text.lower()
        assert requests.get(base + "/health", timeout=SOON_S).json()["gallery_ready"] is True
        stream = Stream(base + "/events")
        assert stream.next().event == "connected"
    finally:
        process.send_signal(sig)
    returncode, _, err = _finish(process)
    assert returncode == 0, err
    assert "Traceback" not in err
    assert stream.rest() == []  # the open stream was closed, not cut mid-message
    stream.close()


def test_serves_the_live_page_for_a_folder_without_gallery(tmp_path, sample):
    process = _serve(tmp_path, free_port())
    try:
        base = re.search(r"http://\S+?(?=/?\s)", process.stdout.readline()).group(0)
        page = requests.get(base + "/", timeout=SOON_S)
        assert "EventSource" in page.text
        shutil.copy(sample / "review_gallery.html", tmp_path / "review_gallery.html")
        assert "sample" in requests.get(base + "/", timeout=SOON_S).text.lower()
    finally:
        process.send_signal(signal.SIGTERM)
    assert _finish(process)[0] == 0


def test_busy_port_is_one_line_and_exit_code_2(sample):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        returncode, out, err = _finish(_serve(sample, blocker.getsockname()[1]))
    assert returncode == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "already in use" in err


def test_missing_directory_is_one_line_and_exit_code_2(tmp_path):
    returncode, out, err = _finish(_serve(tmp_path / "nope", free_port()))
    assert out == ""
    assert returncode == 2
    assert len(err.strip().splitlines()) == 1 and "no such directory" in err


def test_help_describes_the_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--host" in result.output


def test_library_function_serves_until_stopped(tmp_path):
    """The function the command calls, in this (unpatched) process."""
    stop = gevent.event.Event()
    seen: list[dict] = []

    def on_ready(server) -> None:
        seen.append(requests.get(server.get_url() + "/health", timeout=SOON_S).json())
        stop.set()

    serve_directory(tmp_path, port=free_port(), on_ready=on_ready, stop=stop)
    assert seen and seen[0]["status"] == "ok" and seen[0]["gallery_ready"] is False


def test_library_function_raises_specific_errors(tmp_path):
    with pytest.raises(UsageError):
        serve_directory(tmp_path / "missing", port=free_port())
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        with pytest.raises(PortInUseError):
            serve_directory(tmp_path, port=blocker.getsockname()[1])


def test_library_function_in_a_plain_program_stops_on_sigterm(sample):
    """Unpatched caller: the server has its own thread, the main thread waits for the signal."""
    code = (
        "from diveanalyzer.serve import serve_directory\n"
        "announce = lambda server: print(server.get_url(), flush=True)\n"
        f"serve_directory({str(sample)!r}, port=0, on_ready=announce)\n"
        "print('returned', flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert requests.get(url + "/health", timeout=SOON_S).json()["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
    returncode, out, err = _finish(process)
    assert (returncode, out.strip()) == (0, "returned"), err
