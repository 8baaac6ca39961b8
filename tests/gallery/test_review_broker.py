"""Reviewing with several server processes behind one Redis (``serve --workers N``)."""

from __future__ import annotations

from tests.gallery.conftest import post_review
from tests.server.conftest import redis_server  # noqa: F401 (a fixture)
from tests.server.helpers import Stream, payload


def test_a_review_on_one_server_reaches_the_viewers_of_another(
    make_server,
    session_dir,
    redis_server,  # noqa: F811
):
    servers = [make_server(session_dir, broker=redis_server.url) for _ in range(2)]
    streams = [Stream(server.get_events_url()) for server in servers]
    try:
        for stream in streams:
            assert stream.next().event == "connected"
        response = post_review(servers[0], 1, {"review": "keep"})
        assert response.status_code == 200, response.text
        seen = [stream.next() for stream in streams]
    finally:
        for stream in streams:
            stream.close()
    assert [event.event for event in seen] == ["dive_reviewed", "dive_reviewed"]
    assert seen[0].id == seen[1].id  # numbered by Redis, the same everywhere
    assert payload(seen[1])["dive"]["review"] == "keep"
