"""The ``diveanalyzer`` command line: parses options, calls one library function each."""

from __future__ import annotations

import sys

import click

from diveanalyzer import __version__
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="diveanalyzer")


if __name__ == "__main__":
    sys.exit(main())
