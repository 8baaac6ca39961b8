"""Every tunable default of dive detection, in one place, one documented field each.

The person detector's settings live beside it (`diveanalyzer.detectors.person.PersonSettings`)
and are re-exported here so callers need one import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from diveanalyzer.detectors.person import PersonSettings
from diveanalyzer.model import Zone

__all__ = [
    "AudioSettings",
    "DetectSettings",
    "FusionSettings",
    "MotionSettings",
    "PersonSettings",
]


@dataclass(frozen=True)
class AudioSettings:
    """The audio splash detector (`diveanalyzer.detectors.audio`)."""

    sample_rate: int = 16000
    """Audio is decoded to mono float at this rate (Hz); 16 kHz keeps the band up to 8 kHz."""
    chunk_seconds: float = 5.0
    """Length of each streamed audio chunk; only per-frame features outlive a chunk."""
    n_fft: int = 512
    """STFT window length in samples (32 ms at 16 kHz)."""
    hop: int = 160
    """STFT hop in samples (10 ms at 16 kHz): the time resolution of every feature."""
    hf_band: tuple[float, float] = (2000.0, 7500.0)
    """The band (Hz) where a splash is strong and voices and crowd murmur are weak; onsets and
    levels are measured here."""
    full_band: tuple[float, float] = (60.0, 7500.0)
    """The band (Hz) of the broadband level and of the high-frequency ratio's denominator."""
    voice_band: tuple[float, float] = (100.0, 4000.0)
    """The band (Hz) whose spectral flatness tells harmonic sounds (voices, music) from noise."""
    floor_block_s: float = 1.0
    """The running noise floor is a low percentile of each block of this many seconds ..."""
    floor_percentile: float = 20.0
    """... taking this percentile of the block's high-band levels (dB) ..."""
    floor_window_s: float = 31.0
    """... then the median of those block values over this many seconds around each moment."""
    min_level_db: float = -65.0
    """Absolute dBFS (high band) a burst must reach to count at all, however quiet the floor."""
    silent_db: float = -60.0
    """If the high-band level never reaches this dBFS, the audio is treated as silent."""
    rise_db: float = 5.0
    """An onset is a rise of at least this many dB in the high band ..."""
    rise_window_s: float = 0.1
    """... within this many seconds."""
    snr_on_db: float = 6.0
    """A burst must reach this many dB above the running floor to be a candidate."""
    snr_off_db: float = 3.0
    """A burst lasts while its level stays this many dB above the floor ..."""
    decay_db: float = 10.0
    """... and no more than this many dB below its peak."""
    snr_full_db: float = 20.0
    """A burst this far above the floor gets the full loudness score."""
    analysis_s: float = 0.5
    """Spectral shape (flatness, high-band ratio) is measured over this much of a burst's start."""
    max_burst_s: float = 2.0
    """A burst's measured duration is capped here (crowd noise and music go on and on)."""
    min_duration_s: float = 0.06
    """Bursts shorter than this (claps, knocks) score zero for duration."""
    full_duration_s: float = 0.25
    """Bursts at least this long get the full duration score."""
    flatness_low: float = 0.1
    """Voice-band spectral flatness at or below this is harmonic (voice, whistle, music): zero."""
    flatness_high: float = 0.25
    """Voice-band flatness at or above this is fully noise-like (splash): full score."""
    hf_ratio_low: float = 0.02
    """A burst with this fraction of its energy in the high band or less is dull (a thud):
    zero. Close-up splashes carry much low-frequency energy, so this is low."""
    hf_ratio_high: float = 0.08
    """At or above this fraction in the high band a burst is fully bright."""
    min_separation_s: float = 2.0
    """Splash-like onsets this close after another are its tail (sub-bursts, falling water)
    and fold into it; two dives 2.5 s apart stay two."""
    tail_s: float = 3.0
    """Within this many seconds after a splash ..."""
    tail_drop_db: float = 12.0
    """... an onset this many dB quieter is the water falling back, not a new dive."""
    min_strength: float = 0.15
    """Candidates weaker than this are dropped before motion analysis (saves decoding)."""
    entry_offset_s: float = 0.0
    """Added to a burst's onset time to give the entry time (calibration)."""


