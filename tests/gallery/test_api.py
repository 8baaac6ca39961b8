"""Every endpoint of the review gallery against a real server on a real processed session."""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import re
import shutil
import subprocess
import sys

import requests

from tests.gallery.conftest import many_dives, post_review, read_manifest
from tests.server.helpers import SOON_S, Stream, payload


def _config(page_html: str) -> dict:
    found = re.search(r'<script id="config" type="application/json">(.*?)</script>', page_html)
    assert found, "the page carries no config"
    return json.loads(found.group(1))


def test_root_is_the_session_page_with_the_manifest(server, session_dir):
    page = requests.get(server.get_url() + "/", timeout=SOON_S)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    config = _config(page.text)
    assert config["base"] == "" and config["token_required"] is False
    assert [d["id"] for d in config["manifest"]["dives"]] == [1, 2]
    assert '<script type="module" src="/static/app.js' in page.text
    for asset in ("/static/app.js", "/static/cards.js", "/static/live.js", "/static/app.css"):
        assert requests.get(server.get_url() + asset, timeout=SOON_S).status_code == 200


def test_api_session_returns_the_manifest_with_review_fields(server, session_dir):
    body = requests.get(server.get_url() + "/api/session", timeout=SOON_S).json()
    on_disk = read_manifest(session_dir)
    assert body["video"] == on_disk["video"]
    for served, stored in zip(body["dives"], on_disk["dives"], strict=True):
        assert served["id"] == stored["id"] and served["clip"] == stored["clip"]
        assert (served["review"], served["star"], served["note"]) == ("pending", False, "")


def test_review_updates_the_manifest_and_reaches_every_open_stream(server, session_dir):
    streams = [Stream(server.get_events_url()) for _ in range(2)]
    try:
        for stream in streams:
            assert stream.next().event == "connected"
        change = {"review": "keep", "star": True, "note": "clean entry ✓"}
        response = post_review(server, 2, change)
        assert response.status_code == 200, response.text
        assert response.json()["dive"]["review"] == "keep"

        dive = read_manifest(session_dir)["dives"][1]
        assert (dive["id"], dive["review"], dive["star"], dive["note"]) == (
            2,
            "keep",
            True,
            change["note"],
        )
        assert read_manifest(session_dir)["dives"][0].get("review") == "pending"
        assert not list(session_dir.glob(".*part*")), "a temporary file was left behind"
        for stream in streams:
            event = stream.next()
            assert event.event == "dive_reviewed"
            assert payload(event)["id"] == 2 and payload(event)["session"] == ""
            assert payload(event)["dive"]["note"] == change["note"]
    finally:
        for stream in streams:
            stream.close()


def test_partial_changes_keep_the_other_fields(server, session_dir):
    assert post_review(server, 1, {"star": True}).status_code == 200
    assert post_review(server, 1, {"note": "n"}).status_code == 200
    assert post_review(server, 1, {"review": "reject"}).status_code == 200
    dive = read_manifest(session_dir)["dives"][0]
    assert (dive["review"], dive["star"], dive["note"]) == ("reject", True, "n")


def test_every_review_raises_the_dives_revision(server, session_dir):
    replies = [post_review(server, 2, change).json()["dive"] for change in ({"star": True},) * 3]
    assert [dive["revision"] for dive in replies] == [1, 2, 3]
    on_disk = read_manifest(session_dir)["dives"]
    assert [dive.get("revision") for dive in on_disk] == [None, 3]


def test_concurrent_reviews_from_many_viewers_never_lose_one(make_server, session_dir):
    many_dives(session_dir, 24)
    server = make_server(session_dir)
    changes = [(n, {"review": "keep"}) for n in range(1, 25)]
    changes += [(n, {"star": True}) for n in range(1, 25)]
    changes += [(n, {"note": f"note {n}"}) for n in range(1, 25)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda c: post_review(server, *c).status_code, changes))
    assert statuses == [200] * len(changes)
    for dive in read_manifest(session_dir)["dives"]:
        assert (dive["review"], dive["star"], dive["note"]) == ("keep", True, f"note {dive['id']}")


def test_clips_answer_range_requests(server, session_dir):
    clip = (session_dir / "dive_001.mp4").read_bytes()
    url = server.get_url() + "/dive_001.mp4"
    whole = requests.get(url, timeout=SOON_S)
    assert whole.status_code == 200 and whole.content == clip
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"] == "video/mp4"
    part = requests.get(url, headers={"Range": "bytes=100-1099"}, timeout=SOON_S)
    assert part.status_code == 206 and part.content == clip[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(clip)}"
    tail = requests.get(url, headers={"Range": "bytes=-500"}, timeout=SOON_S)
    assert tail.status_code == 206 and tail.content == clip[-500:]
    beyond = requests.get(url, headers={"Range": f"bytes={len(clip) + 10}-"}, timeout=SOON_S)
    assert beyond.status_code == 416
    thumb = requests.get(server.get_url() + "/thumbs/dive_001_entry.jpg", timeout=SOON_S)
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"


def test_csv_export_has_a_row_per_dive_with_its_review(server, session_dir):
    post_review(server, 1, {"review": "keep", "note": '=HYPERLINK("x")'})
    response = requests.get(server.get_url() + "/export.csv", timeout=SOON_S)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    manifest = read_manifest(session_dir)
    assert [int(r["id"]) for r in rows] == [d["id"] for d in manifest["dives"]]
    assert rows[0]["review"] == "keep" and rows[1]["review"] == "pending"
    assert rows[0]["note"] == '\'=HYPERLINK("x")', "a formula must not run in a spreadsheet"
    first = manifest["dives"][0]
    assert float(rows[0]["entry"]) == first["entry"]
    assert float(rows[0]["duration"]) == round(first["end"] - first["start"], 3)
    assert rows[0]["signals"] == " + ".join(first["signals"])


