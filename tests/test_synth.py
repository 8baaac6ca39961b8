"""The synthetic session generator: determinism, ground truth matching the media, CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import signal

from diveanalyzer import media
from diveanalyzer.cli import cli
from diveanalyzer.errors import OutputError, UsageError
from diveanalyzer.synth import SynthSettings, plan_session, render_session
from diveanalyzer.synthrender import FramePainter

RATE = 16000


def _high_band_db(path, window=0.05):
    """Loudness above 1 kHz in dBFS (RMS) per ``window`` seconds, from the decoded file."""
    samples = np.concatenate([c.samples for c in media.audio_chunks(path, rate=RATE)])
    high = signal.sosfilt(signal.butter(4, 1000, "highpass", fs=RATE, output="sos"), samples)
    n = int(window * RATE)
    frames = high[: len(high) // n * n].reshape(-1, n)
    return 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-9)


def _full_band_peak_db(path, window=0.05):
    samples = np.concatenate([c.samples for c in media.audio_chunks(path, rate=RATE)])
    n = int(window * RATE)
    frames = samples[: len(samples) // n * n].reshape(-1, n)
    return 20 * np.log10(np.abs(frames).max(axis=1) + 1e-9)


def _water_motion(video):
    """Per frame: the fraction of water-zone pixels that changed by more than 25 grey levels."""
    x, y, _, h = video.truth["water_zone"]
    times, values, previous = [], [], None
    for frame in media.frames(video.path, max_height=135):
        rows, cols = frame.image.shape
        zone = frame.image[round(y * rows) : round((y + h) * rows), round(x * cols) :]
        zone = zone.astype(np.int16)
        if previous is not None:
            times.append(frame.time)
            values.append(float(np.mean(np.abs(zone - previous) > 25)))
        previous = zone
    return np.array(times), np.array(values)


# -- determinism and planning ---------------------------------------------------------------


def test_same_seed_same_session(tmp_path):
    settings = dict(duration=9.0, dives=1, width=160, height=96, seed=12)
    truths = [render_session(tmp_path / f"s{i}.mp4", SynthSettings(**settings)) for i in (1, 2)]
    assert truths[0].to_dict() == truths[1].to_dict()
    decoded = [[f.image for f in media.frames(tmp_path / f"s{i}.mp4")] for i in (1, 2)]
    assert len(decoded[0]) == 270
    assert all(np.array_equal(a, b) for a, b in zip(*decoded, strict=True))
    sounds = [
        np.concatenate([c.samples for c in media.audio_chunks(tmp_path / f"s{i}.mp4")])
        for i in (1, 2)
    ]
    assert np.array_equal(*sounds)


def test_other_seed_other_session():
    a = plan_session(SynthSettings(duration=60, seed=1)).to_dict()
    b = plan_session(SynthSettings(duration=60, seed=2)).to_dict()
    assert [d["entry"] for d in a["dives"]] != [d["entry"] for d in b["dives"]]


def test_switching_a_part_off_keeps_the_rest():
    full = plan_session(SynthSettings(duration=60, seed=3)).to_dict()
    fewer = plan_session(SynthSettings(duration=60, seed=3, shouts=False, splash_sound=False))
    fewer = fewer.to_dict()
    assert fewer["dives"] == full["dives"]
    assert fewer["distractors"]["walkers"] == full["distractors"]["walkers"]
    assert not any(s["kind"] == "shout" for s in fewer["distractors"]["sounds"])


@pytest.mark.parametrize("seed", range(5))
def test_plan_respects_gaps_and_order(seed):
    truth = plan_session(SynthSettings(duration=90, dives=6, min_gap=9.0, seed=seed))
    entries = [d.entry for d in truth.dives]
    assert len(entries) == 6 and entries == sorted(entries)
    assert min(np.diff(entries)) >= 9.0 - 1e-9
    for d in truth.dives:
        assert d.appear < d.walk_end < d.takeoff < d.entry
        assert 1.0 <= d.entry - d.takeoff <= 1.5
    # distractor sounds stay clear of the splashes, and shouts/whistles outshout every splash
    for sound in truth.sounds:
        for e in entries:
            assert sound["end"] < e - 1.0 or sound["start"] > e + 1.0
    loud = [s["peak_dbfs"] for s in truth.sounds if s["kind"] in ("shout", "whistle")]
    assert min(loud) > max(d.splash_db for d in truth.dives)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (dict(duration=20, dives=3, min_gap=8), "cannot fit"),
        (dict(duration=20, entries=[8.0, 10.5]), "overlap on board"),
        (dict(duration=20, entries=[2.0]), "at least 5.5 s"),
        (dict(width=321, height=240), "even"),
        (dict(boards=3), "boards"),
        (dict(rotate=45), "rotate"),
        (dict(seed=-1), "seed"),
    ],
)
def test_impossible_sessions_are_usage_errors(tmp_path, options, words):
    with pytest.raises(UsageError, match=words):
        render_session(tmp_path / "x.mp4", SynthSettings(**options))
    assert list(tmp_path.iterdir()) == []


def test_output_folder_must_exist(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        render_session(tmp_path / "nope" / "x.mp4", SynthSettings(duration=9, dives=1))


# -- the ground truth matches what the video shows and sounds like --------------------------


def test_json_written_beside_video_without_leftovers(synth_session):
    on_disk = json.loads(synth_session.json_path.read_text())
    assert on_disk == json.loads(json.dumps(synth_session.truth))
    assert len(on_disk["dives"]) == 2
    assert sorted(p.name for p in synth_session.path.parent.iterdir()) == [
        "session.json",
        "session.mp4",
    ]


def test_splash_sound_starts_at_each_entry(synth_quiet_session):
    level = _high_band_db(synth_quiet_session.path)
    floor = np.median(level)
    for dive in synth_quiet_session.truth["dives"]:
        i = int(dive["entry"] / 0.05)
        assert level[i - 4 : i - 1].max() < floor + 6  # quiet just before the entry
        assert level[i : i + 3].max() > floor + 20  # a sudden burst at it
    loud = np.flatnonzero(level > floor + 20) * 0.05
    entries = [d["entry"] for d in synth_quiet_session.truth["dives"]]
    assert all(min(abs(t - e) for e in entries) < 1.0 for t in loud)


def test_loudest_moment_is_a_distractor_not_a_splash(synth_session):
    peak = _full_band_peak_db(synth_session.path)
    loudest = np.argmax(peak) * 0.05
    sounds = synth_session.truth["distractors"]["sounds"]
    assert {s["kind"] for s in sounds} >= {"shout", "whistle", "claps"}
    assert any(s["start"] - 0.1 <= loudest <= s["end"] + 0.1 for s in sounds)
    for dive in synth_session.truth["dives"]:
        i = int(dive["entry"] / 0.05)
        assert peak[i : i + 4].max() > -30  # each splash is clearly audible
        assert peak[i : i + 4].max() < peak.max() - 3


def test_two_dives_two_and_a_half_seconds_apart_are_two_bursts(synth_two_boards):
    dives = synth_two_boards.truth["dives"]
    assert [(d["entry"], d["board"]) for d in dives] == [(8.0, 0), (10.5, 1)]
    level = _high_band_db(synth_two_boards.path)
    floor = np.median(level)
    for entry in (8.0, 10.5):
        i = int(entry / 0.05)
        assert level[i - 3 : i - 1].max() < level[i : i + 3].max() - 12
    between = level[int(9.4 / 0.05) : int(10.4 / 0.05)]
    assert between.min() < floor + 12  # the first splash has died down before the second


def test_splash_makes_the_strongest_water_motion(synth_session):
    times, motion = _water_motion(synth_session)
    baseline = np.median(motion)
    splashing = np.zeros_like(times, dtype=bool)
    for dive in synth_session.truth["dives"]:
        near = (times >= dive["entry"]) & (times <= dive["entry"] + 0.6)
        assert motion[near].max() > 4 * baseline
        splashing |= (times >= dive["entry"]) & (times <= dive["entry"] + 1.2)
    # swimmers keep the water moving, but the strongest motion is all splash
    strongest = np.argsort(motion)[-10:]
    assert splashing[strongest].all()


def test_no_audio_session_has_no_audio_stream_but_has_the_splash(synth_no_audio):
    assert synth_no_audio.truth["has_audio"] is False
    assert not media.probe(synth_no_audio.path).has_audio
    times, motion = _water_motion(synth_no_audio)
    entry = synth_no_audio.truth["dives"][0]["entry"]
    assert entry <= times[np.argmax(motion)] <= entry + 1.2


def test_diver_stands_on_the_board_then_leaves_it(synth_quiet_session):
    dive = synth_quiet_session.truth["dives"][0]
    x, y, w, h = synth_quiet_session.truth["board_zone"]

    def board_zone_at(t):
        frame = next(media.frames(synth_quiet_session.path, windows=[(t, t + 0.05)]))
        rows, cols = frame.image.shape
        return frame.image[round(y * rows) : round((y + h) * rows), : round((x + w) * cols)]

    empty = board_zone_at(dive["entry"] + 1.5).astype(int)
    standing = board_zone_at(dive["takeoff"] - 0.2).astype(int)
    flying = board_zone_at(dive["takeoff"] + 0.9).astype(int)
    assert np.mean(np.abs(standing - empty) > 25) > 0.03  # a person fills part of the zone
    assert np.mean(np.abs(flying - empty) > 25) < 0.01  # gone from the board in flight


def test_pedestrian_detector_sees_the_standing_diver_at_480p():
    truth = plan_session(SynthSettings(duration=12, dives=1, seed=2, walkers=False))
    painter = FramePainter(truth, np.random.default_rng(0))
    dive = truth.dives[0]
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    standing = painter.frame(round((dive.takeoff - 0.3) * 30)).copy()
    boxes, _ = hog.detectMultiScale(standing, winStride=(8, 8), padding=(8, 8), scale=1.05)
    assert len(boxes) >= 1
    zone_x1 = (truth.to_dict()["board_zone"][0] + truth.to_dict()["board_zone"][2]) * 854
    assert any(bx + bw / 2 < zone_x1 and bh >= 110 for bx, _, bw, bh in boxes)


def test_portrait_truth_and_rotation(synth_portrait):
    assert synth_portrait.truth["rotation"] == 90
    assert synth_portrait.truth["size"] == [270, 480]
    assert media.probe(synth_portrait.path).rotation == 90


# -- CLI ------------------------------------------------------------------------------------


def test_cli_synth_writes_video_and_ground_truth(tmp_path):
    out = tmp_path / "demo.mp4"
    args = ["synth", str(out), "--duration", "9", "--dives", "1", "--size", "160x96"]
    result = CliRunner().invoke(cli, [*args, "--seed", "3", "--without", "claps"])
    assert result.exit_code == 0, result.output
    assert "dives: 1" in result.output
    truth = json.loads(out.with_suffix(".json").read_text())
    assert len(truth["dives"]) == 1 and truth["settings"]["claps"] is False
    assert all(s["kind"] != "claps" for s in truth["distractors"]["sounds"])
    info = media.probe(out)
    assert (info.width, info.height) == (160, 96)
    assert info.duration == pytest.approx(9.0, abs=0.1)


def test_cli_synth_no_audio_two_boards(tmp_path):
    out = tmp_path / "pair.mp4"
    args = ["synth", str(out), "--duration", "14", "--entries", "7,9.5", "--boards", "2"]
    result = CliRunner().invoke(cli, [*args, "--size", "160x96", "--no-audio", "--no-distractors"])
    assert result.exit_code == 0, result.output
    truth = json.loads(out.with_suffix(".json").read_text())
    assert [d["entry"] for d in truth["dives"]] == [7.0, 9.5]
    assert truth["distractors"] == {"sounds": [], "walkers": [], "swimmers": []}
    assert not media.probe(out).has_audio


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--duration", "10", "--dives", "3"], "cannot fit"),
        (["--size", "big"], "WxH"),
        (["--entries", "7,x"], "commas"),
    ],
)
def test_cli_synth_bad_options_are_one_line_errors(tmp_path, args, words):
    result = CliRunner().invoke(cli, ["synth", str(tmp_path / "x.mp4"), *args])
    assert result.exit_code == 2
    assert words in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.mp4").exists()


def test_cli_synth_help_lists_the_options():
    result = CliRunner().invoke(cli, ["synth", "--help"])
    assert result.exit_code == 0
    for option in ("--duration", "--dives", "--min-gap", "--size", "--fps", "--no-audio"):
        assert option in result.output
    assert "--seed" in result.output and "--rotate" in result.output
