"""Entry point for ``diveanalyzer`` and ``python -m diveanalyzer``.

gevent's monkey-patching must happen before any other module (sockets, threads,
ssl) is imported, so it is the very first thing this module does.
"""

from gevent import monkey

monkey.patch_all()

from diveanalyzer.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
