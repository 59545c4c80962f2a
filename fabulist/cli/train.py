"""`fabulist train`: a tokenizer and a Llama model (CPU or GPU, resumable, torchrun)."""

from __future__ import annotations

import os

import click

from fabulist.cli_types import NON_NEGATIVE, POSITIVE, SEED


@click.command("train")
@click.option("--preset", default="fable-5m", show_default=True, help="Model shape (see --list-presets).")
@click.option("--shape", help="A custom shape hidden,layers,heads,kv_heads,ffn (e.g. 128,4,4,2,256); "
              "--preset then only names it (and gives its context and lr).")  # fmt: skip
@click.option("--list-presets", is_flag=True, help="List the presets with parameter counts and exit.")
@click.option("--data", type=click.Path(dir_okay=False), help="Training fables: .parquet or .jsonl.")
@click.option("--valid", type=click.Path(dir_okay=False), help="Validation fables: .parquet or .jsonl.")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Run folder (becomes a Hugging Face model folder)."
)
@click.option(
    "--tokenizer", type=click.Path(), help="Existing tokenizer.json (default: train one on --data)."
)
@click.option(
    "--init",
    type=click.Path(file_okay=False),
    help="Start from this model folder's weights and tokenizer (same shape) instead of random.",
)
@click.option("--vocab-size", type=int, default=4096, show_default=True)
@click.option("--context", type=int, help="Sequence length (default: the preset's).")
@click.option(
    "--packing",
    type=click.Choice(["docs", "stream"]),
    default="docs",
    show_default=True,
    help="docs: rows of whole fables, padded, never cut from their header; stream: fixed blocks "
    "across fables.",
)
@click.option(
    "--loss-on",
    type=click.Choice(["story", "all"]),
    default="story",
    show_default=True,
    help="story: no loss on the header (random elements); all: every token.",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
    help="Sequences per step, all processes.",
)  # fmt: skip
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--max-steps", type=int, help="Optimizer steps (default: --max-tokens, else --epochs).")
@click.option(
    "--max-tokens", type=int, help="Train on about this many tokens, padding not counted (sets the steps)."
)
@click.option("--epochs", type=POSITIVE, default=1.0, show_default=True, help="Passes over the data.")
@click.option("--lr", type=POSITIVE, help="Peak learning rate (default: the preset's).")
@click.option("--warmup-steps", type=int, help="Default: 5% of the steps, at most 100.")
@click.option("--weight-decay", type=NON_NEGATIVE, default=0.1, show_default=True)
@click.option("--grad-clip", type=NON_NEGATIVE, default=1.0, show_default=True)
@click.option("--eval-every", type=int, default=0, help="Steps between evaluations (default: 10 per run).")
@click.option("--eval-fables", type=int, default=8, show_default=True,
              help="Fables sampled at each evaluation for judge-free metrics (coverage, distinct-2, "
                   "repetition); 0: none.")  # fmt: skip
@click.option("--eval-max-tokens", type=int, default=320, show_default=True,
              help="Length limit of those fables (never past --context).")  # fmt: skip
@click.option("--save-every", type=int, default=200, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the model.")
@click.option("--stop-after", type=int, help="Stop at this step with a checkpoint (continue with --resume).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
def train_cmd(list_presets, resume, use_compile, shape, **options) -> None:
    """Train a tokenizer (unless given) and a Llama fable model; resumable; runs under torchrun too."""
    from fabulist.train import presets

    if list_presets:
        click.echo(
            f"{'preset':<16}{'layers':>7}{'dim':>6}{'heads':>7}{'kv':>4}{'ffn':>6}{'ctx':>6}{'lr':>8}{'params@4096':>13}"
        )
        for p in presets.load().values():
            millions = p.parameters(4096) / 1e6
            click.echo(
                f"{p.name:<16}{p.num_hidden_layers:>7}{p.hidden_size:>6}{p.num_attention_heads:>7}"
                f"{p.num_key_value_heads:>4}{p.intermediate_size:>6}{p.context:>6}{p.lr:>8.0e}{millions:>12.1f}M"
            )
        return
    from fabulist.eval.training import probe_for
    from fabulist.train.trainer import TrainConfig, train

    if not options["data"] or not options["out"]:
        raise click.UsageError("--data and --out are required")
    cfg = TrainConfig(compile=use_compile, shape=presets.parse_shape(shape) if shape else None, **options)
    record = train(cfg, resume=resume, quality=probe_for(cfg))
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if not record["complete"]:
        click.echo(f"stopped at step {record['steps']} with a checkpoint; continue with --resume")
    else:
        valid = record["final_valid_loss"]
        click.echo(
            f"trained {record['parameters'] / 1e6:.2f}M parameters on {record['tokens_seen']:,} tokens in "
            f"{record['wall_seconds']:.0f} s; train loss {record['final_train_loss']:.3f}"
            + (f", valid loss {valid:.3f} (ppl {record['final_valid_ppl']:.2f})" if valid is not None else "")
            + f"; model in {cfg.out}"
        )
