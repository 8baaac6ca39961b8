"""End-to-end speed and memory of `diveanalyzer process` (default: 10 minutes, 1080p30).

    python bench/process.py [--work DIR] [--duration S] [--size WxH] [--fps F] [--accurate]

Renders the session once into the work folder with the synth API (cached, and shared with
bench/speed.py: the same settings give the same file), then runs, each in its own process so
its peak memory is its own: a bare decode of every video frame (the physical limit) and the
pipeline exactly as `diveanalyzer process` runs it (gevent-patched, detection in the
threadpool; detection + clips + thumbnails + manifest + gallery). Prints seconds, multiples
of real time, the ratio to the bare decode, peak RSS and the split between detection and
extraction, with PASS/FAIL against the targets (>= 20x real time, <= 500 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SPEED = 20.0
RSS_LIMIT_MB = 500.0
DEFAULT_WORK = Path.home() / ".cache" / "diveanalyzer-bench"


def main() -> int:
    args = parse_args()
    video = ensure_session(args)
    print(f"session: {video} ({args.duration:g} s, {args.size}, {args.fps:g} fps)", flush=True)
    decode_s, decode_rss = timed([sys.executable, __file__, "--decode", str(video)])
    out = Path(tempfile.mkdtemp(prefix="bench-process-"))
    try:
        cmd = [sys.executable, __file__, "--pipeline", str(video), "--out", str(out)]
        if args.accurate:
            cmd.append("--accurate")
        process_s, process_rss = timed(cmd)
        split = json.loads((out / "split.json").read_text())
        manifest = json.loads(next(out.glob("*/dives.json")).read_text())
        clips = sum(1 for d in manifest["dives"] if d.get("clip"))
        size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    finally:
        shutil.rmtree(out, ignore_errors=True)
    speed = args.duration / process_s
    ok = speed >= TARGET_SPEED and process_rss <= RSS_LIMIT_MB
    print(f"{'run':<8} {'seconds':>8} {'x real':>8} {'/decode':>8} {'RSS MB':>7}")
    print(
        f"{'decode':<8} {decode_s:>8.1f} {args.duration / decode_s:>7.1f}x {1:>7.2f}x "
        f"{decode_rss:>7.0f}"
    )
    print(
        f"{'process':<8} {process_s:>8.1f} {speed:>7.1f}x {process_s / decode_s:>7.2f}x "
        f"{process_rss:>7.0f}  {'PASS' if ok else 'FAIL'}  "
        f"(target >= {TARGET_SPEED:g}x, <= {RSS_LIMIT_MB:g} MB)"
    )
    print(
        f"split: detection {split['detection_s']:.1f} s, clips + thumbnails "
        f"{split['extraction_s']:.1f} s, manifest + gallery {split['finish_s']:.2f} s"
    )
    print(f"dives: {len(manifest['dives'])}, clips written: {clips}, output {size_mb:.1f} MB")
    return 0 if ok else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--size", default="1920x1080", help="WxH")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--accurate", action="store_true", help="re-encode the clips")
    parser.add_argument("--decode", help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decode:
        bare_decode(Path(args.decode))
        sys.exit(0)
    if args.pipeline:
        sys.exit(run_pipeline(Path(args.pipeline), args.out, args.accurate))
    return args


def ensure_session(args) -> Path:
    """The cached session video (rendered on first use; same naming as bench/speed.py)."""
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
        partial = path.with_name(f".rendering-{path.name}")
        render_session(partial, settings)
        partial.with_suffix(".json").replace(path.with_suffix(".json"))
        partial.replace(path)
        print(f"rendered in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


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


def run_pipeline(video: Path, out: Path, accurate: bool) -> int:
    """The child: process the video as the CLI does, timing each phase by its events."""
    from gevent import monkey

    monkey.patch_all()
    from diveanalyzer.pipeline import ProcessOptions, process_videos

    marks = {"start": time.perf_counter()}

    def emit(event_type: str, _payload: dict) -> None:
        if event_type in ("dives_detected", "extraction_complete", "processing_complete"):
            marks[event_type] = time.perf_counter()

    [outcome] = process_videos([video], ProcessOptions(out_dir=out, accurate=accurate), emit)
    if not outcome.ok:
        print(outcome.error, file=sys.stderr)
        return 1
    split = {
        "detection_s": marks["dives_detected"] - marks["start"],
        "extraction_s": marks["extraction_complete"] - marks["dives_detected"],
        "finish_s": marks["processing_complete"] - marks["extraction_complete"],
    }
    (out / "split.json").write_text(json.dumps(split))
    return 0


def bare_decode(video: Path) -> None:
    """Decode every video frame (threaded, no conversion): the physical limit."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass


if __name__ == "__main__":
    sys.exit(main())
