"""DiveAnalyzer: find every dive in a session video and review them live.

Kept import-free on purpose: the entry points must be able to run
``gevent.monkey.patch_all()`` before anything else is imported.
"""

__version__ = "0.1.0"
