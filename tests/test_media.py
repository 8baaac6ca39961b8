"""media.py on real (generated) files: probe, audio chunks, window decoding, bad input."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from diveanalyzer import media
from diveanalyzer.errors import (
    EmptyMediaError,
    MediaError,
    MediaNotFoundError,
    NotAVideoError,
    TruncatedMediaError,
)

# -- probe ----------------------------------------------------------------------------------


def test_probe_reads_every_field(synth_session):
    info = media.probe(synth_session.path)
    assert info.path == str(synth_session.path.resolve())
    assert info.duration == pytest.approx(20.0, abs=0.1)
    assert info.fps == pytest.approx(30.0)
    assert (info.width, info.height, info.rotation) == (480, 270, 0)
    assert info.has_audio and info.audio_codec == "aac" and info.audio_rate == 48000
    assert info.video_codec == "h264"
    assert info.variable_frame_rate is False


def test_probe_without_audio(synth_no_audio):
    info = media.probe(synth_no_audio.path)
    assert not info.has_audio
    assert (info.audio_codec, info.audio_rate) == ("", 0)
    assert list(media.audio_chunks(synth_no_audio.path)) == []


def test_probe_portrait_reports_display_size_and_rotation(synth_portrait):
    info = media.probe(synth_portrait.path)
    assert (info.width, info.height, info.rotation) == (270, 480, 90)


def test_portrait_frames_come_out_upright(synth_portrait):
    frame = next(media.frames(synth_portrait.path, windows=[(1.0, 2.0)], color=True))
    assert frame.image.shape == (480, 270, 3)
    blue_minus_red = frame.image[:, :, 0].astype(int) - frame.image[:, :, 2].astype(int)
    water_top = round(synth_portrait.truth["water_zone"][1] * 480)
    # pool water (blue) at the bottom of the upright picture, the warm wall at the top
    assert blue_minus_red[water_top + 10 :].mean() > 60
    assert blue_minus_red[: water_top // 2].mean() < 0


def test_probe_detects_variable_frame_rate(tmp_path):
    path = tmp_path / "vfr.mp4"
    steps = [1, 2, 1, 3, 1, 1, 2, 4, 1, 2] * 4  # uneven gaps in 1/60 s, like a phone
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=60)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.time_base = Fraction(1, 60)
        pts = 0
        for i, step in enumerate(steps):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 5, np.uint8), "bgr24")
            frame.pts = pts
            pts += step
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    info = media.probe(path)
    assert info.variable_frame_rate
    # 40 frames over ~75/60 s: about 32 fps, whatever the container's nominal rate says
    assert 20 < info.fps < 45
    times = [f.time for f in media.frames(path)]
    assert len(times) == len(steps)
    assert np.all(np.diff(times) > 0)


def test_probe_audio_only_file_when_video_not_required(wav_file):
    info = media.probe(wav_file, require_video=False)
    assert info.has_audio and info.audio_rate == 44100
    assert info.duration == pytest.approx(2.0, abs=0.01)
    assert (info.width, info.height, info.fps) == (0, 0, 0.0)


# -- audio ----------------------------------------------------------------------------------


def test_audio_chunks_are_contiguous_and_bounded(synth_session):
    chunks = list(media.audio_chunks(synth_session.path, rate=16000, chunk_seconds=2.0))
    assert len(chunks) >= 10
    for i, chunk in enumerate(chunks):
        assert chunk.start == pytest.approx(2.0 * i)
        assert chunk.samples.dtype == np.float32 and chunk.samples.ndim == 1
        assert len(chunk.samples) <= 32000
        assert np.abs(chunk.samples).max() <= 1.0
    assert all(len(c.samples) == 32000 for c in chunks[:-1])
    total = sum(len(c.samples) for c in chunks)
    assert total == pytest.approx(20.0 * 16000, abs=16000 * 0.1)


def test_audio_chunks_read_a_wav_and_keep_timing(wav_file):
    chunks = list(media.audio_chunks(wav_file, rate=8000, chunk_seconds=0.5))
    assert [c.start for c in chunks] == [0.0, 0.5, 1.0, 1.5]
    samples = np.concatenate([c.samples for c in chunks])
    assert len(samples) == 16000
    # the 440 Hz tone at 0.3 of full scale survives resampling
    assert np.abs(samples).max() == pytest.approx(0.3, abs=0.02)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * 8000 / len(samples) == pytest.approx(440, abs=2)


def test_audio_chunks_rejects_bad_arguments(wav_file):
    with pytest.raises(ValueError):
        next(media.audio_chunks(wav_file, rate=0))


# -- frames ---------------------------------------------------------------------------------


def test_frames_whole_video_every_frame(synth_quiet_session):
    frames = list(media.frames(synth_quiet_session.path))
    assert len(frames) == 16 * 30
    times = np.array([f.time for f in frames])
    assert np.allclose(np.diff(times), 1 / 30, atol=1e-3)
    assert frames[0].image.shape == (270, 480) and frames[0].image.dtype == np.uint8


def test_frames_only_inside_windows_at_the_asked_rate(synth_session):
    windows = [(10.0, 10.5), (2.0, 3.0), (2.5, 4.0)]  # unsorted and overlapping
    frames = list(media.frames(synth_session.path, windows=windows, fps=10))
    times = np.array([f.time for f in frames])
    inside = ((times >= 2.0) & (times <= 4.0)) | ((times >= 10.0) & (times <= 10.5))
    assert inside.all()
    assert np.all(np.diff(times) > 0)
    # one frame per 0.1 s grid point: 21 in [2, 4] and 6 in [10, 10.5]
    assert len(frames) == 27
    grid = np.round(times * 10) / 10
    assert np.abs(times - grid).max() <= 1 / 60 + 1e-6


def test_frames_never_repeat_when_asked_rate_exceeds_video_rate(synth_session):
    times = [f.time for f in media.frames(synth_session.path, windows=[(5.0, 6.0)], fps=90)]
    assert len(times) == len(set(times)) == 31


def test_frames_scale_keeps_aspect_and_colour(synth_session):
    frames = list(media.frames(synth_session.path, windows=[(1.0, 1.1)], max_height=120))
    assert frames[0].image.shape == (120, 213)
    frames = list(media.frames(synth_session.path, windows=[(1.0, 1.1)], color=True))
    assert frames[0].image.shape == (270, 480, 3)


def test_frames_window_past_the_end_yields_nothing(synth_session):
    assert list(media.frames(synth_session.path, windows=[(30.0, 40.0)])) == []
    assert list(media.frames(synth_session.path, windows=[])) == []


def test_window_frames_match_full_decode(synth_session):
    """Seeking must not change pixels: a window's frame equals the same frame decoded in order."""
    full = {f.time: f.image for f in media.frames(synth_session.path, windows=[(0.0, 13.0)])}
    for frame in media.frames(synth_session.path, windows=[(12.5, 12.6)]):
        assert np.array_equal(frame.image, full[frame.time])


