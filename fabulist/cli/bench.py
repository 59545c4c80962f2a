"""`fabulist bench`: speed and memory against peers, and what fits a device."""

from __future__ import annotations

import click

from fabulist.cli.common import bound_threads


@click.group("bench")
def bench_group() -> None:
    """Stage 5a: speed and memory across formats, sizes and peers; what fits a memory budget."""


def _csv(text: str | None) -> tuple[str, ...] | None:
    return tuple(x.strip() for x in text.split(",") if x.strip()) if text else None


@bench_group.command("run")
@click.option("--quick", is_flag=True, help="CI: the whole suite on a tiny random model (a minute or two).")
@click.option(
    "--model", "model_dir", type=click.Path(file_okay=False), help="A trained, exported model folder."
)
@click.option(
    "--presets", help="Random-weight presets, comma-separated (default: fable-1m ... mobilellm-350m)."
)
@click.option("--threads", default="1,2", show_default=True,
              help="Thread counts, comma-separated (at most the cores each; more is clipped).")  # fmt: skip
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Repetitions after one warm-up (>= 1).")  # fmt: skip
@click.option("--rows", help="Only these rows (names as in the table), comma-separated.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Results [default: benchmarks/results; --quick: benchmarks/work/quick].")  # fmt: skip
@click.option("--work", type=click.Path(file_okay=False), default="benchmarks/work", show_default=True,
              help="Where random-weight models are built and exported (kept for reruns).")  # fmt: skip
def bench_run(quick, model_dir, presets, threads, repeats, rows, out, work) -> None:
    """Measure load, TTFT, prefill and decode speed, peak RSS; write JSON, Markdown and plots."""
    from pathlib import Path

    from fabulist.bench import suite

    out = Path(out or ("benchmarks/work/quick" if quick else "benchmarks/results"))
    opts = suite.quick_options(out, Path(work)) if quick else suite.Options(out=out, work=Path(work))
    opts.model = Path(model_dir) if model_dir else None
    opts.presets = (_csv(presets) or ()) if presets is not None else opts.presets
    if opts.model is None and not opts.presets:
        raise click.UsageError("nothing to measure: give --model FOLDER or at least one of --presets")
    if not quick:
        opts.threads, opts.repeats = _thread_counts(threads), repeats
    if rows:
        unknown = [r for r in _csv(rows) if r not in suite.ROWS]
        if unknown:
            raise click.UsageError(f"unknown row {unknown[0]!r}; choose from {', '.join(suite.ROWS)}")
        opts.rows = _csv(rows)
    results = suite.run_suite(opts)
    click.echo((out / "results.md").read_text())
    click.echo(f"wrote {out}/results.json, results.md and plots in {results['seconds']:.0f} s", err=True)
    failed = [r for r in results["rows"] if str(r.get("skipped", "")).startswith(("failed", "timed out"))]
    if failed and len(failed) == len(results["rows"]):
        raise suite.BenchError(
            f"every row failed ({len(failed)} of {len(failed)}); the first, {failed[0]['name']}: "
            f"{failed[0]['skipped']}"
        )


def _thread_counts(text: str | None) -> tuple[int, ...]:
    """--threads 1,2: each a whole number bounded by the cores (common.bound_threads), duplicates dropped."""
    counts = []
    if text is not None and not _csv(text):
        raise click.BadParameter(f"{text!r} names no thread count, e.g. 1,2", param_hint="'--threads'")
    for t in _csv(text) or ("1",):
        try:
            n = bound_threads(int(t))
        except ValueError:
            raise click.BadParameter(f"{t!r} is not a whole number", param_hint="'--threads'") from None
        counts += [] if n in counts else [n]
    return tuple(counts)


@bench_group.command("fit")
@click.option("--budget", default="6GB", show_default=True, help="Device memory, e.g. 6GB, 3.5GiB.")
@click.option("--context", type=int, help="Context length (default: each preset's own).")
@click.option("--results", "results_path", type=click.Path(dir_okay=False),
              help="A benchmark run's results.json: measured overhead, estimate vs measured [default: the "
                   "committed run that ships with the package].")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def bench_fit(budget, context, results_path, as_json) -> None:
    """Per format, the largest preset and the longest context that fit a memory budget."""
    import json
    from pathlib import Path

    from fabulist.bench import fit

    if context is not None and context < 1:
        raise click.UsageError("--context must be at least 1")
    results = Path(results_path) if results_path else fit.SHIPPED
    rows, measured, text = fit.fit_report(budget, context, results)
    click.echo(json.dumps({"fit": rows, "measured": measured}, indent=1) if as_json else text)
