"""Water-zone motion: how much of the water changes from frame to frame, and where.

Frames are made gray and small (the proxy), consecutive frames are aligned first (phase
correlation: a phone that pans or tilts with the diver would otherwise make all the water
"move"), then the fraction of changed pixels is measured in each cell of a grid over the
splash region: the water zone plus a band above it, where the spray flies. A splash is a
burst of change in some cell right after the entry compared with the seconds before it;
swimmers and people walking are steady motion, not a burst, and a local measure keeps a
small splash from drowning in a large, busy zone.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from diveanalyzer.model import Candidate, Zone
from diveanalyzer.settings import MotionSettings

_EPS = 0.004  # change fraction treated as "nothing moves" (codec noise)
_MARGIN = 0.04  # fraction of the proxy ignored at each edge (alignment wraps in garbage)


@dataclass
class MotionTrack:
    """Change over time: one row per analysed frame (after the first of each run)."""

    times: np.ndarray
    """Frame times, seconds."""
    change: np.ndarray
    """Fraction of pixels changed since the previous frame, one column per grid cell."""

    def between(self, t0: float, t1: float) -> np.ndarray:
        return self.change[(self.times >= t0) & (self.times <= t1)]


@dataclass
class MotionScore:
    """How splash-like the water motion after one entry time is (best cell)."""

    score: float
    """In [0, 1]: 0 still water (or no change from before), 1 a clear burst."""
    baseline: float
    """Median change fraction of the best cell in the seconds before the entry."""
    burst: float
    """Mean change fraction of the best cell in the second after the entry."""

    def to_dict(self) -> dict:
        return {
            "score": round(self.score, 3),
            "baseline": round(self.baseline, 4),
            "burst": round(self.burst, 4),
        }


class WaterMotion:
    """Measures water motion on frames (gray or BGR) of one video."""

    def __init__(
        self,
        zone: Zone,
        settings: MotionSettings | None = None,
        height: int = 0,
        spray_above: float | None = None,
    ):
        self.zone = zone
        self.settings = settings or MotionSettings()
        self.height = height or self.settings.proxy_height
        self.spray_above = self.settings.spray_above if spray_above is None else spray_above
        self._window: np.ndarray | None = None  # phase-correlation window for the proxy size

    def proxy(self, image: np.ndarray) -> np.ndarray:
        """The frame as a small float32 gray image."""
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        h, w = image.shape
        if h > self.height:
            size = (max(8, round(w * self.height / h)), self.height)
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return image.astype(np.float32)

    def track(self, frames: Iterable, max_gap: float = 0.5) -> MotionTrack:
        """Change over `frames` (objects with `time` and `image`, in time order).

        A gap longer than `max_gap` seconds (between decoded windows) starts a new run.
        """
        builder = TrackBuilder(self, max_gap)
        for frame in frames:
            builder.add(frame)
        return builder.track()

    def water_fraction(self, image: np.ndarray) -> float:
        """Fraction of the water zone that looks like pool water (blue to cyan, saturated).

        A full scan reports no splash where there is no water: a field, a street."""
        if image.ndim != 3:
            return 1.0  # no colour to judge by: do not veto
        x0, y0, x1, y1 = self.zone.to_pixels(image.shape[1], image.shape[0])
        hsv = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2HSV)
        hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        water = (hue >= 80) & (hue <= 130) & (sat >= 50) & (val >= 40)
        return float(np.count_nonzero(water)) / max(1, water.size)

    def region(self, w: int, h: int) -> tuple[int, int, int, int]:
        """Pixel bounds of the splash region (water zone plus the band above it)."""
        z = self.zone
        top = max(0.0, z.y - self.spray_above * z.h)
        x0, y0, x1, y1 = Zone(z.x, top, z.w, z.y + z.h - top).to_pixels(w, h)
        mx, my = round(w * _MARGIN), round(h * _MARGIN)
        return max(x0, mx), max(y0, my), min(x1, w - mx), min(y1, h - my)

    def change(self, prev: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Changed fraction per grid cell, after aligning `prev` on `current`."""
        s = self.settings
        h, w = current.shape
        dx, dy = self._shift(prev, current)
        rows, cols = s.grid
        x0, y0, x1, y1 = self.region(w, h)
        ch, cw = (y1 - y0) // rows, (x1 - x0) // cols
        if ch < 1 or cw < 1:
            return np.zeros(rows * cols)
        y1, x1 = y0 + ch * rows, x0 + cw * cols
        here = current[y0:y1, x0:x1]
        changed = np.abs(here - prev[y0:y1, x0:x1]) > s.pixel_threshold
        if abs(dx) + abs(dy) > 0.2 and abs(dx) < w / 4 and abs(dy) < h / 4:
            # The camera may have moved, or the estimate followed moving texture (waves):
            # keep whichever of aligned / as-is explains the frame better.
            shift = np.float32([[1, 0, dx], [0, 1, dy]])
            aligned = cv2.warpAffine(prev, shift, (w, h), borderMode=cv2.BORDER_REPLICATE)
            moved = np.abs(here - aligned[y0:y1, x0:x1]) > s.pixel_threshold
            if np.count_nonzero(moved) < np.count_nonzero(changed):
                changed = moved
        return changed.reshape(rows, ch, cols, cw).mean(axis=(1, 3)).ravel()

    def _shift(self, prev: np.ndarray, current: np.ndarray) -> tuple[float, float]:
        """Camera shift between two proxies (phase correlation, sub-pixel)."""
        h, w = current.shape
        if self._window is None or self._window.shape != (h, w):
            self._window = cv2.createHanningWindow((w, h), cv2.CV_32F)
        (dx, dy), _ = cv2.phaseCorrelate(prev, current, self._window)
        return dx, dy

    def score(self, track: MotionTrack, entry: float) -> MotionScore:
        """Burst of change after `entry` against the baseline before it, in the best cell."""
        s = self.settings
        before = track.between(entry - s.before_s, entry - s.guard_s)
        after = track.between(entry - 0.1, entry + s.burst_s)
        after = after[~np.isnan(after).all(axis=1)]
        before = before[~np.isnan(before).all(axis=1)]
        if after.shape[0] == 0:
            return MotionScore(0.0, 0.0, 0.0)
        baseline = np.median(before, axis=0) if before.shape[0] else after.min(axis=0)
        burst = after.mean(axis=0)
        scores = _burst_scores(burst, baseline, s)
        best = int(np.argmax(scores))
        return MotionScore(float(scores[best]), float(baseline[best]), float(burst[best]))

    def scan(self, track: MotionTrack) -> list[Candidate]:
        """Motion-only candidates: bursts of change over a whole-video track."""
        s = self.settings
        n = track.change.shape[0]
        if n < 4:
            return []
        step = float(np.median(np.diff(track.times)))
        n_guard = max(1, round(s.guard_s / step))
        n_base = max(2, round((s.scan_baseline_s - s.guard_s) / step))
        n_burst = max(2, round(s.scan_burst_s / step))
        change = track.change
        cells = change.shape[1]
        # baseline[i]: per-cell median of the n_base rows ending n_guard rows before i.
        head = np.full((n_base + n_guard, cells), np.nan)
        views = np.lib.stride_tricks.sliding_window_view(
            np.concatenate([head, change]), n_base, axis=0
        )[:n]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows at the start
            baseline = np.nanmedian(views, axis=2)
        # No burst without a baseline: the first seconds cannot be judged.
        known = np.count_nonzero(~np.isnan(views[:, 0, :]), axis=1) >= n_base // 2
        baseline = np.where(known[:, None] & ~np.isnan(baseline), baseline, np.inf)
        # burst[i]: per-cell median of the n_burst rows from i: a splash lasts, a diver or a
        # swimmer's arm passing by does not.
        tail = np.concatenate([change, np.full((n_burst, cells), np.nan)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows at the end
            burst = np.nanmedian(
                np.lib.stride_tricks.sliding_window_view(tail, n_burst, axis=0)[:n], axis=2
            )
        scores = _burst_scores(burst, baseline, s)
        best = scores.argmax(axis=1)
        peaks = self._peaks(track.times, scores[np.arange(n), best])
        return [self._candidate(track, i, best[i], scores, burst, baseline) for i in peaks]

    def _peaks(self, times: np.ndarray, scores: np.ndarray) -> list[int]:
        s = self.settings
        chosen: list[int] = []
        for i in np.argsort(-scores, kind="stable"):
            if scores[i] < s.scan_min_strength:
                break
            if all(abs(times[i] - times[j]) >= s.scan_min_separation_s for j in chosen):
                chosen.append(int(i))
        return sorted(chosen)

    def _candidate(self, track, i, cell, scores, burst, baseline) -> Candidate:
        """The burst at row i as a candidate timed at its onset: the first row, from a
        second before, where the cell's change gets halfway from baseline to burst."""
        base, high = float(baseline[i, cell]), float(burst[i, cell])
        t = float(track.times[i])
        near = (track.times >= t - self.settings.scan_burst_s) & (track.times <= t + 0.5)
        rising = near & (track.change[:, cell] >= base + 0.5 * (high - base))
        onset = float(track.times[np.flatnonzero(rising)[0]]) if rising.any() else t
        onset += self.settings.scan_entry_offset_s
        details = {"burst": round(high, 4), "baseline": round(base, 4), "cell": int(cell)}
        return Candidate(round(onset, 3), round(float(scores[i, cell]), 3), "motion", details)


class TrackBuilder:
    """Builds a MotionTrack frame by frame, holding only the previous proxy image."""

    def __init__(self, motion: WaterMotion, max_gap: float = 0.5):
        self.motion = motion
        self.max_gap = max_gap
        self.times: list[float] = []
        self.values: list[np.ndarray] = []
        self.prev: np.ndarray | None = None
        self.prev_time = -np.inf

    def add(self, frame) -> None:
        """Add the next frame (time order); a gap over `max_gap` starts a new run."""
        current = self.motion.proxy(frame.image)
        if self.prev is not None and frame.time - self.prev_time <= self.max_gap:
            self.times.append(frame.time)
            self.values.append(self.motion.change(self.prev, current))
        self.prev, self.prev_time = current, frame.time

    def track(self) -> MotionTrack:
        cells = self.motion.settings.grid[0] * self.motion.settings.grid[1]
        change = np.vstack(self.values) if self.values else np.zeros((0, cells))
        return MotionTrack(np.asarray(self.times, float), change)


def _burst_scores(burst: np.ndarray, baseline: np.ndarray, s: MotionSettings) -> np.ndarray:
    """Both a rise over the baseline and enough change: geometric mean of the two ramps."""
    ratio = (burst + _EPS) / (baseline + _EPS)
    rise = np.clip((ratio - 1.3) / (s.ratio_full - 1.3), 0.0, 1.0)
    amount = np.clip((burst - _EPS) / (s.full_fraction - _EPS), 0.0, 1.0)
    return np.sqrt(rise * amount)
