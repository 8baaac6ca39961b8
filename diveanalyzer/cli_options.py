"""Click options shared by the ``detect`` and ``process`` commands."""

from __future__ import annotations

import click


def _zone_option(ctx, param, value):
    """Parse an ``x,y,w,h`` zone; a bad string is a usage error naming the option."""
    if value is None:
        return None
    from diveanalyzer.model import Zone

    try:
        return Zone.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


_DETECTION_OPTIONS = (
    click.option(
        "--confidence",
        type=click.FloatRange(0.0, 1.0),
        default=0.5,
        show_default=True,
        help="Keep dives with at least this fused confidence.",
    ),
    click.option(
        "--water-zone",
        callback=_zone_option,
        metavar="X,Y,W,H",
        help="Where the water is, as fractions of the frame (default: estimated).",
    ),
    click.option(
        "--board-zone",
        callback=_zone_option,
        metavar="X,Y,W,H",
        help="Where the board is, as fractions of the frame (default: estimated).",
    ),
    click.option("--no-person", is_flag=True, help="Skip the takeoff (person) detector: faster."),
    click.option(
        "--full-scan",
        is_flag=True,
        help="Scan the whole video for water motion (automatic without usable audio).",
    ),
)


def detection_options(function):
    """Add --confidence, --water-zone, --board-zone, --no-person and --full-scan."""
    for option in reversed(_DETECTION_OPTIONS):
        function = option(function)
    return function


def detect_settings(confidence, water_zone, board_zone, no_person, full_scan):
    """The DetectSettings that the detection options' values ask for."""
    from diveanalyzer.settings import DetectSettings

    return DetectSettings(
        confidence=confidence,
        water_zone=water_zone,
        board_zone=board_zone,
        use_person=not no_person,
        full_scan=full_scan,
    )


def history_option(function):
    """Add --history (events kept for resume; the Redis Stream's length with --broker)."""
    return click.option(
        "--history",
        default=1000,
        show_default=True,
        type=click.IntRange(1, 1_000_000),
        help="Events kept for viewers that reconnect (Last-Event-ID) and /events/history; "
        "with --broker the Redis Stream is trimmed to about this many.",
    )(function)


def broker_options(function):
    """Add --broker, --broker-key and --history (events shared through a Redis Stream)."""
    function = history_option(function)
    function = click.option(
        "--broker-key",
        default="diveanalyzer:events",  # broker.DEFAULT_KEY (not imported: keeps startup fast)
        show_default=True,
        help="Name of the Redis Stream holding the events.",
    )(function)
    return click.option(
        "--broker",
        metavar="URL",
        help="Also publish the live events to Redis (e.g. redis://localhost:6379/0), for "
        "`python -m diveanalyzer.serve DIR --broker URL` servers on any machine.",
    )(function)
