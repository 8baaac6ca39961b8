"""Server-Sent Events for one client: framing, resume, ``?types=`` filter, heartbeat.

Wire format per the WHATWG HTML standard, "Server-sent events": UTF-8 text, messages
separated by a blank line, ``field: value`` lines, ``:`` starts a comment.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from diveanalyzer.server.hub import Hub, iso_utc
from diveanalyzer.server.subscriber import Subscriber

#: Response headers of every ``/events`` stream. Never compressed: proxies and the browser
#: must see each message as soon as it is written.
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "Access-Control-Allow-Origin": "*",
    # A stream is never followed by another request on the same connection; closing it
    # lets the server finish the handler as soon as the stream ends.
    "Connection": "close",
}

#: Event names the server itself sends; `emit` refuses them.
RESERVED_TYPES = frozenset({"connected", "resync"})

_EVENT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_EVENT_ID = re.compile(r"[0-9]{1,18}")
_MAX_TYPES = 64
#: Send buffer of an ``/events`` socket (Linux doubles it). Left to autotuning it grows to
#: several MiB, which a client that stopped reading can sit on for minutes at low event
#: rates without ever filling; capped, a frozen client stalls the stream soon and the
#: server's write deadline (``client_timeout``) cuts it off.
STREAM_SNDBUF = 64 * 1024
_BATCH = 256


class BadStreamRequest(ValueError):
    """A client's ``/events`` parameters cannot be used; the message says why (HTTP 400)."""


def is_valid_event_type(name: str) -> bool:
    """Letters, digits, ``_ . -``, starting with a letter, at most 64 characters."""
    return isinstance(name, str) and _EVENT_TYPE.fullmatch(name) is not None


def parse_last_event_id(header: str | None, query: str | None) -> int | None:
    """The id the client last saw, from ``Last-Event-ID`` (wins) or ``?last_event_id=``.

    Browsers send the header on reconnection while the URL keeps its original query, so
    the header is the fresher of the two. Empty means "none" (as in the standard).
    """
    for raw in (header, query):
        if raw is None or not raw.strip():
            continue
        value = raw.strip()
        if not _EVENT_ID.fullmatch(value):
            shown = value[:40] + ("..." if len(value) > 40 else "")
            raise BadStreamRequest(f"Last-Event-ID must be a non-negative integer, got {shown!r}")
        return int(value)
    return None


def parse_types(raw: str | None) -> frozenset[str] | None:
    """The ``?types=a,b`` filter as a set, or None for "every type"."""
    if raw is None or not raw.strip():
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if len(names) > _MAX_TYPES:
        raise BadStreamRequest(f"types lists at most {_MAX_TYPES} event types")
    bad = [name for name in names if not is_valid_event_type(name)]
    if bad:
        raise BadStreamRequest(f"invalid event type in types: {bad[0][:64]!r}")
    return frozenset(names)


def control_frame(event_type: str, payload: dict) -> bytes:
    """A message without ``id`` (so it does not move the client's last event id)."""
    return f"event: {event_type}\ndata: {json.dumps(payload)}\n\n".encode()


@dataclass(frozen=True)
class StreamOptions:
    """How one client's stream behaves (from the request and the server's settings)."""

    last_event_id: int | None = None
    """Resume after this id; None for a fresh client (live events only)."""
    types: frozenset[str] | None = None
    """Only these event types (plus ``connected``/``resync``); None for all."""
    retry_ms: int = 3000
    """Reconnection delay the client is told to use."""


def event_stream(
    hub: Hub,
    options: StreamOptions,
    detach: Callable[[], socket.socket] | None = None,
    chunked: bool = False,
) -> Iterator[bytes]:
    """The body of one ``/events`` response, as a generator of byte chunks.

    Subscribing and taking the replay snapshot happen in the generator's first step with no
    greenlet switch in between, so the subscriber gets exactly the events after the
    snapshot: no gap, no duplicate. Once the opening is written, ``detach()`` (our WSGI
    handler's) gives up the connection and the stream's own greenlet writes every later
    event (``chunked``: with HTTP/1.1 chunk framing, as the handler started the body);
    without it this generator goes on yielding what the subscriber's queue gets. The
    ``finally`` unsubscribes a stream still its own.
    """
    subscriber = hub.subscribe(options.types, chunked=chunked and detach is not None)
    handed_over = False
    try:
        yield from _opening(hub, subscriber, options)
        if detach is not None:
            if not subscriber.closed:
                sock = detach()
                with_sndbuf(sock)
                hub.attach(subscriber, sock)
                handed_over = True
            return
        yield from subscriber.stream()
    finally:
        if not handed_over:
            hub.unsubscribe(subscriber)


def with_sndbuf(sock: socket.socket) -> None:
    """Cap the socket's send buffer at `STREAM_SNDBUF` (see there)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)


def _opening(hub: Hub, subscriber: Subscriber, options: StreamOptions) -> list[bytes]:
    """``retry`` + ``connected``, then ``resync`` and the replayed history if resuming."""
    connected = {
        "message": "SSE stream established",
        "timestamp": iso_utc(time.time()),
        "last_id": hub.last_id,
    }
    head = f"retry: {options.retry_ms}\n".encode() + control_frame("connected", connected)
    if options.last_event_id is None:
        return [head]
    backlog, resync = hub.after(options.last_event_id)
    if resync:
        head += control_frame("resync", {"oldest_id": hub.oldest_id})
    frames = [event.frame for event in backlog if subscriber.wants(event.event_type)]
    return [head] + [b"".join(frames[i : i + _BATCH]) for i in range(0, len(frames), _BATCH)]