# -- bad input ------------------------------------------------------------------------------

BAD = [
    ("missing_file", MediaNotFoundError, "no such file"),
    ("directory_path", MediaNotFoundError, "not a regular file"),
    ("zero_length", EmptyMediaError, "empty"),
    ("text_as_mp4", NotAVideoError, "not a media file"),
    ("truncated_mp4", TruncatedMediaError, "truncated"),
    ("cut_mid_stream_mp4", TruncatedMediaError, "truncated"),
]


@pytest.mark.parametrize(("fixture", "error", "words"), BAD)
@pytest.mark.parametrize("call", ["probe", "frames", "audio_chunks"])
def test_bad_input_raises_specific_one_line_error(request, fixture, error, words, call):
    path = request.getfixturevalue(fixture)
    with pytest.raises(error) as caught:
        if call == "probe":
            media.probe(path)
        else:
            list(getattr(media, call)(path))
    message = str(caught.value)
    assert str(path) in message and words in message and "\n" not in message
    assert isinstance(caught.value, MediaError)


def test_no_video_stream_is_not_a_video(wav_file):
    with pytest.raises(NotAVideoError, match="no video stream"):
        media.probe(wav_file)
    with pytest.raises(NotAVideoError, match="no video stream"):
        list(media.frames(wav_file))


def test_adjacent_windows_lose_no_frame(synth_session):
    """A frame read just past one window's end can belong to the next window."""
    every = [f.time for f in media.frames(synth_session.path, windows=[(3.0, 4.0)])]
    split = [f.time for f in media.frames(synth_session.path, windows=[(3.0, 3.5), (3.51, 4.0)])]
    assert split == every


@pytest.mark.parametrize("rotate", [180, 270])
def test_every_rotation_comes_out_upright(tmp_path, rotate):
    from diveanalyzer.synth import SynthSettings, render_session

    path = tmp_path / f"r{rotate}.mp4"
    render_session(path, SynthSettings(duration=6, dives=0, width=96, height=160, rotate=rotate))
    info = media.probe(path)
    assert (info.width, info.height, info.rotation) == (96, 160, rotate)
    image = next(media.frames(path, color=True)).image
    assert image.shape == (160, 96, 3)
    blue_minus_red = image[:, :, 0].astype(int) - image[:, :, 2].astype(int)
    assert blue_minus_red[-40:].mean() > 60  # water at the bottom
    assert blue_minus_red[:40].mean() < 0  # wall at the top


def test_audio_chunks_read_24_bit_pcm(tmp_path):
    """Field recorders (and the real splash recordings) write 24-bit wav."""
    import wave

    rate, seconds = 44100, 1.5
    t = np.arange(int(rate * seconds)) / rate
    values = (0.5 * np.sin(2 * np.pi * 1000 * t) * (2**23 - 1)).astype("<i4")
    packed = values.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # little-endian low 3 bytes
    path = tmp_path / "pcm24.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(3)
        out.setframerate(rate)
        out.writeframes(packed)
    assert media.probe(path, require_video=False).audio_codec == "pcm_s24le"
    samples = np.concatenate([c.samples for c in media.audio_chunks(path, rate=16000)])
    assert len(samples) == pytest.approx(24000, abs=2)
    assert np.abs(samples).max() == pytest.approx(0.5, abs=0.02)
