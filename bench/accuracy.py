"""Detection accuracy over generated sessions (and optionally the real clips).

    python bench/accuracy.py [--work DIR] [--sessions N] [--quick] [--media DIR]

Renders N (default 24) synthetic sessions of varied seeds, lengths, gaps, boards, sizes and
distractors into the work folder once (cached), detects the dives of each with the default
settings, matches them to the ground truth (entries within 1 s, one-to-one) and prints the
pooled figures with PASS/FAIL per target: F1 >= 0.95, median entry error <= 0.15 s, p95 <=
0.5 s, takeoff found for >= 80 % of true dives with a median error <= 0.3 s.

With --media DIR (the shared folder of real recordings) it also scores the real clips: each
real dive found once with its entry within 0.3 s, and no dive in the real negatives.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _common import DEFAULT_WORK

SIZES = [(854, 480), (640, 360), (960, 540)]
GAPS = [2.5, 5.0, 8.0, 12.0]
LENGTHS = [40.0, 60.0, 90.0, 120.0]

# Real clips: (relative path, expected entries, tolerance).
REAL = [
    ("AngusBlomley__Angus-Blomley/diving.mp4", [1.40], 0.3),
    ("AlanoudAlsalem__x3d/diving.mp4", [6.8], 0.3),
    ("davidpagnon__Sports2D/demo.mp4", [], 0.3),
    ("tiodh__Computer-Vision-motion/vtest.mp4", [], 0.3),
]


def session_specs(count: int, quick: bool) -> list[dict]:
    """Deterministic, varied session settings."""
    specs = []
    for k in range(count):
        gap = GAPS[k % len(GAPS)]
        duration = 30.0 if quick else LENGTHS[(k // len(GAPS)) % len(LENGTHS)]
        width, height = SIZES[k % len(SIZES)]
        spec = {
            "seed": 100 + k,
            "duration": duration,
            "width": width,
            "height": height,
            "boards": 2 if gap < 5.0 else 1,
            "min_gap": gap,
            "dives": max(1, min(int(duration // (gap + 4.0)), 8)),
        }
        if k % 6 == 5:
            spec["crowd"] = False  # a quiet hall: a different noise floor
        if k % 7 == 3:
            spec.update(width=height, height=width, rotate=90)  # a phone held upright
        specs.append(spec)
    return specs


def render(spec: dict, work: Path) -> Path:
    from diveanalyzer.synth import SynthSettings, render_session

    name = "acc-" + "-".join(f"{k}{v}" for k, v in sorted(spec.items())) + ".mp4"
    path = work / name
    if not path.exists():
        render_session(path, SynthSettings(**spec))
    return path


def main() -> int:
    args = parse_args()
    from diveanalyzer.detect import detect_dives
    from diveanalyzer.evaluate import evaluate, load_dives, pool
    from diveanalyzer.settings import DetectSettings

    args.work.mkdir(parents=True, exist_ok=True)
    specs = session_specs(args.sessions, args.quick)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as executor:
        paths = list(executor.map(render, specs, [args.work] * len(specs)))
    print(f"{len(paths)} sessions ready in {time.perf_counter() - t0:.0f} s ({args.work})")

    results = []
    video_seconds = detect_seconds = 0.0
    for spec, path in zip(specs, paths, strict=True):
        t1 = time.perf_counter()
        found = detect_dives(path, DetectSettings())
        detect_seconds += time.perf_counter() - t1
        video_seconds += found.video.duration
        truth = load_dives(path.with_suffix(".json"))
        result = evaluate([d.to_dict() for d in found.dives], truth)
        results.append(result)
        print(
            f"  seed {spec['seed']:>4} {spec['duration']:>5.0f}s gap {spec['min_gap']:>4}"
            f" {spec['width']}x{spec['height']}: true {result.true_count} found "
            f"{result.detected_count} matched {result.matched}  "
            f"takeoffs {result.takeoff_found}/{result.takeoff_known}"
        )
    total = pool(results).to_dict()
    print(f"detection: {video_seconds:.0f} s of video in {detect_seconds:.0f} s")
    print(
        f"pooled: true {total['true_count']}, detected {total['detected_count']}, matched "
        f"{total['matched']}, precision {total['precision']:.3f}, recall {total['recall']:.3f}"
    )
    checks = [
        ("F1", total["f1"], ">=", 0.95),
        ("median entry error (s)", total["entry_error_median"], "<=", 0.15),
        ("p95 entry error (s)", total["entry_error_p95"], "<=", 0.5),
        ("takeoff found rate", total["takeoff_found_rate"], ">=", 0.8),
        ("median takeoff error (s)", total["takeoff_error_median"], "<=", 0.3),
    ]
    failed = sum(not report(*check) for check in checks)
    if args.media:
        failed += score_real(args.media, detect_dives, DetectSettings)
    return 1 if failed else 0


def report(name: str, value, op: str, target: float) -> bool:
    ok = value is not None and (value >= target if op == ">=" else value <= target)
    shown = "n/a" if value is None else f"{value:.3f}"
    print(f"  {'PASS' if ok else 'FAIL'}  {name:<26} {shown:>7}  (target {op} {target})")
    return ok


def score_real(media: Path, detect_dives, DetectSettings) -> int:
    if not media.is_dir():
        print(f"real media: {media} is not a folder; skipped")
        return 1
    print(f"real clips ({media}):")
    failed = 0
    for relative, entries, tolerance in REAL:
        path = media / relative
        if not path.exists():
            print(f"  SKIP  {relative}: missing")
            continue
        found = detect_dives(path, DetectSettings())
        got = [round(d.entry, 2) for d in found.dives]
        ok = len(got) == len(entries) and all(
            abs(g - e) <= tolerance for g, e in zip(sorted(got), sorted(entries), strict=True)
        )
        failed += not ok
        print(
            f"  {'PASS' if ok else 'FAIL'}  {relative}: found {got}, expected {entries} "
            f"(+-{tolerance} s); mode {found.mode}; {found.zones_how} zones"
        )
    return failed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder")
    parser.add_argument("--sessions", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="8 sessions of 30 s")
    parser.add_argument("--media", type=Path, help="folder of the real recordings")
    args = parser.parse_args()
    if args.quick:
        args.sessions = min(args.sessions, 8)
    return args


if __name__ == "__main__":
    sys.exit(main())
