"""HOG people searches for the person signal (`diveanalyzer.detectors.person`).

A full multi-scale search of the board zone (optionally only where two frames differ) and a
short search around one known box at about its size, both counting the work they do.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from diveanalyzer.model import Zone

if TYPE_CHECKING:
    from diveanalyzer.detectors.person import PersonSettings

# The default people detector's window is 64x128 px; it finds standing people from about
# 100-110 px tall (its box is 1.3-1.5 times their height), so smaller ones are upscaled.
_WIN_W, _WIN_H = 64, 128
_HOG_PERSON_PX = 110.0
_FOLLOW_LEVELS = 7


@dataclass(frozen=True)
class PersonBox:
    """A person found by HOG, in frame pixels. The box is OpenCV's detection window: it
    reaches about a tenth of its height below the feet and above the head."""

    x: float
    """Left edge."""
    y: float
    """Top edge."""
    w: float
    """Width (half the height: the window is 64x128)."""
    h: float
    """Height."""
    score: float
    """SVM margin: 0 is the decision boundary, 1-4 is a clear person."""

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    def as_list(self) -> list[float]:
        return [round(float(v), 1) for v in (self.x, self.y, self.w, self.h)]


class HogSearch:
    """OpenCV's default HOG people detector, searched two ways, with counters of its work.

    Not thread-safe (the counters): one instance per thread.
    """

    def __init__(self, settings: PersonSettings):
        self.settings = settings
        self._hog = _people_hog(64)
        # searches around a known box need sizes within about +-20 % only: 7 levels of 1.05
        self._near_hog = _people_hog(_FOLLOW_LEVELS)
        # HOG calls, seconds spent in them and pixels fed to them since `reset`
        self.runs, self.seconds, self.pixels = 0, 0.0, 0

    def reset(self) -> None:
        """Zero the work counters."""
        self.runs, self.seconds, self.pixels = 0, 0.0, 0

    def people(self, image: np.ndarray, zone: Zone, later=None) -> list[PersonBox]:
        """People in the zone at every size from the smallest figure up, best first.

        With ``later`` (the frame one coarse step later) only the regions where the two
        differ are searched: a diver who takes off leaves a change where they stood, while
        the static rest of the zone cannot hold a takeoff.
        """
        s = self.settings
        height, width = image.shape[:2]
        x0, y0, x1, y1 = zone.to_pixels(width, height)
        smallest = max(s.min_person_px, s.min_person_frac * height)
        # room around the zone: the window reaches past the head and feet of a person in it
        margin = max(8, round(0.15 * smallest))
        margin_y = max(margin, round(0.12 * (y1 - y0)))
        x0, x1 = max(0, x0 - margin), min(width, x1 + margin)
        y0, y1 = max(0, y0 - margin_y), min(height, y1 + margin_y)
        regions = [(x0, y0, x1, y1)]
        if later is not None and s.change_threshold > 0:
            regions = _changed_regions(image, later, regions[0], s.change_threshold)
        factor = max(1.0, _HOG_PERSON_PX / smallest)
        boxes: list[PersonBox] = []
        for rx0, ry0, rx1, ry1 in regions:
            crop = image[ry0:ry1, rx0:rx1]
            found = self.detect(crop, factor, s.hit_threshold, s.scale_step)
            boxes += [PersonBox(b.x + rx0, b.y + ry0, b.w, b.h, b.score) for b in found]
        return sorted(boxes, key=lambda b: -b.score)

    def follow(self, image, box: PersonBox, threshold: float | None = None, reach_steps=1.0):
        """The person nearest ``box`` in a small region around it, at about its size.

        ``reach_steps``: how many coarse steps away the image is (walkers go further).
        """
        s = self.settings
        threshold = s.follow_threshold if threshold is None else threshold
        height, width = image.shape[:2]
        reach = s.max_follow_shift * box.w * reach_steps
        x0 = max(0, math.floor(box.x - reach))
        x1 = min(width, math.ceil(box.x + box.w + reach))
        y0 = max(0, math.floor(box.y - 0.25 * box.h))
        y1 = min(height, math.ceil(box.bottom + 0.3 * box.h))
        # make the box about one window tall so a short pyramid covers +-20 % of its size
        factor = 1.12 * _WIN_H / box.h
        found = self.detect(image[y0:y1, x0:x1], factor, threshold, 1.05, near=True)
        found = [
            PersonBox(b.x + x0, b.y + y0, b.w, b.h, b.score)
            for b in found
            if 0.75 < b.h / box.h < 1.33 and abs(b.x + x0 + b.w / 2 - box.cx) <= reach
        ]
        if not found:
            return None
        return min(found, key=lambda b: abs(b.cx - box.cx) + abs(b.bottom - box.bottom))

    def detect(self, crop, factor: float, threshold: float, scale: float, near=False):
        """HOG multi-scale search of a crop resized by ``factor``; boxes in crop pixels."""
        if crop.size == 0:
            return []
        if abs(factor - 1.0) > 0.02:
            interp = cv2.INTER_LINEAR if factor > 1 else cv2.INTER_AREA
            crop = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=interp)
        crop, (pad_x, pad_y) = _pad_to_window(crop)
        t0 = time.perf_counter()
        hog = self._near_hog if near else self._hog
        rects, weights = hog.detectMultiScale(
            crop,
            hitThreshold=threshold,
            winStride=(self.settings.win_stride,) * 2,
            padding=(8, 8),
            scale=scale,
        )
        self.seconds += time.perf_counter() - t0
        self.runs += 1
        self.pixels += crop.shape[0] * crop.shape[1]
        weights = np.ravel(weights) if len(rects) else []
        return [
            PersonBox((x - pad_x) / factor, (y - pad_y) / factor, w / factor, h / factor, float(sc))
            for (x, y, w, h), sc in zip(rects, weights, strict=True)
        ]


def _people_hog(levels: int) -> cv2.HOGDescriptor:
    """OpenCV's default people detector (its default geometry) with a pyramid depth."""
    hog = cv2.HOGDescriptor(
        (_WIN_W, _WIN_H), (16, 16), (8, 8), (8, 8), 9, 1, -1, 0, 0.2, True, levels, False
    )
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def _changed_regions(a, b, bounds, threshold: float) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x0, y0, x1, y1)`` inside ``bounds`` around what differs between two frames.

    Compared at a quarter of the resolution in grey levels (compression and sensor noise
    stay under ``threshold``). Each run of changed columns gives the rows that changed in
    it; a person who vanished or moved changed from head to feet, and the box is widened
    by a third of that height on every side: the room HOG's window needs around them.
    """
    x0, y0, x1, y1 = bounds
    small = []
    for img in (a, b):
        crop = img[y0:y1, x0:x1]
        if crop.ndim == 3:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        small.append(cv2.resize(crop, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA))
    changed = cv2.absdiff(small[0], small[1]) > threshold
    sx, sy = (x1 - x0) / changed.shape[1], (y1 - y0) / changed.shape[0]
    regions: list[list[int]] = []
    for c0, c1 in _runs(changed.sum(axis=0) >= 2):
        rows = np.flatnonzero(changed[:, c0:c1].any(axis=1))
        pad = (rows[-1] + 1 - rows[0]) * sy / 3 + 8
        box = [
            max(x0, math.floor(x0 + c0 * sx - pad)),
            max(y0, math.floor(y0 + rows[0] * sy - pad)),
            min(x1, math.ceil(x0 + c1 * sx + pad)),
            min(y1, math.ceil(y0 + (rows[-1] + 1) * sy + pad)),
        ]
        if regions and box[0] <= regions[-1][2]:  # overlapping: one region
            last = regions[-1]
            box = [last[0], min(last[1], box[1]), max(last[2], box[2]), max(last[3], box[3])]
            regions[-1] = box
        else:
            regions.append(box)
    return [(r[0], r[1], r[2], r[3]) for r in regions]


def _runs(flags: np.ndarray, gap: int = 3) -> list[tuple[int, int]]:
    """``[start, end)`` index runs of True, bridging gaps of up to ``gap`` False."""
    runs: list[tuple[int, int]] = []
    for i in np.flatnonzero(flags):
        if runs and i - runs[-1][1] <= gap:
            runs[-1] = (runs[-1][0], int(i) + 1)
        else:
            runs.append((int(i), int(i) + 1))
    return runs


def _pad_to_window(crop: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Grow a crop smaller than one HOG window by replicating its borders."""
    height, width = crop.shape[:2]
    pad_x = max(0, _WIN_W + 16 - width) // 2 + 1 if width < _WIN_W + 16 else 0
    pad_y = max(0, _WIN_H + 16 - height) // 2 + 1 if height < _WIN_H + 16 else 0
    if pad_x or pad_y:
        crop = cv2.copyMakeBorder(crop, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
    return crop, (pad_x, pad_y)
