"""Events shared by every server process through a Redis Stream (``--broker redis://...``).

One `RedisBroker` per process, two real OS threads, two Redis connections:

* the *reader* delivers the stream's tail once (so the local history mirrors Redis), then
  follows the stream with ``XREAD BLOCK`` on one connection, whatever the number of viewers;
* the *publisher* drains a bounded in-memory buffer into the stream. `publish` only appends
  to that buffer, so it never blocks, not even while Redis is down: the buffer is sent when
  Redis is back (the oldest events are dropped, and counted, if it overflows meanwhile).
  A refusal Redis may lift (OOM, READONLY during a failover, LOADING, ...) is retried the
  same way; only an event Redis refuses for good (e.g. the key holds another type) is dropped.

Event ids are integers shared by every process: a Lua script increments a counter and adds
the event with the explicit stream id ``<n>-0``, and the reader turns ``<n>-0`` back into n.
The script takes a *floor* (the highest id this process has seen or published) and falls
back on the stream's own last id, so ids never go backwards, even if Redis restarted empty.

Both threads are real threads even in a monkey-patched program, so a blocking Redis call
never stalls the server's gevent loop; there redis-py's (patched) sockets simply run on
the thread's own gevent hub. They reach the server's hub only through ``deliver``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from itertools import islice

import redis
from gevent import monkey
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

from diveanalyzer.errors import BrokerError
from diveanalyzer.server.bridge import Latch, Signal, real_lock, release_thread_hub
from diveanalyzer.server.broker_redis import PUBLISH_LUA, SEED_LUA, Entry, decode, is_transient

DEFAULT_KEY = "diveanalyzer:events"
#: What `RedisBroker.counters` reports.
COUNTERS = ("published", "dropped", "pending")
#: Events kept in memory while Redis cannot take them; beyond that the oldest are dropped.
BUFFER_SIZE = 10_000
_BATCH = 256  # events per publisher round trip (a pipeline of script calls)
_READ_BLOCK_MS = 500  # how long one XREAD waits; also how soon the reader notices stop()
_RETRY_FIRST_S = 0.1
_RETRY_MAX_S = 2.0
_CONNECT_TIMEOUT_S = 1.0
_FIRST_READ_WAIT_S = 2.0

_start_thread = monkey.get_original("_thread", "start_new_thread")


def check_url(url: str) -> str:
    """``url`` if redis-py can use it; otherwise `BrokerError` with a one-line reason."""
    if not isinstance(url, str) or not url.strip():
        raise BrokerError("the broker URL is empty (expected e.g. redis://localhost:6379/0)")
    try:
        parse_url(url)
    except ValueError as exc:
        raise BrokerError(f"invalid broker URL {url!r}: {exc}") from None
    return url


class RedisBroker:
    """Publishes events to, and follows, one Redis Stream; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        key: str = DEFAULT_KEY,
        maxlen: int = 1000,
        buffer_size: int = BUFFER_SIZE,
        logger: logging.Logger | None = None,
    ) -> None:
        self.url = check_url(url)
        if not key or maxlen < 1 or buffer_size < 1:
            raise ValueError("key must be non-empty, maxlen and buffer_size at least 1")
        self.key = key
        self.counter_key = f"{key}:last_id"
        self.maxlen = int(maxlen)
        self.logger = logger or logging.getLogger("diveanalyzer.server.broker")
        #: Events written to Redis by this process.
        self.published = 0
        #: Events dropped: the buffer overflowed while Redis was away, or Redis refused them.
        self.dropped = 0
        self._lock = real_lock()  # guards the buffer and the counters above
        self._pending: deque[tuple[int, str, str, float]] = deque()
        self._buffer_size = int(buffer_size)
        self._sequence = 0  # numbers buffered events, to forget exactly the ones sent
        self._highest_id = 0  # the floor: highest id seen (reader) or published here
        self._reading = False
        self._said_down = False
        self._said_refusing = False
        self._wake = Signal()  # wakes the publisher
        self._reader_wake = Signal()  # cuts a reader's retry wait short on stop()
        self._stopping = False
        self._abandon = False
        self._threads: list[Latch] = []
        self._first_read = Latch()
        self._deliver: Callable[[list[Entry], bool], object] | None = None

    # -- public API ---------------------------------------------------------------------------

    def start(self, deliver: Callable[[list[Entry], bool], object] | None = None) -> None:
        """Start the publisher, and the reader when ``deliver`` is given (else publish only).

        ``deliver(batch, live)``: ``live`` is False for the stream's tail, read once at the
        start (old events, for the history), True for the events that follow. With a reader,
        waits (at most 2 s) for its first read, so the tail is handed over before this
        returns when Redis is reachable.
        """
        self._threads.append(self._spawn(self._publish_loop, "publisher"))
        if deliver is None:
            return
        self._deliver = deliver
        self._threads.append(self._spawn(self._read_loop, "reader"))
        self._first_read.wait(_FIRST_READ_WAIT_S)

    def publish(self, event_type: str, payload_json: str, timestamp: float) -> bool:
        """Queue one event for Redis. Any thread; never blocks. False once stopping."""
        with self._lock:
            if self._stopping:
                return False
            if len(self._pending) >= self._buffer_size:
                self._pending.popleft()
                self.dropped += 1
            self._sequence += 1
            self._pending.append((self._sequence, event_type, payload_json, timestamp))
        self._wake.set()
        return True

    def status(self) -> str:
        """``"up"`` while the reader is connected and following the stream, else ``"down"``."""
        return "up" if self._reading else "down"

    @property
    def pending(self) -> int:
        """Events published here and not yet written to Redis."""
        return len(self._pending)

    def counters(self) -> dict[str, int]:
        """`COUNTERS` by name, for ``/metrics``."""
        return {"published": self.published, "dropped": self.dropped, "pending": self.pending}

    def stop(self, timeout: float = 2.0) -> bool:
        """Send what is pending (for at most ``timeout`` s), stop both threads.

        Returns within about ``timeout`` + 0.75 s even if Redis hangs: a thread stuck in a
        Redis call is not waited for (it ends on its own, at its socket timeout). True when
        every published event was written to Redis.
        """
        with self._lock:
            self._stopping = True
        self._wake.set()
        finished = self._threads[0].wait(timeout) if self._threads else True
        self._abandon = True  # the publisher gives up on what is left; the reader ends
        self._wake.set()
        self._reader_wake.set()
        deadline = time.monotonic() + _READ_BLOCK_MS / 1000 + 0.25  # a reader in XREAD BLOCK
        for done in self._threads:
            done.wait(max(0.0, deadline - time.monotonic()))
        self._threads = []
        return finished and not self._pending

    # -- threads ------------------------------------------------------------------------------

    def _spawn(self, loop: Callable[[], None], role: str) -> Latch:
        done = Latch()

        def run() -> None:
            try:
                loop()
            except Exception:  # a bug must not pass silently in a thread nobody joins
                self.logger.exception("Redis broker %s thread failed", role)
            finally:
                release_thread_hub()
                done.set()

        _start_thread(run, ())
        return done

    def _client(self, read_timeout: float) -> redis.Redis:
        return redis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            socket_timeout=read_timeout,
            retry=Retry(NoBackoff(), 0),  # this module retries, with its own backoff
            health_check_interval=0,
        )

    def _publish_loop(self) -> None:
        client = self._client(read_timeout=5.0)
        script = client.register_script(PUBLISH_LUA)
        retry = _Backoff()
        try:
            while not self._abandon:
                with self._lock:
                    batch = list(islice(self._pending, _BATCH))
                if not batch:
                    if self._stopping:
                        return
                    self._wake.wait(1.0)
                    continue
                try:
                    self._send(client, script, batch)
                    retry.reset()
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    self.logger.debug("Redis broker: publish failed, will retry: %s", exc)
                    self._wake.wait(retry.next_delay())
                except redis.ResponseError as exc:  # e.g. the script cannot be loaded
                    if is_transient(exc):
                        self._refused_for_now(exc)
                        self._wake.wait(retry.next_delay())
                    else:
                        self._count_refused(self._settle(batch), exc)
        finally:
            client.close()

    def _send(self, client: redis.Redis, script, batch: list) -> None:
        """Write ``batch``; raises a refusal Redis may lift (those events stay buffered)."""
        pipe = client.pipeline(transaction=False)
        for _seq, event_type, payload_json, timestamp in batch:
            args = [self._highest_id, self.maxlen, event_type, payload_json, repr(timestamp)]
            script(keys=[self.key, self.counter_key], args=args, client=pipe)
        results = pipe.execute(raise_on_error=False)  # connection errors still raise
        retry = [(event, r) for event, r in zip(batch, results, strict=True) if is_transient(r)]
        self._settle(batch, keep={event[0] for event, _ in retry})
        ids = [int(result) for result in results if not isinstance(result, Exception)]
        with self._lock:
            self.published += len(ids)
            self._highest_id = max(self._highest_id, *ids, 0)
        refused = [r for r in results if isinstance(r, Exception) and not is_transient(r)]
        if refused:
            self._count_refused(len(refused), refused[0])
        if retry:
            raise retry[0][1]
        if self._said_refusing:
            self.logger.info("Redis broker: Redis takes events again")
            self._said_refusing = False

    def _settle(self, batch: list, keep: set[int] = frozenset()) -> int:
        """Take ``batch`` out of the buffer, but for the events numbered in ``keep``.

        Kept events go back to the front, to be sent before anything newer. Returns how many
        were taken out (``publish`` may have dropped some of the batch already, on overflow).
        """
        last = batch[-1][0]
        kept, taken = [], 0
        with self._lock:
            while self._pending and self._pending[0][0] <= last:
                event = self._pending.popleft()
                if event[0] in keep:
                    kept.append(event)
                else:
                    taken += 1
            self._pending.extendleft(reversed(kept))
        return taken

    def _count_refused(self, count: int, error: Exception) -> None:
        with self._lock:
            self.dropped += count
        self.logger.error("Redis broker: %d event(s) refused by Redis: %s", count, error)

    def _refused_for_now(self, error: Exception) -> None:
        """Say once per spell that Redis refuses writes (OOM, READONLY, ...): may last minutes."""
        if not self._said_refusing:
            self.logger.warning(
                "Redis broker: Redis refuses events for now (%s); keeping %d to send again",
                error,
                self.pending,
            )
            self._said_refusing = True

    def _read_loop(self) -> None:
        client = self._client(read_timeout=_READ_BLOCK_MS / 1000 + 5.0)
        seed = client.register_script(SEED_LUA)
        retry = _Backoff()
        last: str | None = None  # stream id of the newest entry delivered
        try:
            while not self._abandon:
                try:
                    if last is None:
                        last = self._deliver_tail(client)
                    elif not self._reading:
                        seed(keys=[self.counter_key], args=[self._highest_id])
                    self._set_reading(True)
                    self._first_read.set()
                    reply = client.xread({self.key: last}, count=_BATCH * 4, block=_READ_BLOCK_MS)
                    for _stream, entries in reply or ():
                        if entries:
                            last = entries[-1][0]
                            self._deliver_entries(entries)
                    retry.reset()
                except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                    self._set_reading(False, exc)
                    self._first_read.set()
                    self._reader_wake.wait(retry.next_delay())
        finally:
            self._set_reading(False)
            client.close()

    def _deliver_tail(self, client: redis.Redis) -> str:
        entries = client.xrevrange(self.key, count=self.maxlen)
        entries.reverse()
        self._deliver_entries(entries, live=False)
        return entries[-1][0] if entries else "0-0"

    def _deliver_entries(self, entries: list, live: bool = True) -> None:
        batch = [event for event in map(decode, entries) if event is not None]
        if not batch:
            return
        with self._lock:
            self._highest_id = max(self._highest_id, batch[-1][0])
        self._deliver(batch, live)

    def _set_reading(self, reading: bool, error: Exception | None = None) -> None:
        if reading and not self._reading:
            self.logger.info("Redis broker: following %s at %s", self.key, _safe(self.url))
        elif error is not None and (self._reading or not self._said_down):
            # Once per outage (and once if Redis is not there at startup), not per retry.
            self.logger.warning("Redis broker: no %s (%s); retrying", _safe(self.url), error)
            self._said_down = True
        self._reading = reading


