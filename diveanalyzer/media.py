"""All media I/O: probe a file, stream its audio in chunks, decode video frames in time windows.

With `diveanalyzer.media_write` (and the file opening they share, `_media_container`), the
only module that touches PyAV. Every FFmpeg failure becomes one of the
`diveanalyzer.errors.MediaError` subclasses with a one-line message naming the file.
Times are seconds from the start of the container (its ``start_time`` is subtracted), so audio
chunk times and frame times share one clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from diveanalyzer._media_container import (
    _check_file,
    _check_index,
    _open,
    _origin,
    _reason,
    _video_stream,
)
from diveanalyzer.errors import EmptyMediaError, NotAVideoError, TruncatedMediaError
from diveanalyzer.model import VideoInfo

# Seeking costs a decode from the previous keyframe; when the next window starts within this
# many seconds of the current position, decoding forward is cheaper than seeking.
_SEEK_MIN_GAP = 2.0
# Frame timestamps spread by more than this fraction of the typical step mark variable frame rate.
_VFR_TOLERANCE = 0.1
_VFR_SAMPLE_PACKETS = 150


@dataclass(frozen=True)
class Frame:
    """One decoded, upright, scaled video frame."""

    time: float
    """Presentation time in seconds from the start of the file."""
    image: np.ndarray
    """Gray ``uint8`` HxW, or BGR ``uint8`` HxWx3 when colour was asked for."""


@dataclass(frozen=True)
class AudioChunk:
    """A contiguous run of mono audio samples."""

    start: float
    """Time of the first sample, seconds from the start of the file."""
    samples: np.ndarray
    """``float32`` mono samples in [-1, 1] at the rate asked for."""


def probe(path, *, require_video: bool = True) -> VideoInfo:
    """Learn duration, frame rate, display size, rotation and audio presence of a file.

    Decodes at most one frame (for the rotation side data) and reads the first few packet
    timestamps (for variable frame rate). Raises NotAVideoError when there is no video stream,
    unless ``require_video`` is False (then the video fields are 0).
    """
    p = _check_file(path)
    with _open(p) as container:
        has_video = bool(container.streams.video)
        if require_video and not has_video:
            raise NotAVideoError(f"{p}: has no video stream")
        audio = container.streams.audio[0] if container.streams.audio else None
        duration = _duration(container)
        if duration <= 0:
            raise EmptyMediaError(f"{p}: holds no decodable media (duration 0)")
        fields = dict(
            path=str(p.resolve()),
            duration=duration,
            fps=0.0,
            width=0,
            height=0,
            rotation=0,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio is not None else "",
            audio_rate=int(audio.codec_context.sample_rate or 0) if audio is not None else 0,
        )
        if has_video:
            fields.update(_video_fields(container, p, duration))
    return VideoInfo(**fields)


def _duration(container) -> float:
    if container.duration:
        return container.duration / 1e6
    spans = [
        float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base
    ]
    return max(spans, default=0.0)


def _video_fields(container, p: Path, duration: float) -> dict:
    stream = container.streams.video[0]
    _check_index(stream, p)
    rotation = _rotation(container, stream, p)
    width, height = stream.codec_context.width, stream.codec_context.height
    if rotation in (90, 270):
        width, height = height, width
    return dict(
        fps=_fps(stream, duration),
        width=int(width),
        height=int(height),
        rotation=rotation,
        variable_frame_rate=_is_vfr(container, stream),
        video_codec=stream.codec_context.name,
    )


def _fps(stream, duration: float) -> float:
    rate = stream.average_rate
    counted = stream.frames / duration if stream.frames and duration > 0 else 0.0
    if rate and 0 < float(rate) <= 240:
        if counted and abs(counted - float(rate)) / float(rate) > 0.2:
            return counted  # an average_rate far from frames/duration is not to be trusted
        return float(rate)
    if counted:
        return counted
    guessed = stream.guessed_rate
    return float(guessed) if guessed else 0.0


def _rotation(container, stream, p: Path) -> int:
    """Clockwise degrees (0/90/180/270) the stored frames must turn to be upright."""
    tag = stream.metadata.get("rotate")
    if tag:
        try:
            return round(float(tag)) % 360
        except ValueError:
            pass
    # PyAV 18 exposes the display matrix only on decoded frames (`VideoFrame.rotation`,
    # counter-clockwise degrees), so decode the first frame.
    try:
        for frame in container.decode(stream):
            ccw = frame.rotation or 0
            container.seek(0, stream=stream)
            return int(round(-ccw / 90.0) * 90) % 360
    except av.error.FFmpegError as exc:
        raise TruncatedMediaError(f"{p}: cannot decode the first frame ({_reason(exc)})") from None
    raise TruncatedMediaError(f"{p}: the video stream holds no decodable frame")


def _is_vfr(container, stream) -> bool:
    """Look at the first packets' timestamps: phones write uneven steps."""
    pts = []
    entries = stream.index_entries
    if len(entries) > 2:
        pts = [e.timestamp for e in entries[: _VFR_SAMPLE_PACKETS + 1]]
    else:
        container.seek(0, stream=stream)
        for packet in container.demux(stream):
            if packet.pts is not None:
                pts.append(packet.pts)
            if len(pts) > _VFR_SAMPLE_PACKETS:
                break
    steps = np.diff(np.sort(np.asarray(pts, dtype=np.int64)))
    steps = steps[steps > 0]
    if len(steps) < 2:
        return False
    typical = float(np.median(steps))
    return bool(np.max(np.abs(steps - typical)) > _VFR_TOLERANCE * typical)


