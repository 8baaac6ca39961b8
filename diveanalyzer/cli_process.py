"""``diveanalyzer process`` and ``diveanalyzer demo``: the main job, with live events.

Registered on the `diveanalyzer.cli.cli` group. Parsing and terminal output only; the work
is `diveanalyzer.pipeline.process_videos`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import click

from diveanalyzer.cli_options import broker_options, detect_settings, detection_options
from diveanalyzer.errors import PortInUseError, UsageError

GALLERY_NAME = "review_gallery.html"
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130
_FLUSH_S = 0.3  # time for the last events to reach every viewer before the server stops
_BROKER_FLUSH_S = 5.0  # at most this long at the end to send events still buffered for Redis


def _server_options(function):
    function = click.option(
        "--server-port",
        type=click.IntRange(0, 65535),
        default=8765,
        show_default=True,
        help="Port of the live server (localhost only; 0 picks a free one).",
    )(function)
    return click.option(
        "--keep-serving",
        is_flag=True,
        help="After processing, keep serving the review gallery until Ctrl-C.",
    )(function)


@click.command("process")
@click.argument("videos", nargs=-1, required=True, metavar="VIDEO...")
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="dives",
    show_default=True,
    help="Output folder; each video gets OUT/<video name>/.",
)
@click.option("--enable-server", is_flag=True, help="Stream live progress and dives to a browser.")
@_server_options
@broker_options
@click.option(
    "--accurate",
    is_flag=True,
    help="Re-encode clips for frame-exact bounds (slower). Default: copy the video "
    "stream, which is fast and lossless but may start a clip at the keyframe before it.",
)
@click.option("--no-audio", is_flag=True, help="Write clips without their audio.")
@click.option("--force", is_flag=True, help="Re-process a session that was already reviewed.")
@detection_options
def process(
    videos,
    out_dir,
    enable_server,
    server_port,
    keep_serving,
    broker,
    broker_key,
    history,
    accurate,
    no_audio,
    force,
    confidence,
    water_zone,
    board_zone,
    no_person,
    full_scan,
):
    """Find the dives in each VIDEO and cut them into clips for review.

    Each video gets a folder OUT/<video name>/ with dive_001.mp4, ... (one clip per dive,
    from a second before takeoff to two seconds after the entry), thumbs/ (takeoff, entry
    and end pictures), dives.json (the dives and their review state) and
    review_gallery.html (open it in a browser, or serve it with
    `python -m diveanalyzer.serve OUT/<video name>`).

    With --enable-server, http://localhost:PORT/ shows the progress and each dive live,
    then the gallery (of the first video, when there are several). A video that fails is
    reported in one line and the others are still processed; the exit code is then 2.

    With --broker redis://HOST:6379/0 the events also go to Redis, for the servers of
    `python -m diveanalyzer.serve DIR --broker URL` (on any machine) to show. Redis being
    slow or down never holds up the processing; events are sent when it is back.
    """
    from diveanalyzer.pipeline import ProcessOptions

    options = ProcessOptions(
        out_dir=out_dir,
        detect=detect_settings(confidence, water_zone, board_zone, no_person, full_scan),
        accurate=accurate,
        clip_audio=not no_audio,
        force=force,
    )
    port = server_port if enable_server else None
    sink = BrokerSink(broker, broker_key, history) if broker is not None else None
    _exit(run_process(list(videos), options, port, keep_serving, broker=sink, history=history))


@click.command("demo")
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    default="diveanalyzer-demo",
    show_default=True,
    help="Folder for the sample video and its results.",
)
@_server_options
def demo(work: Path, server_port: int, keep_serving: bool) -> None:
    """Process a built-in sample session with the live server on.

    Renders a short synthetic diving session (48 s, 854x480, four dives among swimmers,
    shouts and claps) into WORK once, then runs `process --enable-server` on it: open the
    printed URL to watch the dives arrive, then review them in the gallery.
    """
    from diveanalyzer.pipeline import ProcessOptions

    video = work / "demo_session.mp4"
    options = ProcessOptions(out_dir=work / "dives")
    # The server starts first, so the page can be opened while the sample renders.
    _exit(
        run_process([video], options, server_port, keep_serving, before=lambda: _demo_video(work))
    )


def _demo_video(work: Path) -> None:
    """Render the sample session into ``work/demo_session.mp4`` unless it is there."""
    from diveanalyzer.pipeline import run_in_worker
    from diveanalyzer.synth import SynthSettings, frame_count, render_session

    video = work / "demo_session.mp4"
    if video.is_file() and video.with_suffix(".json").is_file():
        return
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {work}: {exc.strerror or exc}") from None
    settings = SynthSettings(duration=48.0, dives=4, min_gap=8.0, width=854, height=480, seed=11)
    partial = work / ".demo_session.rendering.mp4"
    with click.progressbar(
        length=frame_count(settings), label="rendering the sample session", file=sys.stderr
    ) as bar:
        done = [0]

        def progress(frames_done: int, _total: int) -> None:
            bar.update(frames_done - done[0])
            done[0] = frames_done

        # In the threadpool, so the already listening server answers while it renders.
        run_in_worker(lambda: render_session(partial, settings, progress=progress))
    partial.with_suffix(".json").replace(video.with_suffix(".json"))
    partial.replace(video)


# -- running ----------------------------------------------------------------------------------


def _exit(code: int) -> None:
    if code == EXIT_INTERRUPTED:
        # A worker thread may still be inside OpenCV or FFmpeg: tearing the interpreter down
        # under it aborts the process ("terminate called..."). Everything is already cleaned
        # up and said, so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def run_process(
    videos: list,
    options,
    port: int | None,
    keep_serving: bool,
    before=None,
    broker=None,
    history: int = 1000,
) -> int:
    """Process the videos (with a live server when ``port`` is not None); the exit code.

    ``before()``, when given, runs once the server is listening (the demo renders then).
    ``broker`` (a `BrokerSink`) sends the events to Redis; the server, if any, then shows
    them from Redis too. ``history``: events the server keeps for reconnecting viewers.
    """
    from diveanalyzer.pipeline import plan_folders

    plan = plan_folders(videos, options.out_dir)
    server = None
    if port is not None:
        server = _start_server(plan[0] / GALLERY_NAME, port, broker, history)
    publisher = broker.publisher() if broker is not None and server is None else None
    with _Interrupts() as interrupts:
        try:
            if before is not None:
                before()
            code = _run(videos, options, plan, server or publisher)
        except KeyboardInterrupt:
            click.echo(
                "Error: interrupted; the video being processed was left incomplete", err=True
            )
            keep_serving, code = False, EXIT_INTERRUPTED
        except BaseException:
            if server is not None:
                server.stop()
            if publisher is not None:
                publisher.close(timeout=0)
            raise
        _finish_server(server, keep_serving, interrupts)
        if broker is not None:
            unsent = server.broker_unsent if server else publisher.close(_BROKER_FLUSH_S)
            broker.report(unsent)
    return code


class BrokerSink:
    """``--broker``: where the events go besides the terminal (and the local server)."""

    def __init__(self, url: str, key: str, history: int = 1000) -> None:
        from diveanalyzer.server.broker import check_url

        self.url = check_url(url)
        self.key = key
        self.history = history

    def publisher(self):
        from diveanalyzer.server.broker import BrokerPublisher

        return BrokerPublisher(self.url, key=self.key, maxlen=self.history)

    def report(self, unsent: int) -> None:
        if unsent:
            click.echo(
                f"Warning: {unsent} live event(s) could not be sent to Redis ({self.url})",
                err=True,
            )


def _run(videos: list, options, plan: list[Path], sink) -> int:
    """Process; each event goes to the terminal and to ``sink`` (server or publisher)."""
    from diveanalyzer.pipeline import process_videos

    terminal = _Terminal()

    def emit(event_type: str, payload: dict) -> None:
        terminal(event_type, payload)
        if sink is not None:
            sink.emit(event_type, payload)

    try:
        outcomes = process_videos(videos, options, emit, terminal.report, plan=plan)
    finally:
        terminal.close()  # the progress bar's line is ended whatever happens
    for outcome in outcomes:
        if outcome.ok:
            click.echo(f"Review later: python -m diveanalyzer.serve {outcome.folder}")
    return EXIT_FAILED if any(not o.ok for o in outcomes) else 0


def _start_server(gallery: Path, port: int, broker: BrokerSink | None, history: int):
    from diveanalyzer.server import EventServer

    # Failures come back as exceptions and become one line; keep the server's log quiet.
    logging.getLogger("diveanalyzer.server").addHandler(logging.NullHandler())
    shared = {"broker": broker.url, "broker_key": broker.key} if broker is not None else {}
    server = EventServer(
        gallery, host="localhost", port=port, log_level="WARNING", history_size=history, **shared
    )
    if not server.start():
        error = server.start_error
        if isinstance(error, PortInUseError):
            raise UsageError(f"{error}; choose another port with --server-port")
        raise UsageError(f"cannot start the live server: {error} (see --server-port)")
    click.echo(f"Live view: {server.get_url()}/  (events: {server.get_events_url()})")
    sys.stdout.flush()
    return server


def _finish_server(server, keep_serving: bool, interrupts: _Interrupts) -> None:
    if server is None:
        return
    try:
        time.sleep(_FLUSH_S)  # cooperative when patched: the streams write the last events
        if keep_serving:
            interrupts.wait(f"Serving the review gallery at {server.get_url()}/  (Ctrl-C to stop)")
    except KeyboardInterrupt:
        pass  # Ctrl-C is how one stops serving
    finally:
        server.stop()


class _Interrupts:
    """Ctrl-C and SIGTERM while processing and serving.

    Under gevent, Python's own handler would raise KeyboardInterrupt in whatever greenlet
    happens to run, e.g. a viewer's stream. Here the hub catches the signal and raises it in
    the main greenlet only, or, while just serving, ends the wait.
    """

    def __init__(self):
        self.main = None
        self.stop = None
        self.watchers: list = []

    def __enter__(self) -> _Interrupts:
        from gevent import monkey

        if monkey.is_module_patched("threading"):
            import gevent

            self.main = gevent.getcurrent()
            self.watchers = [
                gevent.signal_handler(sig, self._fire) for sig in (signal.SIGINT, signal.SIGTERM)
            ]
        return self

    def __exit__(self, *exc_info) -> None:
        for watcher in self.watchers:
            watcher.cancel()

    def _fire(self) -> None:
        if self.stop is not None:
            self.stop.set()
        elif self.main is not None and not self.main.dead:
            self.main.throw(KeyboardInterrupt)

    def wait(self, message: str) -> None:
        """Print ``message`` once Ctrl-C/SIGTERM are handled, then wait for one of them."""
        import gevent
        import gevent.event

        self.stop = gevent.event.Event()
        own = []
        if not self.watchers:  # not patched: the server runs on its own thread
            own = [gevent.signal_handler(s, self._fire) for s in (signal.SIGINT, signal.SIGTERM)]
        click.echo(message)
        sys.stdout.flush()
        try:
            while not self.stop.wait(timeout=1.0):
                pass
        finally:
            for watcher in own:
                watcher.cancel()


class _Terminal:
    """The progress bar (stderr) and one line per video; an emit sink."""

    def __init__(self):
        self.bar = None
        self.shown = 0

    def __call__(self, event_type: str, payload: dict) -> None:
        if event_type == "processing_started":
            self.close()
            self.bar = click.progressbar(
                length=1000, label=Path(payload["video"]).name, file=sys.stderr
            )
            self.bar.__enter__()
            self.shown = 0
        elif event_type == "progress" and self.bar is not None:
            target = int(10 * payload["percent"])
            if target > self.shown:
                self.bar.update(target - self.shown)
                self.shown = target
        elif event_type in ("processing_complete", "processing_failed"):
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            bar, self.bar = self.bar, None
            bar.__exit__(None, None, None)

    def report(self, outcome) -> None:
        self.close()
        if not outcome.ok:
            error = outcome.error
            if str(outcome.video) not in error:
                error = f"{outcome.video}: {error}"
            click.echo(f"Error: {error}", err=True)
            return
        line = f"{outcome.video}: {outcome.dives} dive(s) -> {outcome.folder}/"
        if outcome.dives:
            line += f" ({outcome.signal_type})"
        if not outcome.has_audio:
            line += "; no audio stream: motion-only detection"
        click.echo(line)
