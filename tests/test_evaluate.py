"""Evaluation: greedy one-to-one matching and the figures (pure, no media)."""

from __future__ import annotations

import json

import pytest

from diveanalyzer.errors import UsageError
from diveanalyzer.evaluate import evaluate, format_report, load_dives, match, pool


@pytest.mark.parametrize(
    ("detected", "truth", "pairs"),
    [
        ([], [], []),
        ([10.0], [10.2], [(0, 0)]),
        ([10.0], [11.5], []),  # beyond 1 s
        ([10.0], [11.0], [(0, 0)]),  # exactly 1 s still matches
        # one detection between two true dives goes to the closer one only
        ([10.4], [10.0, 10.9], [(0, 0)]),
        # two detections near one true dive: one match, one false positive
        ([9.8, 10.1], [10.0], [(1, 0)]),
        # greedy closest-first keeps both when possible
        ([8.1, 10.6], [8.0, 10.5], [(0, 0), (1, 1)]),
    ],
)
def test_match(detected, truth, pairs):
    assert match(detected, truth) == pairs


def test_evaluate_counts_and_errors():
    truth = [
        {"takeoff": 8.8, "entry": 10.0},
        {"takeoff": 18.5, "entry": 20.0},
        {"takeoff": 28.7, "entry": 30.0},
    ]
    detected = [
        {"entry": 10.1, "takeoff": 8.9},
        {"entry": 19.8, "takeoff": None},
        {"entry": 45.0, "takeoff": 44.0},  # false positive
    ]
    result = evaluate(detected, truth)
    assert (result.matched, result.false_positives, result.missed) == (2, 1, 1)
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(2 / 3)
    assert sorted(result.entry_errors) == pytest.approx([0.1, 0.2])
    assert (result.takeoff_known, result.takeoff_found) == (3, 1)
    assert result.takeoff_errors == pytest.approx([0.1])
    d = result.to_dict()
    assert d["entry_error_median"] == pytest.approx(0.15)
    assert d["takeoff_found_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert "F1" in format_report(result)


def test_empty_cases():
    nothing = evaluate([], [])
    assert (nothing.precision, nothing.recall, nothing.f1) == (1.0, 1.0, 1.0)
    missed_all = evaluate([], [{"entry": 5.0}])
    assert (missed_all.recall, missed_all.f1) == (0.0, 0.0)
    assert missed_all.to_dict()["entry_error_median"] is None


def test_pool_sums_sessions():
    a = evaluate([{"entry": 1.0}], [{"entry": 1.1}])
    b = evaluate([{"entry": 5.0}], [{"entry": 9.0}])
    total = pool([a, b])
    assert (total.true_count, total.detected_count, total.matched) == (2, 2, 1)
    assert total.entry_errors == pytest.approx([0.1])


def test_load_dives_accepts_truth_and_detections(tmp_path):
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"dives": [{"takeoff": 1.0, "entry": 2.0}], "duration": 9}))
    assert load_dives(truth) == [{"takeoff": 1.0, "entry": 2.0}]
    found = tmp_path / "found.json"
    found.write_text(json.dumps({"video": {}, "settings": {}, "dives": [{"entry": 2, "id": 1}]}))
    assert load_dives(found)[0]["entry"] == 2


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[1, 2]",
        '{"dives": 3}',
        '{"dives": [{"takeoff": 1}]}',
        '{"dives": [{"entry": "x"}]}',
    ],
)
def test_load_dives_rejects_bad_files(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UsageError):
        load_dives(path)


def test_load_dives_missing_file(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_dives(tmp_path / "nope.json")
