"""Handing work between native threads and a gevent hub without touching gevent objects
from the wrong thread: an inbox drained on the hub thread (woken by the loop's ``async``
watcher, which is safe to signal from any thread), and a latch and a signal native threads
can wait on.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable

import gevent
from gevent import monkey

# The real primitives even in a monkey-patched program: they must work across native threads.
real_get_ident = monkey.get_original("_thread", "get_ident")
real_lock = monkey.get_original("_thread", "allocate_lock")


class Latch:
    """A one-shot flag a native thread can wait for (built on a real lock)."""

    def __init__(self) -> None:
        self._guard = real_lock()
        self._is_set = False
        self._lock = real_lock()
        self._lock.acquire()

    def set(self) -> None:
        with self._guard:
            if self._is_set:
                return
            self._is_set = True
        self._lock.release()  # exactly once: waiters take and give back the lock

    def wait(self, timeout: float) -> bool:
        if self._lock.acquire(timeout=timeout):
            self._lock.release()
            return True
        return False


class Inbox:
    """Work handed to the hub thread from any thread, run there in arrival order.

    Created on the hub thread. `put` never blocks beyond a tiny critical section and keeps
    each thread's order (one FIFO). On the hub thread itself it runs the work at once, after
    anything queued before, so causally ordered emits keep their order across threads too.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._lock = real_lock()
        self._items: deque[tuple[Callable, tuple]] = deque()
        self._open = True
        self.thread_ident = real_get_ident()
        self._watcher = gevent.get_hub().loop.async_()
        self._watcher.start(self._drain)

    def put(self, func: Callable, *args) -> bool:
        """Queue ``func(*args)`` for the hub thread; False once the inbox is closed."""
        with self._lock:
            if not self._open:
                return False
            self._items.append((func, args))
            if real_get_ident() != self.thread_ident:
                self._watcher.send()
                return True
        self._drain()
        return True

    def _drain(self) -> None:
        while True:
            try:
                func, args = self._items.popleft()
            except IndexError:
                return
            try:
                func(*args)
            except Exception:
                self._logger.exception("event server: queued call %r failed", func)

    def close(self) -> None:
        """Refuse new work, run what is queued, release the watcher (on the hub thread)."""
        with self._lock:
            self._open = False
        self._drain()
        self._watcher.stop()
        self._watcher.close()


def release_thread_hub() -> None:
    """Destroy the gevent hub a patched socket may have created on this thread."""
    from gevent._hub_local import get_hub_if_exists

    hub = get_hub_if_exists()
    if hub is not None:
        with contextlib.suppress(Exception):
            hub.destroy(destroy_loop=True)


class Signal:
    """Wakes one waiting thread (real locks: works across threads in patched programs)."""

    def __init__(self) -> None:
        self._guard = real_lock()
        self._lock = real_lock()
        self._lock.acquire()  # held while there is nothing to do
        self._pending = False

    def set(self) -> None:
        with self._guard:
            if self._pending:
                return
            self._pending = True
        self._lock.release()

    def wait(self, timeout: float) -> None:
        """Return when set (then reset) or after ``timeout`` seconds."""
        if self._lock.acquire(timeout=timeout):
            with self._guard:
                self._pending = False
