"""One open ``/events`` stream: where its bytes go and what it still owes the client.

Once a stream's opening is written, the WSGI handler hands its connection over (see
`wsgi.EventWSGIHandler.detach_stream`) and the stream is just this object: a raw
non-blocking socket written from the gevent loop, with two libev watchers. A client that
keeps up costs one ``send`` per published batch and no greenlet at all; one that falls
behind keeps a bounded backlog that a "writable" watcher flushes. A parked greenlet per
client would cost more than the whole of this object (about 11 KiB on Python 3.11).

Without a socket to take over (the app mounted under another WSGI server) the stream stays
a generator: the backlog is read by `take`/`wait` in the response's own greenlet.

Everything here runs on the server's hub thread; watcher callbacks never block.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections import deque
from collections.abc import Callable

import gevent
import gevent.event

KEEPALIVE = b": keepalive\n\n"
#: Sent before closing a chunked stream cleanly (the last chunk of HTTP/1.1 chunked encoding).
LAST_CHUNK = b"0\r\n\r\n"
_READ, _WRITE = 1, 2  # libev event masks
_DRAIN_LIMIT = 64 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)
# struct tcp_info (linux/tcp.h): tcpi_snd_wnd, the peer's advertised window, since Linux 5.4.
_TCPI_SND_WND = struct.Struct("I")
_TCPI_SND_WND_OFFSET = 228


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of HTTP/1.1 chunked transfer encoding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Subscriber:
    """A client of ``/events``: its filter, its position, and its connection or backlog."""

    __slots__ = (
        "_backlog",
        "_backlog_events",
        "_last_reading",
        "_loop",
        "_on_end",
        "_peer_window",
        "_reader",
        "_sock",
        "_wakeup",
        "_writer",
        "capacity",
        "chunked",
        "closed",
        "last_sent",
        "last_write",
        "stalled_since",
        "types",
        "unread_since",
    )

    def __init__(
        self,
        types: frozenset[str] | None,
        *,
        chunked: bool,
        last_sent: int,
        capacity: int,
        on_end: Callable[[Subscriber, bool], None],
    ) -> None:
        self.types = types
        """Event types this client asked for with ``?types=``; None means every type."""
        self.chunked = chunked
        """Whether bytes written to the socket need HTTP/1.1 chunk framing."""
        self.last_sent = last_sent
        """Id of the newest event handed to this client (by its opening or live)."""
        self.capacity = capacity
        """Events it may fall behind by before it is cut off (``queue_size``)."""
        self.closed = False
        """True once the stream has ended or must end."""
        self.last_write = time.monotonic()
        """When bytes last went out (heartbeats are due after a silence)."""
        self.stalled_since: float | None = None
        """Since when the socket has refused bytes without progress; None while keeping up."""
        self.unread_since: float | None = None
        """Since when the client has not read what it received; None while it reads."""
        self._peer_window = 0
        self._last_reading = self.last_write
        self._backlog: deque[tuple[bytes, int]] | None = None  # (bytes, events in them)
        self._backlog_events = 0
        self._sock: socket.socket | None = None
        self._loop = None
        self._reader = self._writer = None
        self._wakeup: gevent.event.Event | None = None
        self._on_end = on_end

    def wants(self, event_type: str) -> bool:
        """Whether this subscriber's ``?types=`` filter lets ``event_type`` through."""
        return self.types is None or event_type in self.types

    @property
    def behind(self) -> bool:
        """Whether bytes are waiting because the client has not read what was sent."""
        return bool(self._backlog)

    # -- output -----------------------------------------------------------------------------

    def offer(self, data: bytes, events: int = 1) -> None:
        """Send ``data`` (``events`` events' worth) now, or queue it while the client is behind.

        A client more than ``capacity`` events behind is dropped (it may resume by id).
        """
        if self.closed or not data:
            return
        if self._sock is not None and not self._backlog:
            sent = self._send(data)
            if sent is None or sent == len(data):
                return
            data = data[sent:]
            self._start_writer()
        self._queue(data, events)
        if self._backlog_events > self.capacity:
            self._end(dropped=True)

    def keepalive(self) -> None:
        """A comment line that keeps proxies and browsers from timing the stream out."""
        self.offer(chunk(KEEPALIVE) if self.chunked else KEEPALIVE, 0)

    def take(self) -> bytes:
        """Everything queued, as one piece (generator mode)."""
        if not self._backlog:
            return b""
        data = b"".join(piece for piece, _events in self._backlog)
        self._backlog.clear()
        self._backlog_events = 0
        self.last_write = time.monotonic()
        return data

    def wait(self) -> None:
        """Block the calling greenlet until something is queued or the stream ends."""
        if self._backlog or self.closed:
            return
        if self._wakeup is None:
            self._wakeup = gevent.event.Event()
        self._wakeup.clear()
        self._wakeup.wait()

    def _queue(self, data: bytes, events: int) -> None:
        if self._backlog is None:
            self._backlog = deque()
        self._backlog.append((data, events))
        self._backlog_events += events
        if self._wakeup is not None:
            self._wakeup.set()

    def stuck_since(self, deadline: float) -> bool:
        """Whether, since before ``deadline``, writes made no progress or data lay unread."""
        for since in (self.stalled_since if self.behind else None, self.unread_since):
            if since is not None and since < deadline:
                return True
        return False

    def check_reading(self, now: float) -> None:
        """Sample whether the client reads what it receives (updates `unread_since`).

        A client that stops reading still has its kernel acknowledge our bytes until its
        receive buffer is full, which at a few events a second takes minutes; but the
        window it advertises shrinks as unread data piles up, and grows back when it reads.
        Under half the largest window seen, far more than an event or two is waiting (a
        busy client a little behind never gets there): the client is then taken to have
        stopped reading when its window was last nearly whole.
        """
        window = _peer_window(self._sock) if self._sock is not None else None
        if window is None:
            return
        best = self._peer_window = max(self._peer_window, window)
        if window * 10 >= best * 9:
            self._last_reading = now
        if window * 2 >= best:
            self.unread_since = None
        elif self.unread_since is None:
            self.unread_since = self._last_reading

    # -- the connection ---------------------------------------------------------------------

    def attach(self, sock: socket.socket, loop) -> None:
        """Take over the client's connection: write what queued up meanwhile, watch for EOF."""
        if self.closed:
            _close_quietly(sock)
            return
        sock.setblocking(False)
        self._sock = sock
        self._loop = loop
        self._reader = loop.io(sock.fileno(), _READ)
        self._reader.start(self._on_readable)
        if self._backlog:
            self._start_writer()
            self._flush()

    def _send(self, data: bytes) -> int | None:
        """Bytes the kernel took (0 when its buffer is full); None when the client is gone."""
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._end(dropped=False)
            return None
        if sent:
            self.last_write = time.monotonic()
            self.stalled_since = None
        elif self.stalled_since is None:
            self.stalled_since = time.monotonic()
        return sent

    def _start_writer(self) -> None:
        if self._writer is None and self._sock is not None:
            self._writer = self._loop.io(self._sock.fileno(), _WRITE)
            self._writer.start(self._flush)
            if self.stalled_since is None:
                self.stalled_since = time.monotonic()

    def _flush(self) -> None:
        """Write callback: send queued bytes until the socket is full again or all is out."""
        backlog = self._backlog
        while backlog and not self.closed:
            data, events = backlog[0]
            sent = self._send(data)
            if sent is None:
                return
            if sent < len(data):
                backlog[0] = (data[sent:], events)
                return
            backlog.popleft()
            self._backlog_events -= events
        if not backlog and not self.closed:
            self._stop_writer()

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer.close()
            self._writer = None

    def _on_readable(self) -> None:
        """Read callback: the client hung up (EOF: the stream ends), or sent bytes (ignored)."""
        try:
            data = self._sock.recv(_DRAIN_LIMIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._end(dropped=False)

    def _end(self, *, dropped: bool) -> None:
        if not self.closed:
            self._on_end(self, dropped)

    # -- the end ----------------------------------------------------------------------------

    def finish(self) -> None:
        """End cleanly: write what fits without waiting, mark the end of the body, close."""
        if self.closed:
            return
        self.closed = True
        if self._sock is not None:
            if self.chunked:
                self._queue(LAST_CHUNK, 0)
            self._write_what_fits()
        self._release(graceful=True)

    def _write_what_fits(self) -> None:
        """The backlog, as far as the socket takes it now; errors end it (we are closing)."""
        for data, _events in self._backlog or ():
            try:
                if self._sock.send(data) < len(data):
                    return
            except OSError:
                return

    def abort(self) -> None:
        """End now: forget queued bytes and reset the connection (frees kernel buffers too)."""
        self.closed = True
        if self._backlog:
            self._backlog.clear()
        self._release(graceful=False)

    def _release(self, *, graceful: bool) -> None:
        # Watchers go before the socket: libev must never watch a closed descriptor.
        self._stop_writer()
        if self._reader is not None:
            self._reader.stop()
            self._reader.close()
            self._reader = None
        if self._wakeup is not None:
            self._wakeup.set()
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if graceful:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        else:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        _close_quietly(sock)


def _peer_window(sock: socket.socket) -> int | None:
    """The receive window the client last advertised, or None where TCP_INFO cannot tell."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return None
    if len(info) < _TCPI_SND_WND_OFFSET + 4:
        return None
    return _TCPI_SND_WND.unpack_from(info, _TCPI_SND_WND_OFFSET)[0]


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
