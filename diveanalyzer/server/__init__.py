"""The live event server: Server-Sent Events and the review gallery over HTTP.

``EventServer`` is the public API (see `event_server`)::

    from diveanalyzer.server import EventServer

    with EventServer(gallery_path="out/review_gallery.html", port=8765) as server:
        server.emit("dives_detected", {"dive_count": 5})
"""

from diveanalyzer.server.event_server import EventServer

__all__ = ["EventServer"]
