"""Thumbnails of a dive: small upright JPEGs at its takeoff, water entry and clip end."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from diveanalyzer import media
from diveanalyzer.errors import OutputError
from diveanalyzer.model import Dive, VideoInfo
from diveanalyzer.output.atomic import write_bytes

THUMB_WIDTH = 320
THUMBS_DIR = "thumbs"
KINDS = ("takeoff", "entry", "end")
_JPEG_QUALITY = 85
# Half-width of the time window decoded around each thumbnail moment (seconds).
_HALF_WINDOW = 0.08
# Without a seen takeoff, the takeoff thumbnail shows this long before the entry.
_UNSEEN_TAKEOFF_S = 1.0


def thumbnail_times(dive: Dive, duration: float) -> dict[str, float]:
    """The moment each thumbnail shows, in seconds, inside the video."""
    takeoff = dive.takeoff if dive.takeoff is not None else dive.entry - _UNSEEN_TAKEOFF_S
    last = max(0.0, duration - 0.05)
    return {
        "takeoff": min(last, max(dive.start, takeoff, 0.0)),
        "entry": min(last, max(0.0, dive.entry)),
        "end": min(last, max(0.0, dive.end - 0.05)),
    }


def thumb_name(dive_id: int, kind: str) -> str:
    """Relative path of a thumbnail inside the session folder."""
    return f"{THUMBS_DIR}/dive_{dive_id:03d}_{kind}.jpg"


def thumb_height(info: VideoInfo, width: int = THUMB_WIDTH) -> int:
    """Decode height giving about ``width`` pixels of upright width."""
    if not info.width or not info.height:
        return round(width * 9 / 16)
    return max(16, round(width * info.height / info.width))


def grab_frames(path, info: VideoInfo, times: list[float]) -> list[np.ndarray | None]:
    """The upright BGR frame nearest each time (None if none was decoded), thumbnail-sized.

    Each moment gets its own seek: with keyframes every second or two, decoding from the
    keyframe before each moment costs less than decoding straight through from the first.
    """
    height = thumb_height(info)
    grabbed = []
    for t in times:
        best = None
        window = (max(0.0, t - _HALF_WINDOW), t + _HALF_WINDOW)
        for frame in media.frames(path, windows=[window], max_height=height, color=True):
            if best is None or abs(frame.time - t) < abs(best.time - t):
                best = frame
            elif frame.time > t:
                break  # frames come in time order: the rest are farther away
        grabbed.append(None if best is None else best.image)
    return grabbed


def write_thumbnail(folder: Path, name: str, image: np.ndarray) -> Path:
    """Encode ``image`` (BGR) as JPEG at ``folder/name`` atomically."""
    path = Path(folder) / name
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise OutputError(f"{path}: cannot encode the thumbnail")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, data.tobytes())
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the thumbnail ({exc.strerror or exc})") from None
    return path


def write_thumbnails(path, info: VideoInfo, folder: Path, dive: Dive) -> dict[str, str]:
    """Write the dive's three thumbnails; returns ``{kind: relative path}`` of those written."""
    times = thumbnail_times(dive, info.duration)
    images = grab_frames(path, info, [times[k] for k in KINDS])
    written = {}
    for kind, image in zip(KINDS, images, strict=True):
        if image is not None:
            name = thumb_name(dive.id, kind)
            write_thumbnail(folder, name, image)
            written[kind] = name
    return written
