"""Helpers for tests that check written clips and thumbnails by decoding them for real."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2


@dataclass(frozen=True)
class ClipFacts:
    """What decoding a clip completely shows."""

    frames: int
    first: float
    """Time of the first decoded frame in the clip (s)."""
    last: float
    """Time of the last decoded frame in the clip (s)."""
    frame_step: float
    width: int
    """Displayed width (after the display matrix)."""
    height: int
    rotation: int
    """Counter-clockwise degrees of the display matrix (0 when the pixels are upright)."""
    audio_samples: int
    audio_rate: int

    @property
    def shown_until(self) -> float:
        """When the last frame stops being shown, in clip time."""
        return self.last + self.frame_step


def decode_clip(path: Path) -> ClipFacts:
    """Decode every video frame and audio sample of ``path`` (raises if it does not decode)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times, rotation, size = [], 0, (0, 0)
        for frame in container.decode(stream):
            times.append(float(frame.time))
            rotation = int(frame.rotation or 0)
            size = (frame.width, frame.height)
        samples, rate = 0, 0
        if container.streams.audio:
            container.seek(0)
            audio = container.streams.audio[0]
            rate = audio.codec_context.sample_rate
            for frame in container.decode(audio):
                samples += frame.samples
        step = 1.0 / float(stream.average_rate)
    width, height = size if rotation % 180 == 0 else size[::-1]
    return ClipFacts(
        len(times), min(times), max(times), step, width, height, rotation, samples, rate
    )


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, which must decode."""
    image = cv2.imread(str(path))
    assert image is not None, f"{path} does not decode as an image"
    return image.shape[1], image.shape[0]