def test_json_export_carries_video_and_reviewed_dives(server, session_dir):
    post_review(server, 2, {"star": True})
    body = requests.get(server.get_url() + "/export.json", timeout=SOON_S).json()
    assert body["video"] == read_manifest(session_dir)["video"]
    assert [d["star"] for d in body["dives"]] == [False, True]


def test_edl_export_lists_kept_dives_as_cmx3600_events(server, session_dir):
    manifest = read_manifest(session_dir)
    fps = round(manifest["video"]["fps"])
    post_review(server, 2, {"review": "keep"})
    text = requests.get(server.get_url() + "/export.edl", timeout=SOON_S).text
    lines = text.split("\r\n")
    assert lines[0] == "TITLE: pool_day" and lines[1] == "FCM: NON-DROP FRAME"
    events = [line for line in lines if re.match(r"\d{3}  ", line)]
    assert len(events) == 1, "only the kept dive is listed"
    dive = manifest["dives"][1]

    def timecode(seconds: float) -> str:
        frames = round(seconds * fps)
        return f"00:{frames // fps // 60:02d}:{frames // fps % 60:02d}:{frames % fps:02d}"

    fields = events[0].split()
    assert fields[:4] == ["001", "AX", "AA/V", "C"]
    assert fields[4:6] == [timecode(dive["start"]), timecode(dive["end"])]
    length = round(dive["end"] * fps) - round(dive["start"] * fps)
    assert (
        fields[6] == "00:00:00:00" and fields[7] == f"00:00:{length // fps:02d}:{length % fps:02d}"
    )
    assert "* FROM CLIP NAME: session.mp4" in lines
    unknown = requests.get(server.get_url() + "/export.xml", timeout=SOON_S)
    assert unknown.status_code == 404


def test_index_page_lists_sessions_and_serves_each(make_server, processed_session, tmp_path):
    root = tmp_path / "sessions"
    for name in ("morning", "evening"):
        shutil.copytree(processed_session, root / name)
    server = make_server(root)
    base = server.get_url()
    post_review(server, 1, {"review": "keep"}, base="/s/evening")

    index = requests.get(base + "/", timeout=SOON_S)
    assert index.status_code == 200
    rows = re.findall(r"<tr>\s*(<td.*?)</tr>", index.text, re.S)
    assert len(rows) == 2
    evening = next(r for r in rows if 'href="/s/evening/"' in r)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", evening, re.S)
    assert "session.mp4" in cells[1] and re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d", cells[2])
    assert cells[3:] == ["2", "1 / 2", "1"]

    page = requests.get(base + "/s/morning/", timeout=SOON_S)
    assert _config(page.text)["base"] == "/s/morning"
    assert requests.get(base + "/s/morning", timeout=SOON_S, allow_redirects=False).status_code in (
        302,
        303,
    )
    assert (
        requests.get(base + "/s/evening/api/session", timeout=SOON_S).json()["dives"][0]["review"]
        == "keep"
    )
    assert read_manifest(root / "morning")["dives"][0]["review"] == "pending"
    clip = requests.get(base + "/s/morning/dive_002.mp4", timeout=SOON_S)
    assert clip.content == (root / "morning" / "dive_002.mp4").read_bytes()
    assert "dive_001.mp4" in requests.get(base + "/s/morning/export.csv", timeout=SOON_S).text
    assert requests.get(base + "/s/nowhere/", timeout=SOON_S).status_code == 404


def test_live_mode_page_before_the_manifest_exists(make_server, tmp_path):
    folder = tmp_path / "running"
    folder.mkdir()
    server = make_server(folder)
    page = requests.get(server.get_url() + "/", timeout=SOON_S)
    assert page.status_code == 200
    assert _config(page.text)["manifest"] is None
    missing = requests.get(server.get_url() + "/api/session", timeout=SOON_S)
    assert missing.status_code == 404 and "processing" in missing.json()["message"]
    assert requests.get(server.get_url() + "/live", timeout=SOON_S).status_code == 200


def test_updates_from_another_process_are_not_lost(server, session_dir):
    """Another program (here a second process) reviewing the same folder at the same time."""
    many_dives(session_dir, 24)
    script = (
        "import sys; from pathlib import Path\n"
        "from diveanalyzer.server.session_store import SessionStore\n"
        "store = SessionStore(Path(sys.argv[1]))\n"
        "print('ready', flush=True); sys.stdin.readline()\n"
        "for r in range(3):\n"
        "    for n in range(1, 25): store.update(n, {'note': f'round {r} of dive {n}'})\n"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", script, str(session_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdout.readline().strip() == "ready"
    other.stdin.write("go\n")
    other.stdin.flush()
    changes = [(n, {"review": review}) for review in ("keep", "reject") for n in range(1, 25)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda c: post_review(server, *c).status_code, changes))
    assert other.wait(timeout=60) == 0
    assert statuses == [200] * len(changes)
    for dive in read_manifest(session_dir)["dives"]:
        assert dive["note"] == f"round 2 of dive {dive['id']}"
        assert dive["review"] in ("keep", "reject")
