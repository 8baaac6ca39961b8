"""The picture of a synthetic session: pool hall, boards, diver, swimmers, walkers, splashes.

Everything static (wall, deck, boards) is drawn once; each frame copies the background, shifts
a pre-rendered ripple texture, and draws only the few moving things, so a 480p frame costs
a millisecond or two. All geometry is in fractions of the upright frame, so any size works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from diveanalyzer.synthfigure import draw_person

WATERLINE = 0.62
"""Top of the water, fraction of the frame height."""
ENTRY_DEPTH = WATERLINE + 0.07
"""Where (fraction of the height) the diver meets the water: the surface seen from above."""
DECK_FEET = 0.60
"""Where walkers on the far deck put their feet, fraction of the height."""
DIVER_HEIGHT = 0.30
"""Standing height of the diver, fraction of the frame height."""
WALKER_HEIGHT = 0.22
SPLASH_SECONDS = 1.2


@dataclass(frozen=True)
class Board:
    """One board, in fractions of the frame; ``direction`` is +1 when the diver runs right."""

    back: float
    tip: float
    top: float
    entry_x: float
    direction: int

    def zone(self) -> list[float]:
        """Where a standing or taking-off diver is: the board zone, as ``[x, y, w, h]``."""
        x0, x1 = sorted((self.back, self.tip))
        x0, x1 = max(0.0, x0 - 0.05), min(1.0, x1 + 0.06)
        y0 = max(0.0, self.top - DIVER_HEIGHT * 1.15)
        return [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(self.top + 0.03 - y0, 3)]


BOARDS = (
    Board(back=0.05, tip=0.36, top=0.42, entry_x=0.45, direction=1),
    Board(back=0.95, tip=0.64, top=0.36, entry_x=0.56, direction=-1),
)

WATER_ZONE = [0.0, WATERLINE, 1.0, round(1.0 - WATERLINE, 3)]


class Scene:
    """Pre-rendered layers of one session's frame size; draws a frame from a state."""

    def __init__(self, width: int, height: int, boards: int, rng: np.random.Generator):
        self.w, self.h = width, height
        self.boards = BOARDS[:boards]
        self.water_y = round(WATERLINE * height)
        self.background = self._background()
        self.canvas = np.empty_like(self.background)
        self.board_layers = [self._board_layer(b) for b in self.boards]
        self.ripples = self._ripples(rng)
        self.noise = [
            rng.integers(0, 3, (height, width, 1), dtype=np.uint8).repeat(3, axis=2)
            for _ in range(5)
        ]

    # -- static layers ------------------------------------------------------------------

    def _background(self) -> np.ndarray:
        w, h = self.w, self.h
        img = np.empty((h, w, 3), np.uint8)
        deck_y = round(0.52 * h)
        img[:deck_y] = (178, 196, 206)  # pale wall
        shade = np.linspace(0.85, 1.05, deck_y)[:, None, None]
        img[:deck_y] = np.clip(img[:deck_y] * shade, 0, 255).astype(np.uint8)
        for x in range(0, w, max(8, w // 12)):  # wall panels
            cv2.line(img, (x, 0), (x, deck_y), (150, 168, 178), max(1, w // 400))
        win_y0, win_y1 = round(0.08 * h), round(0.2 * h)
        img[win_y0:win_y1, round(0.12 * w) : round(0.88 * w)] = (120, 105, 90)
        img[deck_y : self.water_y] = (196, 200, 200)  # deck tiles
        for x in range(0, w, max(6, w // 30)):
            cv2.line(img, (x, deck_y), (x, self.water_y), (176, 180, 180), 1)
        cv2.line(img, (0, self.water_y - 1), (w, self.water_y - 1), (90, 90, 90), max(1, h // 240))
        return img

    def _board_layer(
        self, board: Board
    ) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
        """The board and its tower as a bounding box, its pixels and a mask."""
        w, h = self.w, self.h
        img = np.zeros((h, w, 3), np.uint8)
        top = round(board.top * h)
        thick = max(3, round(0.014 * h))
        x_back, x_tip = round(board.back * w), round(board.tip * w)
        x0, x1 = sorted((x_back, x_tip))
        cv2.rectangle(img, (x0, top), (x1, top + thick), (60, 120, 215), -1)  # orange plank
        cv2.rectangle(img, (x0, top + thick), (x1, top + thick + 1), (40, 70, 120), -1)
        tower_w = max(6, round(0.06 * w))
        tx0 = x_back - tower_w // 2
        cv2.rectangle(img, (tx0, top + thick), (tx0 + tower_w, self.water_y), (150, 150, 155), -1)
        rail_top = top - round(0.12 * h)
        rail_x = x_back - board.direction * tower_w // 3
        cv2.line(img, (rail_x, rail_top), (rail_x, top), (200, 200, 205), max(1, w // 300))
        mask = img.any(axis=2)
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        bx0, by0, bx1, by1 = box
        crop_mask = mask[by0:by1, bx0:bx1].astype(np.uint8) * 255
        return box, img[by0:by1, bx0:bx1].copy(), crop_mask

    def _ripples(self, rng: np.random.Generator) -> np.ndarray:
        """A water texture twice the frame wide; frames show a sliding window of it."""
        w, h = self.w * 2, self.h - self.water_y
        y = np.linspace(0, 1, h)[:, None]
        x = np.arange(w)[None, :] / self.w
        wave = np.zeros((h, w))
        for _ in range(5):
            # whole periods per frame width: the sliding window wraps around seamlessly
            k = 2 * math.pi * int(rng.integers(4, 14))
            wave += np.sin(k * x + rng.uniform(0, 6.3) + 40 * y * rng.uniform(0.5, 1.5))
        depth = 0.75 + 0.25 * y
        base = np.stack([200 * depth, 140 * depth, 40 * depth], axis=2)  # BGR pool blue
        tex = base + (wave * 5)[:, :, None]
        floats = (np.arange(w) % self.w) % 8 == 0  # lane-rope floats, periodic per width
        for lane in (0.3, 0.6, 0.85):
            ly = round(lane * h)
            tex[ly : ly + max(1, h // 60), floats] = (60, 60, 220)
        return np.clip(tex, 0, 255).astype(np.uint8)

    # -- per frame ----------------------------------------------------------------------

    def start_frame(self, index: int) -> np.ndarray:
        # one reused buffer: the encoder copies each frame, and fresh 1-6 MB arrays cost
        # more in page faults than the copy itself
        img = self.canvas
        np.copyto(img, self.background)
        shift = (index * max(1, self.w // 400)) % self.w
        img[self.water_y :] = self.ripples[:, shift : shift + self.w]
        return img

    def draw_boards(self, img: np.ndarray) -> None:
        for (x0, y0, x1, y1), pixels, mask in self.board_layers:
            cv2.copyTo(pixels, mask, img[y0:y1, x0:x1])

    def finish_frame(self, img: np.ndarray, index: int) -> np.ndarray:
        # sensor noise: a few grey levels, cycled, so frame differences are never exactly zero
        noise = self.noise[index % len(self.noise)]
        cv2.add(img, noise, dst=img)
        cv2.subtract(img, 1, dst=img)
        return img

    def px(self, x: float, y: float) -> tuple[float, float]:
        return x * self.w, y * self.h

    def person(self, img, x, y, height, pose, phase=0.0, angle=0.0, color=None) -> None:
        draw_person(img, self.px(x, y), height * self.h, pose, phase, angle, color)

    def swimmer(self, img: np.ndarray, x: float, depth: float, t: float, cap) -> None:
        """A head with a cap, a stroking arm and a white wake."""
        cx, cy = self.px(x, WATERLINE + depth)
        r = max(2, round(0.018 * self.h))
        stroke = math.sin(2 * math.pi * 0.8 * t)
        cv2.ellipse(img, (round(cx), round(cy + r)), (3 * r, r), 0, 0, 360, (235, 225, 215), -1)
        arm_x = round(cx + stroke * 2.5 * r)
        cv2.ellipse(img, (arm_x, round(cy)), (r, r // 2 + 1), 0, 0, 360, (150, 170, 215), -1)
        cv2.circle(img, (round(cx), round(cy)), r, cap, -1, cv2.LINE_AA)

    def _churn(self, img, cx: float, cy: float, foam_w: int, foam_h: int, age: float) -> None:
        """Turbulent foam: bubbles of water and white that change every frame."""
        rng = np.random.default_rng(round(age * 1000) + round(cx))  # deterministic per frame
        count = 25
        xs = cx + rng.uniform(-1, 1, count) * foam_w * 0.9
        ys = cy + rng.uniform(-1, 1, count) * foam_h * 0.8
        radii = np.maximum(1, rng.uniform(0.2, 0.5, count) * foam_h).astype(int)
        for i in range(count):
            colour = (190, 150, 70) if i % 2 else (255, 255, 250)
            cv2.circle(img, (round(xs[i]), round(ys[i])), int(radii[i]), colour, -1)

    def splash(self, img: np.ndarray, x: float, age: float, particles: np.ndarray) -> None:
        """Foam, a spray column and droplets ``age`` s after entry; particles: (vx, vy, size)."""
        if not 0 <= age < SPLASH_SECONDS:
            return
        white = (245, 245, 240)
        cx, cy = self.px(x, ENTRY_DEPTH)
        # foam spreads fast, then shrinks smoothly to nothing (no pop when the splash ends)
        grow = min(1.0, age / 0.15)
        shrink = 1.0 - max(0.0, age - 0.35) / (SPLASH_SECONDS - 0.35)
        foam_w = max(1, round(0.10 * self.w * grow * shrink))
        foam_h = max(1, round(0.045 * self.h * grow * shrink))
        cv2.ellipse(img, (round(cx), round(cy)), (foam_w, foam_h), 0, 0, 360, white, -1)
        self._churn(img, cx, cy, foam_w, foam_h, age)
        # the spray column: rises to ~0.2 of the height, then falls back
        rise = max(0.0, 1.2 * age - 2.5 * age * age) * self.h
        if rise > 1:
            half = max(1, round(0.025 * self.w * shrink))
            top = round(cy - rise)
            cv2.ellipse(
                img,
                (round(cx), round(cy - rise / 2)),
                (half, round(rise / 2)),
                0,
                0,
                360,
                white,
                -1,
            )
            cv2.circle(img, (round(cx), top), half, white, -1)
        g = 1.6  # frame heights per second squared
        for vx, vy, size in particles:
            px = cx + vx * age * self.h
            py = cy - (vy * age - 0.5 * g * age * age) * self.h
            if py > cy:
                continue  # fallen back into the water
            radius = max(1, round(size * self.h))
            cv2.circle(img, (round(px), round(py)), radius, (250, 250, 245), -1)


def splash_particles(rng: np.random.Generator, count: int) -> np.ndarray:
    """Spray launch velocities (frame heights/s) and sizes for one splash."""
    vx = rng.normal(0.0, 0.15, count)
    vy = rng.uniform(0.3, 1.1, count)
    size = rng.uniform(0.004, 0.010, count)
    return np.stack([vx, vy, size], axis=1)
