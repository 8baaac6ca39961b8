"""Gallery-only mode: ``python -m diveanalyzer.serve DIR [--host 127.0.0.1] [--port 8765]``.

Serves ``DIR/review_gallery.html`` (or the live page until it exists) with the same endpoints
as the live server, prints the URL, and exits with code 0 on Ctrl-C or SIGTERM.
"""

# Run as a program, gevent must patch sockets and threads before anything else is imported.
# Imported as a library, it must not patch: the embedding program decides.
if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

import logging
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import click
import gevent
import gevent.event

from diveanalyzer.errors import DiveAnalyzerError, UsageError
from diveanalyzer.server import EventServer
from diveanalyzer.server.security import is_loopback_host

GALLERY_NAME = "review_gallery.html"


def serve_directory(
    directory: str | Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    on_ready: Callable[[EventServer], None] | None = None,
    stop: gevent.event.Event | None = None,
) -> None:
    """Serve ``directory``'s gallery until SIGINT/SIGTERM (or ``stop`` is set), then stop.

    Must run on the main thread (it handles the signals). Raises `UsageError` when the
    directory does not exist and `ServerError` (e.g. `PortInUseError`) when it cannot listen.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise UsageError(f"no such directory: {folder}")
    server = EventServer(folder / GALLERY_NAME, host=host, port=port, log_level="WARNING")
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
def main(directory: Path, host: str, port: int) -> None:
    """Serve DIRECTORY's review gallery (and its live events) in the browser.

    With DIRECTORY/dives.json, / is the review page: play the clips, keep, reject, star and
    annotate dives (saved to dives.json and shown to every open page), export CSV/JSON/EDL.
    Given a folder of session folders, / lists them. While a video is still being processed,
    / follows it live. Stop with Ctrl-C.

    Bound to a non-loopback address (--host 0.0.0.0 to share with a team), anyone who can
    reach it may view, but reviewing needs the ?token=... address printed at startup.
    """
    # The library reports failures by exception; keep its log quiet so each error is one line.
    logging.getLogger("diveanalyzer.server").addHandler(logging.NullHandler())
    try:
        serve_directory(directory, host, port, on_ready=_announce)
    except DiveAnalyzerError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)


def _announce(server: EventServer) -> None:
    click.echo(f"Serving the review gallery at {review_url(server)}  (Ctrl-C to stop)")
    if not is_loopback_host(server.host):
        port = urlsplit(server.get_url()).port
        click.echo(
            "Shared on the network: anyone who can reach it may view; reviewing needs the "
            f"token, e.g. http://{socket.gethostname()}:{port}/?token={access_token(server)}"
        )
    sys.stdout.flush()


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
