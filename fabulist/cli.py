"""The `fabulist` command: one group per pipeline stage, each subcommand a thin wrapper over one function.

fabulist --help
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from fabulist import __version__
from fabulist.cli_types import NON_NEGATIVE, POSITIVE, SEED, UNIT
from fabulist.errors import FabulistError, one_line


class _Group(click.Group):
    """A click group that turns bad input into one line on stderr: a FabulistError or a documented bad
    environment (a missing, unreadable, read-only or full path; text that is not UTF-8; see
    `errors.one_line`) exits 1, a bad option (click's UsageError) or an argument that is not UTF-8 exits 2.
    Any other exception is a bug and keeps its traceback."""

    def main(self, args=None, *rest, **kwargs):
        args = sys.argv[1:] if args is None else list(args)
        for arg in args:
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:  # bytes the OS passed that are not UTF-8 (surrogate-escaped)
                raw = arg.encode("utf-8", "surrogateescape")
                click.echo(f"error: argument {raw!r} is not valid UTF-8 text", err=True)
                sys.exit(2)
        return super().main(args, *rest, **kwargs)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (FabulistError, OSError, UnicodeError, MemoryError) as exc:
            message = one_line(exc)
            if message is None:
                raise  # not a documented kind of bad input: a bug, shown with its traceback
            click.echo(f"error: {message}", err=True)
            sys.exit(1)
        except click.exceptions.NoArgsIsHelpError:
            raise  # a group called without a subcommand shows its help
        except click.UsageError as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo(
                "interrupted: what was written so far is kept; run the same command to resume", err=True
            )
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fabulist")
def main() -> None:
    """Fabulist: moral fables from synthetic data to small on-device language models.

    \b
    data      element lists -> prompts -> fables from a teacher -> stats and splits
    train     tokenizer and a Llama model (CPU or GPU, resumable, torchrun)
    export    ONNX and GGUF, quantized, each validated against PyTorch
    generate  fables offline with the torch-free runtime (default: the embedded fable-5m)
    serve     the same behind an OpenAI-compatible API
    eval      quality checks, the LLM judge, held-out perplexity
    bench     speed and memory against peers; ladder: sizes and shapes
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


def _bound_threads(n: int) -> int:
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


def _threads_option(ctx, param, value: int | None) -> int | None:
    return None if value is None else _bound_threads(value)


THREADS_HELP = "CPU threads for the backend (at most this machine's cores: more is clipped, with a note)."


def _sampling(**values):
    """SamplingParams checked before any model is loaded: a bad value (NaN, inf, out of range, an empty
    stop string) is a usage error of every command that samples."""
    from fabulist.runtime.sampling import SamplingParams

    try:
        return SamplingParams(**values)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


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


@main.command("train")
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


@main.command("export")
@click.argument("model_dir", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["onnx", "gguf", "all"]), default="all", show_default=True)
@click.option(
    "--quant",
    type=click.Choice(["fp32", "fp16", "int8", "int4", "all"]),
    default="int4",
    show_default=True,
    help="int4: ONNX int4 + GGUF Q4_0/Q4_K_M; int8: ONNX int8 + GGUF Q8_0; all: the seven artifacts.",
)
@click.option("--memory-budget", default="6GB", show_default=True, help="Device memory, e.g. 6GB, 4GiB.")
@click.option("--context", type=click.IntRange(min=1),
              help="Context length for the memory estimate, at least 1 (default: the model's).")  # fmt: skip
@click.option("--method", default=None,
              help="ONNX quantization method: int8 rtn (weight-only, default) | dynamic; int4 gptq (default) "
              "| rtn | k_quant | hqq.")  # fmt: skip
@click.option("--calib", type=click.Path(dir_okay=False),
              help="Calibration fables for int4 gptq: the training data (.jsonl or .parquet) "
              "[default: frozen training-region fables, export/calib.json].")  # fmt: skip
