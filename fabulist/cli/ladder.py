"""`fabulist ladder`: train a ladder of sizes and shapes and report what writes fables well and fits.

fabulist ladder plan default
fabulist ladder run default --data split/train.parquet --valid split/valid.parquet --out runs/ladder
fabulist ladder report runs/ladder
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from fabulist.cli.common import judge_options


@click.group("ladder")
def ladder() -> None:
    """Stage 5b: train a ladder of sizes and shapes, find the smallest that writes fables well and the
    largest that fits a device, and compare deep-and-thin with wide-and-shallow."""


@ladder.command("plan")
@click.argument("config")
def plan(config) -> None:
    """Print a config's rungs: shape, parameters, learning rate, steps and tokens (trains nothing)."""
    from fabulist.ladder import config as lc

    cfg = lc.load(config)
    click.echo(f"{'rung':16s}{'family':>14s}{'d':>5s}{'L':>4s}{'h/kv':>6s}{'ffn':>6s}{'params':>10s}"
               f"{'lr':>9s}{'steps':>7s}{'tokens':>11s}")  # fmt: skip
    for r in cfg.rungs:
        s = r.shape
        click.echo(f"{r.name:16s}{r.family:>14s}{s.hidden_size:>5d}{s.num_hidden_layers:>4d}"
                   f"{f'{s.num_attention_heads}/{s.num_key_value_heads}':>6s}{s.intermediate_size:>6d}"
                   f"{r.parameters(cfg.vocab_size) / 1e6:>9.3f}M{r.lr:>9.1e}{cfg.steps(r):>7d}"
                   f"{cfg.steps(r) * cfg.batch_size * cfg.context:>11,d}")  # fmt: skip
    thr = ", ".join(f"{k} {v:g}" for k, v in cfg.threshold.items())
    click.echo(f"context {cfg.context}, batch {cfg.batch_size}, vocabulary {cfg.vocab_size}, "
               f"{cfg.quant}; threshold: {thr}")  # fmt: skip


@ladder.command("run")
@click.argument("config")
@click.option(
    "--data", type=click.Path(dir_okay=False), required=True, help="Training fables (.parquet/.jsonl)."
)
@click.option("--valid", type=click.Path(dir_okay=False), required=True, help="Validation fables.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Ladder folder (resumable).")
@judge_options
def run(config, data, valid, out, use_judge, judge_base_url, judge_model, judge_cache, concurrency,
        timeout, max_retries, backoff, prices) -> None:  # fmt: skip
    """Train, export, measure and evaluate every rung (finished ones are kept), then write the report.

    CONFIG is a JSON file or a shipped config: `default` (10 rungs, ~40-45 minutes on a free two-core
    CPU) or `tiny` (3 rungs, minutes). The LLM judge runs only when one is given (--judge...)."""
    from fabulist.ladder import config as lc
    from fabulist.ladder.run import run_ladder

    cfg = lc.load(config)
    from fabulist.eval import judge as jd

    judge = jd.Judge.from_options(use_judge, judge_base_url, judge_model, concurrency=concurrency,
                                  timeout=timeout, max_retries=max_retries, backoff=backoff,
                                  seed=cfg.seed)  # fmt: skip
    if judge is not None:
        judge = {"judge": judge, "cache": judge_cache, "prices": prices}
    report = run_ladder(cfg, data, valid, out, judge)
    click.echo((Path(out) / "ladder.md").read_text(encoding="utf-8"))
    click.echo(f"wrote {out}/ladder.json, ladder.md and plots in {report['seconds']:.0f} s", err=True)


@ladder.command("report")
@click.argument("out", type=click.Path(file_okay=False, exists=True))
def report_cmd(out) -> None:
    """Rewrite ladder.json, ladder.md and the plots of a finished ladder from its saved rows."""
    from fabulist.ladder import config as lc
    from fabulist.ladder import report

    out = Path(out)
    if not (out / "ladder.json").exists():
        raise lc.LadderError(f"{out} holds no ladder.json; run `fabulist ladder run` first")
    cfg = lc.parse(json.loads((out / "config.json").read_text()), f"{out}/config.json")
    report.rebuild(out, cfg)
    click.echo((out / "ladder.md").read_text(encoding="utf-8"))
