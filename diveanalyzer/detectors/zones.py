"""Where is the water, and where do people stand above it? Zones estimated from a few frames.

The water is the largest blue/cyan region of the picture (pool water is blue or turquoise in
any light that is not coloured), found in HSV on small copies of a handful of frames spread
over the video and kept where most frames agree, so swimmers, splashes and passers-by do not
punch holes in it. The board zone is everything above the water's top edge (boards and the
deck are there), a little below that edge included for feet at the waterline. When no large
water region is found, both zones are the whole frame and the caller is told so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from diveanalyzer.model import Zone

if TYPE_CHECKING:
    from diveanalyzer.media import Frame

ESTIMATED = "estimated"
FALLBACK = "whole-frame fallback"

_WORK_WIDTH = 160
"""Frames are reduced to this width first: zones are coarse, and it keeps the cost tiny."""
_HUE = (80, 135)
"""OpenCV hue range (0-180) of pool water: cyan (90) to blue (120)."""
_MIN_SAT, _MIN_VAL = 60, 50
_AGREEMENT = 0.5
"""A pixel is water when at least this fraction of the frames say so."""
_MIN_AREA = 0.08
"""The water region must cover this fraction of the frame ..."""
_MIN_FILL = 0.5
"""... and this fraction of its own bounding box (not a scatter of blue things)."""
_FEET_MARGIN = 0.03
"""The board zone reaches this fraction of the height below the water's top edge."""
_MIN_ROOM = 0.3
"""With less than this fraction of the height above the water, nobody standing there fits
in the picture: the board is in front of the water, and the board zone is the whole frame."""


def estimate_zones(frames: Sequence[Frame]) -> tuple[Zone, Zone, str]:
    """``(water_zone, board_zone, how)`` from a few colour frames sampled across a video.

    ``how`` is ``"estimated"`` or ``"whole-frame fallback"`` (no colour frames, or no
    large blue region).
    """
    water = _water_mask([f.image for f in frames])
    box = None if water is None else _water_box(water)
    if box is None:
        return Zone.whole_frame(), Zone.whole_frame(), FALLBACK
    height, width = water.shape
    x0, y0, x1, y1 = box
    water_zone = _zone(x0 / width, y0 / height, x1 / width, y1 / height)
    top = y0 / height
    if top < _MIN_ROOM:
        return water_zone, Zone.whole_frame(), ESTIMATED
    board_zone = _zone(0.0, 0.0, 1.0, min(1.0, top + _FEET_MARGIN))
    return water_zone, board_zone, ESTIMATED


def _water_mask(images: list[np.ndarray]) -> np.ndarray | None:
    """Pixels (at the work size) that are water-coloured in most of the frames."""
    images = [im for im in images if im.ndim == 3 and im.shape[2] == 3 and im.size]
    if not images:
        return None
    shape = images[0].shape[:2]
    height, width = shape
    size = (_WORK_WIDTH, max(8, round(height * _WORK_WIDTH / width)))
    votes = np.zeros((size[1], size[0]), np.float32)
    used = 0
    for image in images:
        if image.shape[:2] != shape:
            continue  # a frame of another size cannot vote on the same pixels
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        low = np.array([_HUE[0], _MIN_SAT, _MIN_VAL], np.uint8)
        high = np.array([_HUE[1], 255, 255], np.uint8)
        votes += cv2.inRange(hsv, low, high) > 0
        used += 1
    mask = (votes >= _AGREEMENT * used).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    # close the gaps left by lane ropes and swimmers, then drop specks
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)


def _water_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x0, y0, x1, y1)`` of the largest water region, if it is large."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = (int(v) for v in stats[best])
    if area < _MIN_AREA * mask.size or area < _MIN_FILL * w * h:
        return None
    return x, y, x + w, y + h


def _zone(x0: float, y0: float, x1: float, y1: float) -> Zone:
    """A zone from fractional bounds, rounded to 3 decimals and kept inside the frame."""
    x0, y0 = round(min(max(x0, 0.0), 0.99), 3), round(min(max(y0, 0.0), 0.99), 3)
    x1, y1 = round(min(max(x1, x0 + 0.01), 1.0), 3), round(min(max(y1, y0 + 0.01), 1.0), 3)
    return Zone(x0, y0, round(x1 - x0, 3), round(y1 - y0, 3))