@click.option("--strict", is_flag=True, help="Fail when a quantized artifact misses its validation gate.")
@click.option("--no-validate", is_flag=True, help="Skip validation against PyTorch.")
def export_cmd(model_dir, fmt, quant, memory_budget, context, method, calib, strict, no_validate) -> None:
    """Export a trained model folder to ONNX and/or GGUF, validate each artifact, check the budget."""
    import time

    from fabulist.export.errors import ExportError
    from fabulist.export.run import export_model, table

    start = time.perf_counter()
    artifacts = export_model(
        model_dir, fmt, quant, memory_budget, context, not no_validate, method=method, calib=calib
    )
    click.echo(table(artifacts))
    click.echo(f"exported in {time.perf_counter() - start:.1f} s; manifest: {model_dir}/export_manifest.json")
    missed = [a for a in artifacts if a.get("gate")]
    for a in missed:
        click.echo(f"WARNING: {a['path']} missed its validation gate: {a['gate']}", err=True)
    if missed and strict:
        raise ExportError(f"{len(missed)} artifact(s) missed their validation gate (--strict)")


def _elements_for(given: dict[str, str | None], random_fill: bool,
                  seed: int | None) -> tuple[dict[str, str], list[str]]:  # fmt: skip
    """Scaffold labels: each given element by id or label, else as free text (one line, at most
    fable_format.MAX_ELEMENT_CHARS characters: a ValueError otherwise), the rest drawn at random; and the
    kinds given as free text."""
    import random

    from fabulist import elements
    from fabulist import fable_format as ff

    rng = random.Random(seed)
    labels, free = {}, []
    for kind in elements.KINDS:
        value = given.get(kind)
        if value is None and not random_fill:
            continue
        if value is None:
            labels[kind] = elements.label(kind, rng.choice(elements.load(kind)))
            continue
        labels[kind], is_free = ff.element_label(kind, value)
        free += [kind] if is_free else []
    return labels, free


_FREE_HELP = "A list element's id or label, or any one-line text of at most 80 characters."


