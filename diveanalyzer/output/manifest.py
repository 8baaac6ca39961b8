"""`dives.json`: the manifest of a processed session, the one file every other view reads."""

from __future__ import annotations

import json
from pathlib import Path

from diveanalyzer.errors import OutputError
from diveanalyzer.output.atomic import write_json

MANIFEST_NAME = "dives.json"
MANIFEST_VERSION = 1
REVIEW_STATES = ("pending", "keep", "reject")


def build_manifest(video: dict, settings: dict, dives: list[dict]) -> dict:
    """The manifest document; each dive dict carries its record plus clip/thumbnails/review."""
    return {"version": MANIFEST_VERSION, "video": video, "settings": settings, "dives": dives}


def write_manifest(folder: Path, manifest: dict) -> Path:
    """Write `folder/dives.json` atomically and return its path."""
    path = Path(folder) / MANIFEST_NAME
    write_json(path, manifest)
    return path


def read_manifest(folder: Path) -> dict | None:
    """The manifest in `folder`, or None when there is none; OutputError if it is unreadable."""
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("dives"), list):
        raise OutputError(f"{path} is not a DiveAnalyzer manifest")
    return data


def reviewed_count(manifest: dict) -> int:
    """How many dives a person has already reviewed (kept, rejected, starred or annotated)."""
    return sum(
        1
        for dive in manifest.get("dives", [])
        if dive.get("review", "pending") != "pending" or dive.get("star") or dive.get("note")
    )
