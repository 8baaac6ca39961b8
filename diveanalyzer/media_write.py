"""Writing media: cut a dive's clip out of the session video (stream copy or re-encode), and
encode generated sessions (`Mp4Writer`, used by `diveanalyzer.synth`).

The write half of the media wrapper (`diveanalyzer.media` reads); with it, the only places
that touch PyAV. A clip is written under a temporary name and renamed into place only when
complete, so a crash never leaves a file that looks like a finished clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from diveanalyzer.errors import OutputError
from diveanalyzer.media import _open, _origin, _reason, _rotation, _video_stream
from diveanalyzer.output.atomic import atomic_path

_ENCODE_OPTIONS = {"preset": "veryfast", "crf": "20"}
_EPS = 1e-6


@dataclass(frozen=True)
class Clip:
    """A clip written to disk."""

    path: Path
    """Where the clip is."""
    start: float
    """Time of its first frame in the source, seconds (a keyframe in copy mode)."""
    end: float
    """Time of its last frame in the source, seconds."""
    size_bytes: int
    """File size in bytes."""
    has_audio: bool
    """Whether the clip carries an audio stream."""


def write_clip(
    src, dst, start: float, end: float, *, audio: bool = True, accurate: bool = False
) -> Clip:
    """Cut ``[start, end]`` of ``src`` into the mp4 ``dst``, atomically.

    Copy mode (default) copies the compressed packets from the keyframe at or before ``start``:
    fast and lossless; the clip may begin up to one keyframe interval early, and a rotated
    (portrait) video keeps its display matrix. ``accurate`` re-encodes (H.264 + AAC) for
    frame-exact bounds and turns rotated frames upright in the pixels. Media errors of the
    source propagate (`MediaError`); failures to write raise `OutputError`.
    """
    if end <= start:
        raise ValueError(f"clip end {end} must be after its start {start}")
    dst = Path(dst)
    try:
        with atomic_path(dst) as tmp:
            cut = _reencode if accurate else _copy
            first, last, with_audio = cut(Path(src), tmp, float(start), float(end), audio)
            size = tmp.stat().st_size
    except av.FFmpegError as exc:
        raise OutputError(f"{dst}: cannot write the clip ({_reason(exc)})") from None
    except OSError as exc:
        raise OutputError(f"{dst}: cannot write the clip ({exc.strerror or exc})") from None
    return Clip(dst, first, last, size, with_audio)


# -- stream copy ------------------------------------------------------------------------------


def _copy(src: Path, tmp: Path, start: float, end: float, audio: bool):
    with _open(src) as inp, av.open(str(tmp), "w", format="mp4") as out:
        origin = _origin(inp)
        vin = _video_stream(inp, src)
        ins = [vin, *(inp.streams.audio[:1] if audio else ())]
        # The template copies codec parameters including the display matrix (rotation).
        outs = {s.index: out.add_stream_from_template(s) for s in ins}
        inp.seek(_ts(start + origin, vin), stream=vin, backward=True, any_frame=False)
        state = _CopyState(vin, origin, start, end, len(ins))
        for pkt in inp.demux(ins):
            if pkt.pts is None or pkt.dts is None:
                continue  # demuxer flush packets
            verdict = state.take(pkt)
            if verdict == "stop":
                break
            if verdict == "mux":
                shift = _ts(state.t0 + origin, pkt.stream)
                pkt.pts -= shift
                pkt.dts -= shift
                pkt.stream = outs[pkt.stream.index]
                out.mux(pkt)
    if state.t0 is None:
        raise OutputError(f"{src}: no video keyframe before {end:.2f} s")
    return state.t0, state.last, len(ins) > 1


class _CopyState:
    """Decides, packet by packet, what a stream-copied clip keeps."""

    def __init__(self, vin, origin: float, start: float, end: float, streams: int):
        self.vin, self.origin, self.start = vin, origin, start
        # Keep the first frame at or after `end` too, so the clip really reaches `end`.
        self.end = end + 0.999 * _frame_step(vin)
        self.streams = streams
        self.t0: float | None = None  # pts of the opening keyframe
        self.last: float | None = None
        self.finished: set[int] = set()

    def take(self, pkt) -> str:
        """``mux``, ``skip`` or ``stop`` (every stream is past the end)."""
        tb = pkt.stream.time_base
        t = float(pkt.pts * tb) - self.origin
        video = pkt.stream.index == self.vin.index
        if self.t0 is None:
            if not (video and pkt.is_keyframe):
                return "skip"  # the clip opens on a video keyframe
            self.t0 = t
        if pkt.stream.index in self.finished or t < self.t0 - _EPS:
            return "skip"  # leading pictures of an open GOP refer to the previous one
        if video:
            return self._take_video(t, float(pkt.dts * tb) - self.origin)
        if t > self.end + _EPS:
            return self._finish(pkt.stream.index)
        return "mux"

    def _take_video(self, t: float, dts: float) -> str:
        # By decode time: every frame shown up to `end`, and all it refers to, comes before
        # it in decode order. B-frames reorder presentation, so a frame past `end` may be
        # kept; then the frames shown before it are kept too, leaving no hole at the end.
        last = self.last
        if dts > self.end + _EPS and (last is None or t >= last - _EPS):
            if last is None or dts >= last - _EPS:
                return self._finish(self.vin.index)  # nothing later is shown before `last`
            return "skip"
        self.last = t if last is None else max(last, t)
        return "mux"

    def _finish(self, index: int) -> str:
        self.finished.add(index)
        return "stop" if len(self.finished) == self.streams else "skip"


def _frame_step(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return 1.0 / float(rate) if rate and float(rate) > 0 else 0.0


def _ts(seconds: float, stream) -> int:
    return round(seconds / stream.time_base) if seconds > 0 else 0


# -- accurate re-encode -----------------------------------------------------------------------


def _reencode(src: Path, tmp: Path, start: float, end: float, audio: bool):
    with _open(src) as inp, av.open(str(tmp), "w", format="mp4") as out:
        origin = _origin(inp)
        vin = _video_stream(inp, src)
        vin.codec_context.thread_type = "AUTO"
        rotation = _rotation(inp, vin, src)
        ain = inp.streams.audio[0] if audio and inp.streams.audio else None
        vout = _video_encoder(out, vin, rotation)
        aout = _audio_encoder(out, ain) if ain is not None else None
        first, last = _encode_video(inp, vin, out, vout, origin, start, end, rotation)
        if aout is not None:
            _encode_audio(inp, ain, out, aout, origin, start, end)
    if first is None:
        raise OutputError(f"{src}: no video frames between {start:.2f} and {end:.2f} s")
    return first, last, aout is not None


def _video_encoder(out, vin, rotation: int):
    cc = vin.codec_context
    width, height = (cc.height, cc.width) if rotation in (90, 270) else (cc.width, cc.height)
    rate = vin.average_rate or vin.guessed_rate or Fraction(30)
    stream = out.add_stream("libx264", rate=rate, options=dict(_ENCODE_OPTIONS))
    stream.width, stream.height = width - width % 2, height - height % 2
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, 90000)
    return stream


def _audio_encoder(out, ain):
    cc = ain.codec_context
    layout = cc.layout.name if cc.layout and cc.layout.nb_channels <= 2 else "stereo"
    return out.add_stream("aac", rate=cc.sample_rate or 48000, layout=layout)


def _encode_video(inp, vin, out, vout, origin, start, end, rotation):
    inp.seek(_ts(start + origin, vin), stream=vin, backward=True, any_frame=False)
    stop = end + 0.999 * _frame_step(vin)  # the first frame at or after `end` is the last
    first = last = None
    for frame in inp.decode(vin):
        if frame.pts is None:
            continue
        t = float(frame.pts * vin.time_base) - origin
        if t < start - _EPS:
            continue
        if t > stop:
            break
        first = t if first is None else first
        last = t
        _encode_frame(out, vout, frame, t - start, rotation)
    _flush(out, vout)
    return first, last


def _encode_frame(out, stream, frame, t: float, rotation: int) -> None:
    if rotation:
        # np.rot90 turns counter-clockwise; the rotation is clockwise.
        image = np.rot90(frame.to_ndarray(format="rgb24"), k=-rotation // 90)
        image = np.ascontiguousarray(image[: stream.height, : stream.width])
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    frame = frame.reformat(stream.width, stream.height, format="yuv420p")
    frame.pict_type = av.video.frame.PictureType.NONE  # let x264 choose, not copy the source's
    frame.pts = round(t / stream.time_base)
    frame.time_base = stream.time_base
    for packet in stream.encode(frame):
        out.mux(packet)


def _encode_audio(inp, ain, out, aout, origin, start, end) -> None:
    inp.seek(_ts(start + origin, ain), stream=ain, backward=True, any_frame=False)
    rate = aout.codec_context.sample_rate
    layout = aout.codec_context.layout.name
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    written = 0
    for frame in inp.decode(ain):
        if frame.pts is None:
            continue
        t = float(frame.pts * ain.time_base) - origin
        if t > end + _EPS:
            break
        for chunk in _resample(resampler, frame):
            samples = chunk.to_ndarray()
            skip = max(0, round((start - t) * rate))
            keep = max(0, round((end - t) * rate))
            t += samples.shape[1] / rate
            samples = samples[:, skip:keep]
            if samples.shape[1] == 0:
                continue
            piece = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples), format="fltp", layout=layout
            )
            piece.sample_rate = rate
            piece.pts = written
            piece.time_base = Fraction(1, rate)
            written += samples.shape[1]
            for packet in aout.encode(piece):
                out.mux(packet)
    _flush(out, aout)


def _resample(resampler, frame) -> list:
    out = resampler.resample(frame)
    return out if isinstance(out, list) else [out] if out is not None else []


def _flush(out, stream) -> None:
    for packet in stream.encode(None):
        out.mux(packet)


class Mp4Writer:
    """H.264 (libx264, yuv420p, ~1 s keyframe interval) + optional AAC mono, muxed in order."""

    def __init__(self, path: str, settings, audio_rate: int):
        self.container = av.open(path, mode="w", format="mp4")
        rate = Fraction(settings.fps).limit_denominator(1001)
        gop = max(1, round(settings.fps))
        self.video = self.container.add_stream(
            "libx264",
            rate=rate,
            options={
                "preset": settings.preset,
                "crf": str(settings.crf),
                # like a phone: fixed ~1 s GOP, CABAC and deblocking (what decoders pay for),
                # no B-frames, whatever the speed preset
                "x264-params": (
                    f"keyint={gop}:min-keyint={gop}:scenecut=0:cabac=1:deblock=1:bframes=0"
                ),
            },
        )
        # Two frame threads overlap encoding with drawing; a fixed count (not "auto") keeps
        # the output byte-identical for a seed on any machine.
        self.video.codec_context.thread_count = 2
        self.video.codec_context.thread_type = "FRAME"
        turned = settings.rotate in (90, 270)
        self.video.width = settings.height if turned else settings.width
        self.video.height = settings.width if turned else settings.height
        self.video.pix_fmt = "yuv420p"
        self.video.time_base = 1 / rate
        if settings.rotate:
            self.video.set_display_rotation(-settings.rotate)  # counter-clockwise degrees
        self.audio = None
        if settings.audio:
            self.audio = self.container.add_stream("aac", rate=audio_rate, layout="mono")
            self.audio.time_base = Fraction(1, audio_rate)
        self.audio_rate = audio_rate

    def write_frame(self, image: np.ndarray, index: int) -> None:
        # OpenCV's BGR->I420 (BT.601, video range 16-235) is ~10x faster than libswscale's
        yuv = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = index
        self.container.mux(self.video.encode(frame))

    def write_audio(self, samples: np.ndarray, start_sample: int) -> None:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.audio_rate
        frame.pts = start_sample
        frame.time_base = Fraction(1, self.audio_rate)
        self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self.container.mux(self.audio.encode(None))
        self.container.close()

    def abort(self) -> None:
        self.container.close()