def _model_options(f):
    """Which model a runtime command loads (shared by `generate` and `serve`): --model, --format, --quant,
    --graph."""
    options = [
        click.option("--model", "model_dir", help="Exported model folder or embedded model name (default: "
                     "the embedded fable-5m; see `fabulist models`)."),
        click.option("--format", "fmt", type=click.Choice(["onnx", "gguf"]), default="onnx",
                     show_default=True),
        click.option("--quant", type=click.Choice(["int4", "int8", "fp32", "q4_0", "q4_k_m", "q8_0", "f16",
                                                   "f32"]), help="Default: int4 for ONNX, q4_k_m for GGUF."),
        click.option("--graph", type=click.Choice(["auto", "genai", "optimum"]), default="auto",
                     show_default=True, help="ONNX graph: onnxruntime-genai's (fast) or optimum's; auto: "
                     "the fast one."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


@main.command("generate")
@click.option("--character", help=_FREE_HELP)
@click.option("--trait", help=_FREE_HELP)
@click.option("--setting", help=_FREE_HELP)
@click.option("--conflict", help=_FREE_HELP)
@click.option("--resolution", help=_FREE_HELP)
@click.option("--moral", help=_FREE_HELP)
@click.option("--prompt", "beginning", help="A story beginning to continue (for a model that is not a "
              "fable model: the whole prompt).")  # fmt: skip
@click.option("--chat", is_flag=True, help="A model that is not a fable model: wrap --prompt in its chat "
              "template (tokenizer_config.json) as one user message.")  # fmt: skip
@_model_options
@click.option("-n", "count", type=click.IntRange(min=1), default=1, show_default=True,
              help="Completions of the same prompt (>= 1).")  # fmt: skip
@click.option("--temperature", type=float, default=0.8, show_default=True)
@click.option("--top-p", type=float, default=0.95, show_default=True)
@click.option("--top-k", type=int, default=0, show_default=True)
@click.option("--repetition-penalty", type=float, default=1.0, show_default=True)
@click.option("--seed", type=SEED, help="Same seed, same text (on the same backend).")
@click.option("--max-new-tokens", type=int, default=400, show_default=True)
@click.option("--stop", multiple=True, help="Stop when this text appears (repeatable; not empty).")
@click.option("--threads", type=int, callback=_threads_option, help=THREADS_HELP)
@click.option("--stream/--no-stream", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print prompt, elements and completions as JSON.")
@click.option("--stats", is_flag=True, help="Print load time, time to first token and tokens/s.")
@click.option("--guide", is_flag=True, help="Force the requested moral as the last line and keep the "
              "character's name (token-level constraints; see runtime/guide.py).")  # fmt: skip
@click.option("--draft", "draft_dir", help="Speculative decoding: a smaller model folder (or embedded name) "
              "with the same tokenizer drafts tokens the model checks; same distribution.")  # fmt: skip
def generate_cmd(
    beginning,
    model_dir,
    fmt,
    quant,
    graph,
    count,
    temperature,
    top_p,
    top_k,
    repetition_penalty,
    seed,
    max_new_tokens,
    stop,
    threads,
    stream,
    as_json,
    stats,
    guide,
    draft_dir,
    chat,
    **given,
) -> None:
    """Write fables with an exported model, offline (ONNX Runtime or llama.cpp; no torch). Any other
    exported model (SmolLM2, Qwen, Gemma) continues --prompt as is, or answers it with --chat."""
    import json

    from fabulist import fable_format as ff
    from fabulist.runtime.embedded import resolve
    from fabulist.runtime.load import load_generator
    from fabulist.runtime.plain import is_fable_folder

    params = _sampling(temperature=temperature, top_k=top_k, top_p=top_p,
                       repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens, seed=seed,
                       stop=tuple(stop))  # fmt: skip
    try:  # bad element text is refused before any model folder is looked at or loaded
        for kind, text in given.items():
            if text is not None:
                ff.check_element(kind, text)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    model_dir = resolve(model_dir)
    plain = not is_fable_folder(model_dir)
    if plain:
        _check_plain_options(given, beginning, guide, draft_dir)
        labels, free = {}, []
    elif chat:
        raise click.UsageError("--chat is for models with a chat template; a fable model takes --character, "
                               "--moral and the other elements")  # fmt: skip
    else:
        try:  # user text never becomes format structure (a header line, a special token)
            labels, free = _elements_for(given, random_fill=beginning is None, seed=seed)
            prompt = ff.prompt(labels, beginning)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    gen = load_generator(model_dir, fmt, quant, threads, graph)
    if plain:
        prompt = _plain_prompt(gen, beginning, chat)
    shown = "" if chat else beginning or ""  # what the output starts with before the completion
    gen.preflight(prompt, params, count)  # a batch that cannot fit is one line, before any output
    guide = _guide_for(gen, prompt, params) if guide else None
    if draft_dir and guide:
        raise click.UsageError("--draft and --guide do not combine yet; use one of them")
    stream = stream and not draft_dir  # drafted text is printed when complete
    if free and ff.trained_elements(model_dir) == ff.LISTS:
        click.echo(f"note: {Path(model_dir).name} was trained on list values only; the free-text "
                   f"{', '.join(free)} may be ignored (models trained on imported fables take any text)",
                   err=True)  # fmt: skip
    if not as_json:
        for kind, label in labels.items():
            click.echo(f"{kind.capitalize()}: {label}", err=True)
    if draft_dir:
        from fabulist.runtime.speculative import generate_drafted

        completions = generate_drafted(gen, model_dir, resolve(draft_dir), fmt, quant, prompt, params, count,
                                       threads)  # fmt: skip
    elif stream and count == 1 and not as_json:
        click.echo(shown, nl=False)
        steps = gen.stream(prompt, params, guide=guide)
        try:
            while True:
                click.echo(next(steps), nl=False)
        except StopIteration as done:
            completions = [done.value]
        click.echo()
    else:
        completions = gen.generate(prompt, params, count, guide=guide)
    if as_json:
        out = {"prompt": prompt, "elements": labels, "beginning": beginning,
               "completions": [{"text": shown + c.text, "finish_reason": c.finish_reason,
                                "new_tokens": len(c.tokens), "clipped_to": c.clipped_to, "stats": c.stats}
                               for c in completions]}  # fmt: skip
        click.echo(json.dumps(out, ensure_ascii=False, indent=1))
    elif not (stream and count == 1):
        for i, c in enumerate(completions, 1):
            click.echo(f"--- {i}/{len(completions)} ---\n{shown}{c.text}")
    for c in completions:
        if c.clipped_to is not None and not as_json:
            click.echo(f"note: max new tokens clipped to {c.clipped_to} by the model's context", err=True)
        if stats and not as_json:
            s = c.stats
            timing = f"{gen.artifact}: load {s['load_s']:.3f} s, first token {s['ttft_s'] * 1000:.0f} ms"
            click.echo(f"{timing}, {s['new_tokens']} tokens at {s['tokens_per_s']:,.0f} tok/s", err=True)


def _check_plain_options(given: dict, beginning: str | None, guide: bool, draft_dir: str | None) -> None:
    """A model that is not a fable model takes a plain --prompt and none of the fable options."""
    fable = [f"--{k}" for k, v in given.items() if v is not None] + ["--guide"] * guide
    fable += ["--draft"] * bool(draft_dir)
    if fable:
        raise click.UsageError(f"{fable[0]} needs a fable model; this one is not: give --prompt TEXT only")
    if beginning is None:
        raise click.UsageError("this model is not a fable model: give --prompt TEXT (and --chat to use its "
                               "chat template)")  # fmt: skip


def _plain_prompt(gen, beginning: str, chat: bool) -> str:
    """The text a plain model is given: the prompt as is, or rendered by its chat template."""
    import dataclasses

    if not chat:
        return beginning
    gen.plain = dataclasses.replace(gen.plain, chat=True)
    return gen.plain.render_chat(beginning)


@main.command("serve")
@_model_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default is this machine only (0.0.0.0: all).")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0: a free one.")
@click.option("--max-batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Completions decoded together (and the most one request may ask for with n).")  # fmt: skip
@click.option("--max-requests", type=click.IntRange(min=1), default=64, show_default=True,
              help="Requests queued or decoding; more are refused with HTTP 429.")  # fmt: skip
@click.option("--max-body-bytes", type=click.IntRange(min=1024), default=1 << 20, show_default=True,
              help="Larger request bodies are refused with HTTP 413.")  # fmt: skip
@click.option("--api-key-env", metavar="VAR",
              help="Require `Authorization: Bearer KEY`, KEY from this environment variable.")  # fmt: skip
@click.option("--threads", type=int, callback=_threads_option, help=THREADS_HELP)
def serve_cmd(model_dir, fmt, quant, graph, host, port, max_batch, max_requests, max_body_bytes, api_key_env,
              threads) -> None:  # fmt: skip
    """Serve a model behind an OpenAI-compatible API (/v1/completions, /v1/chat/completions, streaming),
    batching concurrent requests; see `fabulist.runtime.serve` for the request schema and limits."""
    from fabulist.runtime.embedded import resolve
    from fabulist.runtime.load import load_generator
    from fabulist.runtime.serve import ServeConfig, api_key_from, serve

    key = api_key_from(api_key_env)
    folder = resolve(model_dir)
    gen = load_generator(folder, fmt, quant, threads, graph)
    config = ServeConfig(Path(folder).name, max_batch, max_requests, max_body_bytes, key)
    serve(gen, config, host, port)


def _guide_for(gen, prompt: str, params):
    """The guide for a prompt (its header's moral and character), checked against the token budget now,
    before anything is printed."""
    from fabulist.runtime.guide import Guide

    guide = Guide.from_prompt(gen.tok, prompt)
    guide.check_budget(gen.budget(gen.encode(prompt), params)[0])
    return guide


@main.group("models", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def models_group(ctx, as_json) -> None:
    """The models that ship in the package: name, size, artifacts, provenance (and `pack` to add one)."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from fabulist.runtime.embedded import MODELS, describe, embedded

    rows = [describe(p) for p in embedded().values()]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo(f"no embedded models in {MODELS}")
    for r in rows:
        mark = " (default)" if r["default"] else ""
        click.echo(f"{r['name']}{mark}: {r['bytes'] / 1e6:.1f} MB in {r['path']}")
        if r["parameters"]:
            size = f"{r['parameters'] / 1e6:.2f}M parameters, {r['tokens_seen']:,} tokens"
            click.echo(
                f"  {r['preset']}, {size}, valid ppl {r['valid_ppl']:.2f}, data {r['data_sha256'][:12]}"
            )
        for a in r["artifacts"]:
            click.echo(f"  {a}")
        if r["card"]:
            click.echo(f"  model card: {r['card']}")


@models_group.command("pack")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--name", required=True, help="Folder name under the destination, e.g. fable-5m.")
@click.option("--quality", "quality_path", required=True, type=click.Path(dir_okay=False),
              help="`fabulist eval quality --quant int4,fp32 --json` output for this run.")  # fmt: skip
@click.option("--reproduce", "reproduce_path", required=True, type=click.Path(dir_okay=False),
              help="The script of commands that made the model (copied in, quoted in the card).")  # fmt: skip
@click.option("--dest", type=click.Path(file_okay=False), help="Default: the runtime package's models/.")
def models_pack(run, name, quality_path, reproduce_path, dest) -> None:
    """Copy an exported run's INT4 ONNX (both graphs) and 4-bit GGUF into a shippable folder with a card."""
    from fabulist.export.pack import pack
    from fabulist.runtime.embedded import MODELS

    final = pack(run, name, dest or MODELS, quality_path, reproduce_path)
    click.echo(f"packed {name} into {final} (model card: {final / 'README.md'})")


@main.group("eval")
def eval_group() -> None:
    """Measure how good a model is: judge-free checks offline, an LLM judge when one is configured."""


@eval_group.command("quality")
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Exported model folder or embedded model name.",
)
@click.option("--format", "fmt", type=click.Choice(["onnx", "gguf"]), default="onnx", show_default=True)
@click.option("--quant", default="int4", show_default=True,
              help="Artifacts, comma-separated (e.g. int4,fp32), scored on the same prompts.")  # fmt: skip
@click.option("-n", "count", type=int, default=200, show_default=True, help="Prompts (one fable each).")
@click.option("--temperature", type=float, default=0.8, show_default=True)
@click.option("--top-p", type=float, default=1.0, show_default=True,
              help="Nucleus sampling (the bar is defined at 1.0: plain temperature sampling).")  # fmt: skip
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--max-new-tokens", type=int, default=400, show_default=True)
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Write summaries and every fable here."
)
@click.option("--prompts", "prompts_path", type=click.Path(dir_okay=False),
              help="Prompt with the elements (free text or ids) of the first -n records of this fables "
                   "file (.jsonl/.parquet) that show a character, setting and moral, instead of "
                   "evaluation-region prompts.")  # fmt: skip
@click.option("--guide", is_flag=True, help="Also write every fable with --guide (same prompts and seeds) "
              "and show it beside the raw one; the bar is judged on raw output.")  # fmt: skip
def eval_quality(model_dir, fmt, quant, count, temperature, top_p, seed, max_new_tokens, json_out,
                 prompts_path, guide) -> None:  # fmt: skip
    """Judge-free quality bar on evaluation-region prompts (moral line, character, setting, moral)."""
    import json

    from fabulist.eval import quality as q
    from fabulist.records import write_atomic
    from fabulist.runtime.embedded import resolve
    from fabulist.runtime.load import artifact, load_generator

    if count < 1:
        raise click.UsageError("-n must be at least 1")
    quants = [x.strip() for x in quant.split(",") if x.strip()]
    if not quants:
        raise click.UsageError(f"--quant {quant!r} names no artifact; e.g. --quant int4 or --quant int4,fp32")
    _sampling(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    prompts = None
    if prompts_path:
        prompts, skipped = q.prompts_from(prompts_path, count)
        if not prompts:
            raise click.UsageError(f"{prompts_path}: no record shows a character, setting and moral")
        click.echo(f"{len(prompts)} prompts from {prompts_path} (skipped, without a character, setting or "
                   f"moral: {skipped})", err=True)  # fmt: skip
    model_dir = resolve(model_dir)
    for one in quants:  # every artifact found before the first is loaded and scored
        artifact(Path(model_dir), fmt, one)
    results, guided = {}, {}
    for one in quants:
        gen = load_generator(model_dir, fmt, one)
        click.echo(f"{fmt} {one}: {gen.artifact}", err=True)
        results[one] = q.run(gen, count, temperature, seed, max_new_tokens, top_p=top_p, prompts=prompts)
        if guide:
            guided[one] = q.run(gen, count, temperature, seed, max_new_tokens, top_p=top_p, prompts=prompts,
                                guided=True)  # fmt: skip
    names = list(results)
    columns = [(n, results[n]) for n in names]
    if guide:
        columns = [c for n in names for c in ((n, results[n]), (f"{n}+guide", guided[n]))]
        click.echo("the quality bar is judged on raw output; +guide columns show the same prompts and seeds "
                   "written with --guide, for comparison")  # fmt: skip
    width = max(10, *(len(n) + 2 for n, _ in columns))
    click.echo(f"{'':22s}" + "".join(f"{n:>{width}s}" for n, _ in columns) + "   target")
    for key, target in [*q.TARGETS.items(), ("repetition_4gram", q.MAX_REPETITION), ("distinct_2", None)]:
        cells = "".join(f"{r['summary'][key]:>{width}.1%}" for _, r in columns)
        goal = (
            ""
            if target is None
            else (f"<= {target:.0%}" if key == "repetition_4gram" else f">= {target:.0%}")
        )
        click.echo(f"{key:22s}{cells}   {goal}")
    for n in names:
        misses = q.verdict(results[n]["summary"])
        verdict = "quality bar holds" if not misses else "misses: " + "; ".join(misses)
        click.echo(f"{n}{' (raw)' if guide else ''}: {verdict}")
    if len(names) > 1:
        base = results[names[-1]]["summary"]
        worst = max(abs(results[names[0]]["summary"][k] - base[k]) for k in q.TARGETS)
        click.echo(f"largest gap {names[0]} vs {names[-1]}: {worst * 100:.1f} points")
    if json_out:
        payload = {"model": str(model_dir), "format": fmt, "n": count, "temperature": temperature,
                   "top_p": top_p, "seed": seed, "results": results}  # fmt: skip
        if guide:
            payload["guided"] = guided  # beside "results", which stays the raw output the bar is judged on
        write_atomic(json_out, json.dumps(payload, indent=1, ensure_ascii=False))


def _judge_options(f):
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


def _maybe_judge(out, use_judge, judge_base_url, judge_model, judge_cache, concurrency, timeout, max_retries,
                 backoff, prices, seed=0, required=False) -> None:  # fmt: skip
    from fabulist.eval import grading
    from fabulist.eval import judge as jd

    judge = jd.Judge.from_options(use_judge, judge_base_url, judge_model, required=required,
                                  concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                                  backoff=backoff, seed=seed)  # fmt: skip
    if judge is None:
        return
    s = grading.run(out, judge, judge_cache, prices)
    click.echo(
        f"judge {s['judge_model']}: {s['graded']} graded, {s['failures']} failures, "
        f"{s['requests']} requests, {s['cache_hits']} cache hits, "
        f"{s['input_tokens']:,}+{s['output_tokens']:,} tokens, ${s['cost_usd']:.4f}",
        err=True,
    )
    if s["completions"] and not s["graded"]:
        raise grading.GradingError(
            f"every one of the {s['failures']:,} completions failed to grade; the reasons are in "
            f"{Path(out) / grading.JUDGMENTS} (rerun the same command to retry them)"
        )


def _echo_report(out) -> None:
    from fabulist.eval import report as rp

    rp.write(out)
    click.echo((Path(out) / "report.md").read_text(encoding="utf-8"))


@eval_group.command("run")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False), help="Model folder.")
@click.option(
    "--format", "fmt", type=click.Choice(["onnx", "gguf", "torch"]), default="onnx", show_default=True
)
@click.option("--quant", help="Artifact quantization (default: int4 for ONNX, q4_k_m for GGUF).")
@click.option("-n", "count", type=int, default=10, show_default=True, help="Completions per prompt.")
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--max-new-tokens", type=int, default=400, show_default=True)
@click.option(
    "--limit", type=click.IntRange(min=1), help="Only the first N (>= 1) prompts of the evaluation set."
)
@click.option("--threads", type=int, callback=_threads_option, help=THREADS_HELP)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Run folder, e.g. runs/eval/int4."
)
@click.option("--heldout", type=click.Path(dir_okay=False, exists=True),
              help="Validation fables (.parquet/.jsonl) for held-out perplexity and KL against fp32 PyTorch "
                   "[default: export validation's held-out fables].")  # fmt: skip
