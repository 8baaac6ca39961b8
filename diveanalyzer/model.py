"""Records passed between the stages of the pipeline. Plain dataclasses, JSON-ready."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class VideoInfo:
    """What `media.probe` learns about a file before any decoding."""

    path: str
    """The file as given (absolute path)."""
    duration: float
    """Length in seconds (the longest stream's)."""
    fps: float
    """Average frame rate; for variable-frame-rate phone video, frames / duration."""
    width: int
    """Display width in pixels, after applying `rotation` (portrait video is taller than wide)."""
    height: int
    """Display height in pixels, after applying `rotation`."""
    rotation: int
    """Clockwise degrees (0, 90, 180, 270) the stored frames must be turned to be upright."""
    has_audio: bool
    """Whether the file has an audio stream."""
    variable_frame_rate: bool = False
    """True when frame timestamps are not evenly spaced (typical of phone recordings)."""
    video_codec: str = ""
    """FFmpeg's name of the video codec, e.g. ``h264``."""
    audio_codec: str = ""
    """FFmpeg's name of the audio codec, or empty without audio."""
    audio_rate: int = 0
    """Audio sample rate in Hz, or 0 without audio."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """A moment one signal believes may be a dive's water entry."""

    time: float
    """Seconds from the start of the video."""
    strength: float
    """How sure the signal is, in [0, 1]."""
    source: str
    """Which signal found it: ``audio`` or ``motion``."""
    details: dict = field(default_factory=dict)
    """Signal-specific measurements (e.g. ``level_db``, ``snr_db``), for debugging and events."""


@dataclass
class Dive:
    """One dive found in a video. Its JSON form is the contract of `dives.json`."""

    id: int
    """1-based number in time order."""
    entry: float
    """Water entry (splash) time, seconds."""
    takeoff: float | None
    """When the diver left the board, seconds; None when the person signal did not see it."""
    start: float
    """Suggested clip start, seconds; at most ``takeoff - 1`` (or ``entry - 3`` without takeoff)."""
    end: float
    """Suggested clip end, seconds; at least ``entry + 2``, clamped to the video."""
    confidence: float
    """Fused confidence in [0, 1]."""
    signals: list[str] = field(default_factory=list)
    """Which signals agree: a subset of ``["audio", "motion", "person"]``, in that order."""

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "entry": round(self.entry, 3),
            "takeoff": None if self.takeoff is None else round(self.takeoff, 3),
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "confidence": round(self.confidence, 3),
            "signals": list(self.signals),
        }


@dataclass(frozen=True)
class Zone:
    """A rectangle of the frame as fractions of its width and height (resolution-independent)."""

    x: float
    """Left edge, fraction of the frame width."""
    y: float
    """Top edge, fraction of the frame height."""
    w: float
    """Width, fraction of the frame width."""
    h: float
    """Height, fraction of the frame height."""

    @classmethod
    def whole_frame(cls) -> Zone:
        return cls(0.0, 0.0, 1.0, 1.0)

    @classmethod
    def parse(cls, text: str) -> Zone:
        """Parse ``"x,y,w,h"`` fractions; raises ValueError with a readable reason."""
        parts = text.split(",")
        if len(parts) != 4:
            raise ValueError(f"expected x,y,w,h as four fractions, got {text!r}")
        try:
            x, y, w, h = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"expected four numbers in x,y,w,h, got {text!r}") from None
        if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1):
            raise ValueError(f"zone {text!r} must use fractions between 0 and 1")
        if x + w > 1.0001 or y + h > 1.0001:
            raise ValueError(f"zone {text!r} reaches outside the frame")
        return cls(x, y, w, h)

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The zone as integer ``(x0, y0, x1, y1)`` pixel bounds in a frame of that size."""
        x0, y0 = round(self.x * width), round(self.y * height)
        x1 = max(x0 + 1, round((self.x + self.w) * width))
        y1 = max(y0 + 1, round((self.y + self.h) * height))
        return x0, y0, min(x1, width), min(y1, height)

    def __str__(self) -> str:
        return f"{self.x:.3g},{self.y:.3g},{self.w:.3g},{self.h:.3g}"
