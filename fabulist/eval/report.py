"""The report of one evaluation run: judge scores with clustered CIs, age groups, judge-free metrics.

    fabulist eval report runs/eval/int4        # writes report.json, report.md and report.png in the run

Judge part (when the run was judged): per dimension (grammar, creativity, consistency, plot) and overall
(the mean of the four for each completion), the mean with a 95% confidence interval clustered by prompt
(`fabulist.eval.stats`); the distribution of age groups; failures, requests, tokens and cost. Judge
failures are counted, never scored. Judge-free part, always: `fabulist.eval.offline` on the completions,
and `fabulist.eval.heldout` on the model (held-out perplexity, KL divergence and top-1 agreement against
the fp32 PyTorch reference; from RUN/heldout.json, computed here when the run has none and its model
folder is at hand). `per_prompt` holds each prompt's means, which `fabulist eval compare` pairs across runs.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from fabulist.eval import evalset, grading, heldout, offline, stats
from fabulist.eval.generate import RUN, EvalRunError, load_completions
from fabulist.eval.judge import AGE_GROUPS, DIMENSIONS
from fabulist.records import read_json, write_atomic

SCORES = (*DIMENSIONS, "overall")
PER_PROMPT_OFFLINE = (*offline.COVERAGE, "repetition_4gram", "flesch", "words")


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _judge_part(judged: tuple[list[dict], dict] | None, per_prompt: dict) -> dict | None:
    if judged is None:
        return None
    rows, summary = judged
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["grade"] is not None:
            g = r["grade"]
            for dim in DIMENSIONS:
                groups[dim][r["prompt_id"]].append(g[dim])
            groups["overall"][r["prompt_id"]].append(_mean(g[d] for d in DIMENSIONS))
    scores = {s: stats.clustered_ci(list(groups[s].values())) for s in SCORES}
    for s in SCORES:
        for pid, values in groups[s].items():
            per_prompt[pid][s] = _mean(values)
    ages = Counter(r["grade"]["age_group"] for r in rows if r["grade"] is not None)
    return {"scores": scores, "age_groups": {a: ages.get(a, 0) for a in AGE_GROUPS}, **summary}


def build(run_dir: str | Path, prompts_file: str | None = None) -> dict:
    run_dir = Path(run_dir)
    by_id = {p.id: p for p in evalset.load(prompts_file)}
    rows = []
    for c in load_completions(run_dir):
        p = by_id.get(c["prompt_id"])
        if p is None:
            raise EvalRunError(f"{run_dir}: a completion for unknown prompt {c['prompt_id']!r}")
        fable = p.story(c["text"])
        rows.append({"prompt_id": p.id, "fable": fable, **offline.per_fable(fable, p.elements)})
    per_prompt: dict[str, dict] = defaultdict(dict)
    for pid in {r["prompt_id"] for r in rows}:
        mine = [r for r in rows if r["prompt_id"] == pid]
        per_prompt[pid] = {k: _mean(float(r[k]) for r in mine) for k in PER_PROMPT_OFFLINE}
    run_info = read_json(run_dir / RUN) if (run_dir / RUN).exists() else {}
    return {
        "run": run_info,
        "prompts": len(per_prompt),
        "offline": offline.summarize(rows),
        "heldout": heldout.load(run_dir) or heldout.ensure(run_dir),
        "judge": _judge_part(grading.load(run_dir), per_prompt),
        "per_prompt": dict(sorted(per_prompt.items())),
    }


def _ci(c: dict) -> str:
    if c["mean"] is None:
        return "-"
    return f"{c['mean']:.2f}" + ("" if c["lo"] is None else f" [{c['lo']:.2f}, {c['hi']:.2f}]")


def markdown(report: dict, title: str = "Evaluation report") -> str:
    s = report["run"].get("settings", {})
    model = f"Model `{s.get('model', '?')}` ({s.get('format', '?')} {s.get('quant') or ''})"
    size = f"{report['prompts']} prompts x {s.get('n', '?')} completions"
    lines = [f"# {title}", "", f"{model}, {size}, temperature {s.get('temperature')}.", ""]
    j = report["judge"]
    if j is None:
        lines += ["No judge configured: judge-free metrics only.", ""]
    else:
        lines += [f"Judge `{j['judge_model']}` ({j['prompt_version']}, {j['structured_output']}):"
                  f" {j['graded']} graded, {j['failures']} failures, {j['requests']} requests,"
                  f" {j['cache_hits']} cache hits,"
                  f" {j['input_tokens']:,} + {j['output_tokens']:,} tokens, ${j['cost_usd']:.4f}.", "",
                  "| score | mean [95% CI, clustered by prompt] |", "| --- | --- |"]  # fmt: skip
        lines += [f"| {s} | {_ci(j['scores'][s])} |" for s in SCORES]
        head = " | ".join(f"{a} ({r})" for a, r in AGE_GROUPS.items())
        counts = " | ".join(str(j["age_groups"][a]) for a in AGE_GROUPS)
        lines += [
            "",
            f"| age group | {head} |",
            "| --- |" + " --- |" * len(AGE_GROUPS),
            f"| fables | {counts} |",
            "",
        ]
    lines += ["| judge-free metric | value |", "| --- | --- |"]
    for k, v in report["offline"].items():
        lines.append(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |")
    lines += ["", *heldout_lines(report.get("heldout"))]
    return "\n".join(lines) + "\n"


def heldout_lines(h: dict | None) -> list[str]:
    """The held-out part of the Markdown report."""
    if h is None:
        return ["Held-out metrics: not computed (the run has no run.json)."]
    if "unavailable" in h:
        return [f"Held-out metrics: not computed ({h['unavailable']})."]
    ref = h["reference"] or "none (the run samples the PyTorch checkpoint itself)"
    lines = [
        f"Held-out: {h['texts']} texts, {h['positions']:,} positions ({h['source']}); reference: {ref}.",
        "",
        "| held-out metric | value |",
        "| --- | --- |",
        f"| perplexity | {h['ppl']:.3f} |",
    ]
    if h["reference"]:
        lines += [
            f"| reference perplexity | {h['ref_ppl']:.3f} |",
            f"| KL divergence (nats/token) | {h['kld']:.5f} |",
            f"| top-1 agreement | {h['top1']:.2%} |",
        ]
    return lines


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    j = report["judge"]
    fig, axes = plt.subplots(1, 2 if j else 1, figsize=(10 if j else 5, 3.5), squeeze=False)
    if j:
        sc = [j["scores"][s] for s in SCORES]
        means = [c["mean"] or 0 for c in sc]
        low = [m - (c["lo"] if c["lo"] is not None else m) for m, c in zip(means, sc, strict=True)]
        high = [(c["hi"] if c["hi"] is not None else m) - m for m, c in zip(means, sc, strict=True)]
        axes[0][1].bar(SCORES, means, yerr=[low, high], capsize=4)
        axes[0][1].set_ylim(0, 10)
        axes[0][1].set_title("judge score (95% CI)")
    cov = {k: report["offline"][k] for k in offline.COVERAGE}
    axes[0][0].bar(list(cov), list(cov.values()), color="tab:green")
    axes[0][0].set_ylim(0, 1)
    axes[0][0].set_title("coverage (judge-free)")
    for ax in axes[0]:
        ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(run_dir: str | Path, prompts_file: str | None = None) -> dict:
    """Build the report of a run and write report.json, report.md and report.png into it."""
    run_dir = Path(run_dir)
    report = build(run_dir, prompts_file)
    write_atomic(run_dir / "report.json", json.dumps(report, indent=1, ensure_ascii=False))
    write_atomic(run_dir / "report.md", markdown(report, f"Evaluation report: {run_dir.name}"))
    plot(report, run_dir / "report.png")
    return report
