"""The review gallery app: session and index pages, the review API, exports, app assets.

URL layout (``root`` is the folder of the server's gallery path):

* a single session (``root/dives.json``): ``/`` page, ``/api/session``, ``POST /api/dives/<id>``,
  ``/export.{csv,json,edl}``, clips and thumbnails at ``/<file>``;
* a folder of sessions: ``/`` lists them, and each lives under ``/s/<folder name>/`` with the
  same paths;
* ``/static/<file>``: the app's own script and style sheet (``views/static``).

Every open page follows ``/events``; a review is broadcast there as ``dive_reviewed``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import bottle

from diveanalyzer import __version__
from diveanalyzer.errors import OutputError
from diveanalyzer.paths import VIEWS
from diveanalyzer.server import exports
from diveanalyzer.server.hub import Hub
from diveanalyzer.server.security import (
    MutationGuard,
    new_token,
    read_json_body,
    serve_file,
)
from diveanalyzer.server.session_store import (
    InvalidChange,
    SessionStore,
    UnknownDive,
    is_session_name,
    list_sessions,
    parse_dive_id,
    validate_change,
)

STATIC = VIEWS / "static"

#: Headers of every HTML page: nothing but this site's own script, styles and media.
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self'; script-src 'self'; "
        "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-cache"}
_EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "edl": "text/plain; charset=utf-8",
}


class ReviewApp:
    """Routes of the review gallery, bound to one hub and one root folder."""

    def __init__(self, hub: Hub, root: Path) -> None:
        self.hub = hub
        self.root = Path(root)
        self.token = new_token()
        self.guard = MutationGuard(self.token)
        self._stores: dict[Path, SessionStore] = {}
        self._templates = {
            name: bottle.SimpleTemplate((VIEWS / f"{name}.tpl").read_text(encoding="utf-8"))
            for name in ("session", "index")
        }

    def install(self, wsgi: bottle.Bottle) -> None:
        """Add the routes (before any catch-all route of ``wsgi``)."""
        wsgi.route("/static/<name>", "GET", self.static)
        wsgi.route("/api/session", "GET", lambda: self.api_session(""))
        wsgi.route("/api/dives/<dive_id>", "POST", lambda dive_id: self.review("", dive_id))
        wsgi.route("/export.<fmt>", "GET", lambda fmt: self.export("", fmt))
        wsgi.route("/s/<key>", "GET", self.session_redirect)
        wsgi.route("/s/<key>/", "GET", lambda key: self.session_page(key))
        wsgi.route("/s/<key>/api/session", "GET", self.api_session)
        wsgi.route("/s/<key>/api/dives/<dive_id>", "POST", self.review)
        wsgi.route("/s/<key>/export.<fmt>", "GET", self.export)
        wsgi.route("/s/<key>/<name:path>", "GET", self.session_file)

    # -- which session ------------------------------------------------------------------------

    def store(self, key: str) -> SessionStore:
        """The session for a URL key ("" is the root folder itself); 404 when there is none."""
        if key == "":
            folder = self.root
        elif is_session_name(key) and (self.root / key).resolve().parent == self.root.resolve():
            folder = self.root / key
        else:
            raise bottle.HTTPError(404, f"No session {key[:100]!r}.")
        folder = folder.resolve()
        store = self._stores.get(folder)
        if store is None:
            store = self._stores[folder] = SessionStore(folder)
        if key and not store.exists():
            raise bottle.HTTPError(404, f"No session {key[:100]!r}.")
        return store

    def has_sessions_below(self) -> bool:
        return bool(list_sessions(self.root))

    # -- pages --------------------------------------------------------------------------------

    def session_page(self, key: str) -> bottle.HTTPResponse:
        """The session page; without a manifest yet, in live mode (follows the processing)."""
        store = self.store(key)
        manifest = self._read(store)
        video_name = Path(str((manifest or {}).get("video", {}).get("path", ""))).name
        config = {
            "base": f"/s/{key}" if key else "",
            "session": key,
            "manifest": manifest,
            "last_id": self.hub.last_id,
            "token_required": self.guard.token_required(bottle.request.environ),
            "index_url": "/" if key else None,
        }
        body = self._templates["session"].render(
            title=video_name or key or "Processing",
            config_json=_script_json(config),
            version=__version__,
            live=manifest is None,
        )
        return bottle.HTTPResponse(body, headers=PAGE_HEADERS)

    def session_redirect(self, key: str) -> None:
        self.store(key)  # 404 unless it is a session (and a safe name for a header)
        bottle.redirect(f"/s/{key}/")

    def index_page(self) -> bottle.HTTPResponse:
        """One row per session below the root folder."""
        given = bottle.request.query.get("token", "")
        suffix = f"?token={given}" if given and given == self.token else ""
        body = self._templates["index"].render(
            sessions=list_sessions(self.root),
            folder=self.root.name or str(self.root),
            link_suffix=suffix,
            version=__version__,
        )
        return bottle.HTTPResponse(body, headers=PAGE_HEADERS)

    def static(self, name: str) -> bottle.HTTPResponse:
        response = serve_file(STATIC, name)
        response.set_header("Cache-Control", "no-cache")
        return response

    def session_file(self, key: str, name: str) -> bottle.HTTPResponse:
        return serve_file(self.store(key).folder, name)

    # -- API ----------------------------------------------------------------------------------

    def api_session(self, key: str) -> bottle.HTTPResponse:
        manifest = self._read(self.store(key))
        if manifest is None:
            raise bottle.HTTPError(404, "No dives.json yet: the session is still processing.")
        return bottle.HTTPResponse(json.dumps(manifest), headers=_JSON_HEADERS)

    def review(self, key: str, dive_id: str) -> bottle.HTTPResponse:
        """Apply ``{"review", "star", "note"}`` to one dive and tell every open page."""
        request = bottle.request
        store = self.store(key)
        self.guard.check(request)
        body = read_json_body(request)
        try:
            change = validate_change(body)
            dive = store.update(parse_dive_id(dive_id), change)
        except InvalidChange as exc:
            raise bottle.HTTPError(400, str(exc)) from None
        except UnknownDive as exc:
            raise bottle.HTTPError(404, str(exc)) from None
        except OutputError as exc:
            raise bottle.HTTPError(500, f"Could not save the review: {exc}") from None
        event = {"session": key, "id": dive["id"], "dive": dive, "change": change}
        self.hub.publish("dive_reviewed", json.dumps(event), time.time())
        return bottle.HTTPResponse(json.dumps({"ok": True, "dive": dive}), headers=_JSON_HEADERS)

    def export(self, key: str, fmt: str) -> bottle.HTTPResponse:
        if fmt not in _EXPORT_TYPES:
            raise bottle.HTTPError(404, f"No export format {fmt[:20]!r}: use csv, json or edl.")
        store = self.store(key)
        manifest = self._read(store)
        if manifest is None:
            raise bottle.HTTPError(404, "No dives.json yet: nothing to export.")
        name = key or store.folder.name or "session"
        if fmt == "csv":
            body = exports.to_csv(manifest)
        elif fmt == "json":
            body = exports.to_json(manifest)
        else:
            body = exports.to_edl(manifest, title=name)
        filename = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        headers = {
            "Content-Type": _EXPORT_TYPES[fmt],
            "Content-Disposition": f'attachment; filename="{filename}_dives.{fmt}"',
            "Cache-Control": "no-cache",
        }
        return bottle.HTTPResponse(body, headers=headers)

    @staticmethod
    def _read(store: SessionStore) -> dict | None:
        try:
            return store.read()
        except OutputError as exc:
            raise bottle.HTTPError(500, str(exc)) from None


def _script_json(value: object) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</script>``)."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
