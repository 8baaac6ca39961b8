"""Each safety rule of the review gallery, against a real server: every refusal is a clear
JSON 4xx, and a refused request changes nothing on disk."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from diveanalyzer.server.security import MAX_BODY_BYTES
from tests.gallery.conftest import assert_json_error, post_review, read_manifest, same_origin
from tests.server.helpers import SOON_S, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def untouched(session_dir):
    """Asserts, after the test, that dives.json was never changed."""
    before = (session_dir / "dives.json").read_bytes()
    yield
    assert (session_dir / "dives.json").read_bytes() == before


# -- same origin ------------------------------------------------------------------------------


@pytest.mark.usefixtures("untouched")
def test_cross_origin_and_origin_less_posts_are_refused(server):
    for origin in ("http://evil.example", "null", server.get_url() + ".evil.example", "file://"):
        body = assert_json_error(
            post_review(server, 1, {"review": "keep"}, {"Origin": origin}), 403
        )
        assert "origin" in body["message"].lower()
    port = server.get_url().rsplit(":", 1)[1]
    other_port = post_review(
        server, 1, {"star": True}, {"Origin": f"http://127.0.0.1:{int(port) + 1}"}
    )
    assert_json_error(other_port, 403)
    no_origin = requests.post(
        server.get_url() + "/api/dives/1",
        data=b'{"review": "keep"}',
        headers={"Content-Type": "application/json"},
        timeout=SOON_S,
    )
    assert "Origin" in assert_json_error(no_origin, 403)["message"]


@pytest.mark.usefixtures("untouched")
def test_a_rebound_host_name_is_refused_on_loopback(server):
    # DNS rebinding: evil.example resolves to 127.0.0.1, so Origin and Host agree.
    headers = {"Origin": "http://evil.example:80", "Host": "evil.example:80"}
    assert (
        "localhost"
        in assert_json_error(post_review(server, 1, {"review": "keep"}, headers), 403)["message"]
    )


def test_localhost_spelled_either_way_is_accepted(server, session_dir):
    port = server.get_url().rsplit(":", 1)[1]
    headers = {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"}
    assert post_review(server, 1, {"star": True}, headers).status_code == 200
    assert read_manifest(session_dir)["dives"][0]["star"] is True


# -- content type, size, validation ---------------------------------------------------------------


@pytest.mark.usefixtures("untouched")
def test_form_encoded_and_other_content_types_are_refused(server):
    url = server.get_url() + "/api/dives/1"
    origin = {"Origin": server.get_url()}
    form = requests.post(url, data={"review": "keep"}, headers=origin, timeout=SOON_S)
    assert "application/json" in assert_json_error(form, 415)["message"]
    for content_type in ("text/plain", "multipart/form-data; boundary=x", "application/jsonp"):
        response = requests.post(
            url,
            data=b'{"review": "keep"}',
            headers={**origin, "Content-Type": content_type},
            timeout=SOON_S,
        )
        assert_json_error(response, 415)


@pytest.mark.usefixtures("untouched")
def test_oversized_and_unsized_bodies_are_refused(server):
    big = json.dumps({"note": "x" * (MAX_BODY_BYTES + 10)})
    assert_json_error(post_review(server, 1, big), 413)

    def chunks():
        yield b'{"review": '
        yield b'"keep"}'

    url = server.get_url() + "/api/dives/1"
    chunked = requests.post(url, data=chunks(), headers=same_origin(server), timeout=SOON_S)
    assert_json_error(chunked, 411)


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize(
    ("dive_id", "body", "status", "says"),
    [
        (1, b"{not json", 400, "JSON"),
        (1, b"\xff\xfe", 400, "JSON"),
        (1, "[]", 400, "object"),
        (1, "{}", 400, "Nothing"),
        (1, {"review": "maybe"}, 400, "review"),
        (1, {"review": "keep", "admin": True}, 400, "admin"),
        (1, {"star": "yes"}, 400, "star"),
        (1, {"note": 5}, 400, "note"),
        (1, {"note": "x" * 2001}, 400, "2000"),
        ("abc", {"review": "keep"}, 400, "integer"),
        ("0", {"review": "keep"}, 400, "integer"),
        (99, {"review": "keep"}, 404, "99"),
    ],
)
def test_bad_ids_and_fields_get_clear_errors(server, dive_id, body, status, says):
    body = assert_json_error(post_review(server, dive_id, body), status)
    assert says in body["message"]


@pytest.mark.usefixtures("untouched")
def test_only_post_changes_and_unknown_sessions_are_404(server):
    base = server.get_url()
    assert_json_error(
        requests.put(base + "/api/dives/1", json={"review": "keep"}, timeout=SOON_S), 405
    )
    assert_json_error(requests.delete(base + "/api/dives/1", timeout=SOON_S), 405)
    assert_json_error(post_review(server, 1, {"review": "keep"}, base="/s/nope"), 404)
    assert_json_error(post_review(server, 1, {"review": "keep"}, base="/s/%2e%2e"), 404)


# -- files ------------------------------------------------------------------------------------


def test_traversal_and_symlink_escapes_are_refused(server, session_dir, tmp_path):
    outside = tmp_path / "secret.json"
    outside.write_text('{"secret": 1}')
    (session_dir / "leak.json").symlink_to(outside)
    (session_dir / "thumbs" / "up.jpg").symlink_to(outside)
    (session_dir / "inside.json").symlink_to(session_dir / "dives.json")
    base = server.get_url()
    for path in (
        "/../secret.json",
        "/%2e%2e/secret.json",
        "/thumbs/%2e%2e/%2e%2e/secret.json",
        "/thumbs/..%2f..%2fsecret.json",
        "/leak.json",
        "/thumbs/up.jpg",
        "/" + str(outside),
        "/s/%2e%2e/secret.json",
        "/s/pool_day/..%2fsecret.json",
        "/static/..%2fsession.tpl",
        "/static/%2e%2e/session.tpl",
        "/.dives.json",
    ):
        response = requests.get(base + path, timeout=SOON_S)
        assert response.status_code == 404, (path, response.status_code)
        assert b'"secret": 1' not in response.content
    assert requests.get(base + "/inside.json", timeout=SOON_S).json()["version"] == 1
    raw = _raw_get(server, b"/../secret.json")
    assert raw.split(b"\r\n", 1)[0].split()[1] in (b"400", b"404") and b'"secret": 1' not in raw


def _raw_get(server, path: bytes) -> bytes:
    host, port = server.get_url().removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=SOON_S) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


# -- the token off loopback -------------------------------------------------------------------


def test_off_loopback_viewing_is_open_but_changes_need_the_token(make_server, session_dir):
    server = make_server(session_dir, host="0.0.0.0")
    port = server.get_url().rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{port}"
    token = server._app.review.token
    assert requests.get(base + "/", timeout=SOON_S).status_code == 200
    assert requests.get(base + "/api/session", timeout=SOON_S).status_code == 200
    assert requests.get(base + "/dive_001.mp4", timeout=SOON_S).status_code == 200
    headers = {"Origin": base, "Content-Type": "application/json"}

    def post(extra: dict, query: str = ""):
        return requests.post(
            f"{base}/api/dives/1{query}",
            data=b'{"review": "keep"}',
            headers={**headers, **extra},
            timeout=SOON_S,
        )

    before = (session_dir / "dives.json").read_bytes()
    assert "token" in assert_json_error(post({}), 403)["message"]
    assert_json_error(post({"X-DiveAnalyzer-Token": token[:-1] + "A"}), 403)
    assert_json_error(post({}, "?token=wrong"), 403)
    assert_json_error(post({"X-DiveAnalyzer-Token": token, "Origin": "http://evil.example"}), 403)
    assert (session_dir / "dives.json").read_bytes() == before
    assert post({"X-DiveAnalyzer-Token": token}).status_code == 200
    assert post({}, f"?token={token}").status_code == 200
    assert read_manifest(session_dir)["dives"][0]["review"] == "keep"
    page = requests.get(base + "/", timeout=SOON_S).text
    assert '"token_required": true' in page and token not in page


def test_serve_prints_a_token_url_off_loopback_and_none_on_loopback(session_dir):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "diveanalyzer.serve",
            str(session_dir),
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        found = re.search(r"http://0\.0\.0\.0:(\d+)/\?token=([A-Za-z0-9_\-]+)", line)
        assert found, line
        token = found.group(2)
        assert f"?token={token}" in process.stdout.readline(), "the host-name URL is printed too"
        base = f"http://127.0.0.1:{port}"
        headers = {"Origin": base, "Content-Type": "application/json"}
        url = f"{base}/api/dives/2"
        assert (
            requests.post(url, data=b'{"star": true}', headers=headers, timeout=SOON_S).status_code
            == 403
        )
        ok = requests.post(
            f"{url}?token={token}", data=b'{"star": true}', headers=headers, timeout=SOON_S
        )
        assert ok.status_code == 200
    finally:
        process.terminate()
        process.communicate(timeout=SOON_S)
    assert process.returncode == 0
    assert read_manifest(session_dir)["dives"][1]["star"] is True


# -- escaping ---------------------------------------------------------------------------------


def test_text_from_the_manifest_cannot_break_out_of_the_page(make_server, session_dir):
    manifest = read_manifest(session_dir)
    manifest["video"]["path"] = '/v/"><svg onload=alert(1)>.mp4'
    manifest["dives"][0]["note"] = "</script><img src=x onerror=alert(1)>"
    (session_dir / "dives.json").write_text(json.dumps(manifest))
    server = make_server(session_dir)
    page = requests.get(server.get_url() + "/", timeout=SOON_S).text
    assert "<img src=x" not in page and "<svg onload" not in page
    assert page.count("</script>") == 2  # the config block and the app script, nothing more
    assert "&quot;&gt;&lt;svg onload=alert(1)&gt;.mp4" in page  # the <title>


def test_the_index_passes_a_valid_token_on_to_session_links(
    make_server, processed_session, tmp_path
):
    root = tmp_path / "sessions"
    shutil.copytree(processed_session, root / "day1")
    server = make_server(root, host="0.0.0.0")
    base = "http://127.0.0.1:" + server.get_url().rsplit(":", 1)[1]
    token = server._app.review.token
    with_token = requests.get(f"{base}/?token={token}", timeout=SOON_S).text
    assert f'href="/s/day1/?token={token}"' in with_token
    forged = requests.get(f"{base}/?token=%22%3E%3Cscript%3E", timeout=SOON_S).text
    assert 'href="/s/day1/"' in forged and "<script>" not in forged