def audio_chunks(path, rate: int = 16000, chunk_seconds: float = 5.0) -> Iterator[AudioChunk]:
    """Decode the first audio stream to mono float32 at ``rate``, in contiguous chunks.

    Streaming: at most about one chunk is held in memory. Chunk ``i`` starts at
    ``i * chunk_seconds``; every chunk but the last has exactly ``round(rate * chunk_seconds)``
    samples. A file without an audio stream yields nothing (check `VideoInfo.has_audio`).
    A stream that starts late is padded with silence so sample times match the video clock.
    """
    if rate <= 0 or chunk_seconds <= 0:
        raise ValueError("rate and chunk_seconds must be positive")
    size = max(1, round(rate * chunk_seconds))
    with _open(path) as container:
        if not container.streams.audio:
            return
        stream = container.streams.audio[0]
        _check_index(stream, Path(path))
        stream.codec_context.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        pending: list[np.ndarray] = []
        held = 0
        emitted = 0  # samples already yielded
        for block in _resampled(container, stream, resampler, rate, _origin(container)):
            pending.append(block)
            held += len(block)
            while held >= size:
                joined = np.concatenate(pending)
                chunk, rest = joined[:size], joined[size:]
                yield AudioChunk(emitted / rate, np.clip(chunk, -1.0, 1.0))
                emitted += size
                pending, held = [rest], len(rest)
        if held:
            yield AudioChunk(emitted / rate, np.clip(np.concatenate(pending), -1.0, 1.0))


def _resampled(container, stream, resampler, rate: int, origin: float) -> Iterator[np.ndarray]:
    """Mono float32 blocks; leading silence or trimming aligns sample 0 with time 0."""
    skip = None  # samples still to drop (a stream starting before time 0); None = not aligned
    for frame in _decode_all(container, stream):
        for out in _resample(resampler, frame):
            block = _mono(out)
            if skip is None:
                first = frame.time if frame.time is not None else origin
                offset = round((first - origin) * rate)
                if offset > 0:
                    yield np.zeros(offset, dtype=np.float32)
                skip = max(0, -offset)
            if skip:
                cut = min(skip, len(block))
                block, skip = block[cut:], skip - cut
            if len(block):
                yield block
    for out in _resample(resampler, None):
        yield _mono(out)


def _mono(frame) -> np.ndarray:
    return frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)


def _resample(resampler, frame) -> list:
    out = resampler.resample(frame)
    return out if isinstance(out, list) else [out] if out is not None else []


def _decode_all(container, stream) -> Iterator:
    for packet in container.demux(stream):
        yield from packet.decode()


def frames(
    path,
    windows: list[tuple[float, float]] | None = None,
    fps: float | None = None,
    max_height: int = 480,
    color: bool = False,
) -> Iterator[Frame]:
    """Decode upright video frames, scaled so the height is at most ``max_height``.

    ``windows``: decode only these ``[start, end]`` time ranges (overlaps are merged; each
    window is reached by seeking to the keyframe before it). ``None`` decodes the whole video.
    ``fps``: keep at most this rate, choosing the frame nearest each point of the grid
    ``k / fps``; ``None`` keeps every frame. Frames come in time order, each at most once.
    Windows with ``end < start`` are ignored; negative starts count from 0. Errors (missing,
    damaged file) are raised when iteration starts.

    Gray frames are meant for analysis, not for looking at: they are decoded without H.264's
    deblocking filter and scaled with fast bilinear, about a quarter less CPU; colour frames
    (thumbnails, zone estimation) get the full-quality path.
    """
    if fps is not None and fps <= 0:
        raise ValueError("fps must be positive")
    if max_height <= 0:
        raise ValueError("max_height must be positive")
    p = _check_file(path)
    with _open(p) as container:
        stream = _video_stream(container, p)
        _check_index(stream, p)
        stream.codec_context.thread_type = "AUTO"
        if not color:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        plan = _merge_windows(windows)
        if not plan:
            return
        converter = _Converter(max_height, color)
        sampler = _Sampler(fps)
        yield from _decode_windows(container, stream, plan, sampler, converter)


