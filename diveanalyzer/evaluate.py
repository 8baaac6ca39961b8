"""Scoring detected dives against ground truth. Pure functions and one result record.

Matching is greedy and one-to-one: all (detected, true) pairs whose entries are within the
tolerance, closest first; each dive is used at most once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diveanalyzer.errors import UsageError

TOLERANCE_S = 1.0


@dataclass
class Evaluation:
    """How well detections match the truth (one session or many pooled)."""

    true_count: int
    """Dives in the ground truth."""
    detected_count: int
    """Dives detected."""
    matched: int
    """True positives: detected dives matched one-to-one to a true dive."""
    entry_errors: list[float] = field(default_factory=list)
    """Absolute entry error (s) of each match."""
    takeoff_known: int = 0
    """True dives (matched or not) whose takeoff time is known."""
    takeoff_found: int = 0
    """Matched dives with a known true takeoff for which a takeoff was detected."""
    takeoff_errors: list[float] = field(default_factory=list)
    """Absolute takeoff error (s) of each found takeoff."""

    @property
    def precision(self) -> float:
        return self.matched / self.detected_count if self.detected_count else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.true_count if self.true_count else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_positives(self) -> int:
        return self.detected_count - self.matched

    @property
    def missed(self) -> int:
        return self.true_count - self.matched

    def to_dict(self) -> dict:
        return {
            "true_count": self.true_count,
            "detected_count": self.detected_count,
            "matched": self.matched,
            "false_positives": self.false_positives,
            "missed": self.missed,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "entry_error_median": _stat(self.entry_errors, 50),
            "entry_error_p95": _stat(self.entry_errors, 95),
            "takeoff_known": self.takeoff_known,
            "takeoff_found": self.takeoff_found,
            "takeoff_found_rate": (
                round(self.takeoff_found / self.takeoff_known, 4) if self.takeoff_known else None
            ),
            "takeoff_error_median": _stat(self.takeoff_errors, 50),
        }


def match(
    detected: Sequence[float], truth: Sequence[float], tolerance: float = TOLERANCE_S
) -> list[tuple[int, int]]:
    """Greedy one-to-one (detected index, true index) pairs within `tolerance`, closest first."""
    pairs = sorted(
        (abs(d - t), i, j)
        for i, d in enumerate(detected)
        for j, t in enumerate(truth)
        if abs(d - t) <= tolerance
    )
    used_d: set[int] = set()
    used_t: set[int] = set()
    chosen = []
    for _, i, j in pairs:
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
            chosen.append((i, j))
    return sorted(chosen, key=lambda p: p[1])


def evaluate(
    detected: Sequence[dict], truth: Sequence[dict], tolerance: float = TOLERANCE_S
) -> Evaluation:
    """Score dive records (``entry``, optional ``takeoff``) against true ones."""
    pairs = match([d["entry"] for d in detected], [t["entry"] for t in truth], tolerance)
    result = Evaluation(true_count=len(truth), detected_count=len(detected), matched=len(pairs))
    result.takeoff_known = sum(1 for t in truth if t.get("takeoff") is not None)
    for i, j in pairs:
        found, true = detected[i], truth[j]
        result.entry_errors.append(abs(found["entry"] - true["entry"]))
        if true.get("takeoff") is not None and found.get("takeoff") is not None:
            result.takeoff_found += 1
            result.takeoff_errors.append(abs(found["takeoff"] - true["takeoff"]))
    return result


def pool(results: Iterable[Evaluation]) -> Evaluation:
    """Many sessions' evaluations as one (counts summed, errors concatenated)."""
    total = Evaluation(0, 0, 0)
    for r in results:
        total.true_count += r.true_count
        total.detected_count += r.detected_count
        total.matched += r.matched
        total.entry_errors += r.entry_errors
        total.takeoff_known += r.takeoff_known
        total.takeoff_found += r.takeoff_found
        total.takeoff_errors += r.takeoff_errors
    return total


def load_dives(path: str | Path) -> list[dict]:
    """The ``dives`` list of a ground-truth or detections JSON file (validated)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a readable JSON file ({exc})") from None
    dives = data.get("dives") if isinstance(data, dict) else None
    if not isinstance(dives, list):
        raise UsageError(f"{path}: expected a JSON object with a 'dives' list")
    for n, dive in enumerate(dives, 1):
        if not isinstance(dive, dict) or not isinstance(dive.get("entry"), int | float):
            raise UsageError(f"{path}: dive {n} has no numeric 'entry'")
        takeoff = dive.get("takeoff")
        if takeoff is not None and not isinstance(takeoff, int | float):
            raise UsageError(f"{path}: dive {n} has a non-numeric 'takeoff'")
    return dives


def format_report(result: Evaluation) -> str:
    """A few readable lines for the terminal."""
    d = result.to_dict()

    def secs(value):
        return "n/a" if value is None else f"{value:.3f} s"

    rate = d["takeoff_found_rate"]
    lines = [
        f"true dives     {d['true_count']}",
        f"detected       {d['detected_count']}  (matched {d['matched']}, "
        f"false {d['false_positives']}, missed {d['missed']})",
        f"precision      {d['precision']:.3f}",
        f"recall         {d['recall']:.3f}",
        f"F1             {d['f1']:.3f}",
        f"entry error    median {secs(d['entry_error_median'])}, p95 {secs(d['entry_error_p95'])}",
        f"takeoff        found {d['takeoff_found']}/{d['takeoff_known']}"
        f" ({'n/a' if rate is None else f'{rate:.0%}'}), "
        f"median error {secs(d['takeoff_error_median'])}",
    ]
    return "\n".join(lines)


def _stat(values: list[float], percentile: float) -> float | None:
    if not values:
        return None
    return round(float(np.percentile(values, percentile)), 4)
