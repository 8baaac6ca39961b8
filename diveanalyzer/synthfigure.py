"""Procedural human figure for synthetic sessions, drawn so a pedestrian detector can see it.

The figure is a flat "cartoon" person (head with hair, neck, shoulders, torso, arms, legs,
a dark swimsuit) drawn with anti-aliased OpenCV primitives. Its proportions follow the
classic 8-heads canon because OpenCV's default HOG people detector was trained on upright
photographs of people (INRIA): it keys on the head-shoulder outline, the torso's sides and
the two legs, so those edges must be there, with contrast against water, deck and board.
A thin darker rim around every part keeps that contrast on any background colour.

`draw_person` is called for every frame of long renders, so it only builds about twenty
primitives and never allocates an image (well under a millisecond at 480p).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

POSES = ("stand", "walk", "fly")

_SHIFT = 4  # sub-pixel precision for cv2 drawing: coordinates are in 1/16 px
_SCALE = 1 << _SHIFT

DEFAULT_SKIN = (140, 170, 215)  # BGR, a light tan
_HAIR = (30, 35, 45)

# Body landmarks for an upright person, as (x, y) in units of the height: x to the
# figure's right, y up from the soles. Left/right limbs get mirrored x.
_HEAD_Y = 0.935
_HEAD_R = 0.062
_NECK = ((0.0, 0.875), (0.0, 0.83))
_SHOULDER = (0.115, 0.815)
_HIP = (0.075, 0.52)
_WAIST = (0.085, 0.60)
_KNEE_Y = 0.285
_ANKLE_Y = 0.045
_ELBOW_DROP = 0.18
_FOREARM = 0.16

# Limb thickness in units of the height.
_THIGH_W = 0.080
_SHIN_W = 0.058
_UPPER_ARM_W = 0.050
_FOREARM_W = 0.040
_NECK_W = 0.050


def draw_person(
    img: np.ndarray,
    feet_xy: tuple[float, float],
    height_px: float,
    pose: str,
    phase: float = 0.0,
    angle_deg: float = 0.0,
    color: tuple | None = None,
) -> None:
    """Draw a person in place on a BGR uint8 image.

    feet_xy: for ``"stand"`` and ``"walk"``, the point on the ground midway between the
        soles (pixels, may be fractional); the figure rises ``height_px`` above it. For
        ``"fly"``, the centre of the folded body (its rotation centre).
    height_px: standing height in pixels; everything (limbs, line widths) scales with it.
        A flying figure is folded, so it spans roughly half of that.
    pose: ``"stand"`` (upright, arms at the sides), ``"walk"`` (side-to-side stride seen
        from the front/back, legs and arms swinging with ``phase``) or ``"fly"`` (a diver
        in the air: a tuck when ``phase < 0.5``, a pike otherwise).
    phase: position in the walk cycle, in [0, 1); one cycle is two steps.
    angle_deg: rotation, counter-clockwise on screen. Upright poses turn about the feet
        (a lean, e.g. at takeoff); ``"fly"`` turns about the body centre (somersaults).
    color: skin tone as BGR; the swimsuit is one of four dark colours picked from it, so
        different skins wear different suits. None uses a default tan.
    """
    if pose not in POSES:
        raise ValueError(f"pose must be one of {POSES}, got {pose!r}")
    if height_px <= 0:
        return
    skin = tuple(int(c) for c in (color or DEFAULT_SKIN))[:3]
    parts = _fly_parts(phase) if pose == "fly" else _upright_parts(pose, phase)
    _render(img, parts, feet_xy, height_px, angle_deg, skin)


def _upright_parts(pose: str, phase: float) -> list[tuple]:
    """Segments of a standing or walking body, back to front."""
    swing = math.sin(2 * math.pi * phase) if pose == "walk" else 0.0
    bend = abs(math.cos(2 * math.pi * phase)) if pose == "walk" else 0.0
    parts: list[tuple] = []
    for side in (-1, 1):
        # Legs: a walk seen from the front shows as alternating strides and knee bends.
        stride = 0.05 * swing * side
        knee_bend = 0.03 * bend * (1 if side * swing > 0 else 0.3)
        hip = (side * _HIP[0], _HIP[1])
        knee = (side * (0.075 + 0.01) + stride * 0.6, _KNEE_Y + knee_bend)
        ankle = (side * 0.075 + stride, _ANKLE_Y + 2 * knee_bend)
        toe = (ankle[0] + side * 0.035, max(0.012, ankle[1] - 0.03))
        parts += [
            ("limb", hip, knee, _THIGH_W, "skin"),
            ("limb", knee, ankle, _SHIN_W, "skin"),
            ("limb", ankle, toe, 0.038, "skin"),
        ]
    for side in (-1, 1):
        arm = -0.06 * swing * side
        shoulder = (side * (_SHOULDER[0] - 0.01), _SHOULDER[1] - 0.01)
        elbow = (side * 0.16 + arm * 0.5, _SHOULDER[1] - _ELBOW_DROP)
        wrist = (side * 0.175 + arm, elbow[1] - _FOREARM)
        parts += [
            ("limb", shoulder, elbow, _UPPER_ARM_W, "skin"),
            ("limb", elbow, wrist, _FOREARM_W, "skin"),
        ]
    parts += _trunk_parts()
    return parts


def _trunk_parts() -> list[tuple]:
    """Torso, swimsuit, neck and head of an upright body (head last: on top)."""
    sx, sy = _SHOULDER
    chest = [(-sx, sy), (sx, sy), (_WAIST[0], _WAIST[1]), (-_WAIST[0], _WAIST[1])]
    suit = [
        (-_WAIST[0] - 0.005, _WAIST[1] + 0.02),
        (_WAIST[0] + 0.005, _WAIST[1] + 0.02),
        (_HIP[0] + 0.035, _HIP[1] - 0.02),
        (0.02, _HIP[1] - 0.045),
        (-0.02, _HIP[1] - 0.045),
        (-_HIP[0] - 0.035, _HIP[1] - 0.02),
    ]
    return [
        ("poly", chest, "skin"),
        ("poly", suit, "suit"),
        ("limb", _NECK[0], _NECK[1], _NECK_W, "skin"),
        ("head", (0.0, _HEAD_Y), _HEAD_R),
    ]


def _fly_parts(phase: float) -> list[tuple]:
    """A folded diver centred on (0, 0): tuck (knees to chest) or pike (legs straight)."""
    shoulder, hip = (0.0, 0.16), (0.0, -0.13)
    head = (0.0, 0.16 + 0.10)
    parts: list[tuple] = [("limb", shoulder, hip, 0.17, "skin"), ("limb", hip, hip, 0.15, "suit")]
    if phase < 0.5:  # tuck: thighs up along the chest, shins folded down, hands on shins
        knee = (0.17, 0.12)
        ankle = (0.15, -0.10)
        parts += [
            ("limb", hip, knee, _THIGH_W * 1.1, "skin"),
            ("limb", knee, ankle, _SHIN_W * 1.1, "skin"),
            ("limb", (0.0, 0.12), (0.14, 0.0), _UPPER_ARM_W, "skin"),
        ]
    else:  # pike: straight legs forward-up, arms reaching for the toes
        toe = (0.30, 0.24)
        parts += [
            ("limb", hip, (0.15, 0.05), _THIGH_W * 1.1, "skin"),
            ("limb", (0.15, 0.05), toe, _SHIN_W * 1.1, "skin"),
            ("limb", (0.0, 0.12), (0.24, 0.17), _UPPER_ARM_W, "skin"),
        ]
    parts.append(("head", head, _HEAD_R))
    return parts


def _render(img, parts, origin, height, angle_deg, skin) -> None:
    """Transform figure units to pixels and draw each part with a darker rim."""
    rad = math.radians(angle_deg)
    cos_a, sin_a = math.cos(rad), math.sin(rad)
    ox, oy = origin
    scale = height * _SCALE

    def to_px(p):
        x, y = p
        # figure y is up, image y is down; counter-clockwise on screen is positive
        rx = x * cos_a - y * sin_a
        ry = x * sin_a + y * cos_a
        return (round(ox * _SCALE + rx * scale), round(oy * _SCALE - ry * scale))

    suit = _suit_color(skin)
    rim = tuple(int(c * 0.45) for c in skin)
    fills = {"skin": skin, "suit": suit}
    rim_px = max(1, round(height * 0.012))
    for outline in (True, False):
        for part in parts:
            _draw_part(img, part, to_px, height, fills, rim if outline else None, rim_px)


def _draw_part(img, part, to_px, height, fills, rim, rim_px) -> None:
    aa = cv2.LINE_AA
    kind = part[0]
    grow = 2 * rim_px if rim is not None else 0
    if kind == "limb":
        _, a, b, width, fill = part
        thick = max(1, round(width * height) + grow)
        cv2.line(img, to_px(a), to_px(b), rim or fills[fill], thick, aa, _SHIFT)
    elif kind == "poly":
        _, pts, fill = part
        poly = np.array([to_px(p) for p in pts], np.int32)
        if rim is not None:
            cv2.polylines(img, [poly], True, rim, 2 * rim_px + 1, aa, _SHIFT)
        else:
            cv2.fillPoly(img, [poly], fills[fill], aa, _SHIFT)
    elif kind == "head":
        _, (hx, hy), r = part
        radius = round(r * height * _SCALE)
        if rim is not None:
            cv2.circle(img, to_px((hx, hy)), radius + rim_px * _SCALE, rim, -1, aa, _SHIFT)
            return
        # dark hair on the crown, the face a slightly smaller skin disc below it: a crisp
        # upper head edge that still turns with the body
        cv2.circle(img, to_px((hx, hy)), radius, _HAIR, -1, aa, _SHIFT)
        face = (hx, hy - r * 0.22)
        cv2.circle(img, to_px(face), int(radius * 0.8), fills["skin"], -1, aa, _SHIFT)


def _suit_color(skin: tuple) -> tuple:
    """A swimsuit clearly darker than any skin, chosen by the skin so figures differ."""
    b, g, r = skin
    options = ((90, 30, 20), (30, 30, 140), (25, 25, 25), (40, 90, 30))
    return options[(b + 2 * g + 3 * r) % len(options)]
