"""Person signal: when did the diver leave the board?

OpenCV's default HOG people detector looks at the board zone in the seconds before a water
entry. The scan runs *backwards* from the entry at a coarse rate (the diver is in the air at
first): the latest person whose track ends there — seen standing a moment before, gone from
that spot at every later sample — is the diver on the board for the last time. Bystanders
still there later, and people walking out of the picture, are skipped. The takeoff is then
refined frame by frame between the last two samples that saw the diver and the first that
did not: the last frame with the feet (the bottom of the box) at board level ends the stand.

Cost drives the shape: a full multi-scale search runs only at coarse samples, only in the
columns of the zone that changed since the next sample (a static scene cannot hold a
takeoff), until the diver is found; every other search is around one known box, at about
its size. A work budget stops hopeless scans (crowds, panning cameras).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from diveanalyzer.model import Zone

if TYPE_CHECKING:
    from diveanalyzer.media import Frame

# The default people detector's window is 64x128 px; it finds standing people from about
# 100-110 px tall (its box is 1.3-1.5 times their height), so smaller ones are upscaled.
_WIN_W, _WIN_H = 64, 128
_HOG_PERSON_PX = 110.0
_FOLLOW_LEVELS = 7


@dataclass(frozen=True)
class PersonSettings:
    """The person (takeoff) detector (`diveanalyzer.detectors.person`)."""

    lookback_s: float = 2.5
    """Frames are needed from this many seconds before the entry up to the entry: the flight
    (1-1.9 s, up to a 10 m platform) plus two coarse samples of the diver on the board.
    Every second here is decoded for every candidate: the main cost of this signal."""
    after_s: float = 0.6
    """... and up to this many seconds after it: a bystander hidden behind the falling
    diver is seen again once the diver is under water."""
    decode_fps: float = 15.0
    """Rate at which the pipeline should decode those frames (colour); refinement between
    coarse samples works frame by frame, so the takeoff resolution is 1 / decode_fps."""
    sample_fps: float = 5.0
    """Rate of the coarse backward scan with full searches of the board zone."""
    min_person_frac: float = 0.2
    """Smallest standing figure to look for, as a fraction of the frame height (frames are
    at most 480 p whatever the source, so this is resolution-independent). HOG sees people
    about 110 px tall and up: the zone is upscaled by 110 px / that height when above 1,
    which costs its square in time."""
    min_person_px: float = 48.0
    """... but never smaller than this many pixels (limits the upscaling of small frames)."""
    min_flight_s: float = 0.8
    """The diver is in the air at least this long before the entry, so the scan starts
    there (the shortest board dives, from 1 m, fly about 0.9 s)."""
    change_threshold: float = 20.0
    """Grey levels two coarse samples must differ by for a part of the zone to be searched
    (0 searches the whole zone every time)."""
    hit_threshold: float = 0.0
    """SVM margin a window needs to count as a person (OpenCV's ``hitThreshold``)."""
    follow_threshold: float = -0.5
    """Lower margin used when checking whether a person is still there a moment later (a
    bystander missed there would otherwise pass for a diver who took off)."""
    scale_step: float = 1.1
    """Pyramid step of the full zone search; 1.1 halves the cost of OpenCV's 1.05 default
    and still finds every size in between (HOG tolerates about 10 % of scale error)."""
    win_stride: int = 8
    """Window stride of the full zone search, pixels (cells are 8 px)."""
    board_tolerance: float = 0.04
    """The feet count as still on the board while the box bottom is within this fraction of
    the box height of its level at the coarse sample before the last; the diver must have
    stood there at twice this tolerance (a one-off detection in the air has no such past)."""
    min_score: float = 0.5
    """The diver's box at the last coarse sample must reach this SVM margin."""
    sure_score: float = 2.0
    """A takeoff candidate with this SVM margin ends the scan; a weaker one is kept while
    the scan goes ``weak_lookback`` more coarse samples back for a stronger one."""
    weak_lookback: int = 4
    """(see sure_score; the merged boxes occur up to about 0.6 s after the takeoff)"""
    max_follow_shift: float = 0.6
    """A box one coarse step later within this many box widths of the first is the same
    person (a walker covers about a third of a box width per step)."""
    max_people: int = 4
    """At most this many people (best HOG margins first) are checked at each coarse sample."""
    max_work_mpx: float = 4.0
    """Work budget per entry, in megapixels fed to HOG (about 0.1 s per megapixel on one
    core): a crowded or panning picture stops the scan rather than eat the time budget."""


@dataclass(frozen=True)
class Takeoff:
    """When the diver left the board, as the person signal saw it."""

    time: float
    """Takeoff time, seconds: midway between the last frame with the feet on the board and
    the next frame."""
    confidence: float
    """How sure the signal is, in [0, 1]: the HOG margin, and whether the feet stayed at one
    level over the two last coarse samples."""
    details: dict
    """Measurements for debugging and events: ``box`` (x, y, w, h in frame px), ``score``,
    ``last_on_board``, ``first_off_board``, ``level_kept`` (the feet were at the same level
    at the two last coarse samples), ``hog_runs``, ``hog_ms``, ``hog_mpx``."""


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


class PersonDetector:
    """Finds takeoffs with OpenCV's default HOG people detector.

    Keeps per-call counters: use one instance per thread (it is cheap to make).
    """

    def __init__(self, settings: PersonSettings | None = None):
        self.settings = settings or PersonSettings()
        self._hog = _people_hog(64)
        # searches around a known box need sizes within about +-20 % only: 7 levels of 1.05
        self._near_hog = _people_hog(_FOLLOW_LEVELS)
        self._runs, self._seconds, self._pixels = 0, 0.0, 0

    def window(self, entry: float) -> tuple[float, float]:
        """The time range of colour frames `find_takeoff` needs for an entry at ``entry``."""
        return max(0.0, entry - self.settings.lookback_s), entry + self.settings.after_s

    def find_takeoff(
        self, frames: Sequence[Frame], board_zone: Zone, entry: float
    ) -> Takeoff | None:
        """The takeoff before ``entry``, or None when no diver is seen on the board.

        ``frames``: the decoded frames of `window` (time order; any rate, ideally
        ``decode_fps``); frames outside it are ignored.
        """
        start, end = self.window(entry)
        frames = [f for f in frames if start - 1e-6 <= f.time <= end + 1e-6]
        if not frames:
            return None
        self._runs, self._seconds, self._pixels = 0, 0.0, 0
        times = [f.time for f in frames]
        coarse = self._coarse_indices(times, entry)
        # after the entry the diver is under water: whoever was hidden behind them is back
        settled = sorted({_nearest(times, entry + self.settings.after_s / 2), len(frames) - 1})
        found = self._scan_backwards(frames, coarse, settled, board_zone)
        if found is None:
            return None
        earlier_i, lost_i, box, prior = found
        last_i, first_off_i, last_box = self._refine(frames, earlier_i, lost_i, box, prior)
        t_last, t_off = frames[last_i].time, frames[first_off_i].time
        level_kept = abs(box.bottom - prior.bottom) <= self._tolerance(prior)
        return Takeoff(
            time=(t_last + t_off) / 2,
            confidence=self._confidence(box.score, level_kept),
            details=self._details(box, last_box, t_last, t_off, level_kept),
        )

    # -- scanning ---------------------------------------------------------------------

    def _coarse_indices(self, times: list[float], entry: float) -> list[int]:
        """Frame indices nearest to entry - min_flight_s + step, then one step back each."""
        step = 1.0 / self.settings.sample_fps
        first = entry - max(0.0, self.settings.min_flight_s - step)
        picked: list[int] = []
        k = 0
        while first - k * step >= times[0] - step / 2:
            i = _nearest(times, first - k * step)
            if not picked or i != picked[-1]:
                picked.append(i)
            k += 1
        return picked

    def _scan_backwards(self, frames, coarse, settled, zone):
        """Walk coarse samples back from the entry to the person whose track ends.

        The person must be gone at every later sample and just after the entry (a bystander
        hidden for a moment, e.g. behind the falling diver, is back by then) and seen at the
        same place and level a moment earlier: a one-off false detection (the folded diver
        in the air, a splash) has no such past. Someone walking out of the picture is not
        taking off either. A weak candidate (HOG can merge the diver in the air with
        someone below into one box) gives way to a stronger one a little earlier.
        Returns the frame indices (earlier, lost), the box seen and the earlier box.
        """
        s = self.settings
        best, stop = None, len(coarse) - 1
        for n in range(1, stop):
            if n > stop or self._pixels > s.max_work_mpx * 1e6:
                break  # (a crowded or moving picture is not worth more time)
            found = self._candidate(frames, coarse, settled, zone, n)
            if found is None or (best is not None and found[2].score <= best[2].score):
                continue
            best = found
            if found[2].score >= s.sure_score:
                break
            stop = min(stop, n + s.weak_lookback)
        return best

    def _candidate(self, frames, coarse, settled, zone, n):
        """The best person at coarse sample ``n`` whose track ends there, if any."""
        s = self.settings
        later, i, earlier = coarse[n - 1], coarse[n], coarse[n + 1]
        after = [*reversed(coarse[:n]), *settled]  # every later sample, nearest first
        image = frames[i].image
        for box in self.people(image, zone, frames[later].image)[: s.max_people]:
            if box.score < s.min_score or _at_side(box, image.shape[1]):
                continue
            if any(self._stays(frames[j].image, box, k + 1) for k, j in enumerate(after)):
                continue
            prior = self._follow(frames[earlier].image, box, s.hit_threshold)
            if prior is None or abs(prior.bottom - box.bottom) > 2 * self._tolerance(box):
                continue  # not standing there before (in the air, or rising already)
            return earlier, later, box, prior
        return None

    def _stays(self, image, box: PersonBox, steps: float) -> bool:
        """Whether the person of ``box`` is still there, feet at the same level.

        The level must match closely whatever the margin: right after the takeoff the
        folded diver can be detected nearby, lower or higher. A bystander is checked at
        every later sample, so one odd placement of their box does not make a takeoff.
        """
        after = self._follow(image, box, reach_steps=steps)
        return after is not None and abs(after.bottom - box.bottom) <= 2 * self._tolerance(box)

    def _refine(self, frames, earlier_i, lost_i, box, prior):
        """Last frame with the feet at board level, and the frame after it.

        The level comes from the earlier coarse sample: at the sample that saw the diver
        last, the feet may already have left the board. Every search is guided by the
        same box size: HOG's box for one figure varies with the search scale, so guiding
        each search by the previous result would let the size (and the bottom) drift.
        """
        level, tolerance = prior.bottom, self._tolerance(prior)
        last_i, last_box, misses = earlier_i, prior, 0
        for i in range(earlier_i + 1, lost_i):
            guide = PersonBox(last_box.cx - box.w / 2, box.y, box.w, box.h, box.score)
            found = self._follow(frames[i].image, guide, self.settings.hit_threshold)
            if found is not None and abs(found.bottom - level) > tolerance:
                break  # seen, but the feet are off the board
            if found is None:
                misses += 1
                if misses > 1:  # one miss may be HOG's; two in a row, the diver is gone
                    break
                continue
            last_i, last_box, misses = i, found, 0
        return last_i, last_i + 1, last_box

    def _tolerance(self, box: PersonBox) -> float:
        return max(3.0, self.settings.board_tolerance * box.h)

    # -- HOG searches -----------------------------------------------------------------

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
            found = self._detect(crop, factor, s.hit_threshold, s.scale_step)
            boxes += [PersonBox(b.x + rx0, b.y + ry0, b.w, b.h, b.score) for b in found]
        return sorted(boxes, key=lambda b: -b.score)

    def _follow(self, image, box: PersonBox, threshold: float | None = None, reach_steps=1.0):
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
        found = self._detect(image[y0:y1, x0:x1], factor, threshold, 1.05, near=True)
        found = [
            PersonBox(b.x + x0, b.y + y0, b.w, b.h, b.score)
            for b in found
            if 0.75 < b.h / box.h < 1.33 and abs(b.x + x0 + b.w / 2 - box.cx) <= reach
        ]
        if not found:
            return None
        return min(found, key=lambda b: abs(b.cx - box.cx) + abs(b.bottom - box.bottom))

    def _detect(self, crop, factor: float, threshold: float, scale: float, near=False):
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
        self._seconds += time.perf_counter() - t0
        self._runs += 1
        self._pixels += crop.shape[0] * crop.shape[1]
        weights = np.ravel(weights) if len(rects) else []
        return [
            PersonBox((x - pad_x) / factor, (y - pad_y) / factor, w / factor, h / factor, float(sc))
            for (x, y, w, h), sc in zip(rects, weights, strict=True)
        ]

    # -- result -----------------------------------------------------------------------

    @staticmethod
    def _confidence(score: float, level_kept: bool) -> float:
        """A strong margin, and the feet at one level over two samples: near 1."""
        margin = 1.0 - math.exp(-max(0.0, score))
        return round(float(min(1.0, 0.45 + 0.4 * margin + 0.15 * level_kept)), 3)

    def _details(self, box, last_box, t_last, t_off, level_kept) -> dict:
        return {
            "box": last_box.as_list(),
            "score": round(float(box.score), 3),
            "last_on_board": round(t_last, 3),
            "first_off_board": round(t_off, 3),
            "level_kept": bool(level_kept),
            "hog_runs": self._runs,
            "hog_ms": round(self._seconds * 1000, 1),
            "hog_mpx": round(self._pixels / 1e6, 2),
        }


def _people_hog(levels: int) -> cv2.HOGDescriptor:
    """OpenCV's default people detector (its default geometry) with a pyramid depth."""
    hog = cv2.HOGDescriptor(
        (_WIN_W, _WIN_H), (16, 16), (8, 8), (8, 8), 9, 1, -1, 0, 0.2, True, levels, False
    )
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def _nearest(times: list[float], t: float) -> int:
    """Index of the time nearest ``t`` in a sorted list."""
    i = bisect.bisect_left(times, t)
    if i == 0:
        return 0
    if i == len(times):
        return len(times) - 1
    return i if times[i] - t < t - times[i - 1] else i - 1


def _at_side(box: PersonBox, width: int) -> bool:
    """Whether a box touches the left or right edge of the picture (someone leaving it)."""
    slack = 0.2 * box.w
    return box.x < slack or box.x + box.w > width - slack


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
