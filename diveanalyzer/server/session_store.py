"""Reading and reviewing sessions: ``dives.json`` updates that never lose a concurrent change.

Each update is a read-modify-write of the whole manifest under a lock: a real lock for this
process (handlers on the server's hub, and any other thread) plus ``flock`` on the session
folder for other processes; the write itself is atomic (temporary file, then rename), so a
reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from diveanalyzer.errors import OutputError
from diveanalyzer.output.atomic import write_json
from diveanalyzer.output.manifest import (
    MANIFEST_NAME,
    REVIEW_STATES,
    read_manifest,
    reviewed_count,
)
from diveanalyzer.server.bridge import real_lock

#: Longest note a dive may carry.
MAX_NOTE_CHARS = 2000

_SESSION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")


class InvalidChange(ValueError):
    """A review change that cannot be applied; the message says why (HTTP 400)."""


class UnknownDive(LookupError):
    """No dive with that id in the session (HTTP 404)."""


def validate_change(body: object) -> dict:
    """The fields of a review change (``review``, ``star``, ``note``), checked."""
    if not isinstance(body, dict):
        raise InvalidChange('The body must be a JSON object like {"review": "keep"}.')
    unknown = sorted(set(body) - {"review", "star", "note"})
    if unknown:
        raise InvalidChange(f"Unknown field {unknown[0][:40]!r}: use review, star or note.")
    if not body:
        raise InvalidChange("Nothing to change: send review, star and/or note.")
    if "review" in body and body["review"] not in REVIEW_STATES:
        raise InvalidChange(f"review must be one of {', '.join(REVIEW_STATES)}.")
    if "star" in body and not isinstance(body["star"], bool):
        raise InvalidChange("star must be true or false.")
    if "note" in body:
        note = body["note"]
        if not isinstance(note, str):
            raise InvalidChange("note must be a string.")
        if len(note) > MAX_NOTE_CHARS:
            raise InvalidChange(f"note must be at most {MAX_NOTE_CHARS} characters.")
    return dict(body)


def parse_dive_id(raw: str) -> int:
    """A dive id from a URL (a positive integer of at most 9 digits)."""
    if not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise InvalidChange(f"A dive id is a positive integer, got {raw[:40]!r}.")
    return int(raw)


class SessionStore:
    """One session folder: its manifest, read fresh on every call, and review updates."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = real_lock()

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_NAME

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read(self) -> dict | None:
        """The manifest with review fields filled in, or None while there is none."""
        manifest = read_manifest(self.folder)
        if manifest is not None:
            for dive in manifest["dives"]:
                _fill_review_fields(dive)
        return manifest

    def update(self, dive_id: int, change: dict) -> dict:
        """Apply a validated change to one dive, write the manifest, return the dive."""
        with self._locked():
            manifest = read_manifest(self.folder)
            if manifest is None:
                raise UnknownDive("This session has no dives.json yet.")
            dive = next((d for d in manifest["dives"] if d.get("id") == dive_id), None)
            if dive is None:
                raise UnknownDive(f"No dive {dive_id} in this session.")
            _fill_review_fields(dive)
            dive.update(change)
            dive["reviewed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            # Replies and other viewers' events reach a page in any order: pages keep the
            # highest revision they have seen of each dive.
            dive["revision"] = _revision(dive) + 1
            write_json(self.manifest_path, manifest)
        return dive

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # No greenlet switch happens inside (plain file I/O), so a real lock cannot deadlock
        # the hub; flock on the folder keeps other processes' updates in line too.
        with self._lock:
            try:
                fd = os.open(self.folder, os.O_RDONLY)
            except OSError as exc:
                raise OutputError(f"cannot open {self.folder}: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock


def _revision(dive: dict) -> int:
    value = dive.get("revision")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _fill_review_fields(dive: dict) -> None:
    dive.setdefault("review", "pending")
    dive.setdefault("star", False)
    dive.setdefault("note", "")


@dataclass(frozen=True)
class SessionSummary:
    """One row of the index page."""

    name: str
    """Folder name (also the URL key: ``/s/<name>/``)."""
    video: str
    """The video's file name."""
    date: str
    """When the session was processed (the manifest's modification time, UTC)."""
    dives: int
    """Number of dives."""
    reviewed: int
    """Dives kept, rejected, starred or annotated."""
    kept: int
    """Dives kept."""
    error: str = ""
    """Why the manifest could not be read (empty when fine)."""


def is_session_name(name: str) -> bool:
    """Whether ``name`` may be a session key in a URL (one plain folder name)."""
    return _SESSION_NAME.fullmatch(name) is not None and ".." not in name


def list_sessions(root: Path) -> list[SessionSummary]:
    """Sessions one level below ``root`` (folders holding a ``dives.json``), by name."""
    try:
        children = sorted(p for p in Path(root).iterdir() if p.is_dir())
    except OSError:
        return []
    return [
        _summary(child)
        for child in children
        if is_session_name(child.name) and (child / MANIFEST_NAME).is_file()
    ]


def _summary(folder: Path) -> SessionSummary:
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime((folder / MANIFEST_NAME).stat().st_mtime))
    try:
        manifest = read_manifest(folder) or {"dives": []}
    except OutputError as exc:
        return SessionSummary(folder.name, "", stamp, 0, 0, 0, error=str(exc))
    dives = [d for d in manifest["dives"] if isinstance(d, dict)]
    video = Path(str(manifest.get("video", {}).get("path", ""))).name
    reviewed = reviewed_count({"dives": dives})
    kept = sum(1 for d in dives if d.get("review") == "keep")
    return SessionSummary(folder.name, video, stamp, len(dives), reviewed, kept)
