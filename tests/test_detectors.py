"""Detectors and the detection pipeline on small generated sessions (tables of expected dives).

The videos come from the session-scoped fixtures of conftest.py (rendered once per run).
"""

from __future__ import annotations

import numpy as np
import pytest

from diveanalyzer import media
from diveanalyzer.detect import detect_dives
from diveanalyzer.detectors.audio import AudioSplashDetector, detect_splashes
from diveanalyzer.detectors.motion import WaterMotion
from diveanalyzer.detectors.person import PersonDetector
from diveanalyzer.model import Zone
from diveanalyzer.settings import AudioSettings, DetectSettings

ENTRY_TOLERANCE = 0.3  # s, for audio-timed entries
MOTION_TOLERANCE = 0.5  # s, for entries timed by motion alone


def true_entries(video) -> list[float]:
    return [d["entry"] for d in video.truth["dives"]]


def zone_of(video, key: str) -> Zone:
    return Zone(*video.truth[key])


def assert_entries(found: list[float], expected: list[float], tolerance: float) -> None:
    assert len(found) == len(expected), f"found {found}, expected {expected}"
    for got, want in zip(sorted(found), sorted(expected), strict=True):
        assert abs(got - want) <= tolerance, f"found {found}, expected {expected}"


# -- each signal alone ---------------------------------------------------------------------


def test_audio_alone_finds_splashes_not_shouts(synth_session):
    result = detect_splashes(media.audio_chunks(synth_session.path))
    assert_entries([c.time for c in result.candidates], true_entries(synth_session), 0.15)
    assert all(0.0 < c.strength <= 1.0 for c in result.candidates)
    assert {"level_db", "snr_db", "flatness", "hf_ratio"} <= set(result.candidates[0].details)
    # the shouts and whistles are louder than every splash, yet none is a candidate
    loud = [s for s in synth_session.truth["distractors"]["sounds"] if s["kind"] != "claps"]
    quietest_splash = min(d["splash_db"] for d in synth_session.truth["dives"])
    assert any(s["peak_dbfs"] > quietest_splash for s in loud)
    for sound in synth_session.truth["distractors"]["sounds"]:
        assert not any(sound["start"] - 0.1 <= c.time <= sound["end"] for c in result.candidates)
    assert result.peak_db > result.threshold_db and not result.silent


def test_audio_rejects_shouts_whistles_claps(synth_shout_only):
    result = detect_splashes(media.audio_chunks(synth_shout_only.path))
    assert result.bursts >= 2  # the shouts were heard ...
    assert result.candidates == []  # ... and none is a splash


def test_audio_streaming_is_chunk_independent(synth_quiet_session):
    whole = np.concatenate([c.samples for c in media.audio_chunks(synth_quiet_session.path)])
    one = AudioSplashDetector()
    one.feed(0.0, whole)
    pieces = AudioSplashDetector()
    sizes = [1, 159, 161, 4000, 7919]
    start = 0
    while start < whole.size:
        size = sizes[start % len(sizes)]
        pieces.feed(start / 16000, whole[start : start + size])
        start += size
    (t1, f1), (t2, f2) = one.features(), pieces.features()
    np.testing.assert_allclose(t1, t2)
    for name in f1:
        np.testing.assert_allclose(f1[name], f2[name], rtol=1e-4, atol=1e-3)
    assert [c.time for c in one.finish().candidates] == [c.time for c in pieces.finish().candidates]


def test_audio_silence_is_reported_silent():
    detector = AudioSplashDetector()
    detector.feed(0.0, np.zeros(16000 * 3, np.float32))
    result = detector.finish()
    assert result.silent and result.candidates == []


