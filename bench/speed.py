"""Detection speed and memory on a generated session (default: 10 minutes, 1080p30).

    python bench/speed.py [--work DIR] [--quick] [--duration S] [--size WxH] [--fps F]

Renders the session once into the work folder (cached; rendering a 10-minute 1080p session
takes several minutes), then times, each in its own process so peak memory is its own:
a bare decode of every video frame (the physical limit), `detect` in the default mode and
with --full-scan. Prints times, multiples of real time, the ratio to the bare decode, peak
RSS, and PASS/FAIL per target (default >= 30x real time, full scan >= 4x, RSS <= 500 MB).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

TARGETS = {"default": 30.0, "full-scan": 4.0}
RSS_LIMIT_MB = 500.0
DEFAULT_WORK = Path.home() / ".cache" / "diveanalyzer-bench"


def main() -> int:
    args = parse_args()
    if args.child:
        return child(args.child, Path(args.video))
    video = ensure_session(args)
    print(f"session: {video} ({args.duration:g} s, {args.size}, {args.fps:g} fps)")
    rows = [run_child(mode, video) for mode in ("decode", "default", "full-scan")]
    decode_s = rows[0]["seconds"]
    failed = 0
    print(f"{'mode':<10} {'seconds':>8} {'x real':>8} {'/decode':>8} {'RSS MB':>7}  result")
    for row in rows:
        speed = args.duration / row["seconds"]
        ratio = row["seconds"] / decode_s
        target = TARGETS.get(row["mode"])
        ok = target is None or (speed >= target and row["rss_mb"] <= RSS_LIMIT_MB)
        failed += not ok
        verdict = "-" if target is None else ("PASS" if ok else "FAIL")
        goal = "" if target is None else f"  (target >= {target:g}x, <= {RSS_LIMIT_MB:g} MB)"
        print(
            f"{row['mode']:<10} {row['seconds']:>8.1f} {speed:>7.1f}x {ratio:>7.2f}x "
            f"{row['rss_mb']:>7.0f}  {verdict}{goal}  dives={row.get('dives', '-')}"
        )
    return 1 if failed else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder")
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 minutes at 1280x720")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.duration, args.size = 120.0, "1280x720"
    return args


def ensure_session(args) -> Path:
    from diveanalyzer.synth import SynthSettings, render_session

    width, height = (int(v) for v in args.size.lower().split("x"))
    args.work.mkdir(parents=True, exist_ok=True)
    name = f"speed-{args.duration:g}s-{width}x{height}-seed{args.seed}.mp4"
    path = args.work / name
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
        render_session(path, settings)
        print(f"rendered in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def run_child(mode: str, video: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--video", str(video)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def child(mode: str, video: Path) -> int:
    result: dict = {"mode": mode}
    t0 = time.perf_counter()
    if mode == "decode":
        bare_decode(video)
    else:
        from diveanalyzer.detect import detect_dives
        from diveanalyzer.settings import DetectSettings

        found = detect_dives(video, DetectSettings(full_scan=(mode == "full-scan")))
        result["dives"] = len(found.dives)
    result["seconds"] = time.perf_counter() - t0
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
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
