"""Person signal: HOG sees the synthetic figure, and takeoffs are found where the diver leaves
the board, on scenes rendered here frame by frame and on generated session videos."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from diveanalyzer import media
from diveanalyzer.detectors.person import PersonDetector, PersonSettings
from diveanalyzer.detectors.zones import estimate_zones
from diveanalyzer.media import Frame
from diveanalyzer.model import Zone
from diveanalyzer.synthfigure import draw_person

SKINS = [(140, 170, 215), (60, 90, 140), (110, 150, 200), (180, 200, 230), (90, 120, 170)]
DECK, POOL, GREY, BOARD = (165, 185, 200), (190, 140, 40), (140, 140, 140), (235, 235, 232)


@pytest.fixture(scope="module")
def detector() -> PersonDetector:
    return PersonDetector()


def _background(kind: str, width: int, height: int, seed: int, board_y=None) -> np.ndarray:
    img = np.empty((height, width, 3), np.uint8)
    if kind == "board":  # deck above, pool below, a board on the left
        board_y = round(board_y or height / 2)
        water_y = min(height - 1, board_y + height // 12)
        img[:water_y] = DECK
        img[water_y:] = POOL
        cv2.rectangle(img, (0, board_y), (int(0.38 * width), board_y + height // 50), BOARD, -1)
    else:
        img[:] = {"pool": POOL, "deck": DECK, "grey": GREY}[kind]
    noise = np.random.default_rng(seed).normal(0, 3, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _around(feet: tuple[float, float], size: float, width: int, height: int) -> Zone:
    """A board-zone-like rectangle around a standing figure (fractions)."""
    x0 = max(0.0, feet[0] - 0.7 * size) / width
    y0 = max(0.0, feet[1] - 1.3 * size) / height
    x1 = min(width, feet[0] + 0.7 * size) / width
    y1 = min(height, feet[1] + 0.1 * size) / height
    return Zone(x0, y0, x1 - x0, y1 - y0)


def _found_at(boxes, feet, size) -> bool:
    return any(
        abs(b.cx - feet[0]) < 0.3 * size and abs(b.bottom - feet[1]) < 0.35 * size for b in boxes
    )


def _detection_rate(detector, pose: str, size: float, frame_size: tuple[int, int]) -> float:
    width, height = frame_size
    hits = total = 0
    for k, kind in enumerate(("pool", "deck", "grey", "board")):
        for j, phase in enumerate((0.0, 0.25, 0.5, 0.75)):
            feet = (width * (0.3 + 0.1 * j), min(height - 0.3 * size, 0.5 * height + 0.5 * size))
            if kind == "board":  # on the board, head room above (HOG needs it)
                feet = (width * 0.2 + 10 * j, max(height / 2, 1.3 * size))
            img = _background(kind, width, height, 4 * k + j, board_y=feet[1])
            if pose == "fly":  # feet_xy is the body centre; compare with a standing box there
                angle = 45.0 * (4 * k + j)
                draw_person(img, (feet[0], feet[1] - 0.4 * size), size, pose, phase, angle)
            else:
                draw_person(img, feet, size, pose, phase, color=SKINS[(k + j) % len(SKINS)])
            boxes = detector.people(img, _around(feet, size, width, height))
            hits += _found_at(boxes, feet, size) if pose != "fly" else bool(boxes)
            total += 1
    return hits / total


@pytest.mark.parametrize(
    ("pose", "size", "frame_size"),
    [
        ("stand", 100, (854, 480)),
        ("stand", 140, (854, 480)),
        ("stand", 220, (854, 480)),
        ("stand", 60, (426, 240)),
        ("walk", 100, (854, 480)),
        ("walk", 140, (854, 480)),
        ("walk", 220, (854, 480)),
        ("walk", 60, (426, 240)),
    ],
)
def test_hog_sees_the_upright_figure(detector, pose, size, frame_size):
    # 16 renders: 4 backgrounds x 4 walk phases, rotating skin colours
    assert _detection_rate(detector, pose, size, frame_size) >= 0.9


@pytest.mark.parametrize(("size", "frame_size"), [(100, (854, 480)), (160, (854, 480))])
def test_hog_mostly_misses_the_folded_flying_figure(detector, size, frame_size):
    assert _detection_rate(detector, "fly", size, frame_size) <= 0.3


def test_draw_person_rejects_unknown_pose():
    img = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError, match="pose"):
        draw_person(img, (50, 90), 80, "swim")


def test_draw_person_clips_at_the_frame_edge():
    img = np.zeros((120, 160, 3), np.uint8)
    draw_person(img, (-10, 130), 200, "walk", 0.3)  # mostly outside: must not raise
    draw_person(img, (80, 60), 90, "fly", 0.7, 123.0)
    assert img.any()


# -- takeoffs on scenes rendered frame by frame -------------------------------------------


def _dive_frames(
    size=110,
    side="left",
    fps=15.0,
    takeoff=3.0,
    upright_s=0.0,
    walker=False,
    diver=True,
    spectator=False,
    frame_size=(854, 480),
):
    """A diver walks to the end of a board, stands, takes off and falls into the pool.

    ``upright_s``: after the takeoff the body first rises straight up (a springboard jump)
    before folding. Returns (frames, board zone, takeoff, entry).
    """
    width, height = frame_size
    bg = _background("deck", width, height, seed=1)
    water_y, board_y, board_w = int(0.58 * height), int(0.5 * height), int(0.38 * width)
    bg[water_y:] = POOL
    bx0 = 0 if side == "left" else width - board_w
    cv2.rectangle(bg, (bx0, board_y), (bx0 + board_w, board_y + height // 50), BOARD, -1)
    end_x = bx0 + board_w - 15 if side == "left" else bx0 + 15
    start_x = bx0 + 20 if side == "left" else bx0 + board_w - 20
    direction = 1 if side == "left" else -1
    ppm = size / 1.75  # pixels per metre
    g, v_up, v_x = 9.81 * ppm, 3.0 * ppm, 1.2 * ppm * direction
    y0 = board_y - 0.55 * size  # body centre at the takeoff
    c = water_y + 0.1 * size - y0
    flight = (v_up + math.sqrt(v_up * v_up + 2 * g * c)) / g
    entry = takeoff + flight
    walk_start = max(0.0, takeoff - 2.3)
    rng = np.random.default_rng(2)
    frames = []
    first = math.ceil((entry - 3.2) * fps)  # detectors look back at most ~3 s
    for k in range(max(0, first), int((entry + 0.5) * fps)):
        t = k / fps
        img = bg.copy()
        if walker:
            wx = (40 + 70 * t) % (width + 100) - 50
            draw_person(img, (wx, 0.4 * height), size * 0.8, "walk", (t * 1.0) % 1, color=SKINS[1])
        if spectator:
            draw_person(img, (width * 0.6, board_y), size, "stand", color=SKINS[3])
        if diver and walk_start <= t < takeoff:
            a = min(1.0, (t - walk_start) / 1.5)
            x = start_x + (end_x - start_x) * a
            draw_person(img, (x, board_y), size, "walk" if a < 1 else "stand", (1.1 * t) % 1)
        elif diver and takeoff <= t < entry:
            dt = t - takeoff
            cx, cy = end_x + v_x * dt, y0 - v_up * dt + 0.5 * g * dt * dt
            if dt < upright_s:
                draw_person(img, (cx, cy + 0.55 * size), size, "stand")
            else:
                draw_person(img, (cx, cy), size, "fly", 0.2, -direction * 540 * dt / flight)
        elif t >= entry:
            cv2.circle(img, (int(end_x + v_x * flight), water_y + 10), size // 3, (250,) * 3, -1)
        img = cv2.add(img, rng.integers(0, 3, img.shape, dtype=np.uint8))
        frames.append(Frame(t, img))
    zone = Zone(0.0, 0.1, 0.5, 0.5) if side == "left" else Zone(0.5, 0.1, 0.5, 0.5)
    return frames, zone, takeoff, entry


def _in_window(detector, frames, entry):
    lo, hi = detector.window(entry)
    return [f for f in frames if lo <= f.time <= hi]


TAKEOFF_CASES = {
    "100px-left-15fps": {"size": 100, "takeoff": 2.5},
    "130px-right-15fps-springboard-rise": {"size": 130, "side": "right", "upright_s": 0.12},
    "90px-left-15fps-deck-walker": {"size": 90, "walker": True, "takeoff": 3.37},
    "160px-right-30fps-deck-walker": {"size": 160, "side": "right", "walker": True, "fps": 30},
    "85px-left-10fps-springboard-rise": {"size": 85, "fps": 10, "upright_s": 0.15},
    "120px-left-30fps-walker-rise": {"size": 120, "fps": 30, "walker": True, "upright_s": 0.2},
    "70px-at-360p": {"size": 70, "frame_size": (640, 360), "takeoff": 3.1},
    "60px-at-240p": {"size": 60, "frame_size": (426, 240), "side": "right"},
}


@pytest.mark.parametrize("case", TAKEOFF_CASES.values(), ids=TAKEOFF_CASES.keys())
def test_takeoff_found_within_0_3_s(detector, case):
    frames, zone, takeoff, entry = _dive_frames(**case)
    found = detector.find_takeoff(_in_window(detector, frames, entry), zone, entry)
    assert found is not None
    assert abs(found.time - takeoff) <= 0.3, (found.time, takeoff, found.details)
    assert 0.0 < found.confidence <= 1.0
    assert found.details["hog_runs"] > 0


def test_takeoff_is_refined_between_coarse_samples(detector):
    # coarse samples are 0.2 s apart; frame-by-frame refinement must do much better
    errors = []
    for takeoff in (2.5, 2.57, 2.63, 2.7):
        frames, zone, _, entry = _dive_frames(
            size=90, fps=30, takeoff=takeoff, frame_size=(640, 360)
        )
        found = detector.find_takeoff(_in_window(detector, frames, entry), zone, entry)
        assert found is not None
        errors.append(abs(found.time - takeoff))
    assert max(errors) <= 0.1, errors


def test_no_diver_means_no_takeoff(detector):
    frames, zone, _, entry = _dive_frames(diver=False, walker=True)
    assert detector.find_takeoff(_in_window(detector, frames, entry), zone, entry) is None


def test_someone_standing_still_on_the_board_is_not_a_takeoff(detector):
    frames, _, _, entry = _dive_frames(diver=False, spectator=True)
    whole = Zone(0.0, 0.0, 1.0, 0.6)
    assert detector.find_takeoff(_in_window(detector, frames, entry), whole, entry) is None


def test_no_frames_or_frames_after_the_entry_only(detector):
    frames, zone, _, entry = _dive_frames()
    assert detector.find_takeoff([], zone, entry) is None
    assert detector.find_takeoff([f for f in frames if f.time > entry], zone, entry) is None
    assert detector.find_takeoff(frames[:5], zone, entry) is None  # long before the dive


def test_window_covers_the_flight_and_a_moment_after_the_entry(detector):
    lo, hi = detector.window(10.0)
    assert 2.5 <= 10.0 - lo <= 5.0 and 10.0 <= hi <= 11.0
    assert detector.window(1.0)[0] == 0.0


def test_work_budget_stops_a_hopeless_scan(detector):
    frames, zone, _, entry = _dive_frames(walker=True, takeoff=3.3)
    frames = _in_window(detector, frames, entry)
    assert detector.find_takeoff(frames, zone, entry) is not None
    tiny = PersonDetector(PersonSettings(max_work_mpx=0.01))
    assert tiny.find_takeoff(frames, zone, entry) is None


# -- generated session videos (fixtures from conftest.py) ---------------------------------


def _zones_of(path):
    info = media.probe(path)
    starts = [(k + 0.5) * info.duration / 6 for k in range(6)]
    windows = [(t, t + 0.2) for t in starts]
    return estimate_zones(list(media.frames(path, windows=windows, fps=5.0, color=True)))


def _takeoffs(video, detector, board_zone=None, entry_error=0.0):
    board = board_zone or _zones_of(video.path)[1]
    results = []
    for dive in video.truth["dives"]:
        entry = dive["entry"] + entry_error  # as the audio signal might place it
        window = detector.window(entry)
        frames = media.frames(
            video.path, windows=[window], fps=detector.settings.decode_fps, color=True
        )
        results.append((dive, detector.find_takeoff(list(frames), board, entry)))
    return results


@pytest.mark.parametrize("name", ["synth_session", "synth_two_boards", "synth_quiet_session"])
def test_takeoffs_in_generated_sessions(request, detector, name):
    video = request.getfixturevalue(name)
    results = _takeoffs(video, detector)
    assert results
    for dive, found in results:
        assert found is not None, dive
        assert abs(found.time - dive["takeoff"]) <= 0.3, (dive, found)


@pytest.mark.parametrize("entry_error", [-0.12, 0.07])
def test_takeoffs_when_the_entry_is_a_little_off(detector, synth_session, entry_error):
    for dive, found in _takeoffs(synth_session, detector, entry_error=entry_error):
        assert found is not None and abs(found.time - dive["takeoff"]) <= 0.3, (dive, found)


def test_takeoffs_with_the_true_board_zone(detector, synth_session):
    zone = Zone(*synth_session.truth["board_zone"])
    for dive, found in _takeoffs(synth_session, detector, zone):
        assert found is not None and abs(found.time - dive["takeoff"]) <= 0.3, (dive, found)


def test_no_takeoff_before_a_shout(detector, synth_shout_only):
    board = _zones_of(synth_shout_only.path)[1]
    for shout in (5.0, 10.0):
        frames = media.frames(
            synth_shout_only.path, windows=[detector.window(shout)], fps=15.0, color=True
        )
        assert detector.find_takeoff(list(frames), board, shout) is None
