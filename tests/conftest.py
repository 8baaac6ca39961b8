"""Shared fixtures: small synthetic session videos, rendered ONCE per test run, and bad files.

Every video fixture is session-scoped and returns a `SynthVideo`:
``.path`` (Path of the .mp4), ``.json_path`` (Path of its ground truth), ``.truth`` (the
ground-truth dict, see `diveanalyzer.synth.GroundTruth.to_dict`: ``dives`` as
``[{"takeoff", "entry", "board", "splash_db"}]``, ``water_zone``, ``board_zone``,
``board_zones``, ``distractors``...) and ``.settings`` (the `SynthSettings` used).
Treat them as read-only: copy a file into ``tmp_path`` before changing it.

=====================  =====================================================================
fixture                what it is
=====================  =====================================================================
synth_session          20 s, 480x270, 30 fps, 2 dives (one board), every distractor on:
                       swimmers, deck walkers, shouts/whistles louder than splashes, claps,
                       crowd noise. AAC audio.
synth_no_audio         16 s, 480x270, 1 dive, all visual distractors, NO audio stream.
synth_portrait         14 s, shown 270x480 (portrait), stored 480x270 with a display matrix
                       (probe reports rotation 90), 1 dive, every distractor on.
synth_two_boards       16 s, 480x270, 2 boards, dives with entries at 8.0 s and 10.5 s
                       (2.5 s apart, one per board), every distractor on.
synth_shout_only       14 s, 480x270, NO dives: shouts at 5.0 s and 10.0 s (louder than any
                       splash), plus whistles, claps, crowd, swimmers and walkers.
synth_quiet_session    16 s, 480x270, 1 dive, no distractors at all (single-signal tests).
missing_file           Path of a file that does not exist (MediaNotFoundError).
directory_path         Path of a directory (MediaNotFoundError).
zero_length            Path of an empty ``.mp4`` (EmptyMediaError).
text_as_mp4            Path of a text file named ``.mp4`` (NotAVideoError).
wav_file               Path of a real 2 s PCM wav, no video stream (NotAVideoError for video).
truncated_mp4          First half of synth_session's mp4; its ``moov`` index is at the end,
                       so it is gone (TruncatedMediaError).
cut_mid_stream_mp4     synth_session remuxed with ``moov`` first, then cut at 60 % (the index
                       points past the end of the file: TruncatedMediaError).
=====================  =====================================================================
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from diveanalyzer.synth import SynthSettings, render_session

SMALL = {"width": 480, "height": 270, "fps": 30.0}
NO_DISTRACTORS = {
    "swimmers": False,
    "walkers": False,
    "shouts": False,
    "whistles": False,
    "claps": False,
    "crowd": False,
}


@dataclass(frozen=True)
class SynthVideo:
    """A rendered synthetic session and its ground truth."""

    path: Path
    json_path: Path
    truth: dict
    settings: SynthSettings


def _render(factory, name: str, **options) -> SynthVideo:
    settings = SynthSettings(**{**SMALL, **options})
    path = factory.mktemp("synth") / f"{name}.mp4"
    truth = render_session(path, settings)
    return SynthVideo(path, path.with_suffix(".json"), truth.to_dict(), settings)


@pytest.fixture(scope="session")
def synth_session(tmp_path_factory) -> SynthVideo:
    return _render(tmp_path_factory, "session", duration=20.0, dives=2, min_gap=7.0, seed=7)


@pytest.fixture(scope="session")
def synth_no_audio(tmp_path_factory) -> SynthVideo:
    return _render(tmp_path_factory, "no_audio", duration=16.0, dives=1, audio=False, seed=3)


@pytest.fixture(scope="session")
def synth_portrait(tmp_path_factory) -> SynthVideo:
    return _render(
        tmp_path_factory,
        "portrait",
        duration=14.0,
        dives=1,
        width=270,
        height=480,
        rotate=90,
        seed=5,
    )


@pytest.fixture(scope="session")
def synth_two_boards(tmp_path_factory) -> SynthVideo:
    return _render(
        tmp_path_factory, "two_boards", duration=16.0, boards=2, entries=[8.0, 10.5], seed=4
    )


@pytest.fixture(scope="session")
def synth_shout_only(tmp_path_factory) -> SynthVideo:
    return _render(
        tmp_path_factory, "shout_only", duration=14.0, dives=0, shout_times=[5.0, 10.0], seed=6
    )


@pytest.fixture(scope="session")
def synth_quiet_session(tmp_path_factory) -> SynthVideo:
    return _render(tmp_path_factory, "quiet", duration=16.0, dives=1, seed=8, **NO_DISTRACTORS)


@pytest.fixture(scope="session")
def bad_files_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad")


@pytest.fixture(scope="session")
def missing_file(bad_files_dir) -> Path:
    return bad_files_dir / "no-such-video.mp4"


@pytest.fixture(scope="session")
def directory_path(bad_files_dir) -> Path:
    folder = bad_files_dir / "a-folder.mp4"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def zero_length(bad_files_dir) -> Path:
    path = bad_files_dir / "empty.mp4"
    path.write_bytes(b"")
    return path


@pytest.fixture(scope="session")
def text_as_mp4(bad_files_dir) -> Path:
    path = bad_files_dir / "notes.mp4"
    path.write_text("These are my dive notes, not a video.\n" * 40)
    return path


@pytest.fixture(scope="session")
def wav_file(bad_files_dir) -> Path:
    path = bad_files_dir / "tone.wav"
    rate = 44100
    t = np.arange(2 * rate) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="session")
def truncated_mp4(bad_files_dir, synth_session) -> Path:
    data = synth_session.path.read_bytes()
    path = bad_files_dir / "first-half.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="session")
def cut_mid_stream_mp4(bad_files_dir, synth_session) -> Path:
    faststart = bad_files_dir / "faststart.mp4"
    _remux(synth_session.path, faststart, {"movflags": "faststart"})
    data = faststart.read_bytes()
    path = bad_files_dir / "cut-mid-stream.mp4"
    path.write_bytes(data[: int(len(data) * 0.6)])
    return path


def _remux(source: Path, target: Path, options: dict) -> None:
    """Copy the streams into a new mp4 without re-encoding."""
    with av.open(str(source)) as src, av.open(str(target), "w", options=options) as dst:
        mapping = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            dst.mux(packet)
