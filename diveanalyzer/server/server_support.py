"""Helpers of `EventServer`: payload encoding, settings checks, and the listening socket."""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import socket
import time
from collections.abc import Mapping

from gevent import socket as gsocket
from gevent.baseserver import parse_address

from diveanalyzer.errors import PortInUseError, ServerError
from diveanalyzer.server.sse import RESERVED_TYPES, is_valid_event_type

#: Pending connections the kernel queues per listener (a crowd reconnecting at once).
LISTEN_BACKLOG = 1024


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


def listen_error(exc: OSError, host: str, port: int) -> ServerError:
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


def check_settings(
    port: int, heartbeat: float, client_timeout: float, retry_ms: int, max_connections: int
) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, got {port!r}")
    if heartbeat <= 0 or client_timeout <= 0:
        raise ValueError("heartbeat_interval and client_timeout must be positive")
    if retry_ms < 0 or max_connections < 1:
        raise ValueError("retry_ms must be >= 0 and max_connections >= 1")


def open_listener(host: str, port: int, reuse_port: bool = False) -> gsocket.socket:
    """A listening gevent socket on ``host:port`` (backlog `LISTEN_BACKLOG`).

    Created on the thread whose hub will serve it. With ``reuse_port``, SO_REUSEPORT lets
    several worker processes listen on the same port; the kernel spreads connections.
    """
    family, address = parse_address((host, port))
    sock = gsocket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class BrokeredHub:
    """The hub as the review app sees it with a broker: `publish` goes through Redis."""

    def __init__(self, hub, publish) -> None:
        self._hub = hub
        self._publish = publish

    def publish(self, event_type: str, payload_json: str, timestamp: float | None = None) -> None:
        self._publish(event_type, payload_json, time.time() if timestamp is None else timestamp)

    def __getattr__(self, name: str):
        return getattr(self._hub, name)


def deliver_batch(hub, batch: list[tuple[int, str, str, float]], live: bool = True) -> None:
    """Events read from Redis into the hub, on the hub thread (ids seen already are ignored).

    ``live=False`` (the stream's tail, read once at start) only fills the history: those
    events are old, viewers already connected must not see them as new.
    """
    for event_id, event_type, payload_json, timestamp in batch:
        hub.publish_numbered(event_id, event_type, payload_json, timestamp, live=live)
