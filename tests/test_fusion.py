"""Fusion: pure, table-driven (no media)."""

from __future__ import annotations

import pytest

from diveanalyzer.fusion import (
    Evidence,
    clip_bounds,
    confidence,
    fuse,
    merge_candidates,
    signal_type,
)
from diveanalyzer.model import Candidate
from diveanalyzer.settings import FusionSettings

S = FusionSettings()


def audio(t, strength, **details):
    return Candidate(t, strength, "audio", {"hf_db": -30.0, **details})


def motion(t, strength):
    return Candidate(t, strength, "motion", {})


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        # (time, audio strength, motion strength) per merged group
        ([], []),
        ([audio(5.0, 0.8)], [(5.0, 0.8, None)]),
        # overlapping audio + motion: one, timed by the sharper audio onset
        ([audio(5.0, 0.8), motion(5.3, 0.6)], [(5.0, 0.8, 0.6)]),
        ([motion(4.9, 0.6), audio(5.0, 0.8)], [(5.0, 0.8, 0.6)]),
        # two audio onsets of one splash: the stronger one's time
        ([audio(5.0, 0.4), audio(5.5, 0.9)], [(5.5, 0.9, None)]),
        # two dives 2.5 s apart stay two
        ([audio(8.0, 0.7), audio(10.5, 0.7)], [(8.0, 0.7, None), (10.5, 0.7, None)]),
        # motion only
        ([motion(3.0, 0.5)], [(3.0, None, 0.5)]),
    ],
)
def test_merge_candidates(candidates, expected):
    merged = merge_candidates(candidates, S.merge_s)
    assert [(e.entry, e.audio, e.motion) for e in merged] == expected


@pytest.mark.parametrize(
    ("evidence", "low", "high"),
    [
        # every signal strong: near 1
        (Evidence(10.0, audio=1.0, motion=1.0, person=1.0), 0.99, 1.0),
        # a loud but not splash-like sound (shout) with still water: rejected
        (Evidence(10.0, audio=0.2, motion=0.0, person=0.0), 0.0, 0.2),
        # a splash-like sound but the water stayed still: capped below the default threshold
        (Evidence(10.0, audio=1.0, motion=0.05, person=1.0), 0.0, S.veto_cap),
        # audio + motion, the diver not seen (too small): still a dive
        (Evidence(10.0, audio=0.8, motion=0.8, person=0.0), 0.6, 0.9),
        # person detection off: the other two decide alone
        (Evidence(10.0, audio=0.8, motion=0.8, person=None), 0.79, 0.81),
        # no audio stream: motion and person
        (Evidence(10.0, audio=None, motion=0.8, person=0.9), 0.8, 0.9),
        # no audio, motion alone (a swimmer?): not enough
        (Evidence(10.0, audio=None, motion=0.8, person=0.0), 0.0, 0.49),
        # audio heard nothing there (audio=0), motion alone: not enough
        (Evidence(10.0, audio=0.0, motion=0.9, person=0.0), 0.0, 0.49),
        # nothing available at all
        (Evidence(10.0), 0.0, 0.0),
    ],
)
def test_confidence(evidence, low, high):
    assert low <= confidence(evidence, S) <= high


def test_confidence_grows_with_each_signal():
    base = Evidence(5.0, audio=0.6, motion=0.6, person=0.0)
    more_audio = Evidence(5.0, audio=0.9, motion=0.6, person=0.0)
    more_motion = Evidence(5.0, audio=0.6, motion=0.9, person=0.0)
    seen = Evidence(5.0, audio=0.6, motion=0.6, person=0.9)
    for better in (more_audio, more_motion, seen):
        assert confidence(better, S) > confidence(base, S)


@pytest.mark.parametrize(
    ("entry", "takeoff", "duration", "expected"),
    [
        (10.0, 8.5, 60.0, (7.5, 12.0)),  # [takeoff - 1, entry + 2]
        (10.0, None, 60.0, (7.0, 12.0)),  # no takeoff: entry - 3
        (0.5, 0.2, 60.0, (0.0, 2.5)),  # clamped at the start
        (59.0, 57.5, 60.0, (56.5, 60.0)),  # clamped at the end
        (10.0, 11.0, 60.0, (7.0, 12.0)),  # a takeoff after the entry is ignored
    ],
)
def test_clip_bounds(entry, takeoff, duration, expected):
    assert clip_bounds(entry, takeoff, duration, S) == pytest.approx(expected)


def test_fuse_filters_numbers_and_bounds():
    evidence = [
        Evidence(30.0, audio=0.9, motion=0.9, person=0.9, takeoff=28.6),
        Evidence(12.0, audio=0.2, motion=0.0, person=0.0),  # shout, still water
        Evidence(5.0, audio=0.8, motion=0.7, person=0.0),
    ]
    dives = fuse(evidence, duration=40.0, threshold=0.5, settings=S)
    assert [(d.id, d.entry) for d in dives] == [(1, 5.0), (2, 30.0)]
    first, second = dives
    assert first.takeoff is None and first.signals == ["audio", "motion"]
    assert second.takeoff == 28.6 and second.signals == ["audio", "motion", "person"]
    assert second.start <= 28.6 - 1.0 and second.end >= 32.0
    assert all(0.0 <= d.confidence <= 1.0 for d in dives)
    assert signal_type(dives) == "audio + motion + person"
    assert signal_type([]) == "none"


@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.8, 1.0])
def test_confidence_threshold_filters(threshold):
    evidence = [Evidence(float(t), audio=t / 10, motion=t / 10) for t in range(1, 11)]
    dives = fuse(evidence, 100.0, threshold, S)
    assert all(d.confidence >= threshold for d in dives)
    kept = sum(1 for e in evidence if confidence(e, S) >= threshold)
    assert len(dives) == kept
