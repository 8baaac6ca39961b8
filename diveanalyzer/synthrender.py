"""Turn a planned synthetic session (`synth.GroundTruth`) into frames and samples.

The mp4 they go into is written by `diveanalyzer.media_write.Mp4Writer`.
"""

from __future__ import annotations

import math

import numpy as np

from diveanalyzer import synthsound
from diveanalyzer.synthfigure import draw_person
from diveanalyzer.synthscene import (
    BOARDS,
    DECK_FEET,
    DIVER_HEIGHT,
    ENTRY_DEPTH,
    WALKER_HEIGHT,
    Scene,
)

WALK_STRIDE = 0.5
"""Diver heights covered by one walk cycle (two steps)."""
FLIGHT_RISE = 0.12
"""How far (frame heights) the diver's centre rises above the takeoff point."""
CROWD_DB = -42.0
"""RMS level of the crowd murmur, dBFS."""


class FramePainter:
    """Draws frame ``i`` of a session from its plan; pure function of (plan, i)."""

    def __init__(self, truth, rng: np.random.Generator):
        s = truth.settings
        self.truth, self.fps = truth, s.fps
        self.scene = Scene(s.width, s.height, s.boards, rng)
        self.rotate = s.rotate

    def frame(self, index: int) -> np.ndarray:
        t = index / self.fps
        s, scene = self.truth.settings, self.scene
        img = scene.start_frame(index)
        for walker in self.truth.walkers:
            self._walker(img, walker, t)
        scene.draw_boards(img)
        for swimmer in self.truth.swimmers:
            x = _bounce(swimmer["x0"] + swimmer["speed"] * t)
            scene.swimmer(img, x, swimmer["depth"], t, swimmer["cap"])
        for dive in self.truth.dives:
            if s.diver and dive.appear <= t < dive.entry:
                self._diver(img, dive, t)
        if s.splash_visual:
            for dive in self.truth.dives:
                scene.splash(img, BOARDS[dive.board].entry_x, t - dive.entry, dive.particles)
        scene.finish_frame(img, index)
        if self.rotate:
            # stored turned counter-clockwise; the display matrix tells players to turn it back
            img = np.ascontiguousarray(np.rot90(img, k=self.rotate // 90))
        return img

    def _walker(self, img: np.ndarray, walker: dict, t: float) -> None:
        if not walker["start"] <= t <= walker["end"]:
            return
        frac = (t - walker["start"]) / (walker["end"] - walker["start"])
        x = -0.1 + 1.2 * frac if walker["rightward"] else 1.1 - 1.2 * frac
        travelled = 1.2 * frac * self.scene.w / (WALKER_HEIGHT * self.scene.h)
        phase = (travelled / WALK_STRIDE) % 1.0
        self.scene.person(img, x, DECK_FEET, WALKER_HEIGHT, "walk", phase, color=walker["color"])

    def _diver(self, img: np.ndarray, dive, t: float) -> None:
        board = BOARDS[dive.board]
        w, h = self.scene.w, self.scene.h
        x_start = board.back + 0.03 * board.direction
        x_end = board.tip - 0.02 * board.direction
        if t < dive.walk_end:
            frac = (t - dive.appear) / max(1e-6, dive.walk_end - dive.appear)
            x = x_start + (x_end - x_start) * frac
            travelled = abs(x - x_start) * w / (DIVER_HEIGHT * h)
            phase = (travelled / WALK_STRIDE) % 1.0
            self.scene.person(img, x, board.top, DIVER_HEIGHT, "walk", phase)
        elif t < dive.takeoff:
            self.scene.person(img, x_end, board.top, DIVER_HEIGHT, "stand")
        else:
            s = (t - dive.takeoff) / (dive.entry - dive.takeoff)
            x0, y0 = x_end * w, (board.top - 0.35 * DIVER_HEIGHT) * h
            x1, y1 = board.entry_x * w, ENTRY_DEPTH * h
            x = x0 + (x1 - x0) * s
            y = y0 + (y1 - y0) * s - 4 * FLIGHT_RISE * h * s * (1 - s)
            angle = -board.direction * 360.0 * dive.somersaults * s
            pose_phase = 0.75 if dive.pike else 0.25
            draw_person(img, (x, y), DIVER_HEIGHT * h, "fly", pose_phase, angle)


def _bounce(x: float) -> float:
    """Swim back and forth between 0.05 and 0.95 of the width."""
    period = 1.8
    pos = (x - 0.05) % period
    return 0.05 + (pos if pos <= 0.9 else period - pos)


class AudioMixer:
    """Mixes crowd murmur and the planned sounds, block by block (bounded memory)."""

    def __init__(self, truth, rate: int, rng: np.random.Generator):
        self.rate = rate
        self.events = [(round(start * rate), samples) for start, samples in truth.audio_events]
        self.crowd = synthsound.Crowd(rng, rate, CROWD_DB) if truth.settings.crowd else None

    def block(self, a0: int, a1: int) -> np.ndarray:
        n = a1 - a0
        out = self.crowd.block(n) if self.crowd else np.zeros(n, np.float32)
        for start, samples in self.events:
            if start >= a1:
                break
            lo, hi = max(a0, start), min(a1, start + len(samples))
            if lo < hi:
                out[lo - a0 : hi - a0] += samples[lo - start : hi - start]
        return np.clip(out, -1.0, 1.0)


def audio_bounds(index: int, fps: float, rate: int) -> tuple[int, int]:
    """Sample range that belongs with video frame ``index`` (keeps the two streams interleaved)."""
    return math.floor(index * rate / fps), math.floor((index + 1) * rate / fps)
