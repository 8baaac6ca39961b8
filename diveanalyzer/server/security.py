"""Rules for untrusted requests: which files may be served, and who may change a session.

* Files: only regular files inside the session folder, with a known media/page suffix, no
  hidden part, no ``..`` and no symlink leading out of the folder.
* Mutations: same origin only (``Origin`` must name the ``Host`` the request was sent to, and
  on a loopback server that host must be a loopback name, which defeats DNS rebinding),
  ``Content-Type: application/json`` only, bodies of at most `MAX_BODY_BYTES`, and when the
  server listens on a non-loopback address, the access token printed in its startup URL.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import bottle

#: Largest request body a mutation may carry.
MAX_BODY_BYTES = 64 * 1024

#: Header (or ``?token=`` query parameter) carrying the access token.
TOKEN_HEADER = "X-DiveAnalyzer-Token"

#: Files next to the gallery that may be served (clips, thumbnails, manifest, pages).
SERVABLE_SUFFIXES = frozenset(
    {".html", ".css", ".js", ".json", ".vtt"}
    | {".jpg", ".jpeg", ".png", ".webp", ".gif", ".svg"}
    | {".mp4", ".webm", ".m4v", ".mov"}
)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def new_token() -> str:
    """A fresh access token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a bind address or a ``Host`` name, without port) is this machine only."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def safe_file(root: Path, name: str) -> Path | None:
    """The file ``name`` (a URL path below ``root``) if it may be served, else None."""
    root = root.resolve()
    path = PurePosixPath(name)
    if (
        not path.parts
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or any(part.startswith(".") for part in path.parts)
        or path.suffix.lower() not in SERVABLE_SUFFIXES
    ):
        return None
    target = (root / name).resolve()  # follows symlinks: a link out of root is refused below
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


def serve_file(root: Path, name: str) -> bottle.HTTPResponse:
    """``bottle.static_file`` (with ``Range`` support) for a `safe_file`, else a JSON 404."""
    target = safe_file(root, name)
    if target is None:
        raise bottle.HTTPError(404, f"Not found: {name[:200]!r}")
    resolved_root = root.resolve()
    return bottle.static_file(str(target.relative_to(resolved_root)), root=str(resolved_root))


class MutationGuard:
    """Checks every state-changing request; raises `bottle.HTTPError` (4xx) to refuse it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def token_required(self, environ: dict) -> bool:
        """Off loopback, every mutation needs the token (the bind address is SERVER_NAME)."""
        return not is_loopback_host(environ.get("SERVER_NAME", ""))

    def check(self, request: bottle.BaseRequest) -> None:
        """Origin, Host, token and Content-Type of a mutation, before its body is read."""
        host = (request.get_header("Host") or "").strip().lower()
        if not host:
            raise bottle.HTTPError(400, "A Host header is required.")
        self._check_origin(request.get_header("Origin"), host)
        if not self.token_required(request.environ) and not is_loopback_host(_hostname(host)):
            raise bottle.HTTPError(
                403, f"This server only answers changes addressed to localhost, not {host!r}."
            )
        if self.token_required(request.environ) and not self._has_token(request):
            raise bottle.HTTPError(
                403,
                "This server is shared on the network: changes need the access token from "
                "the URL printed when it started (?token=...).",
            )
        media_type = (request.get_header("Content-Type") or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise bottle.HTTPError(415, "Send the change as Content-Type: application/json.")

    def _check_origin(self, origin: str | None, host: str) -> None:
        if not origin:
            raise bottle.HTTPError(
                403, "An Origin header is required: changes are accepted from this site only."
            )
        parts = urlsplit(origin.strip().lower())
        if parts.scheme not in ("http", "https") or _netloc(parts) != _with_port(host):
            raise bottle.HTTPError(
                403, f"Cross-origin change refused: Origin {origin[:100]!r} is not this site."
            )

    def _has_token(self, request: bottle.BaseRequest) -> bool:
        given = request.get_header(TOKEN_HEADER) or request.query.get("token") or ""
        return hmac.compare_digest(given.encode(), self.token.encode())


def read_json_body(request: bottle.BaseRequest) -> object:
    """The request body parsed as JSON; 411/413/400 when it is absent, too big or invalid."""
    raw_length = request.environ.get("CONTENT_LENGTH") or ""
    if not raw_length.isdigit():
        raise bottle.HTTPError(411, "A Content-Length header is required.")
    length = int(raw_length)
    if length > MAX_BODY_BYTES:
        raise bottle.HTTPError(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    data = request.environ["wsgi.input"].read(length) if length else b""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bottle.HTTPError(400, "The body is not valid UTF-8 JSON.") from None


def _hostname(host: str) -> str:
    """``host`` without its port (keeps IPv6 brackets off)."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _with_port(host: str) -> str:
    return host if _has_port(host) else host + ":80"


def _has_port(host: str) -> bool:
    return host.rsplit("]", 1)[-1].count(":") == 1 if host.startswith("[") else ":" in host


def _netloc(parts) -> str:
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        return ""
    default = 443 if parts.scheme == "https" else 80
    return f"{host}:{port or default}"
