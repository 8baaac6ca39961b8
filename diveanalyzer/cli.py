"""The ``diveanalyzer`` command line: parses options, calls one library function each."""

from __future__ import annotations

import sys

import click

from diveanalyzer import __version__
from diveanalyzer.cli_options import detect_settings, detection_options
from diveanalyzer.errors import DiveAnalyzerError


class Group(click.Group):
    """A click group that turns library errors into one-line messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DiveAnalyzerError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="diveanalyzer")
def cli() -> None:
    """Find every dive in a training-session video and review them live.

    Run `diveanalyzer COMMAND --help` for the options of each command.
    """


# -- detect / eval --------------------------------------------------------------------


def _run_detection(video: str, settings):
    """detect_dives with a progress bar on stderr (shown once the video has opened)."""
    from diveanalyzer.detect import detect_dives

    bar = None
    shown = 0

    def progress(stage: str, fraction: float) -> None:
        nonlocal bar, shown
        if bar is None:
            bar = click.progressbar(length=1000, label="detecting", file=sys.stderr)
            bar.__enter__()
        target = int(1000 * min(1.0, max(0.0, fraction)))
        if target > shown:
            bar.update(target - shown)
            shown = target

    try:
        return detect_dives(video, settings, progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


@cli.command()
@click.argument("video", metavar="VIDEO")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (video, settings, dives).")
@detection_options
def detect(video, as_json, confidence, water_zone, board_zone, no_person, full_scan):
    """Find the dives in VIDEO and print them (no clips are written).

    Each dive has its water entry time, its takeoff (when the diver was seen leaving the
    board), suggested clip bounds, a confidence in [0, 1] and the signals that agree.
    """
    import json

    from diveanalyzer.detect import format_table

    settings = detect_settings(confidence, water_zone, board_zone, no_person, full_scan)
    result = _run_detection(video, settings)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(format_table(result))


@cli.command("eval")
@click.argument("ground_truth", metavar="GROUND_TRUTH.json")
@click.argument("detections", metavar="(VIDEO | DETECTIONS.json)")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option(
    "--tolerance",
    type=click.FloatRange(0.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Largest entry error (s) that still counts as a match.",
)
def eval_command(ground_truth, detections, as_json, tolerance):
    """Score detections against GROUND_TRUTH.json (e.g. written by `diveanalyzer synth`).

    The second argument is either a detections JSON (`detect --json` output) or a video,
    which is then detected with the default settings. Detected and true entries are
    matched one-to-one, closest first, within the tolerance.
    """
    import json

    from diveanalyzer.evaluate import evaluate, format_report, load_dives
    from diveanalyzer.settings import DetectSettings

    truth = load_dives(ground_truth)
    if detections.lower().endswith(".json"):
        found = load_dives(detections)
    else:
        result = _run_detection(detections, DetectSettings())
        found = [d.to_dict() for d in result.dives]
    report = evaluate(found, truth, tolerance)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(format_report(report))


# -- synth ------------------------------------------------------------------------------

_SYNTH_PARTS = (
    "swimmers",
    "walkers",
    "shouts",
    "whistles",
    "claps",
    "crowd",
    "diver",
    "splash-visual",
    "splash-sound",
)


def _size_option(ctx, param, value):
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WxH, e.g. 854x480, got {value!r}") from None
    return width, height


def _times_option(ctx, param, value):
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected seconds separated by commas, got {value!r}") from None


@cli.command()
@click.argument("out", metavar="OUT.mp4", type=click.Path(dir_okay=False))
@click.option("--duration", type=float, default=60.0, show_default=True, help="Length, seconds.")
@click.option("--dives", type=click.IntRange(0), default=4, show_default=True, help="How many.")
@click.option(
    "--min-gap", type=float, default=8.0, show_default=True, help="Least seconds between entries."
)
@click.option(
    "--size",
    callback=_size_option,
    default="854x480",
    show_default=True,
    metavar="WxH",
    help="Upright frame size in pixels (even numbers).",
)
@click.option("--fps", type=float, default=30.0, show_default=True, help="Frame rate.")
@click.option("--no-audio", is_flag=True, help="Write no audio stream at all.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--boards",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="Boards; with 2, dives alternate boards and may be seconds apart.",
)
@click.option(
    "--entries",
    callback=_times_option,
    metavar="T1,T2,...",
    help="Exact entry times in seconds (overrides --dives and --min-gap).",
)
@click.option(
    "--shouts-at",
    callback=_times_option,
    metavar="T1,T2,...",
    help="Exact times of the shouts instead of random ones.",
)
@click.option(
    "--rotate",
    type=click.Choice(["0", "90", "180", "270"]),
    default="0",
    show_default=True,
    help="Store frames turned, with a display matrix that turns them upright (portrait phone).",
)
@click.option(
    "--without",
    multiple=True,
    type=click.Choice(_SYNTH_PARTS),
    help="Leave out one part of the scene or soundtrack (repeatable).",
)
@click.option("--no-distractors", is_flag=True, help="No swimmers, walkers, shouts, claps, crowd.")
@click.option("--preset", default="ultrafast", show_default=True, help="libx264 speed preset.")
def synth(
    out,
    duration,
    dives,
    min_gap,
    size,
    fps,
    no_audio,
    seed,
    boards,
    entries,
    shouts_at,
    rotate,
    without,
    no_distractors,
    preset,
):
    """Render a synthetic diving session to OUT.mp4 and its ground truth to OUT.json.

    The video (H.264 + AAC) shows a pool, a board and a diver who walks out, takes off, flies
    and enters the water with a splash you can see and hear, among distractors: swimmers,
    people walking on the deck, shouts and whistles louder than the splashes, claps and crowd
    noise. The same options and seed always give the same session. OUT.json lists each
    dive's `takeoff` and `entry` in seconds, the zones, and every distractor.
    """
    from pathlib import Path

    from diveanalyzer.synth import SynthSettings, frame_count, plan_session, render_session

    left_out = set(without)
    if no_distractors:
        left_out |= {"swimmers", "walkers", "shouts", "whistles", "claps", "crowd"}
    settings = SynthSettings(
        duration=duration,
        dives=dives,
        min_gap=min_gap,
        width=size[0],
        height=size[1],
        fps=fps,
        audio=not no_audio,
        seed=seed,
        boards=boards,
        rotate=int(rotate),
        entries=entries,
        shout_times=shouts_at,
        preset=preset,
        **{part.replace("-", "_"): False for part in left_out},
    )
    plan_session(settings)  # a session that cannot be made fails before the progress bar
    with click.progressbar(length=frame_count(settings), label="rendering", file=sys.stderr) as bar:
        done = [0]

        def progress(frames_done: int, total: int) -> None:
            bar.update(frames_done - done[0])
            done[0] = frames_done

        truth = render_session(out, settings, progress=progress)
    json_path = str(Path(out).with_suffix(".json"))
    click.echo(f"wrote {out} (dives: {len(truth.dives)}) and {json_path}")


# -- process / demo (their own module; shared options live in cli_options) -------------

from diveanalyzer import cli_process  # noqa: E402

cli.add_command(cli_process.process)
cli.add_command(cli_process.demo)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="diveanalyzer")


if __name__ == "__main__":
    sys.exit(main())
