"""Processing sessions: detection, clips, thumbnails, manifest and gallery, with live events.

`process_videos` handles many videos (one failing never stops the others);
`process_video` handles one: probe → ``processing_started`` → detection (in gevent's
threadpool when the program is monkey-patched, so the event server keeps streaming) →
per dive a clip and thumbnails (``dive_extracted``) → ``extraction_complete`` →
``dives.json`` and ``review_gallery.html`` → ``processing_complete``; on failure
``processing_failed``. The pipeline never imports the server: it calls ``emit(type, payload)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from diveanalyzer import media
from diveanalyzer.errors import DiveAnalyzerError, OutputError
from diveanalyzer.media_write import write_clip
from diveanalyzer.model import Dive, VideoInfo
from diveanalyzer.output import folders
from diveanalyzer.output.gallery import write_gallery
from diveanalyzer.output.manifest import build_manifest, write_manifest
from diveanalyzer.output.thumbs import write_thumbnails
from diveanalyzer.settings import DetectSettings

Emit = Callable[[str, dict], None]

# Share of a video's progress taken by detection; extraction takes the rest.
_DETECT_SHARE = 0.85
_EXTRACT_WORKERS = 2  # dives cut at once: seek-and-decode work that threads well
_TICK_S = 0.5  # progress events at most this often ...
_QUIET_S = 1.0  # ... and at least this often while work goes on


@dataclass(frozen=True)
class ProcessOptions:
    """How to process videos (everything but the videos themselves)."""

    out_dir: Path = Path("dives")
    """Each video gets a folder ``out_dir/<video stem>`` (disambiguated when taken)."""
    detect: DetectSettings = field(default_factory=DetectSettings)
    """Detection settings."""
    accurate: bool = False
    """Re-encode clips for frame-exact bounds instead of copying from the previous keyframe."""
    clip_audio: bool = True
    """Keep the original audio in the clips."""
    force: bool = False
    """Re-process a session even when a person has already reviewed some of its dives."""


@dataclass
class Outcome:
    """What happened to one video."""

    video: Path
    """The video as given."""
    folder: Path | None
    """Its output folder."""
    error: str | None = None
    """One-line reason it failed; None when it succeeded."""
    dives: int = 0
    """Dives found."""
    failed_clips: int = 0
    """Dives whose clip or thumbnails could not be written."""
    mode: str = ""
    """How detection ran, e.g. ``audio`` or ``full scan (no audio stream)``."""
    signal_type: str = ""
    """The signals the dives rest on, e.g. ``audio + motion + person``."""
    has_audio: bool = True
    """Whether the video has an audio stream (without one, detection is motion-only)."""

    @property
    def ok(self) -> bool:
        return self.error is None


def run_in_worker(fn: Callable, *args):
    """Run CPU-heavy ``fn(*args)`` in gevent's threadpool when the program is monkey-patched
    (so greenlets such as SSE streams keep running meanwhile); a plain call otherwise."""
    from gevent import monkey

    if monkey.is_module_patched("threading"):
        import gevent

        return gevent.get_hub().threadpool.spawn(fn, *args).get()
    return fn(*args)


def map_in_workers(fn: Callable, items: list, workers: int = _EXTRACT_WORKERS):
    """Yield ``fn(item)`` for each item, in order, computed by ``workers`` real threads.

    Each result is ``(value, None)`` or ``(None, exception)``. When the program is
    monkey-patched the threads are gevent's (real ones) and waiting yields to the hub.
    """
    from gevent import monkey

    if monkey.is_module_patched("threading"):
        from gevent.threadpool import ThreadPool

        pool = ThreadPool(workers)
        futures = [pool.spawn(_captured, fn, item) for item in items]
        try:
            for future in futures:
                yield future.get()
        finally:
            pool.kill()
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(_captured, fn, item) for item in items]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _captured(fn: Callable, item):
    try:
        return fn(item), None
    except Exception as exc:
        return None, exc


def process_videos(
    videos: list,
    options: ProcessOptions,
    emit: Emit | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    plan: list[Path] | None = None,
) -> list[Outcome]:
    """Process each video into its own folder; a failure is recorded and the next one runs.

    ``plan``: the output folders (default: `plan_folders`). ``on_outcome(outcome)`` is
    called after each video. KeyboardInterrupt stops the run.
    """
    emit = emit or _no_emit
    plan = plan or plan_folders(videos, options.out_dir)
    outcomes = []
    for video, folder in zip(videos, plan, strict=True):
        outcome = Outcome(Path(video), folder)
        try:
            process_video(video, folder, options, emit, outcome)
        except DiveAnalyzerError as exc:
            outcome.error = str(exc)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes


def plan_folders(videos: list, out_dir) -> list[Path]:
    """The output folder of each video: ``out_dir/<stem>``, disambiguated when taken."""
    return folders.plan_folders([Path(v) for v in videos], Path(out_dir))


def process_video(
    video, folder: Path, options: ProcessOptions, emit: Emit | None = None, outcome=None
) -> Outcome:
    """Process one video into ``folder``. Raises DiveAnalyzerError (after emitting
    ``processing_failed``) when the video cannot be processed."""
    emit = emit or _no_emit
    outcome = outcome or Outcome(Path(video), Path(folder))
    progress = _Progress(emit)
    try:
        _process(Path(video), Path(folder), options, emit, outcome, progress)
    except DiveAnalyzerError as exc:
        emit("processing_failed", {"video": str(video), "error": str(exc)})
        raise
    except KeyboardInterrupt:
        emit("processing_failed", {"video": str(video), "error": "interrupted"})
        raise
    finally:
        progress.stop()
    return outcome


def _process(video: Path, folder: Path, options, emit, outcome: Outcome, progress) -> None:
    info = media.probe(video)
    outcome.has_audio = info.has_audio
    folders.prepare(folder, force=options.force)
    emit(
        "processing_started",
        {
            "video": str(video),
            "duration": info.duration,
            "has_audio": info.has_audio,
            "output_directory": str(folder),
        },
    )
    progress.start()
    result = run_in_worker(_detect, video, options.detect, emit, progress)
    outcome.mode, outcome.signal_type = result.mode, result.signal_type
    outcome.dives = len(result.dives)
    records = _extract_all(video, info, folder, result.dives, options, emit, progress)
    outcome.failed_clips = sum(1 for r in records if not r.get("clip"))
    settings = {
        **result.settings_dict(),
        "clip_mode": "accurate" if options.accurate else "copy",
        "clip_audio": options.clip_audio and info.has_audio,
    }
    manifest = build_manifest(info.to_dict(), settings, records)
    try:
        write_gallery(folder, manifest)
        write_manifest(folder, manifest)  # last: a manifest means a complete session
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    progress.update("done", 1.0)
    progress.stop()
    if outcome.failed_clips:
        raise OutputError(
            f"{video}: {outcome.failed_clips} of {len(records)} clips could not be written"
        )
    emit(
        "processing_complete",
        {
            "status": "success",
            "output_directory": str(folder),
            "video": str(video),
            "dive_count": len(records),
        },
    )


def _detect(video: Path, settings: DetectSettings, emit, progress):
    from diveanalyzer.detect import detect_dives

    return detect_dives(
        video,
        settings,
        emit=emit,
        progress=lambda stage, fraction: progress.update(stage, _DETECT_SHARE * fraction),
    )


def _extract_all(video, info, folder, dives: list[Dive], options, emit, progress) -> list[dict]:
    records, successful = [], 0

    def extract(dive: Dive):
        return _extract_one(video, info, folder, dive, options)

    progress.update("extract", _DETECT_SHARE)
    results = map_in_workers(extract, dives)
    for n, (dive, (done, error)) in enumerate(zip(dives, results, strict=True)):
        record = {**dive.to_dict(), "clip": None, "thumbnails": {}, "review": "pending"}
        if error is not None:
            if not isinstance(error, DiveAnalyzerError):
                raise error
            record["error"] = str(error)
            emit("dive_extraction_failed", {"id": dive.id, "error": str(error)})
        else:
            clip, thumbs = done
            successful += 1
            record.update(clip=clip.path.name, thumbnails=thumbs)
            record["clip_start"], record["clip_end"] = round(clip.start, 3), round(clip.end, 3)
            emit(
                "dive_extracted",
                {"id": dive.id, "clip": clip.path.name, "thumbnails": thumbs}
                | {"size_bytes": clip.size_bytes, "clip_start": record["clip_start"]}
                | {"clip_end": record["clip_end"]},
            )
        records.append(record)
        progress.update("extract", _DETECT_SHARE + (1 - _DETECT_SHARE) * (n + 1) / len(dives))
    emit(
        "extraction_complete",
        {"total_dives": len(dives), "successful": successful, "failed": len(dives) - successful},
    )
    return records


def _extract_one(video: Path, info: VideoInfo, folder: Path, dive: Dive, options):
    clip = write_clip(
        video,
        folder / folders.clip_name(dive.id),
        dive.start,
        dive.end,
        audio=options.clip_audio,
        accurate=options.accurate,
    )
    return clip, write_thumbnails(video, info, folder, dive)


def _no_emit(_type: str, _payload: dict) -> None:
    pass


class _Progress:
    """Turns progress callbacks (from any thread) into ``progress`` events.

    A ticker (a greenlet when threading is monkey-patched, else a thread) publishes the
    latest state at most every `_TICK_S` and at least every `_QUIET_S`, so a long step still
    reports and a flood of callbacks is thinned out.
    """

    def __init__(self, emit: Emit):
        self.emit = emit
        self.state = ("probe", 0.0)  # replaced whole: safe to write from a real thread
        self.began = time.monotonic()
        self.sent: tuple | None = None
        self.sent_at = 0.0
        self.halt = threading.Event()
        self.ticker: threading.Thread | None = None

    def start(self) -> None:
        self.began = time.monotonic()
        self.ticker = threading.Thread(target=self._run, name="progress", daemon=True)
        self.ticker.start()

    def update(self, stage: str, fraction: float) -> None:
        self.state = (stage, min(1.0, max(0.0, float(fraction))))

    def stop(self) -> None:
        if self.ticker is not None and not self.halt.is_set():
            self.halt.set()
            self.ticker.join(timeout=2.0)
            self._publish(force=self.state != self.sent)

    def _run(self) -> None:
        self._publish(force=True)
        while not self.halt.wait(_TICK_S):
            self._publish(force=time.monotonic() - self.sent_at >= _QUIET_S)

    def _publish(self, force: bool) -> None:
        state = self.state
        if state == self.sent and not force:
            return
        stage, fraction = state
        elapsed = time.monotonic() - self.began
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
        payload = {
            "stage": stage,
            "percent": round(100 * fraction, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "elapsed_s": round(elapsed, 1),
        }
        self.sent, self.sent_at = state, time.monotonic()
        self.emit("progress", payload)
