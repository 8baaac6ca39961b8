"""The output folder of each video: choosing it, and clearing it before a new run."""

from __future__ import annotations

import os
from pathlib import Path

from diveanalyzer.errors import OutputError
from diveanalyzer.output.gallery import GALLERY_NAME
from diveanalyzer.output.manifest import MANIFEST_NAME, read_manifest, reviewed_count
from diveanalyzer.output.thumbs import THUMBS_DIR


def clip_name(dive_id: int) -> str:
    """File name of a dive's clip inside the session folder."""
    return f"dive_{dive_id:03d}.mp4"


def plan_folders(videos: list[Path], out_dir: Path) -> list[Path]:
    """``out_dir/<stem>`` for each video; ``<stem>-2``, ``-3``... when that folder belongs to
    another video (its manifest names another file, or an earlier video of this run took it).
    Re-running on the same video finds its own folder again."""
    claimed: set[Path] = set()
    plan = []
    for video in videos:
        stem = Path(video).stem or "video"
        me = str(Path(video).resolve())
        k = 1
        while True:
            folder = Path(out_dir) / (stem if k == 1 else f"{stem}-{k}")
            owner = _owner(folder)
            if folder not in claimed and owner in (None, me):
                break
            k += 1
        claimed.add(folder)
        plan.append(folder)
    return plan


def _owner(folder: Path) -> str | None:
    """The video a session folder was made from, per its manifest (None: no usable manifest)."""
    try:
        manifest = read_manifest(folder)
    except (OutputError, OSError):
        return None
    if not manifest:
        return None
    path = manifest.get("video", {}).get("path")
    return str(path) if path else None


def prepare(folder: Path, *, force: bool = False) -> None:
    """Create ``folder`` and clear a previous run's outputs from it.

    A session someone has already reviewed (any dive kept, rejected, starred or annotated)
    is only cleared with ``force``. The manifest and gallery go first, so a run that fails
    later never leaves an old manifest claiming a complete session.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output folder {folder}: {exc.strerror or exc}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to the output folder {folder}: permission denied")
    try:
        manifest = read_manifest(folder)
    except OutputError as exc:
        if not force:
            raise OutputError(f"{exc}; use --force to replace it") from None
        manifest = None
    reviewed = reviewed_count(manifest) if manifest else 0
    if reviewed and not force:
        raise OutputError(
            f"{folder} holds a session with {reviewed} reviewed dive(s); "
            "use --force to process it again (its review is lost)"
        )
    _clear(folder)


def _clear(folder: Path) -> None:
    stale = [folder / MANIFEST_NAME, folder / GALLERY_NAME]
    stale += sorted(folder.glob("dive_[0-9]*.mp4"))
    stale += sorted(folder.glob(".*.part.*"))  # temporary files of an interrupted run
    thumbs = folder / THUMBS_DIR
    if thumbs.is_dir():
        stale += sorted(thumbs.glob("dive_[0-9]*.jpg")) + sorted(thumbs.glob(".*.part.*"))
    try:
        for path in stale:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot clear {folder}: {exc.strerror or exc}") from None
