"""Two evaluation runs on the same prompts, paired by prompt: is B (say int4) measurably worse than A (fp32)?

    fabulist eval compare runs/eval/fp32 runs/eval/int4 [--margin 0.3] [--out runs/eval/fp32-vs-int4]

For each score, the per-prompt means of B minus those of A over the prompts both runs have, the mean
difference and its 95% bootstrap interval (resampling prompts). Judge scores get a verdict against the
margin (in points of the 1-10 scale; `fabulist.eval.stats.verdict`); judge-free metrics are shown with
their intervals, and the runs' held-out perplexity, KL divergence and top-1 agreement against the fp32
PyTorch reference side by side (when both have them on the same texts). Writes compare.json and compare.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from fabulist.errors import FabulistError
from fabulist.eval import report as rp
from fabulist.eval import stats
from fabulist.eval.generate import load_completions
from fabulist.records import write_atomic


class CompareError(FabulistError):
    """Two runs that cannot be compared."""


def compare(a: dict, b: dict, margin: float = 0.3, seed: int = 0) -> dict:
    """Paired differences B - A between two reports (see `fabulist.eval.report.build`)."""
    shared = sorted(set(a["per_prompt"]) & set(b["per_prompt"]))
    if not shared:
        raise CompareError("the two runs share no prompt")
    keys = [k for k in (*rp.SCORES, *rp.PER_PROMPT_OFFLINE)
            if all(k in r["per_prompt"][p] for r in (a, b) for p in shared)]  # fmt: skip
    rows = {}
    for k in keys:
        diffs = [b["per_prompt"][p][k] - a["per_prompt"][p][k] for p in shared]
        ci = stats.paired_bootstrap(diffs, seed=seed)
        mean_a = sum(a["per_prompt"][p][k] for p in shared) / len(shared)
        judged = k in rp.SCORES
        rows[k] = {"a": mean_a, "b": mean_a + ci["mean"], **ci,
                   "verdict": stats.verdict(ci, margin) if judged else None}  # fmt: skip
    overall = rows.get("overall", {}).get("verdict")
    return {"prompts": len(shared), "margin": margin, "verdict": overall, "metrics": rows}


def markdown(result: dict, name_a: str, name_b: str) -> str:
    lines = [f"# {name_b} against {name_a}", "",
             f"{result['prompts']} shared prompts; differences are {name_b} - {name_a} of per-prompt means, "
             f"95% bootstrap interval; margin {result['margin']} points.", "",
             f"| metric | {name_a} | {name_b} | difference [95% CI] | verdict |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for k, r in result["metrics"].items():
        diff = f"{r['mean']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]"
        lines.append(f"| {k} | {r['a']:.3f} | {r['b']:.3f} | {diff} | {r['verdict'] or ''} |")
    if result["verdict"]:
        lines += ["", f"Verdict (overall judge score): **{result['verdict']}**."]
    else:
        lines += ["", "No judge scores in both runs: no verdict, judge-free differences only."]
    h = result.get("heldout")
    if h:
        cells = {"perplexity": ("ppl", ".3f"), "KL divergence vs fp32 PyTorch": ("kld", ".5f"),
                 "top-1 agreement vs fp32 PyTorch": ("top1", ".2%")}  # fmt: skip
        lines += ["", f"Held-out ({h['source']}):", "", f"| held-out metric | {name_a} | {name_b} |",
                  "| --- | --- | --- |"]  # fmt: skip
        for label, (k, fmt) in cells.items():
            a, b = ("-" if v is None else format(v, fmt) for v in (h["a"].get(k), h["b"].get(k)))
            lines.append(f"| {label} | {a} | {b} |")
    return "\n".join(lines) + "\n"


def heldout_pair(a: dict, b: dict) -> dict | None:
    """The two runs' held-out metrics side by side, when both have them on the same texts."""
    ha, hb = a.get("heldout"), b.get("heldout")
    if not ha or not hb or "unavailable" in ha or "unavailable" in hb or ha["source"] != hb["source"]:
        return None
    keys = ("ppl", "ref_ppl", "kld", "top1", "texts", "positions")
    return {"source": ha["source"], "a": {k: ha[k] for k in keys}, "b": {k: hb[k] for k in keys}}


def run(dir_a: str | Path, dir_b: str | Path, margin: float = 0.3, out: str | Path | None = None,
        seed: int = 0) -> dict:  # fmt: skip
    """Compare two run folders (their reports are rebuilt from the files); write compare.json/.md."""
    for run_dir in (dir_a, dir_b):  # both runs readable before either report is rewritten
        load_completions(run_dir)
    a, b = rp.write(dir_a), rp.write(dir_b)
    result = compare(a, b, margin, seed)
    result["heldout"] = heldout_pair(a, b)
    name_a, name_b = Path(dir_a).name, Path(dir_b).name
    result["a"], result["b"] = str(dir_a), str(dir_b)
    out = Path(out) if out else Path(dir_b).parent / f"{name_a}-vs-{name_b}"
    write_atomic(out / "compare.json", json.dumps(result, indent=1))
    write_atomic(out / "compare.md", markdown(result, name_a, name_b))
    result["markdown"] = markdown(result, name_a, name_b)
    return result
