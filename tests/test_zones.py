"""Zone estimation: the pool's water and the board zone above it, from a few frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from diveanalyzer import media
from diveanalyzer.detectors.zones import ESTIMATED, FALLBACK, estimate_zones
from diveanalyzer.media import Frame
from diveanalyzer.model import Zone
from diveanalyzer.synthfigure import draw_person

POOL, TURQUOISE, DECK, GRASS = (190, 140, 40), (200, 190, 60), (165, 185, 200), (60, 150, 70)


def _scene(water_top=0.6, water=POOL, above=DECK, size=(640, 360), seed=0, busy=True):
    """Deck above, water below, a board, and (busy) swimmers, a splash and a walker."""
    width, height = size
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.uint8)
    top = round(water_top * height)
    img[:top], img[top:] = above, water
    cv2.rectangle(img, (0, top - height // 8), (width // 3, top - height // 9), (60, 120, 215), -1)
    if busy:
        for _ in range(3):  # swimmers' caps and wakes
            x, y = int(rng.uniform(0, width)), int(rng.uniform(top + 10, height - 5))
            cv2.ellipse(img, (x, y), (18, 6), 0, 0, 360, (235, 225, 215), -1)
            cv2.circle(img, (x, y - 3), 5, (40, 200, 230), -1)
        x = int(rng.uniform(0.2, 0.8) * width)
        cv2.ellipse(img, (x, top + 12), (50, 14), 0, 0, 360, (245, 245, 240), -1)  # splash
        draw_person(img, (rng.uniform(0, width), top - 4), 0.25 * height, "walk", 0.3)
    noise = rng.normal(0, 3, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _frames(images):
    return [Frame(float(k), im) for k, im in enumerate(images)]


def _contains(outer: Zone, inner: Zone, slack=0.01) -> bool:
    return (
        outer.x <= inner.x + slack
        and outer.y <= inner.y + slack
        and outer.x + outer.w >= inner.x + inner.w - slack
        and outer.y + outer.h >= inner.y + inner.h - slack
    )


@pytest.mark.parametrize(
    ("water_top", "water", "size"),
    [
        (0.6, POOL, (640, 360)),
        (0.45, POOL, (854, 480)),
        (0.7, TURQUOISE, (426, 240)),
        (0.55, TURQUOISE, (270, 480)),  # portrait
    ],
)
def test_water_below_deck_is_found(water_top, water, size):
    frames = _frames(_scene(water_top, water, size=size, seed=k) for k in range(5))
    water_zone, board_zone, how = estimate_zones(frames)
    assert how == ESTIMATED
    assert abs(water_zone.y - water_top) <= 0.03
    assert water_zone.x <= 0.02 and water_zone.w >= 0.96
    assert abs(water_zone.y + water_zone.h - 1.0) <= 0.02
    # the board zone is everything above the water, the feet at its edge included
    assert board_zone.y == 0.0 and board_zone.x == 0.0 and board_zone.w == 1.0
    assert water_top <= board_zone.y + board_zone.h <= water_top + 0.06


def test_one_odd_frame_does_not_move_the_water():
    frames = _frames([_scene(seed=k) for k in range(4)] + [_scene(water_top=0.3, seed=9)])
    water_zone, _, how = estimate_zones(frames)
    assert how == ESTIMATED and abs(water_zone.y - 0.6) <= 0.03


def test_water_filling_the_picture_leaves_the_board_zone_whole():
    # camera above the board looking down at the water: nobody fits above the waterline
    frames = _frames(_scene(water_top=0.15, seed=k) for k in range(3))
    water_zone, board_zone, how = estimate_zones(frames)
    assert how == ESTIMATED and abs(water_zone.y - 0.15) <= 0.03
    assert board_zone == Zone.whole_frame()


@pytest.mark.parametrize(
    "images",
    [
        pytest.param([_scene(water=GRASS, busy=False)] * 3, id="grass-no-water"),
        pytest.param([np.full((240, 320, 3), 128, np.uint8)] * 3, id="grey"),
        pytest.param([np.zeros((240, 320), np.uint8)] * 3, id="grayscale-frames"),
        pytest.param([], id="no-frames"),
    ],
)
def test_no_water_falls_back_to_the_whole_frame(images):
    water_zone, board_zone, how = estimate_zones(_frames(images))
    assert how == FALLBACK
    assert water_zone == Zone.whole_frame() and board_zone == Zone.whole_frame()


def test_a_small_blue_thing_is_not_a_pool():
    img = _scene(water=GRASS, busy=False)
    cv2.rectangle(img, (100, 100), (140, 180), POOL, -1)  # a blue shirt, a bag...
    assert estimate_zones(_frames([img] * 3))[2] == FALLBACK


def test_zones_of_a_generated_session(synth_session):
    info = media.probe(synth_session.path)
    windows = [
        ((k + 0.5) * info.duration / 6, (k + 0.5) * info.duration / 6 + 0.2) for k in range(6)
    ]
    frames = list(media.frames(synth_session.path, windows=windows, fps=5.0, color=True))
    water_zone, board_zone, how = estimate_zones(frames)
    truth_water = Zone(*synth_session.truth["water_zone"])
    assert how == ESTIMATED
    assert abs(water_zone.y - truth_water.y) <= 0.03
    assert abs(water_zone.h - truth_water.h) <= 0.03
    for zone in synth_session.truth["board_zones"]:
        assert _contains(board_zone, Zone(*zone))
