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
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import gevent
import gevent.event
from gevent import monkey
from gevent.pool import Pool
from gevent.pywsgi import LoggingLogAdapter

from diveanalyzer.errors import PortInUseError, ServerError
from diveanalyzer.server.app import AppConfig, EventApp
from diveanalyzer.server.bridge import Inbox, Latch, real_get_ident, real_lock
from diveanalyzer.server.hub import Hub
from diveanalyzer.server.sse import RESERVED_TYPES, is_valid_event_type
from diveanalyzer.server.wsgi import EventWSGIServer

_START_TIMEOUT_S = 30.0
_STOP_GRACE_S = 1.0
_STOP_WAIT_S = 4.0


@dataclasses.dataclass(eq=False)
class _Run:
    """One listening period, from `start()` to `stop()`."""

    own_thread: bool
    wsgi: EventWSGIServer | None = None
    inbox: Inbox | None = None
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
    * ``queue_size``: events a client may fall behind before it is disconnected (1000).
    * ``client_timeout``: seconds a write may block (client not reading) before the
      connection is dropped; also the idle timeout of a connection (15: a frozen client
      first fills its socket buffers, so the whole drop takes a few seconds more, under 20).
    * ``retry_ms``: reconnection delay sent to clients (3000).
    * ``max_connections``: concurrent connections served; more wait to be accepted (1000).

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
    ) -> None:
        _check_settings(port, heartbeat_interval, client_timeout, retry_ms, max_connections)
        self.gallery_path = Path(gallery_path)
        self.host = host
        self.port = int(port)
        self.client_timeout = float(client_timeout)
        self.max_connections = int(max_connections)
        self.logger = logging.getLogger(f"diveanalyzer.server.port{self.port}")
        self.logger.setLevel(log_level.upper() if isinstance(log_level, str) else log_level)
        #: Why the last `start()` failed (a `ServerError`), or None.
        self.start_error: ServerError | None = None
        self._hub = Hub(history_size=history_size, queue_size=queue_size)
        config = AppConfig(
            gallery_path=self.gallery_path,
            uptime=self._uptime,
            heartbeat_s=float(heartbeat_interval),
            retry_ms=int(retry_ms),
        )
        self._app = EventApp(self._hub, config)
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
        wsgi = EventWSGIServer(
            (self.host, self.port),
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
            run.error = _listen_error(exc, self.host, self.port)
            run.ready.set()
            return
        self._bound_port = wsgi.server_port
        self._hub.reopen()
        run.wsgi = wsgi
        run.stop_requested = gevent.event.Event()
        run.started = time.monotonic()
        run.inbox = Inbox(self.logger)
        run.ready.set()

    def _close(self, run: _Run) -> None:
        """Publish pending emits, end every stream, close the listener (on the hub thread)."""
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


# -- helpers ----------------------------------------------------------------------------------


def encode_payload(event_type: str, payload: Mapping | None) -> str:
    """Validate an event and encode its payload as one line of JSON (ASCII)."""
    if not is_valid_event_type(event_type):
        raise ValueError(
            f"event type must be letters, digits, '_', '.', '-' (start with a letter, "
            f"at most 64 characters), got {event_type!r}"
        )
    if event_type in RESERVED_TYPES:
        raise ValueError(f"event type {event_type!r} is reserved for the server")
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be a mapping (a dict), got {type(payload).__name__}")
    try:
        return json.dumps(payload, default=_json_default, allow_nan=False)
    except ValueError:
        # NaN/Infinity are not JSON (a browser's JSON.parse rejects them): send null.
        return json.dumps(_finite(payload), default=_json_default, allow_nan=False)


def _json_default(value: object) -> object:
    """JSON form of the values the pipeline naturally emits (records, paths, numpy)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    raise TypeError(f"payload value of type {type(value).__name__} is not JSON serializable")


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _listen_error(exc: OSError, host: str, port: int) -> ServerError:
    """A one-line, specific reason for a failed bind/listen."""
    if isinstance(exc, socket.gaierror):
        return ServerError(f"cannot resolve host {host!r}")
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(f"port {port} on {host} is already in use")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ServerError(f"not allowed to listen on {host}:{port}")
    if exc.errno == errno.EADDRNOTAVAIL:
        return ServerError(f"cannot listen on {host}: not an address of this machine")
    return ServerError(f"cannot listen on {host}:{port}: {os.strerror(exc.errno or 0)}")


def _check_settings(
    port: int, heartbeat: float, client_timeout: float, retry_ms: int, max_connections: int
) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, got {port!r}")
    if heartbeat <= 0 or client_timeout <= 0:
        raise ValueError("heartbeat_interval and client_timeout must be positive")
    if retry_ms < 0 or max_connections < 1:
        raise ValueError("retry_ms must be >= 0 and max_connections >= 1")
