"""gevent's WSGI server, hardened for long-lived streams and untrusted clients.

* every connection gets a socket timeout: a write blocked that long (client not reading)
  or an idle keep-alive connection is dropped;
* request headers are limited in total size (431), an over-long request line gets 414, and
  malformed requests get 400, all with JSON bodies and without tracebacks in the log;
* an ``/events`` stream can take its connection away from the handler once its opening
  is written (`EventWSGIHandler.detach_stream`): the stream's own, far smaller greenlet
  then writes to it and the handler's greenlet ends.
"""

from __future__ import annotations

import _socket
import errno

from gevent.pywsgi import WSGIHandler, WSGIServer

from diveanalyzer.server.app import DETACH_ENVIRON_KEY, SOCKET_ENVIRON_KEY, raw_json_error
from diveanalyzer.server.hub import Hub

#: Total bytes of request headers accepted (browsers send a few KiB at most).
MAX_HEADER_BYTES = 32 * 1024


class HeadersTooLarge(ValueError):
    """The request headers exceed `MAX_HEADER_BYTES` (HTTP 431)."""


class _BoundedReader:
    """Lets the header parser read at most ``budget`` bytes of lines from ``fp``."""

    def __init__(self, fp, budget: int) -> None:
        self._fp = fp
        self._remaining = budget

    def readline(self, limit: int = -1) -> bytes:
        if self._remaining < 0:
            raise HeadersTooLarge(f"request headers exceed {MAX_HEADER_BYTES} bytes")
        size = self._remaining + 1
        if limit is not None and limit >= 0:
            size = min(limit, size)
        line = self._fp.readline(size)
        self._remaining -= len(line)
        if self._remaining < 0:
            raise HeadersTooLarge(f"request headers exceed {MAX_HEADER_BYTES} bytes")
        return line


class EventWSGIHandler(WSGIHandler):
    """Per-connection handler; see the module docstring for what it adds."""

    # Errors meaning "the client went away or was cut off": not worth a traceback.
    ignored_socket_errors = (
        *WSGIHandler.ignored_socket_errors,
        errno.ETIMEDOUT,
        errno.EBADF,
        errno.ENOTCONN,
        errno.ESHUTDOWN,
    )

    def handle(self) -> None:
        self.socket.settimeout(self.server.client_timeout)
        super().handle()

    def MessageClass(self, fp, *args):
        return super().MessageClass(_BoundedReader(fp, MAX_HEADER_BYTES), *args)

    def get_environ(self) -> dict:
        environ = super().get_environ()
        environ[SOCKET_ENVIRON_KEY] = self.socket
        environ[DETACH_ENVIRON_KEY] = self.detach_stream
        return environ

    def detach_stream(self) -> _socket.socket:
        """Give up the connection, mid-response, to whoever writes the rest of the body.

        The handler then finishes without writing anything more (no last chunk: the new
        owner ends the body) and without closing the socket. gevent's ``detach`` releases
        its own loop watchers first, so the descriptor is never watched twice.
        """
        self.response_use_chunked = False
        self.close_connection = True
        return _socket.socket(fileno=self.socket.detach())

    def handle_one_request(self):
        result = super().handle_one_request()
        if isinstance(result, tuple) and result[0] == "414":
            return ("414", raw_json_error(414, "The request line is too long."))
        return result

    def _handle_client_error(self, ex: Exception):
        """A request we cannot parse: JSON 4xx, one debug log line, no traceback."""
        if isinstance(ex, OSError) and not isinstance(ex, ValueError):
            return None  # the connection failed or timed out while reading: just close it
        self.server.log.write(f"rejected request from {self.client_address}: {ex}")
        if isinstance(ex, HeadersTooLarge):
            return ("431", raw_json_error(431, str(ex)))
        return ("400", raw_json_error(400, "The request could not be parsed."))

    def _sendall(self, data: bytes) -> None:
        try:
            super()._sendall(data)
        except TimeoutError as exc:
            # The client stopped reading: its socket buffer stayed full for client_timeout.
            self.server.event_hub.count_dropped()
            raise OSError(errno.ETIMEDOUT, "client stopped reading") from exc


class EventWSGIServer(WSGIServer):
    """`WSGIServer` using `EventWSGIHandler`, knowing the hub (for drop counts)."""

    handler_class = EventWSGIHandler

    def __init__(self, listener, application, *, event_hub: Hub, client_timeout: float, **kwargs):
        super().__init__(listener, application, **kwargs)
        self.event_hub = event_hub
        self.client_timeout = client_timeout
