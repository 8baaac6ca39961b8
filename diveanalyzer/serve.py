"""Gallery-only mode: ``python -m diveanalyzer.serve DIR [--host 127.0.0.1] [--port 8765]``.

Serves ``DIR/review_gallery.html`` (or the live page until it exists) with the same endpoints
as the live server, prints the URL, and exits with code 0 on Ctrl-C or SIGTERM.

``--broker redis://HOST:6379/0`` shares events through Redis (any number of server processes
and pipelines, on any machine); ``--workers N`` then runs N worker processes on one port
(see `diveanalyzer.serve_workers`).
"""

# Run as a program, gevent must patch sockets and threads before anything else is imported.
# Imported as a library, it must not patch: the embedding program decides.
if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import click
import gevent
import gevent.event

from diveanalyzer.cli_options import history_option
from diveanalyzer.errors import DiveAnalyzerError, UsageError
from diveanalyzer.serve_workers import (
    TOKEN_ENV,
    WorkerSettings,
    connection_limit,
    exit_with_parent,
    run_workers,
)
from diveanalyzer.server import EventServer
from diveanalyzer.server.broker import DEFAULT_KEY, check_url
from diveanalyzer.server.security import is_loopback_host

GALLERY_NAME = "review_gallery.html"
DEFAULT_MAX_CONNECTIONS = 10_000


def serve_directory(
    directory: str | Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    on_ready: Callable[[EventServer], None] | None = None,
    stop: gevent.event.Event | None = None,
    broker: str | None = None,
    broker_key: str = DEFAULT_KEY,
    max_connections: int = 1000,
    history_size: int = 1000,
    reuse_port: bool = False,
    access_token: str | None = None,
) -> None:
    """Serve ``directory``'s gallery until SIGINT/SIGTERM (or ``stop`` is set), then stop.

    Must run on the main thread (it handles the signals). Raises `UsageError` when the
    directory does not exist, `BrokerError` for a bad ``broker`` URL and `ServerError`
    (e.g. `PortInUseError`) when it cannot listen. The other keywords go to `EventServer`.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise UsageError(f"no such directory: {folder}")
    server = EventServer(
        folder / GALLERY_NAME,
        host=host,
        port=port,
        log_level="WARNING",
        max_connections=max_connections,
        history_size=history_size,
        broker=broker,
        broker_key=broker_key,
        reuse_port=reuse_port,
        access_token=access_token,
    )
    if not server.start():
        raise server.start_error
    stop = stop if stop is not None else gevent.event.Event()
    watchers = [gevent.signal_handler(sig, stop.set) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        if on_ready is not None:
            on_ready(server)
        # A timed wait keeps this thread's gevent loop alive (signal watchers alone do not
        # when the server runs on its own thread, in an unpatched program).
        while not stop.wait(timeout=1.0):
            pass
    finally:
        for watcher in watchers:
            watcher.cancel()
        server.stop()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--broker",
    metavar="URL",
    help="Share live events through Redis, e.g. redis://localhost:6379/0: viewers of any "
    "server process using it see the same events (and can resume on any of them).",
)
@click.option(
    "--broker-key",
    default=DEFAULT_KEY,
    show_default=True,
    help="Name of the Redis Stream holding the events.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes sharing the port (SO_REUSEPORT); more than 1 needs --broker.",
)
@click.option(
    "--max-connections",
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    type=click.IntRange(1, None),
    help="Concurrent connections per process (capped by the open-file limit).",
)
@history_option
@click.option("--worker", is_flag=True, hidden=True)  # set by the --workers parent
def main(
    directory: Path,
    host: str,
    port: int,
    broker: str | None,
    broker_key: str,
    workers: int,
    max_connections: int,
    history: int,
    worker: bool,
) -> None:
    """Serve DIRECTORY's review gallery (and its live events) in the browser.

    With DIRECTORY/dives.json, / is the review page: play the clips, keep, reject, star and
    annotate dives (saved to dives.json and shown to every open page), export CSV/JSON/EDL.
    Given a folder of session folders, / lists them. While a video is still being processed,
    / follows it live. Stop with Ctrl-C.

    Bound to a non-loopback address (--host 0.0.0.0 to share with a team), anyone who can
    reach it may view, but reviewing needs the ?token=... address printed at startup.

    Many viewers: --broker redis://HOST:6379/0 --workers N runs N processes on one port,
    all showing the events published to Redis (`diveanalyzer process ... --broker URL`).
    """
    # The library reports failures by exception; keep its log quiet so each error is one line.
    logging.getLogger("diveanalyzer.server").addHandler(logging.NullHandler())
    try:
        if workers > 1 and broker is None:
            raise UsageError(
                "--workers needs --broker (viewers on different workers would see different events)"
            )
        if broker is not None:
            check_url(broker)
        # Capping the default silently keeps errors one line where the fd limit is low.
        explicit = click.get_current_context().get_parameter_source("max_connections")
        quiet = worker or explicit == click.core.ParameterSource.DEFAULT
        limit = connection_limit(max_connections, quiet=quiet)
        if workers > 1:
            settings = WorkerSettings(
                directory, host, port, broker, broker_key, limit, workers, history
            )
            sys.exit(run_workers(settings, announce=_announce_url))
        if worker:
            exit_with_parent(stop := gevent.event.Event())
            serve_directory(
                directory,
                host,
                port,
                stop=stop,
                on_ready=_tell_parent,
                broker=broker,
                broker_key=broker_key,
                max_connections=limit,
                history_size=history,
                reuse_port=True,
                access_token=os.environ.get(TOKEN_ENV),
            )
            return
        serve_directory(
            directory,
            host,
            port,
            on_ready=_announce,
            broker=broker,
            broker_key=broker_key,
            max_connections=limit,
            history_size=history,
        )
    except DiveAnalyzerError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)


def _tell_parent(server: EventServer) -> None:
    """The line the --workers parent waits for: ``ready URL up|down``."""
    click.echo(f"ready {server.get_url()} {server.broker_state}")
    sys.stdout.flush()


def _announce(server: EventServer) -> None:
    broker_up = server.broker_state != "down"
    _announce_url(server.get_url(), server.host, access_token(server), broker_up)


def _announce_url(url: str, host: str, token: str, broker_up: bool = True) -> None:
    """The startup lines: where to look, the token when shared beyond loopback, and a note
    when Redis (``--broker``) is not reachable yet (the servers keep trying)."""
    shown = f"{url}/" if is_loopback_host(host) else f"{url}/?token={token}"
    click.echo(f"Serving the review gallery at {shown}  (Ctrl-C to stop)")
    if not is_loopback_host(host):
        port = urlsplit(url).port
        click.echo(
            "Shared on the network: anyone who can reach it may view; reviewing needs the "
            f"token, e.g. http://{socket.gethostname()}:{port}/?token={token}"
        )
    sys.stdout.flush()
    if not broker_up:
        click.echo(
            "Note: Redis is not reachable yet; events will show once it is "
            '(/health says "broker": "up" then)',
            err=True,
        )


def access_token(server: EventServer) -> str:
    """The token every change needs when the server listens beyond loopback."""
    return server._app.review.token  # kept by the server's review app, made at construction


def review_url(server: EventServer) -> str:
    """The address to open: with the access token when the server listens beyond loopback."""
    if is_loopback_host(server.host):
        return f"{server.get_url()}/"
    return f"{server.get_url()}/?token={access_token(server)}"


if __name__ == "__main__":
    main(prog_name="python -m diveanalyzer.serve")
