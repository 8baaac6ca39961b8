"""Finding the dives of one video: the one place that orders the detection steps.

probe → audio splash candidates (streamed) → zones → water motion around each candidate
(or over the whole video: no audio, silent audio or ``full_scan``) → the diver's takeoff
before each candidate → fusion. Each candidate's frames are decoded once: colour for the
person detector, turned gray here for motion.

`emit(type, payload)` receives the events of the live page (see issue 4) and
`progress(stage, fraction)` the overall fraction done; neither may raise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from diveanalyzer import media
from diveanalyzer.detectors.audio import AudioResult, AudioSplashDetector
from diveanalyzer.detectors.motion import MotionTrack, TrackBuilder, WaterMotion
from diveanalyzer.detectors.person import PersonDetector, Takeoff
from diveanalyzer.detectors.zones import estimate_zones
from diveanalyzer.fusion import Evidence, confidence, fuse, merge_candidates, signal_type
from diveanalyzer.model import Dive, VideoInfo, Zone
from diveanalyzer.settings import DetectSettings

Emit = Callable[[str, dict], None]
Progress = Callable[[str, float], None]

# Share of the overall progress each stage takes (they add up to 1).
_AUDIO_SHARE, _ZONES_SHARE, _SCAN_SHARE = 0.35, 0.05, 0.45
_ZONE_SAMPLES = 6  # frames spread over the video for zone estimation


@dataclass
class DetectionResult:
    """What `detect_dives` found in one video, and how."""

    video: VideoInfo
    """The probe of the video."""
    settings: DetectSettings
    """The settings used, with the zones actually used filled in."""
    zones_how: str
    """How the zones were chosen (given, estimated, or whole-frame fallback)."""
    mode: str
    """``audio`` (motion around audio candidates) or ``full scan`` (why, in brackets)."""
    dives: list[Dive]
    """Dives at or above the confidence threshold, numbered from 1."""
    audio: AudioResult | None = None
    """The audio detector's result; None without an audio stream."""
    evidence: list[Evidence] = field(default_factory=list)
    """Every merged candidate with its per-signal scores (rejected ones too)."""
    burst_count: int = 0
    """Candidates whose water motion agreed."""
    departure_count: int = 0
    """Takeoffs the person detector found."""
    signal_type: str = ""
    """The signals the dives rest on, e.g. ``audio + motion + person``."""

    def settings_dict(self) -> dict:
        data = self.settings.to_dict()
        data["zones_how"] = self.zones_how
        data["mode"] = self.mode
        return data

    def to_dict(self) -> dict:
        return {
            "video": self.video.to_dict(),
            "settings": self.settings_dict(),
            "dives": [d.to_dict() for d in self.dives],
        }


def detect_dives(
    path,
    settings: DetectSettings | None = None,
    emit: Emit | None = None,
    progress: Progress | None = None,
) -> DetectionResult:
    """Find the dives in the video at `path` (see the module docstring for the steps)."""
    return _Detection(path, settings or DetectSettings(), emit, progress).run()


