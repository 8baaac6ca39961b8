"""The processing pipeline as a library: real videos in, real clips/thumbnails/manifest out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from diveanalyzer import media
from diveanalyzer.errors import NotAVideoError, OutputError
from diveanalyzer.output.manifest import read_manifest
from diveanalyzer.pipeline import ProcessOptions, process_video, process_videos, run_in_worker
from tests.media_checks import decode_clip, image_size

DETECTION_EVENTS = (
    "splash_detection_complete",
    "motion_detection_complete",
    "person_detection_complete",
)


class Recorder:
    """An emit sink keeping every (type, payload), checking each payload is plain JSON."""

    def __init__(self):
        self.events: list[tuple[str, dict]] = []

    def __call__(self, event_type: str, payload: dict) -> None:
        self.events.append((event_type, json.loads(json.dumps(payload))))

    def types(self) -> list[str]:
        return [t for t, _ in self.events]

    def payloads(self, event_type: str) -> list[dict]:
        return [p for t, p in self.events if t == event_type]


def processed(video, out: Path, **options):
    recorder = Recorder()
    [outcome] = process_videos([video], ProcessOptions(out_dir=out, **options), recorder)
    return outcome, recorder


@pytest.fixture(scope="module")
def session_run(synth_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    outcome, recorder = processed(synth_session.path, out)
    return outcome, recorder, synth_session


def check_session_folder(folder: Path, duration: float) -> dict:
    """Everything a processed session folder must hold; returns its manifest."""
    manifest = read_manifest(folder)
    assert manifest["version"] == 1
    assert manifest["video"]["duration"] == pytest.approx(duration, abs=0.1)
    assert {"confidence", "water_zone", "board_zone", "clip_mode"} <= set(manifest["settings"])
    for dive in manifest["dives"]:
        assert dive["review"] == "pending"
        assert dive["clip"] == f"dive_{dive['id']:03d}.mp4"
        facts = decode_clip(folder / dive["clip"])
        want_start = dive["takeoff"] - 1 if dive["takeoff"] is not None else dive["start"]
        want_end = min(dive["entry"] + 2, duration - facts.frame_step)
        assert dive["clip_start"] <= max(0.0, want_start) + 1e-3
        assert dive["clip_start"] + facts.shown_until >= want_end - 1e-3
        assert set(dive["thumbnails"]) == {"takeoff", "entry", "end"}
        for kind, name in dive["thumbnails"].items():
            assert name == f"thumbs/dive_{dive['id']:03d}_{kind}.jpg"
            image_size(folder / name)  # decodes
    gallery = (folder / "review_gallery.html").read_text(encoding="utf-8")
    for dive in manifest["dives"]:
        assert f'src="{dive["clip"]}"' in gallery
    assert not list(folder.rglob(".*.part.*"))
    return manifest


def test_a_session_becomes_clips_thumbnails_manifest_and_gallery(session_run):
    outcome, _, video = session_run
    assert outcome.ok and outcome.folder.name == "session"
    manifest = check_session_folder(outcome.folder, video.settings.duration)
    truth = video.truth["dives"]
    assert len(manifest["dives"]) == len(truth) == outcome.dives
    for found, true in zip(manifest["dives"], truth, strict=True):
        assert found["entry"] == pytest.approx(true["entry"], abs=0.5)
        assert found["clip_start"] <= true["takeoff"] - 1 + 0.3  # the real dive is in the clip
    for name in manifest["dives"][0]["thumbnails"].values():
        assert image_size(outcome.folder / name) == (320, 180)


def test_events_come_in_order_with_their_payloads(session_run):
    outcome, recorder, video = session_run
    types = recorder.types()
    assert types[0] == "processing_started" and types[-1] == "processing_complete"
    started = recorder.payloads("processing_started")[0]
    assert started["video"] == str(video.path)
    assert started["duration"] == pytest.approx(video.settings.duration, abs=0.1)
    for name in DETECTION_EVENTS:
        assert types.count(name) == 1
    assert types.index("dives_detected") > max(types.index(n) for n in DETECTION_EVENTS)
    detected = recorder.payloads("dive_detected")
    extracted = recorder.payloads("dive_extracted")
    assert [d["id"] for d in detected] == [e["id"] for e in extracted] == [1, 2]
    assert types.index("dives_detected") < types.index("dive_extracted")
    for event in extracted:
        clip = outcome.folder / event["clip"]
        assert event["size_bytes"] == clip.stat().st_size > 0
        assert all((outcome.folder / t).is_file() for t in event["thumbnails"].values())
    summary = recorder.payloads("dives_detected")[0]
    assert summary["dive_count"] == 2 and "audio" in summary["signal_type"]
    assert recorder.payloads("extraction_complete") == [
        {"total_dives": 2, "successful": 2, "failed": 0}
    ]
    assert recorder.payloads("processing_complete")[0]["status"] == "success"
    assert recorder.payloads("processing_complete")[0]["output_directory"] == str(outcome.folder)
    progress = recorder.payloads("progress")
    assert progress and all({"stage", "percent", "eta_s"} <= set(p) for p in progress)
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents) and percents[-1] == 100.0


def test_portrait_thumbnails_and_clips_are_upright(synth_portrait, tmp_path):
    outcome, _ = processed(synth_portrait.path, tmp_path)
    manifest = check_session_folder(outcome.folder, synth_portrait.settings.duration)
    assert manifest["dives"]
    for dive in manifest["dives"]:
        for name in dive["thumbnails"].values():
            width, height = image_size(outcome.folder / name)
            assert height > width
        info = media.probe(outcome.folder / dive["clip"])
        assert info.height > info.width


def test_a_video_without_audio_is_processed_from_motion(synth_no_audio, tmp_path):
    outcome, recorder = processed(synth_no_audio.path, tmp_path)
    assert outcome.ok and not outcome.has_audio
    assert "no audio" in outcome.mode
    manifest = check_session_folder(outcome.folder, synth_no_audio.settings.duration)
    assert len(manifest["dives"]) == 1
    assert decode_clip(outcome.folder / manifest["dives"][0]["clip"]).audio_samples == 0
    assert recorder.payloads("processing_started")[0]["has_audio"] is False


def test_reprocessing_replaces_the_old_session_and_its_stale_clips(synth_quiet_session, tmp_path):
    video = tmp_path / "quiet.mp4"
    shutil.copy(synth_quiet_session.path, video)
    first, _ = processed(video, tmp_path / "out")
    stale = first.folder / "dive_009.mp4"
    shutil.copy(first.folder / "dive_001.mp4", stale)
    again, _ = processed(video, tmp_path / "out", accurate=True)
    assert again.folder == first.folder and not stale.exists()
    manifest = check_session_folder(again.folder, synth_quiet_session.settings.duration)
    assert manifest["settings"]["clip_mode"] == "accurate"
    dive = manifest["dives"][0]
    assert dive["clip_start"] == pytest.approx(dive["start"], abs=1 / 30 + 1e-3)


def test_a_failed_video_emits_processing_failed_and_the_next_one_runs(
    text_as_mp4, synth_quiet_session, tmp_path
):
    recorder = Recorder()
    outcomes = process_videos(
        [text_as_mp4, synth_quiet_session.path], ProcessOptions(out_dir=tmp_path), recorder
    )
    assert [o.ok for o in outcomes] == [False, True]
    assert str(text_as_mp4) in outcomes[0].error
    assert recorder.types()[0] == "processing_failed"
    assert not (tmp_path / "notes").exists()  # nothing made for a file that is not a video
    with pytest.raises(NotAVideoError):
        process_video(text_as_mp4, tmp_path / "x", ProcessOptions(out_dir=tmp_path))


def test_a_reviewed_session_is_kept_without_force(session_run, tmp_path):
    outcome, _, video = session_run
    folder = tmp_path / "session"
    shutil.copytree(outcome.folder, folder)
    manifest = json.loads((folder / "dives.json").read_text())
    manifest["dives"][1]["star"] = True
    (folder / "dives.json").write_text(json.dumps(manifest))
    recorder = Recorder()
    with pytest.raises(OutputError, match="--force"):
        process_video(video.path, folder, ProcessOptions(out_dir=tmp_path), recorder)
    assert recorder.types() == ["processing_failed"]
    assert read_manifest(folder)["dives"][1]["star"] is True


def test_run_in_worker_is_a_plain_call_without_gevent_patching():
    assert run_in_worker(sum, [1, 2, 3]) == 6


def test_a_session_without_dives_still_gets_a_manifest_and_gallery(synth_shout_only, tmp_path):
    outcome, recorder = processed(synth_shout_only.path, tmp_path)
    assert outcome.ok and outcome.dives == 0
    assert read_manifest(outcome.folder)["dives"] == []
    assert "No dives were found" in (outcome.folder / "review_gallery.html").read_text()
    assert recorder.payloads("extraction_complete") == [
        {"total_dives": 0, "successful": 0, "failed": 0}
    ]
    assert recorder.types()[-1] == "processing_complete"
