"""`diveanalyzer detect` and `diveanalyzer eval` through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from diveanalyzer.cli import cli


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def test_detect_prints_a_table(runner, synth_quiet_session):
    result = runner.invoke(cli, ["detect", str(synth_quiet_session.path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.split()[:1] == ["1"] for line in lines)  # the row of dive 1
    entry = synth_quiet_session.truth["dives"][0]["entry"]
    row = next(line for line in lines if line.split()[:1] == ["1"])
    assert abs(float(row.split()[1]) - entry) <= 0.3
    assert "1 dive(s) found" in result.stdout
    assert "water zone" in result.stdout


def test_detect_json(runner, synth_session, tmp_path):
    result = runner.invoke(cli, ["detect", str(synth_session.path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"video", "settings", "dives"}
    assert data["video"]["has_audio"] is True and data["video"]["duration"] > 0
    assert data["settings"]["confidence"] == 0.5 and data["settings"]["water_zone"]
    assert len(data["dives"]) == len(synth_session.truth["dives"])
    for n, dive in enumerate(data["dives"], 1):
        assert set(dive) == {"id", "entry", "takeoff", "start", "end", "confidence", "signals"}
        assert dive["id"] == n
        assert set(dive["signals"]) <= {"audio", "motion", "person"}
    # the JSON is a detections file `eval` accepts
    found = tmp_path / "found.json"
    found.write_text(result.stdout)
    scored = runner.invoke(cli, ["eval", str(synth_session.json_path), str(found), "--json"])
    assert scored.exit_code == 0, scored.output
    figures = json.loads(scored.stdout)
    assert figures["f1"] == 1.0 and figures["entry_error_p95"] <= 0.3


def test_detect_options(runner, synth_quiet_session):
    args = [
        "detect",
        str(synth_quiet_session.path),
        "--json",
        "--no-person",
        "--confidence",
        "0.3",
        "--water-zone",
        "0,0.6,1,0.4",
        "--board-zone",
        "0,0,1,0.65",
        "--full-scan",
    ]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    s = data["settings"]
    assert (s["water_zone"], s["board_zone"]) == ("0,0.6,1,0.4", "0,0,1,0.65")
    assert s["use_person"] is False and s["full_scan"] is True and s["confidence"] == 0.3
    assert s["mode"].startswith("full scan")
    assert data["dives"] and all(d["takeoff"] is None for d in data["dives"])


def test_eval_runs_detection_on_a_video(runner, synth_quiet_session):
    truth, video = synth_quiet_session.json_path, synth_quiet_session.path
    result = runner.invoke(cli, ["eval", str(truth), str(video)])
    assert result.exit_code == 0, result.output
    assert "F1             1.000" in result.stdout
    assert "precision" in result.stdout and "takeoff" in result.stdout


@pytest.mark.parametrize(
    "fixture", ["missing_file", "directory_path", "zero_length", "text_as_mp4", "truncated_mp4"]
)
def test_detect_bad_input_is_one_line_exit_2(runner, request, fixture):
    path = request.getfixturevalue(fixture)
    result = runner.invoke(cli, ["detect", str(path)])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and str(path.name) in errors[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--water-zone", "0,0,1"),
        ("--water-zone", "a,b,c,d"),
        ("--board-zone", "0.5,0.5,0.8,0.2"),
        ("--confidence", "1.5"),
    ],
)
def test_detect_bad_options_exit_2(runner, synth_quiet_session, option, value):
    result = runner.invoke(cli, ["detect", str(synth_quiet_session.path), option, value])
    assert result.exit_code == 2
    assert option in result.stderr
    assert "Traceback" not in result.output


def test_eval_bad_inputs_exit_2(runner, tmp_path, synth_quiet_session):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args in (
        ["eval", str(bad), str(synth_quiet_session.path)],
        ["eval", str(tmp_path / "missing.json"), str(synth_quiet_session.path)],
        ["eval", str(synth_quiet_session.json_path), str(tmp_path / "missing.mp4")],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, args
        assert len([x for x in result.stderr.splitlines() if x.startswith("Error")]) == 1
        assert "Traceback" not in result.output
