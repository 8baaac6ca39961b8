"""A monkey-patched program embedding EventServer, driven by test_modes.py over stdin.

Run as ``python patched_program.py GALLERY PORT``. Commands (one per line on stdin):
``emit N`` emits N events from each of 3 greenlets, 3 gevent-threadpool threads and the main
greenlet; ``stop``/``start`` call the server; ``quit`` exits. Each command answers one line.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402

from diveanalyzer.server import EventServer  # noqa: E402


def emit_from_everywhere(server: EventServer, count: int) -> int:
    def emitter(who: str) -> None:
        for seq in range(count):
            server.emit("tick", {"who": who, "seq": seq})
            if who.startswith("g"):
                gevent.sleep(0)

    greenlets = [gevent.spawn(emitter, f"g{n}") for n in range(3)]
    pool = gevent.get_hub().threadpool
    pooled = [pool.spawn(emitter, f"p{n}") for n in range(3)]
    emitter("main")
    gevent.joinall(greenlets + pooled, raise_error=True)
    return 7 * count


def main() -> None:
    gallery, port = sys.argv[1], int(sys.argv[2])
    server = EventServer(gallery, host="127.0.0.1", port=port, heartbeat_interval=0.5)
    started = server.start()
    # Native threads of this process: 1 means the server runs on the main thread's hub.
    print("START", started, server.get_url(), len(os.listdir("/proc/self/task")), flush=True)
    stdin = FileObjectPosix(sys.stdin.fileno(), "r")  # cooperative: the server keeps serving
    for line in stdin:
        command, *args = line.split()
        if command == "emit":
            print("EMITTED", emit_from_everywhere(server, int(args[0])), flush=True)
        elif command == "stop":
            print("STOPPED", server.stop(), server.is_running(), flush=True)
        elif command == "start":
            print("START", server.start(), server.get_url(), server.start_error, flush=True)
        elif command == "quit":
            break
    server.stop()


if __name__ == "__main__":
    main()
