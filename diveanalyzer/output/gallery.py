"""`review_gallery.html`: a static review page that works straight from ``file://``."""

from __future__ import annotations

from pathlib import Path

import bottle

from diveanalyzer import __version__
from diveanalyzer.output.atomic import write_text
from diveanalyzer.paths import VIEWS

GALLERY_NAME = "review_gallery.html"
TEMPLATE = VIEWS / "review_gallery.tpl"


def format_time(seconds: float | None) -> str:
    """``mm:ss.s`` for a time in seconds; an em dash when unknown."""
    if seconds is None:
        return "—"
    minutes, rest = divmod(max(0.0, float(seconds)), 60)
    return f"{int(minutes):02d}:{rest:04.1f}"


def render_gallery(manifest: dict) -> str:
    """The gallery page's HTML for a manifest (all text escaped by the template)."""
    video = manifest.get("video", {})
    settings = manifest.get("settings", {})
    signals = sorted({s for dive in manifest["dives"] for s in dive.get("signals", [])})
    template = bottle.SimpleTemplate(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        version=__version__,
        title=Path(video.get("path", "session")).name,
        dives=manifest["dives"],
        duration_text=format_time(video.get("duration")),
        video_size=f"{video.get('width', '?')}×{video.get('height', '?')}",
        signals_text=" + ".join(signals) if signals else "no signal",
        confidence_threshold=settings.get("confidence", "?"),
        fmt_time=format_time,
    )


def write_gallery(folder: Path, manifest: dict) -> Path:
    """Write `folder/review_gallery.html` atomically and return its path."""
    path = Path(folder) / GALLERY_NAME
    write_text(path, render_gallery(manifest))
    return path
