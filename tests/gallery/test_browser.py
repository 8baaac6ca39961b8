"""The review gallery in a real browser: Debian's Chromium driven by Playwright.

Skipped (with the reason) when the ``playwright`` package or ``/usr/bin/chromium`` is
missing. A failing test leaves a screenshot of each of its pages in ``test-artifacts/``, and
a log of its console messages, responses and failed requests.
Pages are opened with ``bypass_csp`` only because Playwright's waiting helpers evaluate
strings, which the app's Content-Security-Policy (rightly) forbids.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests

from diveanalyzer.server import EventServer
from diveanalyzer.server.session_store import SessionStore
from tests.gallery.conftest import post_review, read_manifest
from tests.server.helpers import SOON_S

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        sync_playwright is None, reason="the browser tests need `pip install playwright`"
    ),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="the browser tests need Debian's chromium (/usr/bin/chromium)"
    ),
]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, request, make_server):
    """Open a URL in a fresh browser context; JS errors fail the test; screenshots on failure.

    Depends on ``make_server`` so that pages close before their servers stop (no waiting
    for open streams)."""
    pages = []

    def open_(url: str, **context_options):
        context_options.setdefault("viewport", {"width": 1280, "height": 800})
        context = browser.new_context(bypass_csp=True, **context_options)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.js_errors = []
        page.on("pageerror", lambda error: page.js_errors.append(str(error)))
        page.trail = []  # what happened on the page, written out when the test fails
        page.on("console", lambda msg: page.trail.append(f"console.{msg.type}: {msg.text}"))
        page.on("requestfailed", lambda req: page.trail.append(f"failed: {describe(req)}"))
        page.on("response", lambda res: page.trail.append(f"{res.status} {describe(res.request)}"))
        page.goto(url)
        pages.append(page)
        return page

    yield open_
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for n, page in enumerate(pages):
        if failed:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{n}.png"), full_page=True)
            (ARTIFACTS / f"{request.node.name}-{n}.log").write_text("\n".join(page.trail) + "\n")
        errors = page.js_errors
        page.context.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def describe(request) -> str:
    failure = f" ({request.failure})" if request.failure else ""
    return f"{request.method} {request.url}{failure}"


def mmss(seconds: float) -> str:
    tenths = round(seconds * 10)
    return f"{tenths // 600:02d}:{(tenths % 600) / 10:04.1f}"


def card_ids(page, visible_only: bool = True) -> list[str]:
    selector = ".card:not([hidden])" if visible_only else ".card"
    return page.eval_on_selector_all(selector, "cards => cards.map(c => c.dataset.id)")


# -- the session page ---------------------------------------------------------------------------


def test_page_loads_with_cards_times_and_hover_frames(open_page, make_server, session_dir):
    manifest = read_manifest(session_dir)
    manifest["dives"][1]["note"] = '<img src=x onerror="window.__xss = 1">'
    (session_dir / "dives.json").write_text(json.dumps(manifest))
    server = make_server(session_dir)
    page = open_page(server.get_url() + "/")

    page.wait_for_selector("#conn[data-state=open]")
    assert card_ids(page) == ["1", "2"]
    for dive in manifest["dives"]:
        text = page.inner_text(f"#dive-{dive['id']}")
        assert f"Dive {dive['id']}" in text
        assert f"takeoff {mmss(dive['takeoff'])}" in text and f"entry {mmss(dive['entry'])}" in text
        assert f"clip {dive['end'] - dive['start']:.1f} s" in text
        assert f"confidence {dive['confidence']:.2f}" in text
        assert "PENDING" in text.upper()
        tags = page.eval_on_selector_all(
            f"#dive-{dive['id']} .tag", "t => t.map(x => x.textContent)"
        )
        assert tags == dive["signals"]
    assert page.inner_text("#counts").startswith("2 dives · 0 kept")

    note = page.locator("#dive-2 .note")
    assert note.inner_text() == manifest["dives"][1]["note"]
    assert note.locator("img").count() == 0 and page.evaluate("window.__xss") is None

    image = page.locator("#dive-1 .thumb img")
    page.wait_for_function(
        "document.querySelector('#dive-1 .thumb img').naturalWidth > 0", timeout=WAIT_MS
    )
    assert image.get_attribute("src").endswith("/thumbs/dive_001_entry.jpg")
    box = page.locator("#dive-1 .thumb").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2)
    assert image.get_attribute("src").endswith("_takeoff.jpg")
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    assert image.get_attribute("src").endswith("_end.jpg")
    assert page.inner_text("#dive-1 .frame-label") == "end"
    download = page.locator("#dive-1 a.download")
    assert download.get_attribute("href") == "/dive_001.mp4"
    assert download.get_attribute("download") is not None
    assert page.get_attribute("#x-edl", "href") == "/export.edl"


def test_player_plays_clips_and_moves_between_dives(open_page, server):
    page = open_page(server.get_url() + "/")
    page.click("#dive-1 .play")
    page.wait_for_selector("#player:not([hidden])")
    assert page.inner_text("#p-title") == "Dive 1"
    page.wait_for_function("document.getElementById('p-video').readyState >= 2")
    assert page.evaluate("document.getElementById('p-video').videoWidth") == 480
    assert page.get_attribute("#p-video", "src").endswith("/dive_001.mp4")

    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.getElementById('p-title').textContent === 'Dive 2'")
    page.wait_for_function(
        "(v => v.src.endsWith('/dive_002.mp4') && v.readyState >= 2)"
        "(document.getElementById('p-video'))"
    )
    page.evaluate("document.getElementById('p-video').pause()")
    page.keyboard.press(" ")
    page.wait_for_function("!document.getElementById('p-video').paused")
    page.keyboard.press(" ")
    page.wait_for_function("document.getElementById('p-video').paused")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("document.getElementById('p-title').textContent === 'Dive 1'")
    page.keyboard.press("Escape")
    page.wait_for_selector("#player", state="hidden")


def test_a_late_reply_does_not_undo_a_newer_review(open_page, server):
    """Replies and dive_reviewed events come on different connections, in any order."""
    page = open_page(server.get_url() + "/")
    page.wait_for_selector("#conn[data-state=open]")
    held = []

    def hold_the_first_reply(route):
        if held:
            route.continue_()
        else:  # the server applies it now; the page gets its reply when the test says
            held.append((route, route.fetch()))

    page.route("**/api/dives/2", hold_the_first_reply)
    page.click("#dive-2 .star-toggle")
    page.wait_for_selector("#dive-2[data-star=true]")  # shown from the dive_reviewed event
    page.click("#dive-2 .star-toggle")
    page.wait_for_selector("#dive-2[data-star=false]")
    route, stale_reply = held.pop()
    assert stale_reply.json()["dive"]["star"] is True
    with page.expect_request_finished(lambda request: "/api/dives/2" in request.url):
        route.fulfill(response=stale_reply)
    page.evaluate("() => new Promise((done) => setTimeout(() => setTimeout(done, 50), 0))")
    assert page.get_attribute("#dive-2", "data-star") == "false"


def test_filters_sort_and_keyboard_shortcuts(open_page, server, session_dir):
    page = open_page(server.get_url() + "/")
    page.wait_for_selector("#conn[data-state=open]")

    page.keyboard.press("ArrowRight")
    page.wait_for_selector("#dive-1.selected")
    page.keyboard.press("k")
    page.wait_for_selector("#dive-1[data-review=keep]")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("#dive-2.selected")
    page.keyboard.press("r")
    page.wait_for_selector("#dive-2[data-review=reject]")
    page.keyboard.press("s")
    page.wait_for_selector("#dive-2[data-star=true]")
    dives = read_manifest(session_dir)["dives"]
    assert [(d["review"], d["star"]) for d in dives] == [("keep", False), ("reject", True)]

    page.keyboard.press("?")
    page.wait_for_selector("#help:not([hidden])")
    page.keyboard.press("Escape")
    page.wait_for_selector("#help", state="hidden")
    page.keyboard.press("Enter")
    page.wait_for_selector("#player:not([hidden])")
    assert page.inner_text("#p-title") == "Dive 2"
    page.keyboard.press("k")  # K in the player: dive 2 from rejected to kept
    page.wait_for_selector("#dive-2[data-review=keep]")
    page.keyboard.press("Escape")

    for review, expected in [("keep", ["1", "2"]), ("reject", []), ("star", ["2"])]:
        page.select_option("#f-review", review)
        assert card_ids(page) == expected
    page.select_option("#f-review", "pending")
    assert "No dive matches" in page.inner_text("#empty")
    page.select_option("#f-review", "all")
    confidences = {str(d["id"]): d["confidence"] for d in dives}
    page.select_option("#f-conf", "0.9")
    assert card_ids(page) == [k for k, c in confidences.items() if c >= 0.9]
    page.select_option("#f-conf", "0")
    page.select_option("#f-sort", "confidence")
    assert card_ids(page) == sorted(confidences, key=lambda k: -confidences[k])
    page.select_option("#f-sort", "time")
    assert card_ids(page) == ["1", "2"]


# -- several viewers, live updates, reconnection ------------------------------------------------


def test_a_review_in_one_page_shows_up_in_another(open_page, server, session_dir):
    first = open_page(server.get_url() + "/")
    second = open_page(server.get_url() + "/")
    for page in (first, second):
        page.wait_for_selector("#conn[data-state=open]")
    first.click("#dive-2 .keep")
    second.wait_for_selector("#dive-2[data-review=keep]")
    second.click("#dive-1 .star-toggle")
    first.wait_for_selector("#dive-1[data-star=true]")
    assert first.inner_text("#counts").startswith("2 dives · 1 kept")
    dives = read_manifest(session_dir)["dives"]
    assert (dives[0]["star"], dives[1]["review"]) == (True, "keep")


def test_live_dives_appear_without_reload(open_page, make_server, processed_session, tmp_path):
    folder = tmp_path / "running"
    folder.mkdir()
    server = make_server(folder)
    page = open_page(server.get_url() + "/")
    page.wait_for_selector("#conn[data-state=open]")
    page.evaluate("window.__sameDocument = true")
    dives = read_manifest(processed_session)["dives"]

    server.emit("processing_started", {"video": "/videos/session.mp4", "duration": 20.0})
    server.emit("progress", {"stage": "audio", "percent": 42.0, "eta_s": 12.0})
    page.wait_for_function("document.getElementById('eta').textContent.startsWith('42 %')")
    assert page.inner_text("#stage") == "Listening for splashes"
    assert "12 s left" in page.inner_text("#eta")
    assert page.get_attribute("#bar", "aria-valuenow") == "42"

    detected = {k: v for k, v in dives[0].items() if k not in ("clip", "thumbnails", "review")}
    server.emit("dive_detected", detected)
    page.wait_for_selector("#dive-1")
    assert "extracting" in page.inner_text("#dive-1 .thumb")
    for name in ("dive_001.mp4", "thumbs"):
        copy = shutil.copytree if name == "thumbs" else shutil.copy
        copy(processed_session / name, folder / name)
    server.emit(
        "dive_extracted",
        {"id": 1, "clip": dives[0]["clip"], "thumbnails": dives[0]["thumbnails"], "size_bytes": 1},
    )
    page.wait_for_selector("#dive-1 .thumb img")
    second = {k: v for k, v in dives[1].items() if k not in ("clip", "thumbnails", "review")}
    server.emit("dive_detected", second)
    server.emit("dive_detected", second)  # a repeat must not double the card
    page.wait_for_selector("#dive-2")
    assert card_ids(page, visible_only=False) == ["1", "2"]

    for name in ("dive_002.mp4", "dives.json", "review_gallery.html"):
        shutil.copy(processed_session / name, folder / name)
    server.emit("processing_complete", {"status": "success", "output_directory": str(folder)})
    page.wait_for_selector("#livebox", state="hidden")
    page.wait_for_selector("#dive-2 .thumb img")
    assert page.inner_text("#title") == "session.mp4"
    assert card_ids(page, visible_only=False) == ["1", "2"]
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"


def test_page_reconnects_after_a_server_restart_and_catches_up(open_page, make_server, session_dir):
    server = make_server(session_dir)
    port = int(server.get_url().rsplit(":", 1)[1])
    page = open_page(server.get_url() + "/")
    page.wait_for_selector("#conn[data-state=open]")
    post_review(server, 2, {"star": True})  # the page now holds an event id of this server
    page.wait_for_selector("#dive-2[data-star=true]")

    server.stop()
    page.wait_for_selector("#conn:not([data-state=open])")
    SessionStore(session_dir).update(1, {"review": "reject"})  # another viewer, meanwhile

    restarted = EventServer(session_dir / "review_gallery.html", host="127.0.0.1", port=port)
    assert restarted.start(), restarted.start_error
    try:
        page.wait_for_selector("#conn[data-state=open]", timeout=SOON_S * 1000)
        page.wait_for_selector("#dive-1[data-review=reject]")
        # The new server numbers its events from 1 again: they must still get through.
        assert post_review(restarted, 2, {"review": "keep"}).status_code == 200
        page.wait_for_selector("#dive-2[data-review=keep]")
    finally:
        restarted.stop()


# -- a phone ------------------------------------------------------------------------------------


def test_phone_viewport_375px(open_page, server):
    page = open_page(
        server.get_url() + "/",
        viewport={"width": 375, "height": 740},
        has_touch=True,
        is_mobile=True,
        device_scale_factor=2,
    )
    page.wait_for_selector("#dive-2 .thumb img")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, "sideways scrolling"
    first = page.locator("#dive-1").bounding_box()
    second = page.locator("#dive-2").bounding_box()
    assert first["x"] == second["x"] and first["width"] >= 330, "one card per row"
    assert second["y"] > first["y"] + first["height"] - 1

    page.tap("#dive-1 .thumb")  # a tap steps through the frames: entry -> end
    assert page.inner_text("#dive-1 .frame-label") == "end"
    assert page.get_attribute("#dive-1 .thumb img", "src").endswith("_end.jpg")
    page.tap("#dive-1 .play")
    page.wait_for_selector("#player:not([hidden])")
    page.wait_for_function("document.getElementById('p-video').readyState >= 2")
    video = page.locator("#p-video").bounding_box()
    assert video["width"] >= 330 and video["x"] >= 0
    page.tap("#p-keep")
    page.wait_for_selector("#dive-1[data-review=keep]")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    response = requests.get(server.get_url() + "/api/session", timeout=SOON_S)
    assert response.json()["dives"][0]["review"] == "keep"


# Notes, for each card, whether the page was still in live mode when the card first appeared.
RECORD_CARDS = """() => {
  window.__sameDocument = true;
  const seen = (window.__firstSeenLive = {});
  const live = () => document.body.classList.contains("live");
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.id && !(node.id in seen)) seen[node.id] = live();
      }
    }
  }).observe(document.getElementById("grid"), {childList: true});
}"""


def test_a_real_processing_run_fills_the_live_page(open_page, make_server, synth_session, tmp_path):
    """The real pipeline, emitting into the server while a page watches: no reload needed."""
    import threading

    from diveanalyzer.pipeline import ProcessOptions, process_video

    folder = tmp_path / "out" / "session"
    folder.mkdir(parents=True)
    server = make_server(folder)
    page = open_page(server.get_url() + "/")
    page.wait_for_selector("#conn[data-state=open]")
    page.evaluate(RECORD_CARDS)
    outcomes = []
    options = ProcessOptions(out_dir=folder.parent)
    worker = threading.Thread(
        target=lambda: outcomes.append(
            process_video(synth_session.path, folder, options, emit=server.emit)
        )
    )
    worker.start()
    worker.join(timeout=120)
    assert outcomes and outcomes[0].ok, outcomes
    page.wait_for_selector("#livebox", state="hidden")
    page.wait_for_selector("#dive-2 .thumb img")
    assert card_ids(page, visible_only=False) == ["1", "2"]
    first_seen_live = page.evaluate("window.__firstSeenLive")
    assert first_seen_live == {"dive-1": True, "dive-2": True}, "cards came only at the end"
    assert page.evaluate("window.__sameDocument") is True
    assert page.inner_text("#title") == synth_session.path.name


def test_shared_server_page_passes_its_token_on(open_page, make_server, session_dir):
    server = make_server(session_dir, host="0.0.0.0")
    base = "http://127.0.0.1:" + server.get_url().rsplit(":", 1)[1]
    viewer = open_page(base + "/")
    viewer.wait_for_selector("#notice:not([hidden])")
    assert "token" in viewer.inner_text("#notice")
    viewer.click("#dive-1 .keep")
    viewer.wait_for_selector("#toast:not([hidden])")
    assert "Not saved" in viewer.inner_text("#toast")
    assert read_manifest(session_dir)["dives"][0]["review"] == "pending"

    reviewer = open_page(f"{base}/?token={server._app.review.token}")
    assert reviewer.locator("#notice").is_hidden()
    reviewer.click("#dive-1 .keep")
    viewer.wait_for_selector("#dive-1[data-review=keep]")  # viewers still see reviews live
    assert read_manifest(session_dir)["dives"][0]["review"] == "keep"
