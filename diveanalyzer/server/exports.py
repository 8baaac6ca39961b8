"""Exports of a reviewed session: CSV (spreadsheets), JSON, and a CMX 3600 edit list.

The EDL lists the kept dives as cuts from the original video (source in/out = clip bounds),
laid end to end on the record side, so a video editor can rebuild the highlight reel.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

CSV_COLUMNS = (
    "id",
    "review",
    "star",
    "takeoff",
    "entry",
    "start",
    "end",
    "duration",
    "confidence",
    "signals",
    "clip",
    "note",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def to_csv(manifest: dict) -> str:
    """One row per dive; text cells that a spreadsheet would run as a formula are defused."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for dive in manifest["dives"]:
        start, end = dive.get("start"), dive.get("end")
        duration = round(end - start, 3) if _is_number(start) and _is_number(end) else ""
        row = {
            **dive,
            "star": "yes" if dive.get("star") else "",
            "duration": duration,
            "signals": " + ".join(str(s) for s in dive.get("signals") or []),
        }
        writer.writerow([_cell(row.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()


def to_json(manifest: dict) -> str:
    """The session's video, settings and dives (with their review), as one JSON document."""
    document = {
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "video": manifest.get("video", {}),
        "settings": manifest.get("settings", {}),
        "dives": manifest["dives"],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def to_edl(manifest: dict, title: str) -> str:
    """CMX 3600 edit list of the kept dives, in time order (non-drop-frame timecode)."""
    video = manifest.get("video", {})
    fps = _timecode_rate(video.get("fps"))
    channel = "AA/V" if video.get("has_audio", True) else "V"
    clip_name = Path(str(video.get("path") or "video")).name
    kept = [d for d in manifest["dives"] if d.get("review") == "keep" and _has_bounds(d)]
    kept.sort(key=lambda d: d["start"])
    lines = [f"TITLE: {_edl_text(title)[:70]}", "FCM: NON-DROP FRAME", ""]
    record = 0
    for number, dive in enumerate(kept, start=1):
        source_in = _frames(dive["start"], fps)
        source_out = max(source_in + 1, _frames(dive["end"], fps))
        length = source_out - source_in
        times = [source_in, source_out, record, record + length]
        timecodes = " ".join(_timecode(frames, fps) for frames in times)
        lines.append(f"{number:03d}  AX       {channel:<5} C        {timecodes}")
        lines.append(f"* FROM CLIP NAME: {_edl_text(clip_name)}")
        comment = f"DIVE {dive.get('id')}" + (" STARRED" if dive.get("star") else "")
        if dive.get("note"):
            comment += f" - {_edl_text(dive['note'])}"
        lines.append(f"* COMMENT: {comment[:200]}")
        lines.append("")
        record += length
    return "\r\n".join(lines) + "\r\n"


def _timecode_rate(fps: object) -> int:
    """Integer timecode base (29.97 counts as 30, non-drop)."""
    return max(1, round(float(fps))) if _is_number(fps) and fps > 0 else 30


def _frames(seconds: float, fps: int) -> int:
    return max(0, round(float(seconds) * fps))


def _timecode(frames: int, fps: int) -> str:
    seconds, frame = divmod(frames, fps)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours % 24:02d}:{minute:02d}:{second:02d}:{frame:02d}"


def _edl_text(text: str) -> str:
    """One line of printable ASCII (EDL readers are old and line-based)."""
    flat = " ".join(str(text).split())
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in flat)


def _has_bounds(dive: dict) -> bool:
    return _is_number(dive.get("start")) and _is_number(dive.get("end"))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
