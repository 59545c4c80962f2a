"""What several stages' commands share: thread counts, sampling settings checked before a model loads,
which model a runtime command loads, the LLM judge's options."""

from __future__ import annotations

import os

import click

from fabulist import artifacts
from fabulist.cli_types import NON_NEGATIVE, POSITIVE


def bound_threads(n: int) -> int:
    """A thread count bounded by this machine's cores: fewer than 1 is refused, more is clipped (with a
    note), since threads past the cores only contend for them."""
    if n < 1:
        raise click.BadParameter(f"{n} is not at least 1", param_hint="'--threads'")
    cores = os.cpu_count() or 1
    if n > cores:
        click.echo(
            f"note: --threads {n} is more than this machine's {cores} CPU cores; using {cores}", err=True
        )
        return cores
    return n


def threads_option(ctx, param, value: int | None) -> int | None:
    return None if value is None else bound_threads(value)


THREADS_HELP = "CPU threads for the backend (at most this machine's cores: more is clipped, with a note)."


def sampling(**values):
    """SamplingParams checked before any model is loaded: a bad value (NaN, inf, out of range, an empty
    stop string) is a usage error of every command that samples."""
    from fabulist.runtime.sampling import SamplingParams

    try:
        return SamplingParams(**values)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


# Every precision the artifact registry knows, ONNX's then GGUF's (fabulist/artifacts.json).
PRECISIONS = [*artifacts.quants("onnx"), *artifacts.quants("gguf")]


def model_options(f):
    """Which model a runtime command loads (shared by `generate` and `serve`): --model, --format, --quant,
    --graph."""
    options = [
        click.option("--model", "model_dir", help="Exported model folder or embedded model name (default: "
                     "the embedded fable-5m; see `fabulist models`)."),
        click.option("--format", "fmt", type=click.Choice(["onnx", "gguf"]), default="onnx",
                     show_default=True),
        click.option("--quant", type=click.Choice(PRECISIONS), help="Default: int4 for ONNX, q4_k_m for "
                     "GGUF; auto: the mixed 4/8-bit ONNX of `fabulist export --quant auto`; int8-fold: the "
                     "browser's int8 graph (`--quant int8 --method fold`)."),
        click.option("--graph", type=click.Choice(["auto", "genai", "optimum"]), default="auto",
                     show_default=True, help="ONNX graph: onnxruntime-genai's (fast) or optimum's; auto: "
                     "the fast one."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def judge_options(f):
    """The options that configure the LLM judge (shared by `eval run` and `eval judge`)."""
    options = [
        click.option("--judge", "use_judge", is_flag=True, help="Judge with the default model (OpenAI)."),
        click.option("--judge-base-url", help="OpenAI-compatible judge endpoint (implies --judge)."),
        click.option("--judge-model", help="Judge model (implies --judge; default gpt-4.1)."),
        click.option(
            "--judge-cache", type=click.Path(dir_okay=False), help="Default: OUT/judge-cache.sqlite"
        ),
        click.option(
            "--concurrency", type=int, default=4, show_default=True, help="Judge requests in flight."
        ),
        click.option(
            "--timeout",
            type=POSITIVE,
            default=120.0,
            show_default=True,
            help="Seconds per request, from sending it to the last byte of the reply.",
        ),
        click.option(
            "--max-retries",
            type=int,
            default=4,
            show_default=True,
            help="Retries per grade (a server's Retry-After is obeyed up to 60 s).",
        ),
        click.option(
            "--backoff", type=NON_NEGATIVE, default=1.0, show_default=True, help="Base retry delay (s)."
        ),
        click.option(
            "--prices", type=click.Path(dir_okay=False), help="JSON price table {model: [in, out]}."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f