class _Detection:
    """One run's state; each step is a small method."""

    def __init__(self, path, settings: DetectSettings, emit, progress):
        self.path = path
        self.settings = settings
        self.water: float | None = None
        self.emit = emit or (lambda _type, _payload: None)
        self.progress = progress or (lambda _stage, _fraction: None)

    def run(self) -> DetectionResult:
        info = media.probe(self.path)
        self.progress("probe", 0.0)
        audio = self._audio(info)
        water, board, how = self._zones(info)
        settings = replace(self.settings, water_zone=water, board_zone=board)
        self.motion = WaterMotion(water, settings.motion)
        why = self._full_scan_reason(info, audio)
        candidates = list(audio.candidates) if audio else []
        track = None
        if why:
            track = self._scan(info)
            if self.water is None or self.water >= settings.motion.min_water_fraction:
                candidates += self.motion.scan(track)
            else:
                why += f"; no pool water seen ({self.water:.0%} of the water zone)"
        evidence = merge_candidates(candidates, settings.fusion.merge_s)
        audio_usable = audio is not None and not audio.silent
        self._measure(evidence, track, board, audio_usable)
        dives = fuse(evidence, info.duration, settings.confidence, settings.fusion)
        result = DetectionResult(
            video=info,
            settings=settings,
            zones_how=how,
            mode=f"full scan ({why})" if why else "audio",
            dives=dives,
            audio=audio,
            evidence=evidence,
            burst_count=sum(
                1 for e in evidence if (e.motion or 0) >= settings.fusion.signal_threshold
            ),
            departure_count=sum(1 for e in evidence if e.takeoff is not None),
        )
        result.signal_type = signal_type(dives) if dives else self._signals_run(audio_usable)
        self._report(result)
        return result

    # -- steps ------------------------------------------------------------------------

    def _audio(self, info: VideoInfo) -> AudioResult | None:
        s = self.settings.audio
        if not info.has_audio:
            self.emit("splash_detection_complete", {"peak_count": 0, "threshold_db": None})
            return None
        detector = AudioSplashDetector(s)
        total = max(info.duration, 1e-6)
        for chunk in media.audio_chunks(self.path, s.sample_rate, s.chunk_seconds):
            detector.feed(chunk.start, chunk.samples)
            done = min(1.0, (chunk.start + len(chunk.samples) / s.sample_rate) / total)
            self.progress("audio", _AUDIO_SHARE * done)
        result = detector.finish()
        self.emit(
            "splash_detection_complete",
            {
                "peak_count": len(result.candidates),
                "threshold_db": result.threshold_db,
                "floor_db": result.floor_db,
                "bursts": result.bursts,
                "silent": result.silent,
            },
        )
        return result

    def _zones(self, info: VideoInfo) -> tuple[Zone, Zone, str]:
        self.progress("zones", _AUDIO_SHARE)
        water, board = self.settings.water_zone, self.settings.board_zone
        self.water = None  # how much of the water zone looks like water (unknown if given)
        if water is not None and board is not None:
            return water, board, "given"
        step = info.duration / _ZONE_SAMPLES
        windows = [((k + 0.5) * step, (k + 0.5) * step + 0.2) for k in range(_ZONE_SAMPLES)]
        sample = list(media.frames(self.path, windows=windows, fps=5.0, color=True))
        est_water, est_board, how = estimate_zones(sample)
        if water is None and sample:
            judge = WaterMotion(est_water, self.settings.motion)
            self.water = float(np.median([judge.water_fraction(f.image) for f in sample]))
        self.progress("zones", _AUDIO_SHARE + _ZONES_SHARE)
        if water is None and board is None:
            return est_water, est_board, how
        given = "water" if water is not None else "board"
        return water or est_water, board or est_board, f"{given} zone given; other {how}"

    def _full_scan_reason(self, info: VideoInfo, audio: AudioResult | None) -> str:
        if self.settings.full_scan:
            return "asked"
        if audio is None:
            return "no audio stream"
        if audio.silent:
            return "silent audio"
        return ""

    def _scan(self, info: VideoInfo) -> MotionTrack:
        """Water motion over the whole video, gray at a small proxy and a low rate."""
        s = self.settings.motion
        self.motion = WaterMotion(
            self.motion.zone, s, height=s.scan_height, spray_above=s.scan_spray_above
        )
        builder = TrackBuilder(self.motion, max_gap=3.0 / s.scan_fps)
        start = _AUDIO_SHARE + _ZONES_SHARE
        total = max(info.duration, 1e-6)
        frames = media.frames(self.path, fps=s.scan_fps, max_height=s.scan_height)
        for n, frame in enumerate(frames):
            builder.add(frame)
            if n % 10 == 0:
                self.progress("motion", start + _SCAN_SHARE * min(1.0, frame.time / total))
        return builder.track()

    def _measure(self, evidence: list[Evidence], track, board: Zone, audio_usable: bool):
        """Motion score and takeoff for every candidate, decoding each window once."""
        s = self.settings
        person = PersonDetector(s.person) if s.use_person else None
        if track is not None:  # full scan: the motion is known already
            for item in evidence:
                self._score_motion(item, track, audio_usable)
            evidence = [e for e in evidence if self._worth_person(e)]
            if person is None or not evidence:
                return
        windows = [self._window(e.entry, person, track is None) for e in evidence]
        fps = max(s.motion.fps, s.person.decode_fps) if person else s.motion.fps
        height = 480 if person else s.motion.proxy_height
        frames = media.frames(self.path, windows=windows, fps=fps, max_height=height, color=False)
        start = _AUDIO_SHARE + _ZONES_SHARE + (_SCAN_SHARE if track is not None else 0.0)
        pending = list(range(len(evidence)))
        held: list = []
        local = TrackBuilder(self.motion)
        for frame in _with_end(frames if evidence else ()):
            if frame is not None:
                held.append(frame)
                if track is None:
                    local.add(frame)
            while pending and (frame is None or frame.time > windows[pending[0]][1]):
                item = evidence[pending.pop(0)]
                if track is None:
                    self._score_motion(item, local.track(), audio_usable)
                if person is not None and self._worth_person(item):
                    self._score_person(item, person, held, board)
                done = (len(evidence) - len(pending)) / len(evidence)
                self.progress("candidates", start + (1 - start) * done)
                keep_from = windows[pending[0]][0] if pending else float("inf")
                held = [f for f in held if f.time >= keep_from]

    def _window(self, entry: float, person: PersonDetector | None, need_motion: bool):
        m = self.settings.motion
        t0, t1 = entry, entry
        if need_motion:
            t0, t1 = entry - m.before_s, entry + m.after_s
        if person is not None:
            p0, p1 = person.window(entry)
            t0, t1 = min(t0, p0), max(t1, p1)
        return max(0.0, t0), t1

    def _score_motion(self, item: Evidence, track: MotionTrack, audio_usable: bool) -> None:
        motion = self.motion.score(track, item.entry)
        item.motion = motion.score
        item.details["motion"] = {**item.details.get("motion", {}), **motion.to_dict()}
        if audio_usable and item.audio is None:
            item.audio = 0.0  # the audio was heard and had no splash here

    def _worth_person(self, item: Evidence) -> bool:
        """Whether even a certain takeoff could lift this candidate to the threshold."""
        if not self.settings.use_person:
            return False
        best = replace(item, person=1.0)
        if confidence(best, self.settings.fusion) >= self.settings.confidence:
            return True
        item.person = 0.0  # not looked for: it could not change the outcome
        return False

    def _score_person(self, item: Evidence, person: PersonDetector, held, board: Zone) -> None:
        takeoff: Takeoff | None = person.find_takeoff(held, board, item.entry)
        item.person = takeoff.confidence if takeoff else 0.0
        item.takeoff = takeoff.time if takeoff else None
        if takeoff:
            item.details["person"] = {"confidence": takeoff.confidence, **takeoff.details}

    # -- reporting ----------------------------------------------------------------------

    def _signals_run(self, audio_usable: bool) -> str:
        names = (["audio"] if audio_usable else []) + ["motion"]
        return " + ".join(names + (["person"] if self.settings.use_person else []))

    def _report(self, result: DetectionResult) -> None:
        s = result.settings
        self.emit(
            "motion_detection_complete",
            {
                "burst_count": result.burst_count,
                "proxy_height": self.motion.height,
                "mode": result.mode,
            },
        )
        self.emit(
            "person_detection_complete",
            {
                "departure_count": result.departure_count,
                "confidence_threshold": s.person.min_score,
                "enabled": s.use_person,
            },
        )
        for dive in result.dives:
            self.emit("dive_detected", dive.to_dict())
        self.emit(
            "dives_detected",
            {
                "dive_count": len(result.dives),
                "signal_type": result.signal_type,
                "confidence_threshold": s.confidence,
            },
        )
        self.progress("done", 1.0)


