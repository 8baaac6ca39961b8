"""Opening media files for `diveanalyzer.media` and `diveanalyzer.media_write`.

Checks a path before FFmpeg sees it, opens it with PyAV and turns FFmpeg's failures into
`diveanalyzer.errors.MediaError` subclasses with a one-line message naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av

from diveanalyzer.errors import (
    EmptyMediaError,
    MediaNotFoundError,
    NotAVideoError,
    TruncatedMediaError,
)

# Leading bytes of containers FFmpeg reads; a file that starts like one but fails to open is
# damaged (e.g. an mp4 cut before its `moov` index) rather than "not a video".
_MAGIC = tuple((4, box) for box in (b"ftyp", b"moov", b"mdat", b"free", b"wide")) + tuple(
    (0, sig) for sig in (b"RIFF", b"\x1a\x45\xdf\xa3", b"OggS", b"fLaC", b"ID3", b"FLV")
)


def _check_file(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaNotFoundError(f"{p}: no such file")
    if not p.is_file():
        raise MediaNotFoundError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise EmptyMediaError(f"{p}: the file is empty (0 bytes)")
    return p


def _looks_like_media(p: Path) -> bool:
    with p.open("rb") as fh:
        head = fh.read(16)
    return any(head[off : off + len(magic)] == magic for off, magic in _MAGIC)


@contextmanager
def _open(path) -> Iterator[av.container.InputContainer]:
    """Open a file for reading, translating FFmpeg's failures into our media errors."""
    p = _check_file(path)
    try:
        container = av.open(str(p), mode="r")
    except av.error.FFmpegError as exc:
        if _looks_like_media(p):
            raise TruncatedMediaError(
                f"{p}: damaged or truncated media file ({_reason(exc)})"
            ) from None
        raise NotAVideoError(f"{p}: not a media file FFmpeg can read ({_reason(exc)})") from None
    try:
        yield container
    except av.error.FFmpegError as exc:
        raise TruncatedMediaError(f"{p}: corrupt or truncated data ({_reason(exc)})") from None
    finally:
        container.close()


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())


def _origin(container) -> float:
    start = container.start_time
    return start / 1e6 if start not in (None, 0) else 0.0


def _video_stream(container, p) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise NotAVideoError(f"{p}: has no video stream")
    return container.streams.video[0]


def _check_index(stream, p: Path) -> None:
    """An index pointing past the end of the file means the file was cut after its header."""
    entries = stream.index_entries
    if not len(entries):
        return
    last = entries[len(entries) - 1]
    if last.pos >= 0 and last.pos + last.size > p.stat().st_size:
        raise TruncatedMediaError(
            f"{p}: truncated: the index expects {last.pos + last.size} bytes, "
            f"the file has {p.stat().st_size}"
        )
