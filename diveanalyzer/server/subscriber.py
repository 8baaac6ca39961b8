"""One open ``/events`` stream: a greenlet reading its own bounded queue.

The hub puts each event (already encoded, shared by every client) into every subscriber's
`gevent.queue.Queue`; a full queue means the client fell too far behind, and it is cut off
(it may resume by id). What reads the queue is the stream's own greenlet (while that
greenlet is idle and the socket takes the bytes at once, the hub's offer writes them
without a switch: see `Subscriber.offer`):

* Under our WSGI server, once the opening is written the handler hands the connection over
  (`wsgi.EventWSGIHandler.detach_stream`) and `Subscriber.run` becomes the stream: a fresh
  greenlet with a shallow stack that writes to the raw socket. Parked, it costs far less
  than the handler's greenlet would, deep inside pywsgi and Bottle (a whole stream is 13-15
  KiB in bench/sse_load.py; a bare pywsgi handler parked in a generator measured 17 KiB on
  Python 3.11), and a libev read watcher (no greenlet) notices the hang-up.
* Under another WSGI server, `Subscriber.stream()` is the response body: that server's
  greenlet for the request reads the queue.

Everything here runs on the server's hub thread; watcher callbacks never block.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Callable, Iterator

import gevent.queue
from gevent.socket import wait_write

KEEPALIVE = b": keepalive\n\n"
#: Sent before closing a chunked stream cleanly (the last chunk of HTTP/1.1 chunked encoding).
LAST_CHUNK = b"0\r\n\r\n"
_END = b""  # queued last: the stream ends once everything before it is written
_READ = 1  # libev event mask
_DRAIN_LIMIT = 64 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)
# struct tcp_info (linux/tcp.h): tcpi_snd_wnd, the peer's advertised window, since Linux 5.4.
_TCPI_SND_WND = struct.Struct("I")
_TCPI_SND_WND_OFFSET = 228


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of HTTP/1.1 chunked transfer encoding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class WriteStalled(OSError):
    """The client took none of our bytes for the whole write deadline."""


class Subscriber:
    """A client of ``/events``: its filter, its position, its queue and its connection."""

    __slots__ = (
        "_last_reading",
        "_on_end",
        "_peer_window",
        "_reader",
        "_sock",
        "_writing",
        "chunked",
        "closed",
        "last_sent",
        "last_write",
        "queue",
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
        """Whether queued bytes carry HTTP/1.1 chunk framing (the stream writes its socket)."""
        self.last_sent = last_sent
        """Id of the newest event handed to this client (by its opening or live)."""
        self.queue: gevent.queue.Queue = gevent.queue.Queue(capacity)
        """Writes waiting for the client (one per fan-out); full means it is cut off."""
        self.closed = False
        """True once the stream has ended or must end."""
        self.last_write = time.monotonic()
        """When bytes last went out (heartbeats are due after a silence)."""
        self.unread_since: float | None = None
        """Since when the client has not read what it received; None while it reads."""
        self._peer_window = 0
        self._last_reading = self.last_write
        self._sock: socket.socket | None = None
        self._writing = False  # the greenlet holds bytes it has not written yet
        self._reader = None
        self._on_end = on_end

    def wants(self, event_type: str) -> bool:
        """Whether this subscriber's ``?types=`` filter lets ``event_type`` through."""
        return self.types is None or event_type in self.types

    @property
    def behind(self) -> bool:
        """Whether writes are waiting for the stream's greenlet."""
        return not self.queue.empty()

    # -- the hub's side ---------------------------------------------------------------------

    def offer(self, data: bytes) -> None:
        """Queue ``data`` for the client; a client whose queue is full is dropped.

        While the stream's greenlet is idle (nothing queued, no write under way) the bytes
        are first offered to the socket without waiting: a client that keeps up then costs
        one ``send`` and no greenlet switch. Only what the socket does not take at once is
        queued, for the greenlet to write (waiting, with its deadline) in order.
        """
        if self.closed or not data:
            return
        if self._sock is not None and not self._writing and not self.queue.qsize():
            with contextlib.suppress(OSError):  # the greenlet's write meets it and ends the stream
                data = self._send_now(data)
            if not data:
                return
        try:
            self.queue.put_nowait(data)
        except gevent.queue.Full:
            self._on_end(self, True)

    def keepalive(self) -> None:
        """A comment line that keeps proxies and browsers from timing the stream out."""
        self.offer(chunk(KEEPALIVE) if self.chunked else KEEPALIVE)

    def finish(self) -> None:
        """End cleanly: what is queued goes out first (unless the queue is full: then the
        client is too far behind to catch up anyway), then the stream closes."""
        if not self.closed:
            self.closed = True
            self._queue_end()

    def abort(self) -> None:
        """End now: forget what is queued and reset the connection (frees kernel buffers)."""
        self.closed = True
        self.queue.queue.clear()
        self._queue_end()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes a write waiting on the socket

    def _queue_end(self) -> None:
        if self.queue.full():
            self.queue.queue.clear()  # a full queue is the reason it ends: nothing to keep
        self.queue.put_nowait(_END)

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

    # -- the stream's side ------------------------------------------------------------------

    def stream(self) -> Iterator[bytes]:
        """What the client gets, as it comes (the response body under another WSGI server)."""
        while (data := self._next()) is not None:
            yield data

    def _next(self) -> bytes | None:
        """Wait for the next write: everything queued, in one piece; None once it ends."""
        queue = self.queue
        data = queue.get()
        if data is _END:
            return None
        if queue.qsize():
            pieces = [data]
            while queue.qsize() and queue.peek_nowait() is not _END:
                pieces.append(queue.get_nowait())
            data = b"".join(pieces)
        return data

    def run(self, sock: socket.socket, loop, write_timeout: float) -> None:
        """Body of the stream's greenlet once it owns the connection: write until the end.

        A write that makes no progress for ``write_timeout`` seconds drops the client.
        """
        self._sock = sock
        sock.setblocking(False)
        self._reader = loop.io(sock.fileno(), _READ)
        self._reader.start(self._on_readable)
        clean = dropped = False
        try:
            while (data := self._next()) is not None:
                self._writing = True
                self._write(data, write_timeout)
                self._writing = False
            if self.chunked:
                self._write(LAST_CHUNK, write_timeout)
            clean = True
        except WriteStalled:
            dropped = True
        except OSError:
            pass  # the client went away, or was reset by `abort`
        finally:
            self._release(graceful=clean)
            self._on_end(self, dropped)

    def _write(self, data: bytes, timeout: float) -> None:
        while data := self._send_now(data):
            wait_write(self._sock.fileno(), timeout, WriteStalled("client stopped reading"))

    def _send_now(self, data: bytes) -> bytes:
        """Send what the socket takes without waiting; return the rest (empty: all went)."""
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            return data
        if sent:
            self.last_write = time.monotonic()
        return data[sent:]

    def _on_readable(self) -> None:
        """Read callback: the client hung up (EOF: the stream ends), or sent bytes (ignored)."""
        try:
            data = self._sock.recv(_DRAIN_LIMIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stop_reader()  # EOF stays readable: stop before it fires again
            self.finish()

    def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.stop()
            self._reader.close()
            self._reader = None

    def _release(self, *, graceful: bool) -> None:
        # The watcher goes before the socket: libev must never watch a closed descriptor.
        self._stop_reader()
        self.closed = True
        sock, self._sock = self._sock, None
        if graceful:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        else:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        with contextlib.suppress(OSError):
            sock.close()


def _peer_window(sock: socket.socket) -> int | None:
    """The receive window the client last advertised, or None where TCP_INFO cannot tell."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return None
    if len(info) < _TCPI_SND_WND_OFFSET + 4:
        return None
    return _TCPI_SND_WND.unpack_from(info, _TCPI_SND_WND_OFFSET)[0]
