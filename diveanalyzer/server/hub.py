"""The broadcaster: one history ring, many subscribers, each event encoded once.

Everything in this module runs on the server's gevent hub thread (request greenlets and the
callback that drains `EventServer.emit`), so it needs no locks: greenlets only switch at
blocking calls, and nothing here blocks. Other threads never touch a `Hub`; they hand
events to the hub thread (see `event_server.py`).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import gevent.queue

#: Put into a subscriber's queue to tell its stream to finish cleanly.
CLOSE = object()


def iso_utc(timestamp: float) -> str:
    """``timestamp`` (seconds since the epoch) as ISO-8601 UTC with a ``Z``, in milliseconds."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    """One published event, immutable once the hub has numbered it."""

    id: int
    """Position in the stream; strictly increasing for the life of the `Hub`."""
    event_type: str
    """SSE event name, already validated (no spaces, no line breaks)."""
    timestamp: float
    """When `emit` was called, seconds since the epoch."""
    payload_json: str
    """The payload as one line of JSON (encoded once, in the emitting thread)."""
    frame: bytes
    """The complete SSE message (``id:``/``event:``/``data:`` lines), sent as-is to every client."""

    def history_json(self) -> str:
        """This event as ``/events/history`` lists it (the payload JSON is reused as is)."""
        return (
            f'{{"id": {self.id}, "event_type": "{self.event_type}", '
            f'"timestamp": "{iso_utc(self.timestamp)}", "payload": {self.payload_json}}}'
        )


def encode_frame(event_id: int, event_type: str, payload_json: str) -> bytes:
    """The SSE wire form of one event. ``payload_json`` never holds a raw line break."""
    return f"id: {event_id}\nevent: {event_type}\ndata: {payload_json}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    """One open ``/events`` stream: its bounded queue and what it wants to receive."""

    queue: gevent.queue.Queue
    """Events waiting to be written to this client (bounded: a full queue drops the client)."""
    types: frozenset[str] | None = None
    """Event types this client asked for with ``?types=``; None means every type."""
    disconnect: Callable[[], None] | None = None
    """Cuts the client's connection at once (used when it is dropped); may be None."""
    closed: bool = False
    """True once the stream must end: after the queued events, or at once when `aborted`."""
    aborted: bool = False
    """True when the stream must end without sending what is queued (client cut off)."""

    def wants(self, event_type: str) -> bool:
        """Whether this subscriber's ``?types=`` filter lets ``event_type`` through."""
        return self.types is None or event_type in self.types

    def finish(self) -> None:
        """Ask the stream to end after the events already queued (a clean end of stream)."""
        self.closed = True
        try:
            self.queue.put_nowait(CLOSE)
        except gevent.queue.Full:
            # No room for the marker: the client is behind anyway, so cut it off.
            self.abort()

    def abort(self) -> None:
        """End the stream now, discarding queued events, and cut the connection."""
        self.closed = True
        self.aborted = True
        if self.disconnect is not None:
            with contextlib.suppress(OSError):
                self.disconnect()


class Hub:
    """Numbers events, keeps the last ``history_size`` of them, and fans them out.

    Each event is encoded to bytes exactly once (`Event.frame`); every subscriber's queue
    receives the same object.
    """

    def __init__(self, history_size: int = 1000, queue_size: int = 1000) -> None:
        if history_size < 1 or queue_size < 1:
            raise ValueError("history_size and queue_size must be at least 1")
        self.queue_size = queue_size
        self._history: deque[Event] = deque(maxlen=history_size)
        self._ids = itertools.count(1)
        self._last_id = 0
        self._subscribers: set[Subscriber] = set()
        self.events_published = 0
        self.clients_dropped = 0
        self.accepting = True

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, event_type: str, payload_json: str, timestamp: float | None = None) -> Event:
        """Number, store and broadcast one event. Never blocks; drops subscribers that are full."""
        event_id = next(self._ids)
        event = Event(
            id=event_id,
            event_type=event_type,
            timestamp=time.time() if timestamp is None else timestamp,
            payload_json=payload_json,
            frame=encode_frame(event_id, event_type, payload_json),
        )
        self._last_id = event_id
        self._history.append(event)
        self.events_published += 1
        for subscriber in list(self._subscribers):
            if subscriber.wants(event_type):
                self._offer(subscriber, event)
        return event

    def _offer(self, subscriber: Subscriber, event: Event) -> None:
        try:
            subscriber.queue.put_nowait(event)
        except gevent.queue.Full:
            self.drop(subscriber)

    def drop(self, subscriber: Subscriber) -> None:
        """Cut off a client that cannot keep up; it may reconnect and resume by id."""
        if subscriber in self._subscribers:
            self._subscribers.discard(subscriber)
            self.clients_dropped += 1
        subscriber.abort()

    def count_dropped(self) -> None:
        """Record a client the transport cut off (e.g. it stopped reading: write deadline)."""
        self.clients_dropped += 1

    # -- subscribers --------------------------------------------------------------------------

    def subscribe(
        self,
        types: Iterable[str] | None = None,
        disconnect: Callable[[], None] | None = None,
    ) -> Subscriber:
        """Register a new stream. A hub that is shutting down hands back a closed subscriber."""
        subscriber = Subscriber(
            queue=gevent.queue.Queue(self.queue_size),
            types=None if types is None else frozenset(types),
            disconnect=disconnect,
        )
        if self.accepting:
            self._subscribers.add(subscriber)
        else:
            subscriber.finish()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a stream (idempotent). Called from every stream's ``finally``."""
        self._subscribers.discard(subscriber)
        subscriber.closed = True

    def close_all(self) -> None:
        """Stop taking subscribers and end every open stream (server shutdown)."""
        self.accepting = False
        for subscriber in list(self._subscribers):
            subscriber.finish()
            self._subscribers.discard(subscriber)

    def reopen(self) -> None:
        """Accept subscribers again (server restart). History and ids carry on."""
        self.accepting = True

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # -- history ------------------------------------------------------------------------------

    @property
    def last_id(self) -> int:
        """Id of the newest event ever published (0 before the first one)."""
        return self._last_id

    @property
    def oldest_id(self) -> int:
        """Id of the oldest event still in history (the next id when history is empty)."""
        return self._history[0].id if self._history else self._last_id + 1

    def recent(self, limit: int | None = None) -> list[Event]:
        """The newest ``limit`` events (all kept ones when None), oldest first."""
        if limit is None or limit >= len(self._history):
            return list(self._history)
        if limit <= 0:
            return []
        return list(itertools.islice(self._history, len(self._history) - limit, None))

    def after(self, last_seen: int) -> tuple[list[Event], bool]:
        """Events a client that has seen ``last_seen`` missed, and whether it must resync.

        Resync is needed when events after ``last_seen`` have already left the history, or
        when ``last_seen`` is newer than anything published here (the client saw another
        server's numbering); then the whole history is replayed.
        """
        if last_seen > self._last_id or last_seen < self.oldest_id - 1:
            return list(self._history), True
        skip = last_seen - self.oldest_id + 1
        return list(itertools.islice(self._history, skip, None)), False
