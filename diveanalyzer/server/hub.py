"""The broadcaster: one history ring, many subscribers, each event encoded once.

Every stream is a greenlet reading its own bounded queue (see `subscriber.py`). Publishing
stores the event and schedules one fan-out for the current loop iteration, which puts the
events published together into each queue as one piece, shared by every client with the
same filter. One timer per hub sends the heartbeats and cuts off clients that stopped
reading; no stream has a timer of its own.

Everything in this module runs on the server's gevent hub thread (request greenlets and the
callback that drains `EventServer.emit`), so it needs no locks: greenlets only switch at
blocking calls, and nothing here blocks. Other threads never touch a `Hub`; they hand
events to the hub thread (see `event_server.py`).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import gevent
import gevent.event
import gevent.pool

from diveanalyzer.server.subscriber import Subscriber, chunk

_log = logging.getLogger("diveanalyzer.server")


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
    chunk: bytes
    """`frame` as one HTTP/1.1 chunk, for streams the hub writes to directly."""

    def history_json(self) -> str:
        """This event as ``/events/history`` lists it (the payload JSON is reused as is)."""
        return (
            f'{{"id": {self.id}, "event_type": "{self.event_type}", '
            f'"timestamp": "{iso_utc(self.timestamp)}", "payload": {self.payload_json}}}'
        )


def encode_frame(event_id: int, event_type: str, payload_json: str) -> bytes:
    """The SSE wire form of one event. ``payload_json`` never holds a raw line break."""
    return f"id: {event_id}\nevent: {event_type}\ndata: {payload_json}\n\n".encode()


#: Subscribers handed events per step of a fan-out (a few ms: requests are served between).
FAN_OUT_SLICE = 250


@dataclass(eq=False, slots=True)
class _Flight:
    """A fan-out in progress: these events, to these subscribers, from index ``next`` on."""

    events: list[Event]
    subscribers: list[Subscriber]
    next: int = 0
    shared: dict = field(default_factory=dict)


class StreamLimitReached(RuntimeError):
    """As many streams are open as the server allows (HTTP 503)."""


class Hub:
    """Numbers events, keeps the last ``history_size`` of them, and fans them out.

    Each event is encoded to bytes exactly once (`Event.frame`, `Event.chunk`); a batch of
    events becomes one bytes object shared by every client with the same filter.
    """

    def __init__(
        self,
        history_size: int = 1000,
        queue_size: int = 1000,
        *,
        heartbeat_s: float = 15.0,
        write_timeout_s: float = 15.0,
        max_subscribers: int = 10_000,
    ) -> None:
        if history_size < 1 or queue_size < 1 or max_subscribers < 1:
            raise ValueError("history_size, queue_size and max_subscribers must be at least 1")
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.write_timeout_s = write_timeout_s
        self.max_subscribers = max_subscribers
        self._history: deque[Event] = deque(maxlen=history_size)
        self._ids = itertools.count(1)
        self._last_id = 0
        self._subscribers: set[Subscriber] = set()
        self._outbox: list[Event] = []
        self._flight: _Flight | None = None
        self._next_slice = None
        self._streams = gevent.pool.Group()  # the greenlets of streams that own their socket
        self._catching_up: gevent.event.Event | None = None  # set at each event, if awaited
        self._timer = None
        # Timer: each client is visited once a round (see `_tick`), a share of them a tick.
        self._round_s = min(heartbeat_s / 4, 1.5)
        self._tick_s = min(heartbeat_s / 8, 0.25)
        self._to_visit: list[Subscriber] = []
        self._visits_per_tick = 0
        self.events_published = 0
        self.clients_dropped = 0
        self.accepting = True

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, event_type: str, payload_json: str, timestamp: float | None = None) -> Event:
        """Number, store and broadcast one event. Never blocks."""
        timestamp = time.time() if timestamp is None else timestamp
        return self._store(next(self._ids), event_type, payload_json, timestamp)

    def publish_numbered(
        self, event_id: int, event_type: str, payload_json: str, timestamp: float, live=True
    ) -> Event | None:
        """Store and broadcast an event numbered elsewhere (by the broker; ids shared by
        every server process). An id not above `last_id` was seen already: ignored (None).
        ``live=False`` stores it in the history only (an old event, for resuming clients)."""
        if event_id <= self._last_id:
            return None
        self._ids = itertools.count(event_id + 1)
        return self._store(event_id, event_type, payload_json, timestamp, live)

    def _store(
        self, event_id: int, event_type: str, payload_json: str, timestamp: float, live=True
    ) -> Event:
        frame = encode_frame(event_id, event_type, payload_json)
        event = Event(event_id, event_type, timestamp, payload_json, frame, chunk(frame))
        self._last_id = event_id
        self._history.append(event)
        self.events_published += 1
        if live and self._subscribers:
            if not self._outbox:
                gevent.get_hub().loop.run_callback(self._fan_out)
            self._outbox.append(event)
        else:
            # Streams that are open now must not get it later as if it were new.
            for subscriber in self._subscribers:
                subscriber.last_sent = max(subscriber.last_sent, event_id)
        if self._catching_up is not None:
            self._catching_up.set()
        return event

    def _fan_out(self) -> None:
        """Hand the events published since the last fan-out to every subscriber.

        Done in slices of `FAN_OUT_SLICE` subscribers, one timer tick each, so requests
        (``/health``, pages) are served between slices instead of after thousands of
        writes. Events published meanwhile wait for the next fan-out, keeping the order.
        """
        if self._flight is None and self._outbox:
            self._flight = _Flight(self._outbox, list(self._subscribers))
            self._outbox = []
            self._fan_slice()

    def _fan_slice(self, everything: bool = False) -> None:
        flight = self._flight
        events, newest = flight.events, flight.events[-1].id
        end = len(flight.subscribers) if everything else flight.next + FAN_OUT_SLICE
        for subscriber in itertools.islice(flight.subscribers, flight.next, end):
            if subscriber.last_sent >= newest:
                continue  # subscribed after these were published: its opening had them
            if subscriber.last_sent < events[0].id:
                key = (subscriber.types, subscriber.chunked)
                data = flight.shared.get(key)
                if data is None:
                    data = flight.shared[key] = _batch(events, subscriber)
            else:
                data = _batch([e for e in events if e.id > subscriber.last_sent], subscriber)
            subscriber.last_sent = newest
            try:
                subscriber.offer(data)
            except Exception:  # a bug must cost one stream, never every later event
                _log.exception("event server: writing to a stream failed; closing it")
                self.unsubscribe(subscriber)
        flight.next = end
        if end < len(flight.subscribers):
            # A timer, not a loop callback: gevent runs dozens of callbacks back to back
            # before it polls sockets again, a timer waits for the next poll.
            if self._next_slice is None:
                self._next_slice = gevent.get_hub().loop.timer(0.0)
            self._next_slice.start(self._fan_slice)
            return
        self._flight = None
        self._fan_out()

    def _fan_out_now(self) -> None:
        """Finish every pending fan-out at once (shutdown: nothing may be left behind)."""
        while self._flight is not None or self._outbox:
            if self._flight is None:
                self._fan_out()
            else:
                self._fan_slice(everything=True)

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

    def subscribe(self, types: Iterable[str] | None = None, *, chunked: bool = False) -> Subscriber:
        """Register a new stream, positioned after the newest event (its opening replays any
        older ones). A hub that is shutting down hands back a closed subscriber.

        Raises `StreamLimitReached` when ``max_subscribers`` streams are open.
        """
        if self.accepting and len(self._subscribers) >= self.max_subscribers:
            raise StreamLimitReached(f"{self.max_subscribers} streams are open already")
        subscriber = Subscriber(
            None if types is None else frozenset(types),
            chunked=chunked,
            last_sent=self._last_id,
            capacity=self.queue_size,
            on_end=self._ended,
        )
        if self.accepting:
            self._subscribers.add(subscriber)
        else:
            subscriber.finish()
        return subscriber

    def attach(self, subscriber: Subscriber, sock) -> None:
        """Give a subscriber its connection: a greenlet of its own writes the rest of it."""
        loop = gevent.get_hub().loop
        self._streams.spawn(subscriber.run, sock, loop, self.write_timeout_s)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a stream and close its connection cleanly (idempotent)."""
        self._subscribers.discard(subscriber)
        subscriber.finish()

    def _ended(self, subscriber: Subscriber, dropped: bool) -> None:
        if dropped:
            self.drop(subscriber)
        else:
            self.unsubscribe(subscriber)

    def close_all(self, grace_s: float = 1.0) -> None:
        """Stop taking subscribers and end every open stream (server shutdown): each gets
        what was published, then a clean end, within ``grace_s``; later ones are cut off."""
        self.accepting = False
        self._fan_out_now()
        for subscriber in list(self._subscribers):
            self._subscribers.discard(subscriber)
            subscriber.finish()
        self._to_visit = []
        for watcher in (self._timer, self._next_slice):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        self._timer = self._next_slice = None
        self._streams.join(timeout=grace_s)
        self._streams.kill(timeout=grace_s)

    def reopen(self) -> None:
        """Accept subscribers again (server start or restart), on the server's hub thread.
        History and ids carry on."""
        self.accepting = True
        if self._timer is None:
            self._timer = gevent.get_hub().loop.timer(self._tick_s, self._tick_s)
            self._timer.start(self._tick)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # -- the timer ----------------------------------------------------------------------------

    def _tick(self) -> None:
        """Visit the next share of the clients, so that each is visited once per round.

        A visit drops a client who left what it received unread for ``write_timeout_s``
        (one whose writes block is dropped by its own greenlet), and sends a heartbeat to
        one that would otherwise stay silent for longer than ``heartbeat_s``. Spreading the
        visits keeps each tick to a few milliseconds however many clients there are.
        """
        if not self._to_visit:
            self._to_visit = list(self._subscribers)
            self._visits_per_tick = math.ceil(len(self._to_visit) * self._tick_s / self._round_s)
        now = time.monotonic()
        deadline = now - self.write_timeout_s
        quiet_since = now - (self.heartbeat_s - self._round_s)
        for _ in range(min(self._visits_per_tick, len(self._to_visit))):
            subscriber = self._to_visit.pop()
            if subscriber.closed:
                continue
            subscriber.check_reading(now)
            if subscriber.unread_since is not None and subscriber.unread_since < deadline:
                self.drop(subscriber)
            elif subscriber.last_write < quiet_since and not subscriber.behind:
                subscriber.keepalive()

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
        server's numbering); then the whole history is replayed. Ids are found by search,
        not position: with a broker they need not be consecutive.
        """
        history = list(self._history)
        if last_seen > self._last_id or last_seen < self.oldest_id - 1:
            return history, True
        return history[bisect.bisect_right(history, last_seen, key=_event_id) :], False

    def catch_up(self, event_id: int, timeout: float) -> bool:
        """Wait (this greenlet only) until ``event_id`` has been published here, at most
        ``timeout`` seconds; whether it was. With a broker, a client may resume on this
        process a moment before this process has read its last event from Redis."""
        deadline = time.monotonic() + timeout
        while self._last_id < event_id:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._catching_up is None:
                self._catching_up = gevent.event.Event()
            self._catching_up.clear()
            self._catching_up.wait(left)
        return True


def _event_id(event: Event) -> int:
    return event.id


def _batch(events: list[Event], subscriber: Subscriber) -> bytes:
    """The bytes a subscriber gets for ``events`` (its filter applied)."""
    wanted = [event for event in events if subscriber.wants(event.event_type)]
    if len(wanted) == 1:
        event = wanted[0]
        return event.chunk if subscriber.chunked else event.frame
    data = b"".join(event.frame for event in wanted)
    return chunk(data) if subscriber.chunked and data else data
