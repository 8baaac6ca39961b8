"""``python -m diveanalyzer.serve DIR --broker URL --workers N``: N server processes, one port.

The parent reserves the port (binding, not listening, with SO_REUSEPORT: a program that
does not set SO_REUSEPORT can no longer take it; one of the same user that does could still
join it, as the workers do), starts N ``python -m diveanalyzer.serve ... --worker``
processes that listen on it with SO_REUSEPORT (the kernel spreads new connections over
them), prints the URL once, forwards SIGINT/SIGTERM and reports a worker that dies. Every
worker follows the same Redis Stream, so a viewer sees the same events, with the same ids,
on any of them. Workers share one access token (given in the environment) and stop when
the parent goes away.

Runs in the program's main thread with gevent (the parent of ``python -m diveanalyzer.serve``
is monkey-patched like the workers).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import gevent
import gevent.event
import gevent.os
from gevent import subprocess

from diveanalyzer.errors import PortInUseError, ServerError
from diveanalyzer.server.security import new_token

#: Environment variable carrying the shared access token to the workers.
TOKEN_ENV = "DIVEANALYZER_ACCESS_TOKEN"
#: File descriptors kept for everything but client connections (logs, Redis, media files).
_SPARE_FDS = 64
_READY_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker is started with."""

    directory: Path
    """The folder served."""
    host: str
    """Address to listen on."""
    port: int
    """Port to share (0: the parent picks a free one)."""
    broker: str
    """The Redis URL every worker follows."""
    broker_key: str
    """The Redis Stream's key."""
    max_connections: int
    """Concurrent connections per worker."""
    workers: int
    """How many worker processes."""
    history: int = 1000
    """Events kept for resume; the Redis Stream is trimmed to about this many."""


def connection_limit(wanted: int, quiet: bool = False) -> int:
    """Raise the open-file limit as far as allowed; ``wanted`` capped to what it permits.

    Each connection holds a file descriptor. Says so on stderr when it caps (unless quiet).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    allowed = max(1, soft - _SPARE_FDS)
    if wanted <= allowed:
        return wanted
    if not quiet:
        click.echo(
            f"Note: --max-connections capped to {allowed} by the open-file limit "
            f"(ulimit -n is {soft}; raise it to serve more)",
            err=True,
        )
    return allowed


def exit_with_parent(stop: gevent.event.Event) -> None:
    """Set ``stop`` when stdin reaches end of file: the parent that holds its other end died."""

    def watch() -> None:
        with contextlib.suppress(OSError):
            gevent.os.make_nonblocking(0)
            while gevent.os.nb_read(0, 4096):
                pass
        stop.set()

    gevent.spawn(watch)


def run_workers(settings: WorkerSettings, announce: Callable[[str, str, str, bool], None]) -> int:
    """Run the workers until SIGINT/SIGTERM; the exit code (0, or 2 if every worker died).

    ``announce(url, host, token, broker_up)`` prints the address once every worker listens
    (``broker_up``: every worker follows Redis already). Raises
    `ServerError` (e.g. `PortInUseError`) when the port cannot be had or a worker fails to start.
    """
    reservation, port = _reserve_port(settings.host, settings.port)
    token = new_token()
    stop = gevent.event.Event()
    watchers = [gevent.signal_handler(sig, stop.set) for sig in (signal.SIGINT, signal.SIGTERM)]
    processes: list[subprocess.Popen] = []
    try:
        for _ in range(settings.workers):
            processes.append(_start_worker(settings, port, token))
        url, broker_up = _await_ready(processes)
        announce(url, settings.host, token, broker_up)
        return _supervise(processes, stop)
    finally:
        for watcher in watchers:
            watcher.cancel()
        _stop_all(processes)
        reservation.close()


def _reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Bind (without listening) so the port is ours; workers join it with SO_REUSEPORT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is already in use") from None
        raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock, sock.getsockname()[1]


def _start_worker(settings: WorkerSettings, port: int, token: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "diveanalyzer.serve",
        str(settings.directory),
        "--host",
        settings.host,
        "--port",
        str(port),
        "--broker",
        settings.broker,
        "--broker-key",
        settings.broker_key,
        "--max-connections",
        str(settings.max_connections),
        "--history",
        str(settings.history),
        "--worker",
    ]
    # stdin stays open for the worker's life: its end of file tells the worker we are gone.
    # A session of its own: Ctrl-C reaches the parent only, which then stops every worker.
    return subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, TOKEN_ENV: token},
        text=True,
        start_new_session=True,
    )


def _await_ready(processes: list[subprocess.Popen]) -> tuple[str, bool]:
    """Wait for each worker's ``ready URL up|down`` line: the URL, and whether all are up.

    A worker that fails says why on stderr (shared with ours).
    """
    url, all_up = "", True
    with gevent.Timeout(_READY_TIMEOUT_S, ServerError("the workers did not start in time")):
        for number, process in enumerate(processes, 1):
            line = process.stdout.readline()
            if not line.startswith("ready "):
                process.wait()
                raise ServerError(
                    f"worker {number} failed to start (exit code {process.returncode})"
                )
            _, url, state = line.split()
            all_up = all_up and state == "up"
            gevent.spawn(_drain, process)
    return url, all_up


def _drain(process: subprocess.Popen) -> None:
    with contextlib.suppress(OSError, ValueError):
        while process.stdout.readline():
            pass


def _supervise(processes: list[subprocess.Popen], stop: gevent.event.Event) -> int:
    """Wait for a signal; report each worker that dies meanwhile. 2 when none is left."""
    alive = set(processes)

    def watch(number: int, process: subprocess.Popen) -> None:
        code = process.wait()
        if stop.is_set():
            return
        alive.discard(process)
        click.echo(f"Error: worker {number} (pid {process.pid}) exited with code {code}", err=True)
        if not alive:
            stop.set()

    for number, process in enumerate(processes, 1):
        gevent.spawn(watch, number, process)
    while not stop.wait(timeout=1.0):
        pass
    return 0 if alive else 2


def _stop_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(OSError):
            process.stdin.close()