@click.option("--heldout-texts", type=int, default=64, show_default=True, help="Fables of --heldout used.")
@_judge_options
def eval_run(model_dir, fmt, quant, count, temperature, top_p, seed, max_new_tokens, limit, threads, out,
             heldout, heldout_texts, **judge) -> None:  # fmt: skip
    """Completions for the curated evaluation prompts (resumable), held-out perplexity and KL divergence
    against the fp32 PyTorch model, an optional judge, and the report."""
    from fabulist.eval import generate
    from fabulist.eval import heldout as ho

    if fmt == "torch" and quant:
        raise click.UsageError("--quant applies to onnx and gguf artifacts, not to --format torch")
    if heldout_texts < 1:
        raise click.UsageError("--heldout-texts must be at least 1")
    _sampling(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    r = generate.run(
        model_dir, out, fmt, quant, count, temperature, top_p, seed, max_new_tokens, limit, threads
    )
    click.echo(f"{r['written']} completions written, {r['skipped']} prompts already done, in {out}", err=True)
    h = ho.ensure(out, heldout, heldout_texts, threads)
    if h and "ppl" in h:
        vs = f", KL {h['kld']:.5f} and top-1 {h['top1']:.2%} against fp32 PyTorch" if h["reference"] else ""
        click.echo(f"held-out perplexity {h['ppl']:.3f} on {h['texts']} texts{vs}", err=True)
    _maybe_judge(out, seed=seed, **judge)
    _echo_report(out)


@eval_group.command("judge")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--seed", type=SEED, default=0, show_default=True, help="Judge seed.")
@_judge_options
def eval_judge(run_dir, seed, **judge) -> None:
    """Judge the completions of a run (cached: a rerun sends no request) and rewrite its report."""
    _maybe_judge(run_dir, seed=seed, required=True, **judge)
    _echo_report(run_dir)


@eval_group.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
def eval_report(run_dir) -> None:
    """Rebuild report.json, report.md and report.png of a run from its files."""
    _echo_report(run_dir)


@eval_group.command("compare")
@click.argument("run_a", type=click.Path(file_okay=False, exists=True))
@click.argument("run_b", type=click.Path(file_okay=False, exists=True))
@click.option("--margin", type=NON_NEGATIVE, default=0.3, show_default=True, help="Points on the 1-10 scale.")
@click.option("--out", type=click.Path(file_okay=False), help="Default: next to RUN_B, named A-vs-B.")
def eval_compare(run_a, run_b, margin, out) -> None:
    """Paired per-prompt differences B - A with bootstrap CIs and a verdict (e.g. fp32 against int4)."""
    from fabulist.eval import compare

    click.echo(compare.run(run_a, run_b, margin, out)["markdown"])


@main.group("bench")
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
    """--threads 1,2: each a whole number bounded by the cores (see _bound_threads), duplicates dropped."""
    counts = []
    if text is not None and not _csv(text):
        raise click.BadParameter(f"{text!r} names no thread count, e.g. 1,2", param_hint="'--threads'")
    for t in _csv(text) or ("1",):
        try:
            n = _bound_threads(int(t))
        except ValueError:
            raise click.BadParameter(f"{t!r} is not a whole number", param_hint="'--threads'") from None
        counts += [] if n in counts else [n]
    return tuple(counts)


@bench_group.command("fit")
@click.option("--budget", default="6GB", show_default=True, help="Device memory, e.g. 6GB, 3.5GiB.")
@click.option("--context", type=int, help="Context length (default: each preset's own).")
@click.option("--results", "results_path", type=click.Path(dir_okay=False),
              default="benchmarks/results/results.json", show_default=True,
              help="A benchmark run's results.json: measured overhead, estimate vs measured.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def bench_fit(budget, context, results_path, as_json) -> None:
    """Per format, the largest preset and the longest context that fit a memory budget."""
    import json
    from pathlib import Path

    from fabulist.bench import fit

    if context is not None and context < 1:
        raise click.UsageError("--context must be at least 1")
    rows, measured, text = fit.fit_report(budget, context, Path(results_path) if results_path else None)
    click.echo(json.dumps({"fit": rows, "measured": measured}, indent=1) if as_json else text)


def _register_data_tools() -> None:
    from fabulist.data.tf1_cli import export_tf1_command, import_command
    from fabulist.data.tools_cli import split, stats

    data.add_command(stats)
    data.add_command(split)
    data.add_command(import_command)
    data.add_command(export_tf1_command)


_register_data_tools()


def _register_ladder() -> None:
    from fabulist.ladder.cli import ladder_group

    main.add_command(ladder_group(_judge_options))


_register_ladder()


if __name__ == "__main__":
    main()