def _with_end(frames: Iterable):
    """The frames, then one None meaning "no more frames"."""
    yield from frames
    yield None


def format_table(result: DetectionResult) -> str:
    """A readable summary of a result for the terminal."""
    info = result.video
    lines = [
        f"{info.path}",
        f"  {info.duration:.1f} s, {info.width}x{info.height}, {info.fps:.3g} fps, "
        f"{'audio' if info.has_audio else 'no audio'}; mode: {result.mode}",
        f"  water zone {result.settings.water_zone}, board zone {result.settings.board_zone}"
        f" ({result.zones_how})",
        "",
    ]
    if not result.dives:
        lines.append(f"No dives found (confidence >= {result.settings.confidence:g}).")
        return "\n".join(lines)
    lines.append(f"{'#':>3}  {'entry':>8}  {'takeoff':>8}  {'clip':>17}  {'conf':>5}  signals")
    for d in result.dives:
        takeoff = "-" if d.takeoff is None else f"{d.takeoff:.2f}"
        clip = f"{d.start:.2f}-{d.end:.2f}"
        lines.append(
            f"{d.id:>3}  {d.entry:>8.2f}  {takeoff:>8}  {clip:>17}  {d.confidence:>5.2f}  "
            f"{', '.join(d.signals) or '-'}"
        )
    lines.append("")
    lines.append(f"{len(result.dives)} dive(s) found ({result.signal_type}).")
    return "\n".join(lines)
