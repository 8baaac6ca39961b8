"""Output writers: atomic files, manifest, gallery page, session folders, clips (real video)."""

from __future__ import annotations

import json
import shutil

import av
import pytest

from diveanalyzer import media
from diveanalyzer.errors import MediaNotFoundError, OutputError
from diveanalyzer.media_write import write_clip
from diveanalyzer.output import folders
from diveanalyzer.output.atomic import atomic_path, write_json
from diveanalyzer.output.gallery import render_gallery, write_gallery
from diveanalyzer.output.manifest import (
    build_manifest,
    read_manifest,
    reviewed_count,
    write_manifest,
)
from tests.media_checks import decode_clip

# -- atomic files ------------------------------------------------------------------------------


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path):
    final = tmp_path / "dives.json"
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []


def test_write_json_replaces_the_old_file_whole(tmp_path):
    final = tmp_path / "x.json"
    write_json(final, {"a": 1})
    write_json(final, {"b": [1, 2]})
    assert json.loads(final.read_text()) == {"b": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


# -- manifest and gallery ----------------------------------------------------------------------


def _dive(i: int, **extra) -> dict:
    record = {
        "id": i,
        "entry": 10.0 * i,
        "takeoff": 10.0 * i - 1.2,
        "start": 10.0 * i - 2.2,
        "end": 10.0 * i + 2.0,
        "confidence": 0.9,
        "signals": ["audio", "motion"],
        "clip": f"dive_{i:03d}.mp4",
        "thumbnails": {"entry": f"thumbs/dive_{i:03d}_entry.jpg"},
        "review": "pending",
    }
    return record | extra


def test_manifest_round_trip_and_reviewed_count(tmp_path):
    manifest = build_manifest({"path": "/v/s.mp4"}, {"confidence": 0.5}, [_dive(1), _dive(2)])
    write_manifest(tmp_path, manifest)
    again = read_manifest(tmp_path)
    assert again == manifest and again["version"] == 1
    assert reviewed_count(again) == 0
    again["dives"][0]["review"] = "keep"
    again["dives"][1]["note"] = "nice entry"
    assert reviewed_count(again) == 2


def test_read_manifest_rejects_garbage(tmp_path):
    assert read_manifest(tmp_path) is None
    (tmp_path / "dives.json").write_text("{not json")
    with pytest.raises(OutputError, match="cannot read"):
        read_manifest(tmp_path)
    with pytest.raises(OutputError, match="use --force"):
        folders.prepare(tmp_path)
    folders.prepare(tmp_path, force=True)
    assert not (tmp_path / "dives.json").exists()


def test_gallery_escapes_text_and_links_relatively(tmp_path):
    evil = "/videos/a&b <img src=x onerror=alert(1)>.mp4"
    manifest = build_manifest({"path": evil, "duration": 61.5}, {"confidence": 0.5}, [_dive(1)])
    html = render_gallery(manifest)
    assert "<img src=x" not in html
    assert "a&amp;b &lt;img src=x onerror=alert(1)&gt;.mp4" in html
    assert 'src="dive_001.mp4"' in html
    assert 'src="thumbs/dive_001_entry.jpg"' in html
    assert "01:01.5" in html  # the duration, formatted
    path = write_gallery(tmp_path, manifest)
    assert path.name == "review_gallery.html" and path.read_text(encoding="utf-8") == html


def test_gallery_says_when_there_are_no_dives():
    html = render_gallery(build_manifest({"path": "s.mp4"}, {}, []))
    assert "No dives were found" in html


# -- session folders ---------------------------------------------------------------------------


def test_two_videos_with_one_name_get_two_folders(tmp_path):
    a, b = tmp_path / "a" / "s.mp4", tmp_path / "b" / "s.mp4"
    assert folders.plan_folders([a, b], tmp_path / "out") == [
        tmp_path / "out" / "s",
        tmp_path / "out" / "s-2",
    ]


def _session_of(folder, video_path: str) -> None:
    folder.mkdir(parents=True)
    write_manifest(folder, build_manifest({"path": video_path}, {}, []))


def test_a_folder_made_from_another_video_is_not_taken(tmp_path):
    out = tmp_path / "out"
    _session_of(out / "s", "/elsewhere/s.mp4")
    mine = tmp_path / "s.mp4"
    assert folders.plan_folders([mine], out) == [out / "s-2"]
    _session_of(out / "s-2", str(mine.resolve()))
    assert folders.plan_folders([mine], out) == [out / "s-2"]  # its own folder again


def test_prepare_clears_the_previous_run(tmp_path):
    folder = tmp_path / "s"
    (folder / "thumbs").mkdir(parents=True)
    stale = [
        folder / "dives.json",
        folder / "review_gallery.html",
        folder / "dive_007.mp4",
        folder / ".dive_001.abc.part.mp4",
        folder / "thumbs" / "dive_007_entry.jpg",
    ]
    for path in stale:
        path.write_text("old")
    write_manifest(folder, build_manifest({}, {}, [_dive(7)]))
    (folder / "my notes.txt").write_text("keep me")
    folders.prepare(folder)
    assert not any(p.exists() for p in stale)
    assert (folder / "my notes.txt").read_text() == "keep me"


def test_prepare_refuses_a_reviewed_session_without_force(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    write_manifest(folder, build_manifest({}, {}, [_dive(1, review="keep"), _dive(2)]))
    with pytest.raises(OutputError, match=r"1 reviewed dive.*--force"):
        folders.prepare(folder)
    assert read_manifest(folder)["dives"][0]["review"] == "keep"
    folders.prepare(folder, force=True)
    assert read_manifest(folder) is None


def test_prepare_reports_an_output_folder_it_cannot_create(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create the output folder"):
        folders.prepare(blocker / "s")


# -- clips -------------------------------------------------------------------------------------


def _covers(facts, clip, start: float, end: float) -> None:
    """The clip's frames span [start, end] of the source (to within one frame)."""
    assert clip.start <= start + 1e-3
    assert clip.start + facts.shown_until >= end - 1e-3


def test_copy_clip_decodes_covers_its_bounds_and_keeps_audio(synth_session, tmp_path):
    clip = write_clip(synth_session.path, tmp_path / "c.mp4", 3.3, 9.2)
    facts = decode_clip(clip.path)
    _covers(facts, clip, 3.3, 9.2)
    assert clip.start >= 3.3 - 1.01  # from the keyframe before (1 s apart in this video)
    assert facts.frames == pytest.approx((facts.last - facts.first) / facts.frame_step + 1, abs=1)
    assert facts.audio_samples / facts.audio_rate == pytest.approx(facts.shown_until, abs=0.1)
    assert clip.size_bytes == clip.path.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == ["c.mp4"]


def test_copy_clip_keeps_the_portrait_display_matrix(synth_portrait, tmp_path):
    clip = write_clip(synth_portrait.path, tmp_path / "p.mp4", 2.5, 8.0)
    info = media.probe(clip.path)
    assert (info.width, info.height, info.rotation) == (270, 480, 90)
    first = next(media.frames(clip.path, windows=[(0, 0.1)]))
    assert first.image.shape == (480, 270)  # upright when read back


def test_accurate_clip_is_frame_exact_upright_and_silent_when_asked(synth_portrait, tmp_path):
    clip = write_clip(synth_portrait.path, tmp_path / "p.mp4", 2.5, 6.0, accurate=True, audio=False)
    facts = decode_clip(clip.path)
    assert clip.start == pytest.approx(2.5, abs=1 / 30 + 1e-6)
    _covers(facts, clip, 2.5, 6.0)
    assert (facts.width, facts.height, facts.rotation) == (270, 480, 0)  # turned in the pixels
    assert facts.audio_samples == 0 and not clip.has_audio


def test_accurate_clip_reencodes_audio(synth_session, tmp_path):
    clip = write_clip(synth_session.path, tmp_path / "a.mp4", 4.0, 7.0, accurate=True)
    facts = decode_clip(clip.path)
    assert clip.has_audio
    assert facts.audio_samples / facts.audio_rate == pytest.approx(3.0, abs=0.1)


@pytest.fixture(scope="module")
def bframe_video(synth_session, tmp_path_factory):
    """synth_session re-encoded by libx264 with its default B-frames and long GOPs."""
    path = tmp_path_factory.mktemp("bframes") / "bframes.mp4"
    write_clip(synth_session.path, path, 0.0, 19.9, accurate=True)
    with av.open(str(path)) as container:
        kinds = {str(f.pict_type) for f in container.decode(video=0)}
    assert any(k in kinds for k in ("B", "PictureType.B", "3")), kinds
    return path


@pytest.mark.parametrize("start, end", [(3.3, 9.2), (12.0, 19.9)])
def test_copy_clip_of_a_bframe_video_decodes_every_frame(bframe_video, tmp_path, start, end):
    clip = write_clip(bframe_video, tmp_path / "b.mp4", start, end)
    facts = decode_clip(clip.path)
    _covers(facts, clip, start, end)
    # No frame lost to a missing reference: one frame per step from first to last.
    assert facts.frames == round((facts.last - facts.first) / facts.frame_step) + 1


def test_clip_errors_are_specific(synth_session, tmp_path, missing_file):
    with pytest.raises(MediaNotFoundError):
        write_clip(missing_file, tmp_path / "x.mp4", 0, 1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        write_clip(synth_session.path, blocker / "x.mp4", 0, 1)
    copy = tmp_path / "s.mp4"
    shutil.copy(synth_session.path, copy)
    with pytest.raises(ValueError):
        write_clip(copy, tmp_path / "y.mp4", 5, 5)
