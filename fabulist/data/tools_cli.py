"""The dataset tools as click commands, registered into `fabulist data` by the CLI.

    fabulist data stats fables.jsonl [--json] [--plot stats.png [--force]] [--near-threshold 0.8]
    fabulist data split fables.jsonl --out data/ [--valid-fraction 0.05] [--seed 0] [--safety drop|keep]
                                                 [--force]

Each command parses options and calls one function (`stats.compute_stats`, `split.split_dataset`). They
also turn bad input (`errors.one_line`) into one line on stderr and exit status 1 themselves, so they
behave the same when run on their own (tests, other groups) as inside the `fabulist` group.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from fabulist.cli_types import FINITE, SEED
from fabulist.errors import FabulistError, one_line


def _one_line_errors(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (FabulistError, OSError, UnicodeError, MemoryError) as exc:
            message = one_line(exc)  # the CLI's one mapping of bad input; None: a bug, keep the traceback
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            sys.exit(1)

    return wrapper


_near = click.option(
    "--near-threshold",
    type=FINITE,
    default=0.8,
    show_default=True,
    help="MinHash Jaccard (word 5-grams) at or above which two fables are near duplicates.",
)


@click.command("stats")
@click.argument("fables", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the text report.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG histogram.")
@click.option("--force", is_flag=True, help="Let --plot replace an existing file that is not a PNG.")
@_near
@_one_line_errors
def stats(fables: Path, as_json: bool, plot: Path | None, force: bool, near_threshold: float) -> None:
    """Counts, lengths, diversity, element coverage, duplicates, top sentences and safety of a fables file."""
    from fabulist.data.stats import check_plot_path, compute_stats, render_text, write_plot

    if plot and not force:
        check_plot_path(plot)
    result = compute_stats(fables, near_threshold=near_threshold)
    if plot:
        write_plot(result, plot)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        click.echo(render_text(result), nl=False)
        if plot:
            click.echo(f"plot: {plot}")


@click.command("split")
@click.argument("fables", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--valid-fraction", type=FINITE, default=0.05, show_default=True, help="Share of prompts.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the prompt-hash split.")
@_near
@click.option("--no-near-dedup", is_flag=True, help="Drop exact duplicates only.")
@click.option(
    "--safety",
    default="drop",
    show_default=True,
    help="drop: leave fables with a child-safety hit out of train/valid; keep: keep them. Both report them.",
)
@click.option("--force", is_flag=True, help="Overwrite existing outputs in --out.")
@_one_line_errors
def split(
    fables: Path,
    out_dir: Path,
    valid_fraction: float,
    seed: int,
    near_threshold: float,
    no_near_dedup: bool,
    safety: str,
    force: bool,
) -> None:
    """Drop duplicate and unsafe fables and split the rest by prompt into train/valid Parquet files."""
    from fabulist.data.split import split_dataset

    s = split_dataset(
        fables,
        out_dir,
        valid_fraction,
        seed,
        near_threshold,
        near_dedup=not no_near_dedup,
        force=force,
        safety=safety,
    )
    dropped = s["dropped"]
    click.echo(
        f"{s['records_in']:,} fables: dropped {dropped['exact_duplicates']:,} exact and "
        f"{dropped['near_duplicates']:,} near duplicates"
    )
    click.echo(_safety_line(s["safety"]))
    for name in ("train", "valid"):
        part = s[name]
        click.echo(
            f"  {name:<6}{part['records']:>10,} fables {part['prompts']:>10,} prompts "
            f"({part['fraction']:.1%})  {out_dir / part['file']}"
        )
    click.echo(f"  summary: {out_dir / 'split.json'}")


def _safety_line(safety: dict) -> str:
    """One line, e.g. `safety: 3 fables flagged (profanity 2, violence 1): dropped 3`."""
    flagged = safety["records_flagged"]
    if not flagged:
        return "safety: no fables flagged"
    counts = ", ".join(f"{name} {c['records']:,}" for name, c in safety["categories"].items() if c["records"])
    done = f"dropped {safety['dropped']:,}" if safety["mode"] == "drop" else "kept (--safety keep)"
    return f"safety: {flagged:,} fables flagged ({counts}): {done}"
