"""`fabulist data`: element lists -> prompts -> fables from a teacher -> stats, splits, TF1 import/export."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fabulist.cli_types import FINITE, NON_NEGATIVE, POSITIVE, SEED, UNIT


@click.group()
def data() -> None:
    """Stage 1: prompts, fables from a teacher, dataset statistics and splits."""


@data.command("elements")
@click.option(
    "--kind", type=click.Choice(["character", "trait", "setting", "conflict", "resolution", "moral"])
)
def data_elements(kind: str | None) -> None:
    """List the shipped element lists (or one of them) and the size of the combination space."""
    from fabulist import elements

    if kind:
        for e in elements.load(kind):
            click.echo(f"{e.id}\t{elements.label(kind, e)}")
        return
    total = 1
    for k, items in elements.load_all().items():
        total *= len(items)
        click.echo(f"{k + 's':<12} {len(items):>5}")
    click.echo(f"{'combinations':<12} {total:,}")


def _parse_fixed(values: tuple[str, ...]) -> dict[str, str]:
    fixed = {}
    for value in values:
        kind, sep, element_id = value.partition("=")
        if not sep or not element_id:
            raise click.BadParameter(f"{value!r}: expected KIND=ID, e.g. character=fox", param_hint="--fix")
        fixed[kind] = element_id
    return fixed


@data.command("prompts")
@click.option("--count", "-n", type=click.IntRange(min=1), required=True,
              help="How many prompts (distinct combinations, >= 1).")  # fmt: skip
@click.option("--seed", type=SEED, default=0, show_default=True, help="Sampling seed.")
@click.option("--shard", default="0/1", show_default=True, help="i/n: this machine's part of the space.")
@click.option(
    "--region",
    type=click.Choice(["train", "eval"]),
    default="train",
    show_default=True,
    help="train never returns the (character, moral) pairs reserved for evaluation; eval only those.",
)
@click.option(
    "--variants",
    default="full=0.7,partial=0.15,beginning=0.15",
    show_default=True,
    help="Weights of the prompt variants.",
)
@click.option("--fix", multiple=True, metavar="KIND=ID", help="Fix an element, e.g. --fix character=fox.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), required=True, help="Output JSONL.")
@click.option("--force", is_flag=True, help="Replace --out even when it is not a prompts file.")
def data_prompts(count, seed, shard, region, variants, fix, out, force) -> None:
    """Sample distinct element combinations and write one prompt record per line.

    The same seed and shard give the same prompts; a larger --count extends a smaller one. The file is
    written to a temporary name and renamed, so an existing output is never half-overwritten; an existing
    file that is not a prompts file (fables, anything else) is only replaced with --force.
    """
    from tqdm import tqdm

    from fabulist.data import prompts
    from fabulist.records import dumps, write_atomic

    weights = prompts.parse_variants(variants)
    records = prompts.sample(count, seed, shard, region, weights, _parse_fixed(fix))
    lines = [dumps(r) + "\n" for r in tqdm(records, total=count, unit="prompt", disable=count < 20000)]
    if not force:
        prompts.check_replaceable(out)
    write_atomic(out, "".join(lines))
    click.echo(f"wrote {len(lines):,} prompts to {out} (region {region}, shard {shard}, seed {seed})")


@data.command("generate")
@click.option("--prompts", "prompts_path", type=click.Path(dir_okay=False), required=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False), required=True, help="Fables JSONL (appended).")
@click.option(
    "--teacher",
    type=click.Choice(["auto", "procedural", "procedural-v1", "openai"]),
    default="auto",
    show_default=True,
    help="auto: openai when --base-url, --model or OPENAI_BASE_URL is given, else procedural (v2); "
    "procedural-v1: the frozen grammar the shipped fable-5m was trained on.",
)
@click.option("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (vLLM).")
@click.option("--model", help="Teacher model name, e.g. gpt-4o-mini.")
@click.option("--concurrency", type=int, default=8, show_default=True, help="Requests in flight.")
@click.option("--timeout", type=POSITIVE, default=120.0, show_default=True,
              help="Seconds per request, from sending it to the last byte of the reply.")  # fmt: skip
@click.option("--max-retries", type=int, default=5, show_default=True,
              help="Retries per prompt (a server's Retry-After is obeyed up to 60 s).")  # fmt: skip
@click.option("--backoff", type=NON_NEGATIVE, default=1.0, show_default=True, help="Base retry delay (s).")
@click.option("--temperature", type=NON_NEGATIVE, default=1.0, show_default=True)
@click.option("--top-p", type=UNIT)
@click.option("--max-tokens", type=int, default=800, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Teacher seed.")
@click.option("--max-cost", type=NON_NEGATIVE, help="Stop cleanly once this many USD are spent.")
@click.option("--prices", type=click.Path(dir_okay=False), help="JSON price table {model: [in, out]}.")
@click.option("--price-in", type=NON_NEGATIVE, help="USD per million input tokens (overrides the table).")
@click.option("--price-out", type=NON_NEGATIVE, help="USD per million output tokens (overrides the table).")
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False), help="Default: OUT.errors.jsonl")
@click.option("--limit", type=click.IntRange(min=1), help="Write at most this many new fables (>= 1).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_generate(prompts_path, out, teacher, base_url, model, concurrency, timeout, max_retries, backoff,
                  temperature, top_p, max_tokens, seed, max_cost, prices, price_in, price_out, errors_path,
                  limit, as_json) -> None:  # fmt: skip
    """Write one fable per prompt with a teacher, exactly once and resumably.

    Rerun the same command after a crash or a stop: prompts already written are skipped, failed ones
    (see the errors file) are tried again. The API key is read from OPENAI_API_KEY only.
    """
    import json
    import os

    from fabulist.data.generate import generate, summary_dict
    from fabulist.data.teachers import base

    if teacher == "auto":
        teacher = "openai" if (base_url or model or os.environ.get("OPENAI_BASE_URL")) else "procedural"
    budget = base.Budget(max_cost=max_cost)
    if teacher in ("procedural", "procedural-v1"):
        from fabulist.data.teachers.procedural import ProceduralTeacher

        worker = ProceduralTeacher(seed=seed, version="v1" if teacher == "procedural-v1" else "v2")
    else:
        from fabulist.data.teachers.api import APITeacher

        if not model:
            raise click.UsageError("--model is required with the openai teacher")
        worker = APITeacher(
            model, base_url, concurrency=concurrency, timeout=timeout, max_retries=max_retries,
            backoff=backoff, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
        )  # fmt: skip
        known = base.price_for(model, base.load_prices(prices))
        budget.price_in, budget.price_out = known or (0.0, 0.0)
        budget.price_in = price_in if price_in is not None else budget.price_in
        budget.price_out = price_out if price_out is not None else budget.price_out
        if known is None and price_in is None and price_out is None:
            click.echo(
                f"note: no price known for {model!r}; cost shows as 0 (use --price-in/--price-out)", err=True
            )
        if max_cost is not None and not (budget.price_in or budget.price_out):
            raise click.UsageError(
                "--max-cost needs a price: the model is not in the table; give --price-in/out"
            )
    summary = generate(prompts_path, out, worker, budget, errors_path, limit, progress=not as_json)
    if as_json:
        click.echo(json.dumps(summary_dict(summary)))
    else:
        _echo_summary(summary, out)
    if summary.failed and not summary.written:
        raise base.TeacherError(
            f"all {summary.failed:,} prompts tried failed and no fable was written; the reasons are in the "
            "errors file (rerun the same command to retry them)"
        )


def _echo_summary(s, out) -> None:
    click.echo(
        f"wrote {s.written:,} fables to {out} in {s.seconds:.1f} s ({s.rate:,.0f}/s); "
        f"{s.already_done:,} already there, {s.failed:,} failed, {s.retries:,} retries"
    )
    if s.input_tokens or s.output_tokens:
        click.echo(f"tokens: {s.input_tokens:,} in, {s.output_tokens:,} out; cost ${s.cost_usd:.4f}")
    if s.repaired_bytes:
        click.echo(f"repaired a torn last line ({s.repaired_bytes} bytes cut; that fable was written again)")
    if s.stopped_by_budget:
        click.echo("stopped: --max-cost reached; rerun with a larger budget to continue")
    if s.failed:
        click.echo("failed prompts are listed in the errors file; rerun the same command to retry them")


_near = click.option(
    "--near-threshold",
    type=FINITE,
    default=0.8,
    show_default=True,
    help="MinHash Jaccard (word 5-grams) at or above which two fables are near duplicates.",
)


@data.command("stats")
@click.argument("fables", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the text report.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG histogram.")
@click.option("--force", is_flag=True, help="Let --plot replace an existing file that is not a PNG.")
@_near
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


@data.command("split")
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


_out = click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output JSONL file."
)
_force = click.option("--force", is_flag=True, help="Overwrite existing output files.")


@data.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_out
@click.option(
    "--errors",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where unreadable records go, with file, line and reason [default: <out stem>.errors.jsonl].",
)
@_force
def import_command(files: tuple[Path, ...], out: Path, errors: Path | None, force: bool) -> None:
    """Import TinyFabulist fables (JSONL or Parquet) as Fabulist fable records with free-text elements."""
    from fabulist.data.tf1 import import_tf1

    c = import_tf1(files, out, errors, force=force)
    click.echo(
        f"read {c['read']:,} records: wrote {c['written']:,} fables to {c['output']} "
        f"({c['without_moral_line']:,} without a 'Moral:' line), {c['errors']:,} errors to {c['errors_file']}"
    )


@data.command("export-tf1")
@click.argument("fables", type=click.Path(dir_okay=False, path_type=Path))
@_out
@_force
def export_tf1_command(fables: Path, out: Path, force: bool) -> None:
    """Write Fabulist fables in TinyFabulist's record layout (its newest pipeline's fields)."""
    from fabulist.data.tf1 import export_tf1

    count = export_tf1(fables, out, force=force)
    click.echo(f"wrote {count:,} fables in TF1 layout to {out}")
