"""`fabulist eval`: judge-free quality checks, the LLM judge, held-out perplexity, reports and comparisons."""

from __future__ import annotations

from pathlib import Path

import click

from fabulist.cli.common import THREADS_HELP, judge_options, sampling, threads_option
from fabulist.cli_types import NON_NEGATIVE, SEED


@click.group("eval")
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
@click.option("--graph", type=click.Choice(["auto", "genai", "optimum"]), default="auto", show_default=True,
              help="ONNX graph (auto: onnxruntime-genai's when present); optimum's carries the export's "
                   "--method (gptq, rtn, ...).")  # fmt: skip
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
def eval_quality(model_dir, fmt, quant, graph, count, temperature, top_p, seed, max_new_tokens, json_out,
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
    params = sampling(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    prompts = None
    if prompts_path:
        prompts, skipped = q.prompts_from(prompts_path, count)
        if not prompts:
            raise click.UsageError(f"{prompts_path}: no record shows a character, setting and moral")
        click.echo(f"{len(prompts)} prompts from {prompts_path} (skipped, without a character, setting or "
                   f"moral: {skipped})", err=True)  # fmt: skip
    model_dir = resolve(model_dir)
    for one in quants:  # every artifact found before the first is loaded and scored
        artifact(Path(model_dir), fmt, one, graph)
    results, guided = {}, {}
    for one in quants:
        gen = load_generator(model_dir, fmt, one, graph=graph)
        click.echo(f"{fmt} {one}: {gen.artifact}", err=True)
        results[one] = q.run(gen, count, params, prompts=prompts)
        if guide:
            guided[one] = q.run(gen, count, params, prompts=prompts, guided=True)
    names = list(results)
    columns = [(n, results[n]) for n in names]
    if guide:
        columns = [c for n in names for c in ((n, results[n]), (f"{n}+guide", guided[n]))]
        click.echo("the quality bar is judged on raw output; +guide columns show the same prompts and seeds "
                   "written with --guide, for comparison")  # fmt: skip
    width = max(10, *(len(n) + 2 for n, _ in columns))
    click.echo(f"{'':22s}" + "".join(f"{n:>{width}s}" for n, _ in columns) + "   target")
    for key, goal in q.goals():
        cells = "".join(f"{r['summary'][key]:>{width}.1%}" for _, r in columns)
        click.echo(f"{key:22s}{cells}   {'' if goal == 'reported' else goal}")
    for n in names:
        misses = q.verdict(results[n]["summary"])
        verdict = "quality bar holds" if not misses else "misses: " + "; ".join(misses)
        click.echo(f"{n}{' (raw)' if guide else ''}: {verdict}")
    if len(names) > 1:
        base = results[names[-1]]["summary"]
        worst = max(abs(results[names[0]]["summary"][k] - base[k]) for k in q.TARGETS)
        click.echo(f"largest gap {names[0]} vs {names[-1]}: {worst * 100:.1f} points")
    if json_out:
        payload = {"model": str(model_dir), "format": fmt, "graph": graph, "n": count,
                   "temperature": temperature, "top_p": top_p, "seed": seed, "results": results}  # fmt: skip
        if guide:
            payload["guided"] = guided  # beside "results", which stays the raw output the bar is judged on
        write_atomic(json_out, json.dumps(payload, indent=1, ensure_ascii=False))


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
@click.option("--threads", type=int, callback=threads_option, help=THREADS_HELP)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Run folder, e.g. runs/eval/int4."
)
@click.option("--heldout", type=click.Path(dir_okay=False, exists=True),
              help="Validation fables (.parquet/.jsonl) for held-out perplexity and KL against fp32 PyTorch "
                   "[default: export validation's held-out fables].")  # fmt: skip
@click.option("--heldout-texts", type=int, default=64, show_default=True, help="Fables of --heldout used.")
@judge_options
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
    params = sampling(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    r = generate.run(model_dir, out, fmt, quant, count, params, limit, threads)
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
@judge_options
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
