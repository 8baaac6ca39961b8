"""The Bottle application: ``/``, ``/health``, ``/events``, ``/events/history``, ``/metrics``.

Handlers return `bottle.HTTPResponse` objects and read `bottle.request` only before their
first greenlet switch: when the server runs on its own (unpatched) thread, Bottle's
request/response "locals" are per thread, not per greenlet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import bottle

from diveanalyzer.paths import VIEWS
from diveanalyzer.server.hub import Hub, StreamLimitReached, iso_utc
from diveanalyzer.server.review import PAGE_HEADERS, ReviewApp
from diveanalyzer.server.security import SERVABLE_SUFFIXES, serve_file
from diveanalyzer.server.sse import (
    SSE_HEADERS,
    BadStreamRequest,
    StreamOptions,
    event_stream,
    parse_last_event_id,
    parse_types,
)

#: WSGI environ key under which the server's handler exposes the client socket.
SOCKET_ENVIRON_KEY = "diveanalyzer.socket"
#: A callable our WSGI handler puts in the environ: it hands the connection to the caller.
DETACH_ENVIRON_KEY = "diveanalyzer.detach_stream"

#: With a broker, how long a resuming client waits for this process to have read the last
#: event it saw (from Redis) before it is told to resync instead.
_CATCH_UP_S = 2.0

#: The live page, found next to the package (``views/`` at the top of the checkout).
LIVE_PAGE = VIEWS / "live.html"

_FALLBACK_LIVE_PAGE = b"""<!doctype html><meta charset="utf-8"><title>DiveAnalyzer</title>
<p>Processing is still running; the review gallery is not written yet. Live events:
<a href="/events">/events</a>. (The live page views/live.html was not found.)</p>"""

#: Files next to the gallery that ``GET /<name>`` may serve (clips, thumbnails, manifest).
GALLERY_ASSET_SUFFIXES = SERVABLE_SUFFIXES

_JSON_HEADERS = {
    "Content-Type": "application/json",
    "Cache-Control": "no-cache",
    "Access-Control-Allow-Origin": "*",
}
_MAX_HISTORY_LIMIT_DIGITS = 9


@dataclass(frozen=True)
class AppConfig:
    """What the routes need besides the hub."""

    gallery_path: Path
    """The gallery page served at ``/`` once it exists."""
    uptime: Callable[[], float]
    """Seconds the server has been listening."""
    retry_ms: int = 3000
    """Reconnection delay sent to clients in the ``retry:`` field."""
    broker_status: Callable[[], str] | None = None
    """``"up"``/``"down"`` of the Redis broker; None without one (``/health`` omits it)."""
    broker_counters: Callable[[], dict[str, int]] | None = None
    """The broker's ``published``, ``dropped`` and ``pending`` counts, for ``/metrics``."""


def json_error_body(status: int, message: str) -> str:
    """The JSON body every error response carries."""
    return json.dumps({"error": _phrase(status), "status": status, "message": message})


