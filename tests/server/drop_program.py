"""A monkey-patched server for test_slow_drop.py: tiny queues, a fast publisher on command.

Run as ``python drop_program.py GALLERY QUEUE_SIZE CLIENT_TIMEOUT``; prints ``READY <port>``.
Commands on stdin: ``publish COUNT PAD`` emits COUNT ``tick`` events (payload ``{"seq", "pad"}``)
as fast as the hub lets it and answers ``DONE COUNT``; ``quit`` stops the server and exits.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402

from diveanalyzer.server import EventServer  # noqa: E402

#: Greenlets that keep the hub's callback queue long while publishing, as hundreds of busy
#: streams do: gevent then runs only part of the queued callbacks per loop iteration.
BUSY = 200


def churn() -> None:
    while True:
        sum(range(3000))
        gevent.sleep(0)


def main(gallery: str, queue_size: int, client_timeout: float) -> None:
    server = EventServer(
        gallery,
        host="127.0.0.1",
        port=0,
        log_level="ERROR",
        queue_size=queue_size,
        client_timeout=client_timeout,
    )
    if not server.start():
        print(f"ERROR {server.start_error}", flush=True)
        sys.exit(2)
    print(f"READY {server.get_url().rsplit(':', 1)[1]}", flush=True)
    commands = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    try:
        for _ in range(1000):
            words = commands.readline().decode().split()
            if not words or words[0] == "quit":
                break
            if words[0] == "publish":
                count, pad = int(words[1]), "x" * int(words[2])
                busy = [gevent.spawn(churn) for _ in range(BUSY)]
                for seq in range(count):
                    server.emit("tick", {"seq": seq, "pad": pad})
                    gevent.sleep(0.002 if seq % 4 == 0 else 0)
                gevent.killall(busy)
                print(f"DONE {count}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
