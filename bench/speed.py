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
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    RSS_LIMIT_MB,
    add_session_args,
    bare_decode,
    ensure_session,
    peak_rss_mb,
    table_header,
    table_row,
)

TARGETS = {"default": 30.0, "full-scan": 4.0}


def main() -> int:
    args = parse_args()
    if args.child:
        return child(args.child, Path(args.video))
    video = ensure_session(args)
    print(f"session: {video} ({args.duration:g} s, {args.size}, {args.fps:g} fps)")
    rows = [run_child(mode, video) for mode in ("decode", "default", "full-scan")]
    decode_s = rows[0]["seconds"]
    failed = 0
    print(table_header("mode", 10) + "  result")
    for row in rows:
        speed = args.duration / row["seconds"]
        target = TARGETS.get(row["mode"])
        ok = target is None or (speed >= target and row["rss_mb"] <= RSS_LIMIT_MB)
        failed += not ok
        verdict = "-" if target is None else ("PASS" if ok else "FAIL")
        goal = "" if target is None else f"  (target >= {target:g}x, <= {RSS_LIMIT_MB:g} MB)"
        cells = table_row(row["mode"], 10, row["seconds"], args.duration, decode_s, row["rss_mb"])
        print(f"{cells}  {verdict}{goal}  dives={row.get('dives', '-')}")
    return 1 if failed else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_session_args(parser)
    parser.add_argument("--quick", action="store_true", help="2 minutes at 1280x720")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.duration, args.size = 120.0, "1280x720"
    return args


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
    result["rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