def raw_json_error(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 error response, for errors found before the application runs."""
    body = json_error_body(status, message).encode()
    head = (
        f"HTTP/1.1 {status} {_phrase(status)}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class _JsonErrorBottle(bottle.Bottle):
    """Bottle with JSON bodies for every error (404, 405, 500, and our own 4xx)."""

    def default_error_handler(self, res: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        bottle.response.set_header("Cache-Control", "no-cache")
        message = res.body if isinstance(res.body, str) and res.body else res.status_line
        return json_error_body(res.status_code, message)


class EventApp:
    """Routes bound to one hub and one configuration; `wsgi` is the WSGI callable."""

    def __init__(self, hub: Hub, config: AppConfig) -> None:
        self.hub = hub
        self.config = config
        self._live_page = _read_live_page()
        self.wsgi = _JsonErrorBottle()
        self.wsgi.route("/", "GET", self.index)
        self.wsgi.route("/health", "GET", self.health)
        self.wsgi.route("/events", "GET", self.events)
        self.wsgi.route("/events/history", "GET", self.history)
        self.wsgi.route("/metrics", "GET", self.metrics)
        self.wsgi.route("/live", "GET", self.live_page)
        self.review = ReviewApp(hub, config.gallery_path.parent)
        self.review.install(self.wsgi)
        self.wsgi.route("/<name:path>", "GET", self.gallery_asset)

    # -- pages --------------------------------------------------------------------------------

    def index(self) -> bottle.HTTPResponse:
        """What ``/`` shows, by what the folder holds.

        ``dives.json``: the session page. Else the gallery file, if one was written. Else,
        sessions in sub-folders: the index page. Else the session page in live mode, which
        follows the processing and shows the dives once their manifest appears.
        """
        if self.review.store("").exists():
            return self.review.session_page("")
        gallery = self.config.gallery_path
        if gallery.is_file():
            response = bottle.static_file(
                gallery.name, root=str(gallery.parent), mimetype="text/html", charset="utf-8"
            )
            response.set_header("Cache-Control", "no-cache")
            return response
        if self.review.has_sessions_below():
            return self.review.index_page()
        return self.review.session_page("")

    def live_page(self) -> bottle.HTTPResponse:
        """The plain event log of the live server (every event as it arrives)."""
        headers = {**PAGE_HEADERS, "Content-Security-Policy": "default-src 'self' 'unsafe-inline'"}
        return bottle.HTTPResponse(self._live_page, headers=headers)

    def gallery_asset(self, name: str) -> bottle.HTTPResponse:
        """A clip, thumbnail or manifest next to the gallery; nothing else, nothing hidden."""
        return serve_file(self.config.gallery_path.parent, name)

    # -- JSON and text endpoints --------------------------------------------------------------

    def health(self) -> bottle.HTTPResponse:
        body = {
            "status": "ok",
            "timestamp": iso_utc(time.time()),
            "subscribers": self.hub.subscriber_count,
            "uptime_s": round(self.config.uptime(), 3),
            "gallery_ready": self.config.gallery_path.is_file(),
        }
        if self.config.broker_status is not None:
            # Still 200 while it is down: the streams stay open and catch up when it returns.
            body["broker"] = self.config.broker_status()
        return bottle.HTTPResponse(json.dumps(body), headers=_JSON_HEADERS)

    def history(self) -> bottle.HTTPResponse:
        """``?limit=N``: the newest N events (default all kept), newest last."""
        raw = bottle.request.query.get("limit")
        limit = None
        if raw is not None and raw != "":
            if not raw.isdigit() or len(raw) > _MAX_HISTORY_LIMIT_DIGITS:
                message = f"limit must be a non-negative integer, got {raw[:40]!r}"
                raise bottle.HTTPError(400, message)
            limit = int(raw)
        events = self.hub.recent(limit)
        body = "[" + ", ".join(event.history_json() for event in events) + "]"
        return bottle.HTTPResponse(body, headers=_JSON_HEADERS)

    def metrics(self) -> bottle.HTTPResponse:
        """Prometheus text exposition format, version 0.0.4."""
        lines = []
        for name, kind, help_text, value in self._metric_values():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        headers = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        return bottle.HTTPResponse("\n".join(lines) + "\n", headers=headers)

    def _metric_values(self) -> list[tuple[str, str, str, object]]:
        hub = self.hub
        uptime = f"{self.config.uptime():.3f}"
        return [
            ("diveanalyzer_sse_subscribers", "gauge", "Open streams.", hub.subscriber_count),
            (
                "diveanalyzer_events_published_total",
                "counter",
                "Events published by emit().",
                hub.events_published,
            ),
            (
                "diveanalyzer_sse_clients_dropped_total",
                "counter",
                "Streams cut off because the client could not keep up.",
                hub.clients_dropped,
            ),
            ("diveanalyzer_uptime_seconds", "gauge", "Seconds since the server started.", uptime),
            *self._broker_metric_values(),
        ]

    def _broker_metric_values(self) -> list[tuple[str, str, str, object]]:
        if self.config.broker_counters is None:
            return []
        counts = self.config.broker_counters()
        up = int(self.config.broker_status() == "up")
        return [
            ("diveanalyzer_broker_up", "gauge", "1 while Redis is being followed.", up),
            (
                "diveanalyzer_broker_published_total",
                "counter",
                "Events this process wrote to Redis.",
                counts["published"],
            ),
            (
                "diveanalyzer_broker_dropped_total",
                "counter",
                "Events dropped: buffer full while Redis was away, or refused by Redis.",
                counts["dropped"],
            ),
            (
                "diveanalyzer_broker_pending",
                "gauge",
                "Events waiting to be written to Redis.",
                counts["pending"],
            ),
        ]

    # -- the stream ---------------------------------------------------------------------------

    def events(self) -> bottle.HTTPResponse:
        """Server-Sent Events; see `sse.event_stream` for what is sent."""
        request = bottle.request
        try:
            options = StreamOptions(
                last_event_id=parse_last_event_id(
                    request.get_header("Last-Event-ID"), request.query.get("last_event_id")
                ),
                types=parse_types(request.query.get("types")),
                retry_ms=self.config.retry_ms,
            )
        except BadStreamRequest as exc:
            raise bottle.HTTPError(400, str(exc)) from None
        if not self.hub.accepting:
            raise bottle.HTTPError(503, "The server is shutting down.")
        # Read from the request before anything can switch greenlets: in a server on its own
        # (unpatched) thread, bottle's request is per thread and would then be another's.
        environ = request.environ
        detach = environ.get(DETACH_ENVIRON_KEY)
        chunked = environ.get("SERVER_PROTOCOL") != "HTTP/1.0"
        resume_from = options.last_event_id
        if self.config.broker_status is not None and resume_from is not None:
            self.hub.catch_up(resume_from, _CATCH_UP_S)
        try:
            body = event_stream(self.hub, options, detach=detach, chunked=chunked)
            first = next(body)  # subscribes now, so a full server answers 503, not a stream
        except StreamLimitReached:
            too_many = bottle.HTTPError(503, "Too many viewers; try again shortly.")
            too_many.set_header("Retry-After", "5")
            raise too_many from None
        return bottle.HTTPResponse(_prepend(first, body), headers=SSE_HEADERS)


def _prepend(first: bytes, rest: Generator[bytes, None, None]) -> Iterator[bytes]:
    """``first`` then ``rest``; closing it closes ``rest`` (a WSGI server ends streams so)."""
    yield first
    yield from rest


def _read_live_page() -> bytes:
    try:
        return LIVE_PAGE.read_bytes()
    except OSError:
        return _FALLBACK_LIVE_PAGE
