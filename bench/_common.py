"""Helpers shared by the benchmark scripts: the cached session, bare decode, RSS, tables."""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time
from pathlib import Path

RSS_LIMIT_MB = 500.0
DEFAULT_WORK = Path.home() / ".cache" / "diveanalyzer-bench"


def add_session_args(parser: argparse.ArgumentParser) -> None:
    """The options that choose the cached session: --work, --duration, --size, --fps, --seed."""
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--size", default="1920x1080", help="WxH")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)


def ensure_session(args) -> Path:
    """The cached session video, rendered on first use (the same settings give the same file)."""
    from diveanalyzer.synth import SynthSettings, render_session

    width, height = (int(v) for v in args.size.lower().split("x"))
    args.work.mkdir(parents=True, exist_ok=True)
    name = f"speed-{args.duration:g}s-{width}x{height}-seed{args.seed}.mp4"
    path = args.work / name
    if args.fps != 30.0:
        path = path.with_name(f"{path.stem}-{args.fps:g}fps.mp4")
    if not path.exists():
        print(f"rendering {path} (once) ...", flush=True)
        t0 = time.perf_counter()
        settings = SynthSettings(
            duration=args.duration,
            dives=max(1, int(args.duration // 30)),
            min_gap=10.0,
            width=width,
            height=height,
            fps=args.fps,
            seed=args.seed,
        )
        # Rendered under another name first, so an interrupted render is never reused.
        partial = path.with_name(f".rendering-{path.name}")
        render_session(partial, settings)
        partial.with_suffix(".json").replace(path.with_suffix(".json"))
        partial.replace(path)
        print(f"rendered in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def bare_decode(video: Path) -> None:
    """Decode every video frame (threaded, no conversion): the physical limit."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run a command; its wall-clock seconds and peak RSS (MB), which must exit 0."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024


def table_header(label: str, width: int) -> str:
    """The header of a timing table whose first column is `width` wide."""
    return f"{label:<{width}} {'seconds':>8} {'x real':>8} {'/decode':>8} {'RSS MB':>7}"


def table_row(
    name: str, width: int, seconds: float, duration: float, decode_s: float, rss_mb: float
) -> str:
    """One timing row: seconds, multiple of real time, ratio to the bare decode, peak RSS."""
    return (
        f"{name:<{width}} {seconds:>8.1f} {duration / seconds:>7.1f}x "
        f"{seconds / decode_s:>7.2f}x {rss_mb:>7.0f}"
    )
