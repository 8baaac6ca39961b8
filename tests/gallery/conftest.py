"""Fixtures for the review gallery: a real processed session, real servers, real clients.

``processed_session`` runs the real pipeline once per test run on the small synthetic
session video (``synth_session``): two dives, real clips, real thumbnails, a real manifest.
Tests get their own copy (``session_dir``) so reviews never leak between them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from diveanalyzer.pipeline import ProcessOptions, process_video
from diveanalyzer.server import EventServer
from tests.server.helpers import SOON_S, closed_afterwards, start_on_free_port


@pytest.fixture(scope="session")
def processed_session(synth_session, tmp_path_factory) -> Path:
    """The output folder of the real pipeline for ``synth_session`` (read-only)."""
    out = tmp_path_factory.mktemp("processed")
    folder = out / "pool_day"
    outcome = process_video(synth_session.path, folder, ProcessOptions(out_dir=out))
    assert outcome.ok and outcome.dives == 2, outcome
    return folder


@pytest.fixture
def session_dir(processed_session, tmp_path) -> Path:
    """A private copy of the processed session folder."""
    return Path(shutil.copytree(processed_session, tmp_path / "pool_day"))


@pytest.fixture
def make_server() -> Iterator[Callable[..., EventServer]]:
    """Start an `EventServer` for a folder (its gallery path inside it); stopped afterwards."""

    def make(folder: Path, host: str = "127.0.0.1", **settings) -> EventServer:
        settings.setdefault("heartbeat_interval", 30.0)
        settings.setdefault("retry_ms", 300)
        gallery = Path(folder) / "review_gallery.html"
        if host == "127.0.0.1":
            return start_on_free_port(gallery, **settings)
        server = EventServer(gallery, host=host, port=0, **settings)
        assert server.start(), server.start_error
        return server

    with closed_afterwards(make, EventServer.stop) as tracked:
        yield tracked


@pytest.fixture
def server(make_server, session_dir) -> EventServer:
    """A loopback server on a copy of the processed session."""
    return make_server(session_dir)


def read_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / "dives.json").read_text(encoding="utf-8"))


def same_origin(server: EventServer) -> dict:
    """Headers a same-origin browser fetch sends with a JSON body."""
    return {"Origin": server.get_url(), "Content-Type": "application/json"}


def post_review(server: EventServer, dive_id, body, headers=None, base: str = ""):
    """POST a review change the way the page does (same origin, JSON)."""
    return requests.post(
        f"{server.get_url()}{base}/api/dives/{dive_id}",
        data=json.dumps(body) if not isinstance(body, bytes | str) else body,
        headers={**same_origin(server), **(headers or {})},
        timeout=SOON_S,
    )


def assert_json_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and body["message"], body
    return body


def many_dives(folder: Path, count: int) -> dict:
    """Turn a session's manifest into one with ``count`` dives (copies of the real ones)."""
    manifest = read_manifest(folder)
    real = manifest["dives"]
    manifest["dives"] = [{**real[n % len(real)], "id": n + 1} for n in range(count)]
    (folder / "dives.json").write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell a failed test."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
