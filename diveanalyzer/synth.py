"""Deterministic synthetic diving sessions (video + ground truth) for tests, demo and benchmarks.

`render_session(out_path, settings)` writes ``OUT.mp4`` (H.264 yuv420p with a keyframe every
second like a phone, plus AAC mono audio) and ``OUT.json`` with the ground truth. The same
settings and seed always give the same ground truth and the same pictures and sounds.

A dive: the diver appears at the back of a board, walks to the tip, stands, takes off (the
feet leave the board: ground-truth ``takeoff``), flies 1-1.5 s somersaulting and enters the
water (ground-truth ``entry``) with a white splash and a splash sound. Distractors: swimmers,
people walking on the deck, shouts and whistles louder than any splash, claps, crowd murmur.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from diveanalyzer import synthsound
from diveanalyzer.errors import OutputError, UsageError
from diveanalyzer.media_write import Mp4Writer
from diveanalyzer.synthrender import AudioMixer, FramePainter, audio_bounds
from diveanalyzer.synthscene import BOARDS, WATER_ZONE, splash_particles

AUDIO_RATE = 48000
_WALK_SPEED = 0.12  # board lengths are ~0.3 of the frame: a 2-3 s walk
_STRIDE = 0.5  # one walk cycle per this many diver heights
_SOUND_CLEARANCE = 1.5  # distractor sounds keep this far (s) from every entry


@dataclass
class SynthSettings:
    """Everything that decides a synthetic session. Same settings → same files."""

    duration: float = 60.0
    """Length of the video, seconds."""
    dives: int = 4
    """Number of dives (ignored when ``entries`` is given)."""
    min_gap: float = 8.0
    """Smallest time between two entries, seconds."""
    width: int = 854
    """Upright frame width in pixels (even)."""
    height: int = 480
    """Upright frame height in pixels (even)."""
    fps: float = 30.0
    """Frame rate."""
    audio: bool = True
    """Write an AAC audio track; False makes a video without any audio stream."""
    seed: int = 0
    """Random seed: timings, levels, distractors."""
    boards: int = 1
    """1 or 2 boards; with 2, dives alternate boards so they can be seconds apart."""
    rotate: int = 0
    """Store frames turned and set the display matrix so players turn them back by this many
    degrees clockwise (0, 90, 180, 270), like a phone held upright."""
    entries: list[float] | None = None
    """Explicit entry times, seconds (dive i uses board i % boards); overrides dives/min_gap."""
    shout_times: list[float] | None = None
    """Explicit shout times instead of random ones (shouts are still subject to ``shouts``)."""
    diver: bool = True
    """Draw the diver (False: dives are only heard/seen as splashes)."""
    splash_visual: bool = True
    """Draw the splash in the water."""
    splash_sound: bool = True
    """Add the splash sound."""
    swimmers: bool = True
    walkers: bool = True
    shouts: bool = True
    whistles: bool = True
    claps: bool = True
    crowd: bool = True
    preset: str = "ultrafast"
    """libx264 speed preset (the stream keeps CABAC and deblocking regardless)."""
    crf: int = 23
    """libx264 quality (lower is better and bigger)."""

    def validate(self) -> None:
        if not 1.0 <= self.duration <= 4 * 3600:
            raise UsageError(f"duration must be between 1 s and 4 h, got {self.duration}")
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 2:
            raise UsageError(
                f"size must be even and at least 64x64, got {self.width}x{self.height}"
            )
        if self.width * self.height > 3840 * 2160:
            raise UsageError("size must be at most 3840x2160")
        if not 1.0 <= self.fps <= 120.0:
            raise UsageError(f"fps must be between 1 and 120, got {self.fps}")
        if self.boards not in (1, 2):
            raise UsageError(f"boards must be 1 or 2, got {self.boards}")
        if self.rotate not in (0, 90, 180, 270):
            raise UsageError(f"rotate must be 0, 90, 180 or 270, got {self.rotate}")
        if self.dives < 0 or self.min_gap < 0 or self.seed < 0:
            raise UsageError("dives, min-gap and seed must not be negative")


@dataclass
class DivePlan:
    """When and how one dive happens (times in seconds)."""

    board: int
    appear: float
    walk_end: float
    takeoff: float
    entry: float
    somersaults: float
    pike: bool
    splash_db: float
    particles: np.ndarray = field(repr=False)


@dataclass
class GroundTruth:
    """What the generated video contains; `to_dict` is the JSON written beside it."""

    dives: list[DivePlan]
    sounds: list[dict]
    walkers: list[dict]
    swimmers: list[dict]
    settings: SynthSettings
    audio_events: list[tuple[float, np.ndarray]] = field(default_factory=list, repr=False)
    """Every sound to mix in: (start time, float32 samples at AUDIO_RATE)."""

    def to_dict(self) -> dict:
        s = self.settings
        boards = [BOARDS[i].zone() for i in range(s.boards)]
        return {
            "dives": [
                {
                    "takeoff": round(d.takeoff, 3),
                    "entry": round(d.entry, 3),
                    "board": d.board,
                    "on_board": [round(d.appear, 3), round(d.takeoff, 3)],
                    "splash_db": round(d.splash_db, 1),
                }
                for d in self.dives
            ],
            "duration": s.duration,
            "fps": s.fps,
            "size": [s.width, s.height],
            "rotation": s.rotate,
            "has_audio": s.audio,
            "water_zone": WATER_ZONE,
            "board_zone": _union(boards),
            "board_zones": boards,
            "distractors": {
                "sounds": self.sounds,
                "walkers": self.walkers,
                "swimmers": self.swimmers,
            },
            "settings": asdict(s),
        }


def _union(zones: list[list[float]]) -> list[float]:
    x0 = min(z[0] for z in zones)
    y0 = min(z[1] for z in zones)
    x1 = max(z[0] + z[2] for z in zones)
    y1 = max(z[1] + z[3] for z in zones)
    return [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)]


def frame_count(settings: SynthSettings) -> int:
    return max(1, round(settings.duration * settings.fps))


# -- planning -------------------------------------------------------------------------------


def plan_session(settings: SynthSettings) -> GroundTruth:
    """Decide every event of the session from the seed (no pixels or samples yet)."""
    settings.validate()
    # one random stream per aspect, so switching one part off leaves the others unchanged
    dive_rng, sound_rng, splash_rng, walker_rng, swimmer_rng = (
        np.random.default_rng([settings.seed, k]) for k in range(5)
    )
    entries = _entry_times(settings, dive_rng)
    dives = [_plan_dive(settings, dive_rng, i, entry) for i, entry in enumerate(entries)]
    _check_boards(dives)
    sounds, events = _plan_sounds(settings, sound_rng, [d.entry for d in dives])
    if settings.splash_sound:
        events += [(d.entry, synthsound.splash(splash_rng, AUDIO_RATE, d.splash_db)) for d in dives]
    walkers = _plan_walkers(settings, walker_rng)
    swimmers = _plan_swimmers(settings, swimmer_rng)
    events.sort(key=lambda e: e[0])
    return GroundTruth(dives, sounds, walkers, swimmers, settings, events)


def _entry_times(settings: SynthSettings, rng) -> list[float]:
    if settings.entries is not None:
        entries = sorted(float(e) for e in settings.entries)
        for e in entries:
            if not 5.5 <= e <= settings.duration - 1.5:
                raise UsageError(
                    f"entry {e} s must be at least 5.5 s from the start and 1.5 s from the end"
                )
        return entries
    lo, hi = 6.0, settings.duration - 2.5
    n = settings.dives
    slack = (hi - lo) - (n - 1) * settings.min_gap
    if n and slack < 0:
        raise UsageError(
            f"cannot fit {n} dives {settings.min_gap} s apart in {settings.duration} s "
            f"(dives need 6 s before and 2.5 s after them)"
        )
    offsets = np.sort(rng.uniform(0, max(slack, 0), n))
    return [float(lo + off + i * settings.min_gap) for i, off in enumerate(offsets)]


def _plan_dive(settings: SynthSettings, rng, index: int, entry: float) -> DivePlan:
    board = index % settings.boards
    flight = rng.uniform(1.0, 1.5)
    takeoff = entry - flight
    stand = rng.uniform(0.6, 1.3)
    b = BOARDS[board]
    walk = abs(b.tip - b.back - 0.05 * b.direction) / _WALK_SPEED * settings.height / settings.width
    walk = min(max(walk, 1.2), 2.5)
    appear = max(0.0, takeoff - stand - walk)
    particles = splash_particles(rng, 60 + int(rng.integers(0, 60)))
    return DivePlan(
        board=board,
        appear=appear,
        walk_end=takeoff - stand,
        takeoff=takeoff,
        entry=entry,
        somersaults=float(rng.choice([1.0, 1.5, 2.0])),
        pike=bool(rng.integers(0, 2)),
        splash_db=float(rng.uniform(-26.0, -14.0)),
        particles=particles,
    )


def _check_boards(dives: list[DivePlan]) -> None:
    last: dict[int, DivePlan] = {}
    for d in dives:
        prev = last.get(d.board)
        if prev is not None and d.appear < prev.entry + 0.3:
            raise UsageError(
                f"dives at {prev.entry:.1f} s and {d.entry:.1f} s overlap on board {d.board + 1}: "
                "leave about 6.5 s between dives on one board, or use 2 boards"
            )
        last[d.board] = d


def _plan_sounds(settings: SynthSettings, rng, entries: list[float]) -> tuple[list, list]:
    d = settings.duration
    wanted = []
    if settings.shouts:
        if settings.shout_times is not None:
            wanted += [("shout", float(t)) for t in settings.shout_times]
        else:
            wanted += [("shout", None)] * max(1, round(d / 20))
    if settings.whistles:
        wanted += [("whistle", None)] * max(1, round(d / 30))
    if settings.claps:
        wanted += [("claps", None)] * max(1, round(d / 40))
    levels = {"shout": (-9.0, -4.0), "whistle": (-9.0, -5.0), "claps": (-16.0, -10.0)}
    busy = [(e - _SOUND_CLEARANCE, e + _SOUND_CLEARANCE) for e in entries]
    sounds, events = [], []
    for kind, at in wanted:
        samples = synthsound.GENERATORS[kind](rng, AUDIO_RATE, rng.uniform(*levels[kind]))
        length = len(samples) / AUDIO_RATE
        start = at if at is not None else _free_time(rng, d, length, busy)
        if start is None or start + length > d:
            continue
        busy.append((start - 0.3, start + length + 0.3))
        peak = 20 * math.log10(float(np.max(np.abs(samples))))
        sounds.append(
            {
                "kind": kind,
                "start": round(start, 3),
                "end": round(start + length, 3),
                "peak_dbfs": round(peak, 1),
            }
        )
        events.append((start, samples))
    return sorted(sounds, key=lambda s: s["start"]), events


def _free_time(rng, duration: float, length: float, busy) -> float | None:
    for _ in range(200):
        start = float(rng.uniform(0.5, max(0.6, duration - length - 0.5)))
        if all(start + length < a or start > b for a, b in busy):
            return start
    return None


def _plan_walkers(settings: SynthSettings, rng) -> list[dict]:
    if not settings.walkers:
        return []
    walkers = []
    for _ in range(max(1, round(settings.duration / 15))):
        speed = rng.uniform(0.07, 0.11) * settings.height / settings.width
        cross = 1.2 / speed
        start = float(rng.uniform(-cross / 2, settings.duration - 2))
        rightward = bool(rng.integers(0, 2))
        skin = tuple(int(c) for c in rng.integers(90, 220, 3))
        walkers.append(
            {
                "start": round(start, 3),
                "end": round(start + cross, 3),
                "rightward": rightward,
                "color": skin,
            }
        )
    return walkers


def _plan_swimmers(settings: SynthSettings, rng) -> list[dict]:
    if not settings.swimmers:
        return []
    return [
        {
            "x0": float(rng.uniform(0.1, 0.9)),
            "speed": float(rng.uniform(0.02, 0.05)),
            "depth": float(rng.uniform(0.08, 0.3)),
            "cap": tuple(int(c) for c in rng.integers(0, 255, 3)),
        }
        for _ in range(2)
    ]


# -- rendering ------------------------------------------------------------------------------


def render_session(
    out_path,
    settings: SynthSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GroundTruth:
    """Render the session to ``out_path`` (.mp4) and its ground truth beside it (.json).

    Both files are written under temporary names and renamed when complete, so a reader never
    sees half a file. ``progress(frames_done, frames_total)`` is called now and then.
    """
    settings = settings or SynthSettings()
    truth = plan_session(settings)
    out = Path(out_path)
    if not out.parent.is_dir():
        raise OutputError(f"{out}: the folder {out.parent} does not exist")
    tmp_video = out.with_name(f".{out.stem}.{os.getpid()}.tmp.mp4")
    tmp_json = out.with_name(f".{out.stem}.{os.getpid()}.tmp.json")
    try:
        _write_video(str(tmp_video), truth, progress)
        tmp_json.write_text(json.dumps(truth.to_dict(), indent=2) + "\n")
        os.replace(tmp_video, out)
        os.replace(tmp_json, out.with_suffix(".json"))
    except OSError as exc:
        raise OutputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    finally:
        for tmp in (tmp_video, tmp_json):
            tmp.unlink(missing_ok=True)
    return truth


def _write_video(path: str, truth: GroundTruth, progress) -> None:
    s = truth.settings
    painter = FramePainter(truth, np.random.default_rng([s.seed, 5]))
    mixer = AudioMixer(truth, AUDIO_RATE, np.random.default_rng([s.seed, 6])) if s.audio else None
    total = frame_count(s)
    writer = Mp4Writer(path, s, AUDIO_RATE)
    try:
        for index in range(total):
            writer.write_frame(painter.frame(index), index)
            if mixer is not None:
                a0, a1 = audio_bounds(index, s.fps, AUDIO_RATE)
                writer.write_audio(mixer.block(a0, a1), a0)
            if progress is not None and (index % 30 == 29 or index == total - 1):
                progress(index + 1, total)
    except BaseException:
        writer.abort()
        raise
    writer.close()