def test_audio_never_relative_to_the_loudest_moment():
    """A quiet splash stays a candidate however loud a tone elsewhere is."""
    rate = 16000
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(rate * 12) * 10 ** (-60 / 20)).astype(np.float32)
    t = np.arange(rate) / rate
    x[2 * rate : 3 * rate] += 0.9 * np.sin(2 * np.pi * 2500 * t)  # a whistle near 0 dBFS
    burst = rng.standard_normal(rate // 2) * np.exp(-np.arange(rate // 2) / (0.15 * rate))
    x[8 * rate : 8 * rate + rate // 2] += (10 ** (-35 / 20) * burst).astype(np.float32)
    detector = AudioSplashDetector(AudioSettings())
    detector.feed(0.0, x)
    times = [c.time for c in detector.finish().candidates]
    assert len(times) == 1 and abs(times[0] - 8.0) < 0.05


def test_motion_alone_bursts_after_entry_only(synth_quiet_session):
    video = synth_quiet_session
    entry = true_entries(video)[0]
    motion = WaterMotion(zone_of(video, "water_zone"))
    windows = [(entry - 2.0, entry + 1.5), (entry - 7.5, entry - 4.0)]
    track = motion.track(media.frames(video.path, windows=windows, fps=15, max_height=240))
    assert motion.score(track, entry).score >= 0.6
    assert motion.score(track, entry - 5.5).score <= 0.2


def test_person_alone_finds_takeoff(synth_quiet_session):
    video = synth_quiet_session
    dive = video.truth["dives"][0]
    person = PersonDetector()
    t0, t1 = person.window(dive["entry"])
    frames = list(media.frames(video.path, windows=[(t0, t1)], fps=15, color=True))
    takeoff = person.find_takeoff(frames, zone_of(video, "board_zone"), dive["entry"])
    assert takeoff is not None
    assert abs(takeoff.time - dive["takeoff"]) <= 0.3


# -- the whole pipeline ------------------------------------------------------------------------


def test_session_table(synth_session):
    events = []
    progress = []
    result = detect_dives(
        synth_session.path,
        DetectSettings(),
        emit=lambda name, payload: events.append((name, payload)),
        progress=lambda stage, fraction: progress.append(fraction),
    )
    assert_entries([d.entry for d in result.dives], true_entries(synth_session), ENTRY_TOLERANCE)
    for dive, truth in zip(result.dives, synth_session.truth["dives"], strict=True):
        assert dive.id == result.dives.index(dive) + 1
        assert {"audio", "motion"} <= set(dive.signals)
        assert 0.5 <= dive.confidence <= 1.0
        if dive.takeoff is not None:
            assert abs(dive.takeoff - truth["takeoff"]) <= 0.5
            assert dive.start <= dive.takeoff - 1.0 + 1e-6
        assert dive.end >= min(dive.entry + 2.0, result.video.duration) - 1e-6
    assert sum(d.takeoff is not None for d in result.dives) >= 1
    names = [name for name, _ in events]
    assert names[:3] == [
        "splash_detection_complete",
        "motion_detection_complete",
        "person_detection_complete",
    ]
    assert names[3:] == ["dive_detected"] * len(result.dives) + ["dives_detected"]
    payloads = dict(events)
    assert payloads["splash_detection_complete"]["peak_count"] >= len(result.dives)
    assert isinstance(payloads["splash_detection_complete"]["threshold_db"], float)
    assert payloads["motion_detection_complete"]["proxy_height"] <= 480
    assert payloads["dives_detected"] == {
        "dive_count": len(result.dives),
        "signal_type": result.signal_type,
        "confidence_threshold": 0.5,
    }
    assert "audio" in result.signal_type
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) >= 5


def test_fusion_rejects_a_shout(synth_shout_only):
    # Let every onset through the audio stage so fusion itself must reject the shouts.
    settings = DetectSettings(audio=AudioSettings(min_strength=0.0), use_person=False)
    result = detect_dives(synth_shout_only.path, settings)
    assert len(result.evidence) >= 2  # the shouts reached fusion ...
    assert result.dives == []  # ... and were rejected


def test_two_dives_two_and_a_half_seconds_apart(synth_two_boards):
    result = detect_dives(synth_two_boards.path, DetectSettings(use_person=False))
    assert_entries([d.entry for d in result.dives], [8.0, 10.5], ENTRY_TOLERANCE)


def test_video_without_audio_uses_motion(synth_no_audio):
    result = detect_dives(synth_no_audio.path, DetectSettings())
    assert result.video.has_audio is False
    assert result.mode.startswith("full scan")
    assert_entries([d.entry for d in result.dives], true_entries(synth_no_audio), MOTION_TOLERANCE)
    assert all("audio" not in d.signals and "motion" in d.signals for d in result.dives)


def test_portrait_video_is_upright(synth_portrait):
    result = detect_dives(synth_portrait.path, DetectSettings())
    assert result.video.rotation in (90, 270)
    assert result.video.height > result.video.width
    assert_entries([d.entry for d in result.dives], true_entries(synth_portrait), ENTRY_TOLERANCE)


@pytest.mark.parametrize(
    ("settings", "check"),
    [
        (DetectSettings(use_person=False), lambda d: d.takeoff is None),
        (DetectSettings(confidence=1.0), None),
    ],
    ids=["no-person", "confidence-1"],
)
def test_settings_change_the_result(synth_quiet_session, settings, check):
    result = detect_dives(synth_quiet_session.path, settings)
    if check is None:
        assert all(d.confidence >= 1.0 for d in result.dives)
    else:
        assert result.dives and all(check(d) for d in result.dives)


def test_given_zones_are_used(synth_quiet_session):
    water = Zone(0.0, 0.6, 1.0, 0.4)
    board = Zone(0.0, 0.0, 1.0, 0.65)
    result = detect_dives(
        synth_quiet_session.path,
        DetectSettings(water_zone=water, board_zone=board, use_person=False),
    )
    assert result.settings.water_zone == water and result.settings.board_zone == board
    assert result.zones_how == "given"
    data = result.to_dict()
    assert data["settings"]["water_zone"] == str(water)
    assert_entries([d["entry"] for d in data["dives"]], true_entries(synth_quiet_session), 0.3)
