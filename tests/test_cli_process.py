"""`diveanalyzer process` and `diveanalyzer demo` through click's CliRunner (in-process)."""

from __future__ import annotations

import json
import shutil
import socket

import pytest
from click.testing import CliRunner

from diveanalyzer.cli import cli
from diveanalyzer.output.manifest import read_manifest
from tests.media_checks import decode_clip, image_size
from tests.server.helpers import free_port


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def test_help_explains_copy_mode_and_the_options():
    result = run("process", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "keyframe before it" in text
    for option in ("--accurate", "--no-audio", "--enable-server", "--server-port", "--force"):
        assert option in text
    assert run("demo", "--help").exit_code == 0


def test_bad_inputs_fail_one_line_each_and_the_good_video_is_processed(
    tmp_path,
    missing_file,
    directory_path,
    text_as_mp4,
    zero_length,
    truncated_mp4,
    synth_no_audio,
):
    bad = [missing_file, directory_path, text_as_mp4, zero_length, truncated_mp4]
    out = tmp_path / "out"
    result = run("process", *bad, synth_no_audio.path, "-o", out)
    assert result.exit_code == 2
    errors = error_lines(result)
    assert len(errors) == len(bad)
    for line, path in zip(errors, bad, strict=True):
        assert str(path) in line
    assert "Traceback" not in result.output + result.stderr
    assert "motion-only" in result.stdout
    assert read_manifest(out / "no_audio")["dives"]
    assert sorted(p.name for p in out.iterdir()) == ["no_audio"]  # nothing for bad files
    assert f"python -m diveanalyzer.serve {out / 'no_audio'}" in result.stdout


def test_an_unwritable_output_folder_is_one_line_per_video(tmp_path, synth_quiet_session):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run("process", synth_quiet_session.path, "-o", blocker / "out")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "cannot create the output folder" in line


def test_accurate_silent_portrait_clips(tmp_path, synth_portrait):
    out = tmp_path / "out"
    result = run("process", synth_portrait.path, "-o", out, "--accurate", "--no-audio")
    assert result.exit_code == 0, result.stderr
    manifest = read_manifest(out / "portrait")
    assert manifest["settings"]["clip_mode"] == "accurate"
    assert manifest["settings"]["clip_audio"] is False
    for dive in manifest["dives"]:
        facts = decode_clip(out / "portrait" / dive["clip"])
        assert facts.audio_samples == 0 and facts.rotation == 0 and facts.height > facts.width
        assert dive["clip_start"] == pytest.approx(dive["start"], abs=1 / 30 + 1e-3)
        width, height = image_size(out / "portrait" / dive["thumbnails"]["entry"])
        assert height > width


@pytest.fixture(scope="module")
def quiet_processed(synth_quiet_session, tmp_path_factory):
    """synth_quiet_session processed once by the CLI into its own output folder."""
    root = tmp_path_factory.mktemp("cli")
    video = root / "quiet.mp4"
    shutil.copy(synth_quiet_session.path, video)
    result = run("process", video, "-o", root / "out", "--confidence", "0.3", "--no-person")
    assert result.exit_code == 0, result.stderr
    return video, root / "out" / "quiet"


def test_options_reach_detection(quiet_processed):
    _, folder = quiet_processed
    settings = read_manifest(folder)["settings"]
    assert settings["confidence"] == 0.3 and settings["use_person"] is False


def test_reprocessing_a_reviewed_session_needs_force(quiet_processed, tmp_path):
    video, folder = quiet_processed
    out = tmp_path / "out"
    shutil.copytree(folder, out / "quiet")
    manifest = read_manifest(out / "quiet")
    manifest["dives"][0]["review"] = "keep"
    (out / "quiet" / "dives.json").write_text(json.dumps(manifest))
    refused = run("process", video, "-o", out, "--no-person")
    assert refused.exit_code == 2
    [line] = error_lines(refused)
    assert "--force" in line
    assert read_manifest(out / "quiet")["dives"][0]["review"] == "keep"
    forced = run("process", video, "-o", out, "--no-person", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert read_manifest(out / "quiet")["dives"][0]["review"] == "pending"


def test_two_videos_with_the_same_name_never_overwrite(quiet_processed, synth_two_boards, tmp_path):
    quiet, _ = quiet_processed
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "s.mp4", tmp_path / "b" / "s.mp4"
    shutil.copy(quiet, first)
    shutil.copy(synth_two_boards.path, second)
    out = tmp_path / "out"
    result = run("process", first, second, "-o", out, "--no-person")
    assert result.exit_code == 0, result.stderr
    assert read_manifest(out / "s")["video"]["path"] == str(first.resolve())
    assert read_manifest(out / "s-2")["video"]["path"] == str(second.resolve())
    # Later, the second video alone goes back to its own folder.
    again = run("process", second, "-o", out, "--no-person")
    assert again.exit_code == 0 and f"{out / 's-2'}/" in again.stdout
    assert read_manifest(out / "s")["video"]["path"] == str(first.resolve())


def test_a_busy_port_is_one_line_exit_2_and_nothing_processed(tmp_path, synth_quiet_session):
    with socket.socket() as busy:
        busy.bind(("localhost", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(
            "process", synth_quiet_session.path, "-o", tmp_path / "out",
            "--enable-server", "--server-port", port,
        )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--server-port" in result.stderr and str(port) in result.stderr
    assert not (tmp_path / "out").exists()


def test_demo_processes_its_sample_with_the_server_and_finishes(quiet_processed, tmp_path):
    # A sample already in the work folder is reused (the real one takes seconds to render).
    quiet, _ = quiet_processed
    shutil.copy(quiet, tmp_path / "demo_session.mp4")
    (tmp_path / "demo_session.json").write_text("{}")
    result = run("demo", "--work", tmp_path, "--server-port", free_port())
    assert result.exit_code == 0, result.stderr
    assert "Live view: http://localhost:" in result.stdout
    folder = tmp_path / "dives" / "demo_session"
    assert read_manifest(folder)["dives"]
    assert f"python -m diveanalyzer.serve {folder}" in result.stdout
