"""Audio splash detector: sudden broadband bursts, measured in absolute dBFS.

A splash is noise-like (flat spectrum) and strong above ~1 kHz; it rises within tens of
milliseconds and lasts a few tenths of a second. Voices, whistles and music are harmonic or
tonal (low spectral flatness), claps are too short. Levels are compared with a running noise
floor, never with the file's loudest moment: the loudest sound of a session is often a shout,
and a quiet splash far from it must still be found.

Streaming: `feed` turns each chunk into a few features per 10 ms frame and forgets the
samples, so an hour of audio costs about 10 MB of features.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from diveanalyzer.model import Candidate
from diveanalyzer.settings import AudioSettings

_TINY = 1e-12
_QUIET_DB = -120.0
_FEATURES = ("hf_db", "full_db", "flat_voice", "flat_hf")


@dataclass
class AudioResult:
    """What the audio detector found in one file."""

    candidates: list[Candidate]
    """Splash candidates (entry times), strongest first within each neighbourhood."""
    bursts: int
    """How many onsets were examined (splash or not)."""
    threshold_db: float
    """Median level (dBFS, high band) an onset had to reach: floor + `snr_on_db`."""
    floor_db: float
    """Median running noise floor (dBFS, high band)."""
    peak_db: float
    """Loudest high-band level of the file (dBFS), for information only."""
    silent: bool
    """True when the audio never rises above `silent_db` (or there was none)."""
    duration: float
    """Seconds of audio analysed."""
    rejected: list[Candidate] = field(default_factory=list)
    """Onsets that scored below `min_strength` (voices, whistles, claps), for debugging."""


class AudioSplashDetector:
    """Feed audio chunks in order, then call `finish` once."""

    def __init__(self, settings: AudioSettings | None = None):
        self.settings = settings or AudioSettings()
        s = self.settings
        self._window = np.hanning(s.n_fft).astype(np.float32)
        # Parseval: band power of a frame as the mean square of the (unwindowed) signal.
        self._scale = 2.0 / (s.n_fft * s.n_fft * float(np.mean(self._window**2)))
        freqs = np.fft.rfftfreq(s.n_fft, 1.0 / s.sample_rate)
        self._hf = (freqs >= s.hf_band[0]) & (freqs < s.hf_band[1])
        self._full = (freqs >= s.full_band[0]) & (freqs < s.full_band[1])
        self._voice = (freqs >= s.voice_band[0]) & (freqs < s.voice_band[1])
        self._pending = np.zeros(0, dtype=np.float32)
        self._start: float | None = None
        self._samples = 0
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in _FEATURES}

    def feed(self, start: float, samples: np.ndarray) -> None:
        """Add the next contiguous chunk (mono float samples starting at `start` seconds)."""
        if self._start is None:
            self._start = float(start)
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples += samples.size
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n_fft, hop = self.settings.n_fft, self.settings.hop
        count = 0 if buf.size < n_fft else 1 + (buf.size - n_fft) // hop
        if count:
            frames = np.lib.stride_tricks.sliding_window_view(buf, n_fft)[::hop][:count]
            self._add_features(frames)
        self._pending = buf[count * hop :].copy()

    def _add_features(self, frames: np.ndarray) -> None:
        power = np.abs(np.fft.rfft(frames * self._window, axis=1)) ** 2
        power = power.astype(np.float32) * self._scale
        hf = power[:, self._hf]
        voice = power[:, self._voice]
        feats = {
            "hf_db": _db(hf.sum(axis=1)),
            "full_db": _db(power[:, self._full].sum(axis=1)),
            "flat_voice": _flatness(voice),
            "flat_hf": _flatness(hf),
        }
        for name, values in feats.items():
            self._parts[name].append(values.astype(np.float32))

    def features(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Frame centre times and per-frame feature arrays gathered so far."""
        s = self.settings
        feats = {
            name: np.concatenate(parts) if parts else np.zeros(0, np.float32)
            for name, parts in self._parts.items()
        }
        n = feats["hf_db"].size
        times = (self._start or 0.0) + (np.arange(n) * s.hop + s.n_fft / 2) / s.sample_rate
        return times, feats

    def finish(self) -> AudioResult:
        """Find and score the bursts of everything fed."""
        s = self.settings
        times, feats = self.features()
        duration = self._samples / s.sample_rate
        hf = feats["hf_db"]
        if hf.size < 3 or float(hf.max()) < s.silent_db:
            peak = float(hf.max()) if hf.size else _QUIET_DB
            return AudioResult([], 0, s.silent_db, _QUIET_DB, peak, True, duration)
        smooth = ndimage.uniform_filter1d(hf, 3, mode="nearest")
        floor = self._running_floor(smooth)
        onsets = self._onsets(smooth, floor)
        scored = [self._score(i, times, smooth, floor, feats) for i in onsets]
        candidates = _suppress(scored, s)
        rejected = [c for c in scored if c.strength < s.min_strength]
        return AudioResult(
            candidates=candidates,
            bursts=len(onsets),
            threshold_db=round(float(np.median(floor)) + s.snr_on_db, 1),
            floor_db=round(float(np.median(floor)), 1),
            peak_db=round(float(hf.max()), 1),
            silent=False,
            duration=duration,
            rejected=rejected,
        )

    def _running_floor(self, level: np.ndarray) -> np.ndarray:
        """A low percentile per block, then a running median of blocks, back at frame rate."""
        s = self.settings
        per_block = max(1, round(s.floor_block_s * s.sample_rate / s.hop))
        blocks = -(-level.size // per_block)
        padded = np.full(blocks * per_block, np.nan, dtype=np.float32)
        padded[: level.size] = level
        block_floor = np.nanpercentile(padded.reshape(blocks, per_block), s.floor_percentile, 1)
        half = max(1, round(s.floor_window_s / s.floor_block_s)) // 2
        # A plain median per block (no edge padding: it would let the edges dominate short
        # files); a few thousand blocks an hour, so the loop is cheap.
        block_floor = np.array(
            [np.median(block_floor[max(0, b - half) : b + half + 1]) for b in range(blocks)]
        )
        centres = (np.arange(blocks) + 0.5) * per_block
        return np.interp(np.arange(level.size), centres, block_floor).astype(np.float32)

    def _onsets(self, level: np.ndarray, floor: np.ndarray) -> list[int]:
        """First frames of sharp rises that get loud enough (absolute and above the floor)."""
        s = self.settings
        span = max(1, round(s.rise_window_s * s.sample_rate / s.hop))
        # What came before the file counts as silence, so a burst at 0 s is an onset.
        quiet = np.full(span, _QUIET_DB, np.float32)
        before = _windows(np.concatenate([quiet, level]), span)[: level.size].min(axis=1)
        ahead = _windows(np.concatenate([level, quiet]), span)[: level.size].max(axis=1)
        loud = (ahead >= floor + s.snr_on_db) & (ahead >= s.min_level_db)
        hits = (level - before >= s.rise_db) & loud
        starts = np.flatnonzero(hits & ~np.concatenate([[False], hits[:-1]]))
        return [self._rise_start(int(i), level, before) for i in starts]

    def _rise_start(self, i: int, level: np.ndarray, before: np.ndarray) -> int:
        """Step back to where the rise left the level it rose from (the true onset)."""
        base = float(before[i]) + 3.0
        while i > 0 and level[i - 1] > base:
            i -= 1
        return i

    def _score(self, i, times, level, floor, feats) -> Candidate:
        s = self.settings
        frame_s = s.hop / s.sample_rate
        end = self._burst_end(i, level, floor)
        look = slice(i, max(i + 1, min(end, i + round(s.analysis_s / frame_s))))
        snr = float(level[look].max() - floor[i])
        weights = 10.0 ** (feats["hf_db"][look] / 10.0)
        hf_energy = float(weights.sum())
        full_energy = float((10.0 ** (feats["full_db"][look] / 10.0)).sum())
        flat_voice = float(np.average(feats["flat_voice"][look], weights=weights + _TINY))
        flat_hf = float(np.average(feats["flat_hf"][look], weights=weights + _TINY))
        hf_ratio = hf_energy / (full_energy + _TINY)
        duration = (end - i) * frame_s
        parts = {
            "snr": _ramp(snr, s.snr_on_db - 2.0, s.snr_full_db),
            "flat": _ramp(flat_voice, s.flatness_low, s.flatness_high),
            "hf": _ramp(hf_ratio, s.hf_ratio_low, s.hf_ratio_high),
            "dur": _ramp(duration, s.min_duration_s, s.full_duration_s),
        }
        # A fuzzy AND: a burst is only as splash-like as its least splash-like trait.
        shape = min(parts["flat"], parts["hf"], parts["dur"])
        strength = shape * (0.4 + 0.6 * parts["snr"])
        details = {
            "level_db": round(float(feats["full_db"][look].max()), 1),
            "hf_db": round(float(level[look].max()), 1),
            "floor_db": round(float(floor[i]), 1),
            "snr_db": round(snr, 1),
            "flatness": round(flat_voice, 3),
            "hf_flatness": round(flat_hf, 3),
            "hf_ratio": round(hf_ratio, 3),
            "duration_s": round(duration, 3),
        }
        when = float(times[i]) + s.entry_offset_s
        return Candidate(round(when, 3), round(float(strength), 3), "audio", details)

    def _burst_end(self, i: int, level: np.ndarray, floor: np.ndarray) -> int:
        """Frame after the burst: the level stays `decay_db` under the burst's peak (or near
        the floor) for 0.1 s, or the cap. A clap decays within tens of milliseconds."""
        s = self.settings
        frame_s = s.hop / s.sample_rate
        stop = min(level.size, i + max(1, round(s.max_burst_s / frame_s)))
        peak = float(level[i : min(stop, i + round(0.1 / frame_s) + 1)].max())
        limit = np.maximum(floor[i + 1 : stop] + s.snr_off_db, peak - s.decay_db)
        below = level[i + 1 : stop] < limit
        hold = 10
        if below.size < hold:
            return stop
        gaps = np.flatnonzero(_windows(below, hold).all(axis=1))
        return i + 1 + int(gaps[0]) if gaps.size else stop


def detect_splashes(chunks: Iterable, settings: AudioSettings | None = None) -> AudioResult:
    """Run the detector over `media.audio_chunks(...)` (objects with `start` and `samples`)."""
    detector = AudioSplashDetector(settings)
    for chunk in chunks:
        detector.feed(chunk.start, chunk.samples)
    return detector.finish()


def _suppress(scored: list[Candidate], s: AudioSettings) -> list[Candidate]:
    """One candidate per splash: later onsets within `min_separation_s` are its sub-bursts or
    the water falling back, folded into it, unless much more splash-like; so are much quieter
    ones within `tail_s`. Non-splash onsets (shouts, whistles) take no part, so they never
    hide a quieter splash beside them."""
    kept: list[Candidate] = []
    for cand in sorted(scored, key=lambda c: c.time):
        if cand.strength < s.min_strength:
            continue
        if kept and _is_tail(cand, kept[-1], s):
            continue
        if kept and cand.time - kept[-1].time < s.min_separation_s:
            kept[-1] = _fold(kept[-1], cand)
            continue
        kept.append(cand)
    return kept


def _fold(first: Candidate, later: Candidate) -> Candidate:
    """A splash and a later sub-burst of it as one candidate: the first impact's time (unless
    the later one is far more splash-like), the best strength, the loudest level."""
    lead = later if later.strength > 3.0 * first.strength else first
    details = {**lead.details, "hf_db": max(first.details["hf_db"], later.details["hf_db"])}
    return replace(lead, strength=max(first.strength, later.strength), details=details)


def _is_tail(cand: Candidate, splash: Candidate, s: AudioSettings) -> bool:
    quieter = splash.details["hf_db"] - cand.details["hf_db"] >= s.tail_drop_db
    return quieter and cand.time - splash.time < s.tail_s


def _windows(values: np.ndarray, width: int) -> np.ndarray:
    """Row t is values[t : t + width] (a view, no copy)."""
    return np.lib.stride_tricks.sliding_window_view(values, width)


def _db(power: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(power + _TINY)


def _flatness(power: np.ndarray) -> np.ndarray:
    """Geometric over arithmetic mean of the power spectrum: 1 for white noise, ~0 for tones."""
    geometric = np.exp(np.mean(np.log(power + _TINY), axis=1))
    return geometric / (np.mean(power, axis=1) + _TINY)


def _ramp(value: float, low: float, high: float) -> float:
    """0 at or below `low`, 1 at or above `high`, linear between."""
    if high <= low:
        return float(value >= high)
    return float(min(1.0, max(0.0, (value - low) / (high - low))))
