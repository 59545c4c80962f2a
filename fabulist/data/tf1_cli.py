"""TinyFabulist (TF1) import and export as click commands, registered into `fabulist data` by the CLI.

    fabulist data import tf_fables.jsonl [more.parquet ...] -o fables.jsonl [--errors bad.jsonl] [--force]
    fabulist data export-tf1 fables.jsonl -o tf1.jsonl [--force]

Each command parses options and calls one function of `fabulist.data.tf1` (`import_tf1`, `export_tf1`);
a FabulistError becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from fabulist.data.tools_cli import _one_line_errors

_out = click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output JSONL file."
)
_force = click.option("--force", is_flag=True, help="Overwrite existing output files.")


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_out
@click.option(
    "--errors",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where unreadable records go, with file, line and reason [default: <out stem>.errors.jsonl].",
)
@_force
@_one_line_errors
def import_command(files: tuple[Path, ...], out: Path, errors: Path | None, force: bool) -> None:
    """Import TinyFabulist fables (JSONL or Parquet) as Fabulist fable records with free-text elements."""
    from fabulist.data.tf1 import import_tf1

    c = import_tf1(files, out, errors, force=force)
    click.echo(
        f"read {c['read']:,} records: wrote {c['written']:,} fables to {c['output']} "
        f"({c['without_moral_line']:,} without a 'Moral:' line), {c['errors']:,} errors to {c['errors_file']}"
    )


@click.command("export-tf1")
@click.argument("fables", type=click.Path(dir_okay=False, path_type=Path))
@_out
@_force
@_one_line_errors
def export_tf1_command(fables: Path, out: Path, force: bool) -> None:
    """Write Fabulist fables in TinyFabulist's record layout (its newest pipeline's fields)."""
    from fabulist.data.tf1 import export_tf1

    count = export_tf1(fables, out, force=force)
    click.echo(f"wrote {count:,} fables in TF1 layout to {out}")
