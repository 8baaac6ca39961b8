"""Fusion: candidates from the signals become dives. Pure functions, no I/O.

Two steps, because the pipeline measures motion and looks for the diver per *merged*
candidate: `merge_candidates` first (overlapping audio/motion candidates become one), then
`fuse` scores each with all three signals, filters by confidence and numbers the dives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from diveanalyzer.model import Candidate, Dive
from diveanalyzer.settings import FusionSettings

SIGNALS = ("audio", "motion", "person")


@dataclass
class Evidence:
    """Everything known about one possible dive, one score per signal.

    A score is None when the signal was not available (no audio stream, person detection
    off, motion not measured); 0.0 when it was looked for and not found.
    """

    entry: float
    """Best estimate of the water entry (an audio onset is preferred: it is sharper)."""
    audio: float | None = None
    """Audio splash strength in [0, 1]."""
    motion: float | None = None
    """Water-zone motion score in [0, 1]."""
    person: float | None = None
    """Takeoff confidence in [0, 1]."""
    takeoff: float | None = None
    """When the diver left the board, if seen."""
    details: dict = field(default_factory=dict)
    """Per-signal measurements (for debugging and events)."""


def merge_candidates(candidates: Iterable[Candidate], merge_s: float) -> list[Evidence]:
    """Group candidates closer than `merge_s` (chained) into one Evidence each, in time order.

    Within a group the strongest audio candidate gives the entry time, else the strongest
    motion one; each source keeps its best strength.
    """
    groups: list[list[Candidate]] = []
    for cand in sorted(candidates, key=lambda c: c.time):
        if groups and cand.time - groups[-1][-1].time < merge_s:
            groups[-1].append(cand)
        else:
            groups.append([cand])
    return [_evidence(group) for group in groups]


def _evidence(group: list[Candidate]) -> Evidence:
    by_source: dict[str, Candidate] = {}
    for cand in group:
        best = by_source.get(cand.source)
        if best is None or cand.strength > best.strength:
            by_source[cand.source] = cand
    lead = by_source.get("audio") or by_source.get("motion") or group[0]
    evidence = Evidence(entry=lead.time, details={"candidates": len(group)})
    for source, cand in by_source.items():
        if source in ("audio", "motion"):
            setattr(evidence, source, cand.strength)
            evidence.details[source] = dict(cand.details)
    return evidence


def confidence(evidence: Evidence, settings: FusionSettings) -> float:
    """Weighted mean of the available signals, capped when the water stayed still.

    Signals that were not available (None) drop out of the mean, so a run without person
    detection can still reach full confidence. Not seeing the diver counts only half when
    a splash was heard (small or fast-panned figures escape a people detector), but fully
    without audio: then motion alone (a swimmer?) must not make a dive.
    """
    weights = {
        "audio": settings.audio_weight,
        "motion": settings.motion_weight,
        "person": settings.person_weight,
    }
    if evidence.person == 0.0 and evidence.audio:
        weights["person"] *= settings.unseen_person_factor
    total = weight_sum = 0.0
    for name, weight in weights.items():
        score = getattr(evidence, name)
        if score is not None:
            total += weight * _clip(score)
            weight_sum += weight
    if weight_sum == 0:
        return 0.0
    value = total / weight_sum
    if evidence.motion is not None and evidence.motion < settings.motion_veto:
        # However loud or splash-like the sound, still water means no dive.
        value = min(value, settings.veto_cap)
    return round(_clip(value), 3)


def clip_bounds(
    entry: float, takeoff: float | None, duration: float, settings: FusionSettings
) -> tuple[float, float]:
    """Suggested clip bounds containing ``[takeoff - 1, entry + 2]``, clamped to the video."""
    if takeoff is not None and takeoff <= entry:
        start = min(takeoff - settings.pre_takeoff_s, entry - settings.pre_takeoff_s)
    else:
        start = entry - settings.pre_entry_s
    end = entry + settings.post_entry_s
    return max(0.0, start), max(0.0, min(duration, end))


def signals_of(evidence: Evidence, settings: FusionSettings) -> list[str]:
    """The signals that agree (score at least `signal_threshold`), in canonical order."""
    chosen = []
    for name in SIGNALS:
        score = getattr(evidence, name)
        if score is not None and score >= settings.signal_threshold:
            chosen.append(name)
    return chosen


def fuse(
    evidence: Iterable[Evidence],
    duration: float,
    threshold: float,
    settings: FusionSettings | None = None,
) -> list[Dive]:
    """Dives (numbered from 1 in time order) for the evidence at or above `threshold`."""
    settings = settings or FusionSettings()
    dives: list[Dive] = []
    for item in sorted(evidence, key=lambda e: e.entry):
        dive = to_dive(item, len(dives) + 1, duration, settings)
        if dive.confidence >= threshold:
            dives.append(dive)
    return dives


def to_dive(evidence: Evidence, dive_id: int, duration: float, settings: FusionSettings) -> Dive:
    """One Evidence as a Dive record (whatever its confidence)."""
    takeoff = evidence.takeoff
    if takeoff is not None and not 0.0 <= takeoff <= evidence.entry:
        takeoff = None
    start, end = clip_bounds(evidence.entry, takeoff, duration, settings)
    return Dive(
        id=dive_id,
        entry=evidence.entry,
        takeoff=takeoff,
        start=start,
        end=end,
        confidence=confidence(evidence, settings),
        signals=signals_of(evidence, settings),
    )


def signal_type(dives: Iterable[Dive]) -> str:
    """The signals used across dives, e.g. ``"audio + motion"`` (``"none"`` without dives)."""
    used = {name for dive in dives for name in dive.signals}
    names = [name for name in SIGNALS if name in used]
    return " + ".join(names) if names else "none"


def _clip(value: float) -> float:
    return min(1.0, max(0.0, float(value)))