# -- helpers ----------------------------------------------------------------------------------


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, _credentials = head.partition("://")
    return f"{scheme}://***@{tail}"


class _Backoff:
    """Retry delays: 0.1 s, doubling, at most 2 s."""

    def __init__(self) -> None:
        self._delay = _RETRY_FIRST_S

    def reset(self) -> None:
        self._delay = _RETRY_FIRST_S

    def next_delay(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, _RETRY_MAX_S)
        return delay


class BrokerPublisher:
    """Publish-only use of a `RedisBroker`: ``diveanalyzer process --broker`` without a server.

    `emit` has `EventServer.emit`'s contract (validated, encoded now, never blocks).
    """

    def __init__(self, url: str, *, key: str = DEFAULT_KEY, maxlen: int = 1000) -> None:
        self._broker = RedisBroker(url, key=key, maxlen=maxlen)
        self._broker.start()

    def emit(self, event_type: str, payload=None) -> bool:
        from diveanalyzer.server.server_support import encode_payload

        return self._broker.publish(event_type, encode_payload(event_type, payload), time.time())

    def close(self, timeout: float = 5.0) -> int:
        """Send what is pending (for at most ``timeout`` s); the number of events not sent."""
        self._broker.stop(timeout)
        return self._broker.pending + self._broker.dropped