@dataclass(frozen=True)
class MotionSettings:
    """The water-zone motion detector (`diveanalyzer.detectors.motion`)."""

    proxy_height: int = 240
    """Frames are converted to gray and scaled to at most this height before differencing."""
    fps: float = 15.0
    """Frames per second sampled around audio candidates."""
    before_s: float = 1.2
    """Seconds before an audio candidate decoded for the motion baseline."""
    after_s: float = 1.2
    """Seconds after an audio candidate decoded to look for the splash."""
    guard_s: float = 0.3
    """The baseline ends this long before the entry (the diver's fall is not a baseline)."""
    burst_s: float = 1.0
    """The splash is looked for in this many seconds after the entry."""
    spray_above: float = 0.5
    """The splash region reaches this many water-zone heights above the water (spray)."""
    grid: tuple[int, int] = (3, 6)
    """Rows and columns of cells over the splash region; the best cell scores a candidate."""
    pixel_threshold: int = 18
    """Gray-level change (0-255) above which a pixel counts as changed."""
    ratio_full: float = 4.0
    """Burst/baseline change ratio that scores fully."""
    full_fraction: float = 0.1
    """Mean changed fraction of a cell after the entry that scores fully."""
    min_water_fraction: float = 0.25
    """A full scan reports motion-only candidates only if at least this fraction of the water
    zone looks like pool water (blue to cyan)."""
    scan_fps: float = 15.0
    """Frames per second sampled in a full scan (no audio, silent audio or --full-scan)."""
    scan_height: int = 240
    """Proxy height of a full scan (smaller: the whole video is decoded)."""
    scan_spray_above: float = 0.0
    """In a full scan the splash region reaches only this far above the water (people on
    the deck and the falling diver would look like bursts)."""
    scan_baseline_s: float = 3.0
    """In a full scan, the baseline is the median change over this many seconds before."""
    scan_burst_s: float = 0.6
    """In a full scan, a burst is the median change over this many seconds (a splash lasts,
    a passing arm or diver does not)."""
    scan_entry_offset_s: float = 0.1
    """Added to a full-scan burst's onset to give the entry time: the diver's body reaches
    the water zone a moment before the entry (calibrated on synthetic sessions)."""
    scan_min_strength: float = 0.3
    """Full-scan bursts weaker than this are not reported as candidates."""
    scan_min_separation_s: float = 2.0
    """Full-scan bursts closer than this are one burst."""


@dataclass(frozen=True)
class FusionSettings:
    """How signals combine into dives (`diveanalyzer.fusion`)."""

    audio_weight: float = 0.45
    """Weight of the audio splash strength in the confidence."""
    motion_weight: float = 0.3
    """Weight of the water-zone motion score."""
    person_weight: float = 0.25
    """Weight of the takeoff's confidence."""
    unseen_person_factor: float = 0.5
    """When a splash was heard but no diver seen, the person weight is multiplied by this
    (people detectors miss small or blurred figures); without audio it counts fully."""
    motion_veto: float = 0.15
    """With motion measured, a candidate whose motion score is below this is capped ..."""
    veto_cap: float = 0.3
    """... at this confidence (a loud sound with still water is not a dive)."""
    signal_threshold: float = 0.3
    """A signal scoring at least this is listed in the dive's `signals`."""
    merge_s: float = 1.2
    """Candidates closer than this are one dive (the strongest keeps its time)."""
    pre_takeoff_s: float = 1.0
    """A clip starts at least this long before the takeoff."""
    pre_entry_s: float = 3.0
    """Without a takeoff, a clip starts this long before the entry."""
    post_entry_s: float = 2.0
    """A clip ends at least this long after the entry."""


@dataclass(frozen=True)
class DetectSettings:
    """Everything `detect_dives` needs to know beside the video."""

    confidence: float = 0.5
    """Dives below this fused confidence are not reported."""
    water_zone: Zone | None = None
    """Where the water is (fractions of the frame); None: estimate it from the video."""
    board_zone: Zone | None = None
    """Where the board is (fractions of the frame); None: estimate it from the video."""
    use_person: bool = True
    """Look for the diver leaving the board (slower; gives `takeoff`)."""
    full_scan: bool = False
    """Scan the whole video for water motion even when there is usable audio."""
    audio: AudioSettings = field(default_factory=AudioSettings)
    """Audio splash detector settings."""
    motion: MotionSettings = field(default_factory=MotionSettings)
    """Water-zone motion settings."""
    person: PersonSettings = field(default_factory=lambda: PersonSettings(lookback_s=3.0))
    """Person (takeoff) detector settings. The look-back is 3 s (flight of 1-2 s plus a
    moment standing): every decoded second costs, and decoding is most of the time."""
    fusion: FusionSettings = field(default_factory=FusionSettings)
    """Fusion settings."""

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (zones as ``"x,y,w,h"`` strings)."""
        data = asdict(self)
        data["water_zone"] = None if self.water_zone is None else str(self.water_zone)
        data["board_zone"] = None if self.board_zone is None else str(self.board_zone)
        return data
