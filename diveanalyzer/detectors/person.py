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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from diveanalyzer.detectors.hog import HogSearch, PersonBox
from diveanalyzer.model import Zone

if TYPE_CHECKING:
    from diveanalyzer.media import Frame


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


class PersonDetector:
    """Finds takeoffs with OpenCV's default HOG people detector.

    Keeps per-call counters: use one instance per thread (it is cheap to make).
    """

    def __init__(self, settings: PersonSettings | None = None):
        self.settings = settings or PersonSettings()
        self._search = HogSearch(self.settings)

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
        self._search.reset()
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
            if n > stop or self._search.pixels > s.max_work_mpx * 1e6:
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
            prior = self._search.follow(frames[earlier].image, box, s.hit_threshold)
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
        after = self._search.follow(image, box, reach_steps=steps)
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
            found = self._search.follow(frames[i].image, guide, self.settings.hit_threshold)
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

    def people(self, image: np.ndarray, zone: Zone, later=None) -> list[PersonBox]:
        """People in the zone at every size from the smallest figure up, best first.

        With ``later`` (the frame one coarse step later) only the regions where the two
        differ are searched (see `HogSearch.people`).
        """
        return self._search.people(image, zone, later)

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
            "hog_runs": self._search.runs,
            "hog_ms": round(self._search.seconds * 1000, 1),
            "hog_mpx": round(self._search.pixels / 1e6, 2),
        }


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
