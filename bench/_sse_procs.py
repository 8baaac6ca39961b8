"""The load benchmark's helper processes: one line-protocol wrapper, and what /proc says.

`bench/sse_load.py` drives a server process (``_sse_server.py``) and client processes
(``_sse_clients.py``) through `Child`: a command line on stdin, one JSON reply on stdout,
every wait bounded so a crashed helper ends the run with a message, not a hang.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPLY_TIMEOUT_S = 600.0


class ServerDied(RuntimeError):
    """The server process stopped answering (crashed or refused connections)."""


class Child:
    """A helper process spoken to by lines on stdin/stdout, every wait bounded."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=HERE.parent, bufsize=0
        )
        self._buffer = b""

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def has_replied(self) -> bool:
        """Whether a reply is waiting to be read (never blocks)."""
        ready, _, _ = select.select([self.proc.stdout], [], [], 0)
        return bool(ready) or b"\n" in self._buffer

    def readline(self, timeout: float = REPLY_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply from pid {self.proc.pid} in {timeout:.0f} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError(f"pid {self.proc.pid} exited (code {self.proc.poll()})")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def ask(self, line: str, timeout: float = REPLY_TIMEOUT_S) -> dict:
        self.send(line)
        return json.loads(self.readline(timeout))

    def end(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=5)


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
