"""`EventServer`: the public, embeddable live event server (lifecycle and threading).

Two ways to run, chosen in `start()`:

* In a program that ran ``gevent.monkey.patch_all()``, the server lives on the calling
  thread's gevent hub (the main thread): request greenlets run whenever the program blocks
  cooperatively, as the design intends.
* Otherwise the server gets its own real thread running its own gevent hub, so a plain
  program keeps running while the server serves.

Either way `emit()` may be called from any thread (greenlets, plain threads, gevent's
threadpool): it encodes the payload in the caller's thread and appends it to an inbox that
the hub thread drains, woken by a loop ``async`` watcher, the thread-safe way into a gevent
loop. Nothing else crosses threads.

With ``broker="redis://..."`` events go through a Redis Stream instead (see `broker.py`):
`emit()` hands them to the broker, whose reader thread delivers every process's events,
this one's included, numbered by Redis, through the same inbox to `Hub.publish_numbered`.
Every process sharing the stream then shows the same events under the same ids.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import gevent
import gevent.event
from gevent import monkey
from gevent.pool import Pool
from gevent.pywsgi import LoggingLogAdapter

from diveanalyzer.errors import ServerError
from diveanalyzer.server.app import AppConfig, EventApp
from diveanalyzer.server.bridge import Inbox, Latch, real_get_ident, real_lock
from diveanalyzer.server.broker import COUNTERS, DEFAULT_KEY, RedisBroker, check_url
from diveanalyzer.server.hub import Hub
from diveanalyzer.server.server_support import (
    BrokeredHub,
    check_settings,
    deliver_batch,
    encode_payload,
    listen_error,
    open_listener,
)
from diveanalyzer.server.wsgi import EventWSGIServer

__all__ = ["EventServer", "encode_payload"]

_START_TIMEOUT_S = 30.0
_STOP_GRACE_S = 1.0
_STOP_WAIT_S = 4.0
# What stop() gives the broker to send pending events: with its threads' ends (0.75 s) and
# the listener's grace, closing fits in _STOP_WAIT_S even while Redis hangs.
_BROKER_DRAIN_S = 1.5


@dataclasses.dataclass(eq=False)
class _Run:
    """One listening period, from `start()` to `stop()`."""

    own_thread: bool
    wsgi: EventWSGIServer | None = None
    inbox: Inbox | None = None
    broker: RedisBroker | None = None
    thread: threading.Thread | None = None
    stop_requested: gevent.event.Event | None = None
    started: float = 0.0
    error: ServerError | None = None
    abandoned: bool = False
    ready: Latch = dataclasses.field(default_factory=Latch)
    done: Latch = dataclasses.field(default_factory=Latch)


class EventServer:
    """Live progress over Server-Sent Events, plus the review gallery, for any number of viewers.

    ``EventServer(gallery_path, host="localhost", port=8765, log_level="INFO")`` is the
    public contract. The keyword-only settings tune behaviour (tests use short heartbeats):

    * ``heartbeat_interval``: seconds of silence before a ``: keepalive`` comment (15).
    * ``history_size``: events kept for ``Last-Event-ID`` resume and ``/events/history`` (1000).
    * ``queue_size``: writes (one event, or the events published together) a client's
      queue may hold before it is disconnected (1000).
    * ``client_timeout``: seconds a stream may make no progress (its writes blocked, or
      what it received left unread) before it is dropped; also the idle timeout of other
      connections (15). TCP shows an unread stream only once its receive window closes.
    * ``retry_ms``: reconnection delay sent to clients (3000).
    * ``max_connections``: open ``/events`` streams (more get 503 with ``Retry-After``),
      and requests handled at once (more wait to be accepted) (1000).
    * ``broker``: a ``redis://`` URL: share events (and their ids) with every server process
      using the same Redis Stream ``broker_key``, trimmed to ``history_size`` events. A bad
      URL raises `BrokerError`; Redis being down does not stop the server (``/health``
      says ``"broker": "down"``, emits are buffered and sent when Redis is back).
    * ``reuse_port``: listen with SO_REUSEPORT, so worker processes can share one port.
    * ``access_token``: the token changes need off loopback (default: a fresh one); workers
      sharing a port must share it.

    In a monkey-patched program the server shares the main thread's hub, so CPU-heavy work
    belongs in gevent's threadpool (as the pipeline does), or the streams stall meanwhile.
    """

    def __init__(
        self,
        gallery_path: str | os.PathLike,
        host: str = "localhost",
        port: int = 8765,
        log_level: str | int = "INFO",
        *,
        heartbeat_interval: float = 15.0,
        history_size: int = 1000,
        queue_size: int = 1000,
        client_timeout: float = 15.0,
        retry_ms: int = 3000,
        max_connections: int = 1000,
        broker: str | None = None,
        broker_key: str = DEFAULT_KEY,
        reuse_port: bool = False,
        access_token: str | None = None,
    ) -> None:
        check_settings(port, heartbeat_interval, client_timeout, retry_ms, max_connections)
        self.broker_url = None if broker is None else check_url(broker)
        self.broker_key = broker_key
        self.reuse_port = bool(reuse_port)
        self._history_size = int(history_size)
        self.gallery_path = Path(gallery_path)
        self.host = host
        self.port = int(port)
        self.client_timeout = float(client_timeout)
        self.max_connections = int(max_connections)
        self.logger = logging.getLogger(f"diveanalyzer.server.port{self.port}")
        self.logger.setLevel(log_level.upper() if isinstance(log_level, str) else log_level)
        #: Why the last `start()` failed (a `ServerError`), or None.
        self.start_error: ServerError | None = None
        #: With a broker: events of the last run that never reached Redis (set by `stop()`).
        self.broker_unsent = 0
        self._hub = Hub(
            history_size=history_size,
            queue_size=queue_size,
            heartbeat_s=float(heartbeat_interval),
            write_timeout_s=self.client_timeout,
            max_subscribers=self.max_connections,
        )
        config = AppConfig(
            gallery_path=self.gallery_path,
            uptime=self._uptime,
            retry_ms=int(retry_ms),
            broker_status=self._broker_status if broker is not None else None,
            broker_counters=self._broker_counters if broker is not None else None,
        )
        self._app = EventApp(self._hub, config)
        if broker is not None:
            # Review changes must be numbered by Redis too, like every other event.
            self._app.review.hub = BrokeredHub(self._hub, self._publish_to_broker)
        if access_token is not None:
            self._app.review.token = self._app.review.guard.token = access_token
        self._state_lock = real_lock()
        self._state = "stopped"
        self._run: _Run | None = None
        self._bound_port: int | None = None

    # -- public API ---------------------------------------------------------------------------

    def start(self) -> bool:
        """Start listening. True once listening (or already running); False if it cannot.

        On failure the reason is logged as one line and kept in `start_error`.
        """
        with self._state_lock:
            if self._state == "running":
                return True
            if self._state != "stopped":
                return self._refuse(ServerError(f"cannot start while {self._state}"))
            self._state = "starting"
        try:
            run = self._launch()
        except BaseException:
            self._set_state("stopped")
            raise
        if run.error is not None:
            self._set_state("stopped")
            return self._refuse(run.error)
        self._run = run
        self.start_error = None
        self._set_state("running")
        self.logger.info("event server listening on %s", self.get_url())
        return True

    def stop(self) -> bool:
        """Stop listening, end every open stream, free the port. Returns within about 5 s.

        True once stopped (also when it was not running); False only if the server thread
        did not finish in time (it is a daemon thread and cannot keep the process alive).
        """
        with self._state_lock:
            if self._state != "running":
                return self._state == "stopped"
            self._state = "stopping"
        run = self._run
        try:
            finished = self._halt(run)
        finally:
            self._run = None
            self._set_state("stopped")
        self.logger.info("event server on %s stopped", self.get_url())
        return finished

    def emit(self, event_type: str, payload: Mapping | None = None) -> bool:
        """Publish an event to every viewer. Any thread; never blocks; keeps per-thread order.

        ``payload`` (a mapping, JSON-serialisable) is encoded now, so later changes to it do
        not leak into the event. Returns False (and drops the event) when not running.
        Raises ValueError/TypeError for an invalid event type or payload.
        """
        payload_json = encode_payload(event_type, payload)
        run = self._run
        if run is None or run.inbox is None:
            return False
        if run.broker is not None:
            return run.broker.publish(event_type, payload_json, time.time())
        return run.inbox.put(self._hub.publish, event_type, payload_json, time.time())

    def is_running(self) -> bool:
        """Whether the server is listening."""
        return self._state == "running"

    def get_url(self) -> str:
        """The server's base URL, e.g. ``http://localhost:8765``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = self._bound_port if self._bound_port is not None else self.port
        return f"http://{host}:{port}"

    def get_events_url(self) -> str:
        """The SSE endpoint, e.g. ``http://localhost:8765/events``."""
        return self.get_url() + "/events"

    def __enter__(self) -> EventServer:
        if not self.start():
            raise self.start_error
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EventServer {self.get_url()} {self._state}>"

    # -- lifecycle internals ------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        with self._state_lock:
            self._state = state

    def _refuse(self, error: ServerError) -> bool:
        self.start_error = error
        self.logger.error("event server cannot start on %s: %s", self.get_url(), error)
        return False

    def _launch(self) -> _Run:
        """Open the server on this thread's hub (patched program) or on a new thread."""
        if not monkey.is_module_patched("threading"):
            return self._launch_thread()
        run = _Run(own_thread=False)
        if not gevent.get_hub().loop.default:
            run.error = ServerError(
                "in a gevent-patched program, start() must be called on the main thread"
            )
            return run
        self._open(run)
        return run

    def _launch_thread(self) -> _Run:
        run = _Run(own_thread=True)
        run.thread = threading.Thread(
            target=self._thread_main, args=(run,), name=f"EventServer-{self.port}", daemon=True
        )
        run.thread.start()
        if not run.ready.wait(_START_TIMEOUT_S):
            run.error = ServerError("the server thread did not start in time")
            run.abandoned = True  # the thread closes again if it gets there after all
            if run.inbox is not None:
                run.inbox.put(run.stop_requested.set)
        if run.error is not None:
            run.thread.join(timeout=1.0)  # it is already on its way out
        return run

    def _thread_main(self, run: _Run) -> None:
        """Body of the server's own thread: open, wait for stop, shut down, free the hub."""
        hub = gevent.get_hub()
        try:
            try:
                self._open(run)
            except Exception as exc:  # a bug must not look like a successful start
                run.error = ServerError(f"the server thread failed to start: {exc}")
            if run.error is None:
                if not run.abandoned:
                    run.stop_requested.wait()
                self._close(run)
        finally:
            run.ready.set()
            hub.destroy(destroy_loop=True)
            run.done.set()

    def _open(self, run: _Run) -> None:
        """Bind, start accepting and set up the inbox, on the hub thread. Sets ``run.error``."""
        try:
            listener = open_listener(self.host, self.port, self.reuse_port)
        except OSError as exc:
            run.error = listen_error(exc, self.host, self.port)
            run.ready.set()
            return
        wsgi = EventWSGIServer(
            listener,
            self._app.wsgi,
            event_hub=self._hub,
            client_timeout=self.client_timeout,
            spawn=Pool(self.max_connections),
            log=LoggingLogAdapter(self.logger, logging.DEBUG),
            error_log=LoggingLogAdapter(self.logger, logging.ERROR),
            environ={"SERVER_NAME": self.host},
        )
        try:
            wsgi.start()
        except OSError as exc:
            listener.close()
            run.error = listen_error(exc, self.host, self.port)
            run.ready.set()
            return
        self._bound_port = wsgi.server_port
        self._hub.reopen()
        run.wsgi = wsgi
        run.stop_requested = gevent.event.Event()
        run.started = time.monotonic()
        run.inbox = Inbox(self.logger)
        if self.broker_url is not None:
            broker = RedisBroker(
                self.broker_url, key=self.broker_key, maxlen=self._history_size, logger=self.logger
            )
            # The reader thread hands each batch it reads to this (hub) thread.
            broker.start(lambda batch, live: run.inbox.put(deliver_batch, self._hub, batch, live))
            run.broker = broker
        run.ready.set()

    def _close(self, run: _Run) -> None:
        """Publish pending emits, end every stream, close the listener (on the hub thread)."""
        if run.broker is not None:
            run.broker.stop(timeout=_BROKER_DRAIN_S)
            self.broker_unsent = run.broker.pending + run.broker.dropped
            if self.broker_unsent:
                self.logger.warning("%d event(s) were not sent to Redis", self.broker_unsent)
        run.inbox.close()
        self._hub.close_all()
        run.wsgi.stop(timeout=_STOP_GRACE_S)

    def _halt(self, run: _Run) -> bool:
        """Run `_close` on the hub thread and wait for it; True when it finished in time."""
        if run.own_thread:
            run.inbox.put(run.stop_requested.set)
            finished = run.done.wait(_STOP_WAIT_S)
            run.thread.join(timeout=0.5)
            return finished
        if real_get_ident() == run.inbox.thread_ident:
            if gevent.getcurrent() is gevent.get_hub():
                # Called from a loop callback, which must not block: finish in a greenlet.
                gevent.spawn(self._close, run)
            else:
                self._close(run)
            return True
        run.inbox.put(gevent.spawn, self._close_and_signal, run)
        return run.done.wait(_STOP_WAIT_S)

    def _close_and_signal(self, run: _Run) -> None:
        try:
            self._close(run)
        finally:
            run.done.set()

    def _uptime(self) -> float:
        run = self._run
        return time.monotonic() - run.started if run is not None and run.started else 0.0

    # -- broker -------------------------------------------------------------------------------

    def _publish_to_broker(self, event_type: str, payload_json: str, timestamp: float) -> bool:
        run = self._run
        if run is None or run.broker is None:
            return False
        return run.broker.publish(event_type, payload_json, timestamp)

    def _broker_status(self) -> str:
        run = self._run
        return run.broker.status() if run is not None and run.broker is not None else "down"

    @property
    def broker_state(self) -> str | None:
        """``"up"``/``"down"`` (Redis followed or not) with a broker; None without one."""
        return None if self.broker_url is None else self._broker_status()

    def _broker_counters(self) -> dict[str, int]:
        run = self._run
        broker = run.broker if run is not None else None
        return broker.counters() if broker is not None else dict.fromkeys(COUNTERS, 0)
