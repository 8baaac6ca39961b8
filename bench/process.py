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
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    RSS_LIMIT_MB,
    add_session_args,
    bare_decode,
    ensure_session,
    table_header,
    table_row,
    timed,
)

TARGET_SPEED = 20.0


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
    print(table_header("run", 8))
    print(table_row("decode", 8, decode_s, args.duration, decode_s, decode_rss))
    print(
        table_row("process", 8, process_s, args.duration, decode_s, process_rss)
        + f"  {'PASS' if ok else 'FAIL'}  (target >= {TARGET_SPEED:g}x, <= {RSS_LIMIT_MB:g} MB)"
    )
    print(
        f"split: detection {split['detection_s']:.1f} s, clips + thumbnails "
        f"{split['extraction_s']:.1f} s, manifest + gallery {split['finish_s']:.2f} s"
    )
    print(f"dives: {len(manifest['dives'])}, clips written: {clips}, output {size_mb:.1f} MB")
    return 0 if ok else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_session_args(parser)
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


if __name__ == "__main__":
    sys.exit(main())