def _merge_windows(windows) -> list[tuple[float, float]]:
    if windows is None:
        return [(0.0, math.inf)]
    cleaned = sorted((max(0.0, float(a)), float(b)) for a, b in windows if b >= a and b >= 0)
    merged: list[list[float]] = []
    for start, end in cleaned:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _decode_windows(container, stream, plan, sampler, converter) -> Iterator[Frame]:
    decoder = None  # the running (time, frame) iterator; None = must seek
    pending = None  # a frame read past the previous window's end: it may open the next one
    last_time = -math.inf
    for start, end in plan:
        if decoder is None or start - last_time > _SEEK_MIN_GAP:
            decoder, pending = _seek(container, stream, start), None
        sampler.begin(start, end)
        while True:
            item, pending = pending or next(decoder, None), None
            if item is None:
                decoder = None  # end of stream: a later window seeks (and finds nothing)
                break
            t, frame = item
            last_time = t
            if t < start:
                continue
            if t > end:
                pending = item
                break
            for chosen in sampler.offer(t, frame):
                yield converter(chosen)
        for chosen in sampler.finish():
            yield converter(chosen)


def _seek(container, stream, start: float) -> Iterator[tuple[float, object]]:
    """Seek to the keyframe at or before ``start``; decode (time, frame) pairs from there."""
    origin = _origin(container)
    time_base = stream.time_base
    target = int((start + origin) / time_base) if start > 0 else 0
    container.seek(max(0, target), stream=stream, backward=True, any_frame=False)
    return (
        (float(frame.pts * time_base) - origin, frame)
        for frame in _decode_all(container, stream)
        if frame.pts is not None
    )


class _Sampler:
    """Chooses, inside one window, the frame nearest each ``k / fps`` grid point."""

    def __init__(self, fps: float | None):
        self.fps = fps
        self.emitted_time = -math.inf

    def begin(self, start: float, end: float) -> None:
        self.end = end
        self.prev = None  # (time, frame) of the last frame offered, not yet emitted or emitted
        if self.fps:
            self.k = math.ceil(start * self.fps - 1e-6)

    def _grid(self) -> float:
        return self.k / self.fps

    def offer(self, t: float, frame) -> Iterator[tuple[float, object]]:
        if not self.fps:
            yield from self._emit((t, frame))
            return
        while self._grid() <= t + 1e-9:
            g = self._grid()
            best = (t, frame)
            if self.prev is not None and abs(self.prev[0] - g) <= abs(t - g):
                best = self.prev
            yield from self._emit(best)
            self.k += 1
        self.prev = (t, frame)

    def finish(self) -> Iterator[tuple[float, object]]:
        # The window's last frame is the nearest one to a grid point after it inside the window.
        if self.fps and self.prev is not None and self._grid() <= self.end + 1e-9:
            yield from self._emit(self.prev)
        self.prev = None

    def _emit(self, item) -> Iterator[tuple[float, object]]:
        if item[0] > self.emitted_time:
            self.emitted_time = item[0]
            yield item


class _Converter:
    """Scales with libswscale straight to gray/BGR, then turns the frame upright."""

    def __init__(self, max_height: int, color: bool):
        self.format = "bgr24" if color else "gray"
        self.interpolation = "AREA" if color else "FAST_BILINEAR"
        self.rotation = None
        self.max_height = max_height
        self.size = None

    def _setup(self, frame) -> None:
        self.rotation = int(round(-(frame.rotation or 0) / 90.0) * 90) % 360
        w, h = frame.width, frame.height
        shown_h = w if self.rotation in (90, 270) else h
        scale = min(1.0, self.max_height / shown_h)
        self.size = (max(2, round(w * scale)), max(2, round(h * scale)))

    def __call__(self, item) -> Frame:
        t, frame = item
        if self.size is None:
            self._setup(frame)
        w, h = self.size
        scaled = frame.reformat(w, h, format=self.format, interpolation=self.interpolation)
        image = scaled.to_ndarray()
        if self.rotation:
            # np.rot90 turns counter-clockwise; the rotation is clockwise.
            image = np.ascontiguousarray(np.rot90(image, k=-self.rotation // 90))
        return Frame(time=round(t, 6), image=image)
