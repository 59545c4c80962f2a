"""The `fabulist` command: one group per pipeline stage, each subcommand a thin wrapper over one function.

fabulist --help
"""

from __future__ import annotations

import sys

import click

from fabulist import __version__
from fabulist.errors import FabulistError


class _Group(click.Group):
    """A click group that turns FabulistError into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FabulistError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo(
                "interrupted: what was written so far is kept; run the same command to resume", err=True
            )
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fabulist")
def main() -> None:
    """Fabulist: moral fables from synthetic data to small on-device language models.

    Stage 1 (data): element lists -> combinatorial prompts -> fables from a teacher -> stats and splits.
    """


@main.group()
def data() -> None:
    """Stage 1: prompts, fables from a teacher, dataset statistics and splits."""


@data.command("elements")
@click.option(
    "--kind", type=click.Choice(["character", "trait", "setting", "conflict", "resolution", "moral"])
)
def data_elements(kind: str | None) -> None:
    """List the shipped element lists (or one of them) and the size of the combination space."""
    from fabulist.data import elements

    if kind:
        for e in elements.load(kind):
            click.echo(f"{e.id}\t{elements.label(kind, e)}")
        return
    total = 1
    for k, items in elements.load_all().items():
        total *= len(items)
        click.echo(f"{k + 's':<12} {len(items):>5}")
    click.echo(f"{'combinations':<12} {total:,}")


if __name__ == "__main__":
    main()
