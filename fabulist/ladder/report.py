"""The ladder's report: ladder.json (every row, the range, the verdicts), ladder.md and three plots.

    fabulist ladder report runs/ladder        # rebuild from the rungs' saved results (trains nothing)

Plots: quality_vs_params.png (quality score and validation loss against parameters, one line per
family), quality_vs_tokens.png (validation loss, and quality at checkpoints when measured, against
training tokens, one line per rung), speed_memory_vs_params.png (decode tok/s, and memory: artifact
size, the planner's need at the model's context and the measured peak RSS, against parameters).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from fabulist.ladder import bounds
from fabulist.ladder.config import LadderConfig
from fabulist.records import write_atomic

PLOTS = ("quality_vs_params.png", "quality_vs_tokens.png", "speed_memory_vs_params.png")
STYLE = {"deep-thin": ("tab:blue", "o", "-"), "wide-shallow": ("tab:orange", "s", "--")}


def build(cfg: LadderConfig, rows: list[dict], seconds: float | None = None) -> dict:
    from fabulist.bench import suite

    verdicts = bounds.verdicts(rows)
    return {
        "name": cfg.name, "config": cfg.raw, "threshold": cfg.threshold, "quant": cfg.quant,
        "memory_budget": cfg.memory_budget, "fit_context": cfg.fit_context, "machine": suite.machine(),
        "rows": rows, "lower_bound": bounds.lower_bound(rows), "upper_bound": bounds.upper_bound(rows, cfg),
        "verdicts": verdicts, "verdict": bounds.overall(verdicts),
        "seconds": None if seconds is None else round(seconds, 1),
        "compute_seconds": compute_seconds(rows),
    }  # fmt: skip


def compute_seconds(rows: list[dict]) -> float:
    """The stages' own times over all rungs (a resumed or skipped stage counts the time it once took)."""
    return round(sum(v for r in rows for k, v in r["seconds"].items() if k != "ladder_this_run"), 1)


def write(cfg: LadderConfig, rows: list[dict], out: Path, seconds: float | None = None) -> dict:
    report = build(cfg, rows, seconds)
    write_atomic(out / "ladder.json", json.dumps(report, indent=1, ensure_ascii=False))
    write_atomic(out / "ladder.md", markdown(report))
    plot_quality_params(rows, out / PLOTS[0])
    plot_quality_tokens(rows, out / PLOTS[1])
    plot_speed_memory(rows, out / PLOTS[2])
    return report


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}"


def _f(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[dict]) -> list[str]:
    head = ("| rung | family | shape (d x L, heads/kv, ffn) | params | tokens | train s | valid loss | "
            "ONNX MB | GGUF MB | KLD | top-1 | tok/s | RSS MB | quality | moral line | character | "
            "setting | moral | rep-4 | meets |")  # fmt: skip
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        s, q, onnx = r["shape"], r["quality"], r["artifacts"]["onnx"]
        v = onnx.get("validation") or {}
        shape = (f"{s['hidden_size']} x {s['num_hidden_layers']}, {s['num_attention_heads']}/"
                 f"{s['num_key_value_heads']}, {s['intermediate_size']}")  # fmt: skip
        lines.append(
            f"| {r['name']} | {r['family']} | {shape} | {r['params'] / 1e6:.3f}M | "
            f"{r['tokens'] / 1e6:.2f}M | {r['seconds']['train']:.0f} | {r['valid_loss']:.3f} | "
            f"{_mb(onnx['bytes'])} | {_mb(r['artifacts']['gguf']['bytes'])} | {_f(v.get('kld'), '.4f')} | "
            f"{_f(v.get('top1'), '.1%')} | "
            f"{_f(r['speed'].get('tg128_tok_s'), ',.0f')} | {_f(r['speed'].get('peak_rss_mb'), '.0f')} | "
            f"{q['quality_score']:.1%} | {q['moral_line']:.0%} | {q['character']:.0%} | {q['setting']:.0%} | "
            f"{q['moral_stated']:.0%} | {q['repetition_4gram']:.1%} | {'yes' if r['meets'] else 'no'} |"
        )
    return lines


def range_lines(report: dict) -> list[str]:
    low = report["lower_bound"]
    thr = ", ".join(f"{k} {'<=' if k in ('repetition_4gram', 'valid_loss') else '>='} {v:g}"
                    for k, v in report["threshold"].items())  # fmt: skip
    lines = ["## Range", "", f"Threshold: {thr}.", ""]
    if low is None:
        lines.append(
            "- Lower bound: **none met** - no rung of this ladder meets the threshold; the smallest "
            "model that writes fables well is larger than the largest rung (or needs more tokens)."
        )
    else:
        lines.append(
            f"- Lower bound: **{low['rung']}** ({low['params'] / 1e6:.2f}M parameters, "
            f"{low['family']}), the smallest rung that meets the threshold."
        )
    for precision, up in report["upper_bound"].items():
        best = up["largest"]
        ctx = report["fit_context"] or "its own"
        if best is None:
            lines.append(
                f"- Upper bound ({precision}): nothing fits {report['memory_budget']} at context {ctx}."
            )
            continue
        note = (
            "every candidate fits: the bound lies above the largest known shape"
            if up["limited_by"] == "candidates"
            else "the next larger candidate does not fit"
        )
        lines.append(
            f"- Upper bound ({precision}): **{best['name']}** ({best['params'] / 1e6:.1f}M parameters): "
            f"ONNX needs {best['onnx_bytes'] / 1e9:.2f} GB, GGUF {best['gguf_bytes'] / 1e9:.2f} GB of "
            f"{report['memory_budget']} at context {best['context']} ({best['source']}); {note}."
        )
    return lines


def markdown(report: dict) -> str:
    rows = report["rows"]
    lines = [f"# Size ladder: {report['name']}", "",
             f"{len(rows)} rungs, {report['quant']} artifacts; speed: our runtime, "
             f"{rows[0]['speed'].get('threads', '?') if rows else '?'} thread(s), 128 decoded tokens after "
             f"a 64-token prompt. Quality: `fabulist eval quality` rules on {_count(rows)} evaluation-region "
             "prompts (quality = mean of moral line, character, setting, moral stated).", "",
             *table(rows), "", *range_lines(report), "",
             "## Deep and thin against wide and shallow", ""]  # fmt: skip
    for v in report["verdicts"]:
        lines.append(f"- {v['size']}: **{v['winner']}** ({v['deep']} vs {v['wide']}: validation loss gap "
                     f"{v['valid_loss_gap']:+.3f} nats in deep's favour when positive; quality "
                     f"{v['quality_gap'] * 100:+.1f} points)")  # fmt: skip
    lines += ["", f"Overall: {report['verdict']}.", ""]
    judged = [r for r in rows if r.get("judge")]
    if judged:
        lines += ["## Judge", "", "| rung | judge | overall | graded | failures |", "|---|---|---|---|---|"]
        for r in judged:
            j = r["judge"]
            lines.append(f"| {r['name']} | {j['judge_model']} | {_f(j['scores'].get('overall'), '.2f')} | "
                         f"{j['graded']} | {j['failures']} |")  # fmt: skip
        lines.append("")
    lines += [f"![{p}]({p})" for p in PLOTS]
    m = report["machine"]
    run = "" if report.get("seconds") is None else f"; this run {report['seconds']:.0f} s"
    lines += ["", f"The rungs' stages took {report['compute_seconds']:.0f} s in all on {m['cpu']} "
              f"({m['cores']} cores; per rung and stage in ladder.json){run}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _count(rows: list[dict]) -> str:
    counts = sorted({r["quality"]["fables"] for r in rows})
    return "/".join(str(c) for c in counts) or "0"


# --- plots -----------------------------------------------------------------------------------------------


def _figure(ncols: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4), dpi=110)
    return plt, fig, list(axes) if ncols > 1 else [axes]


def _save(plt, fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def _by_family(rows: list[dict]):
    for fam, (color, marker, line) in STYLE.items():
        mine = sorted((r for r in rows if r["family"] == fam), key=lambda r: r["params"])
        if mine:
            yield fam, mine, {"color": color, "marker": marker, "linestyle": line}


def plot_quality_params(rows: list[dict], path: Path) -> None:
    plt, fig, (a, b) = _figure(2)
    for fam, mine, style in _by_family(rows):
        x = [r["params"] for r in mine]
        a.plot(x, [r["quality"]["quality_score"] for r in mine], label=fam, **style)
        b.plot(x, [r["valid_loss"] for r in mine], label=fam, **style)
    a.set(xscale="log", xlabel="parameters", ylabel="quality score", ylim=(-0.02, 1.02),
          title="quality against parameters")  # fmt: skip
    b.set(
        xscale="log",
        xlabel="parameters",
        ylabel="validation loss (nats/token)",
        title="loss against parameters",
    )
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    _save(plt, fig, path)


def quality_points(row: dict) -> list[dict]:
    """Quality against tokens: the ladder's checkpoint curve, else the trainer's per-evaluation samples,
    else the final score alone."""
    points = row["quality_curve"] or [p for p in row["loss_curve"] if "quality_score" in p]
    return points or [{"tokens": row["tokens"], "quality_score": row["quality"]["quality_score"]}]


def plot_quality_tokens(rows: list[dict], path: Path) -> None:
    plt, fig, (a, b) = _figure(2)
    colors = plt.cm.viridis([i / max(1, len(rows) - 1) for i in range(len(rows))])
    for r, color in zip(rows, colors, strict=True):
        line = STYLE[r["family"]][2]
        a.plot([p["tokens"] for p in r["loss_curve"]], [p["valid_loss"] for p in r["loss_curve"]],
               linestyle=line, color=color, label=r["name"])  # fmt: skip
        points = quality_points(r)
        b.plot([p["tokens"] for p in points], [p["quality_score"] for p in points], marker="o",
               linestyle=line, color=color, label=r["name"])  # fmt: skip
    a.set(xlabel="training tokens", ylabel="validation loss (nats/token)", title="learning curves")
    b.set(
        xlabel="training tokens",
        ylabel="quality score",
        ylim=(-0.02, 1.02),
        title="quality during training"
        if any(len(quality_points(r)) > 1 for r in rows)
        else "quality at the end",
    )
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(plt, fig, path)


def plot_speed_memory(rows: list[dict], path: Path) -> None:
    plt, fig, (a, b) = _figure(2)
    for fam, mine, style in _by_family(rows):
        x = [r["params"] for r in mine]
        a.plot(x, [r["speed"].get("tg128_tok_s", float("nan")) for r in mine], label=fam, **style)
        b.plot(x, [r["artifacts"]["onnx"]["bytes"] / 1e6 for r in mine], label=f"{fam}: ONNX file", **style)
        b.plot(x, [r["artifacts"]["onnx"]["memory"]["total"] / 1e6 for r in mine], alpha=0.6,
               label=f"{fam}: planner need", color=style["color"], linestyle=":", marker="^")  # fmt: skip
        b.plot(x, [r["speed"].get("peak_rss_mb", float("nan")) * 2**20 / 1e6 for r in mine], alpha=0.6,
               label=f"{fam}: peak RSS", color=style["color"], linestyle="-.", marker="x")  # fmt: skip
    a.set(xscale="log", xlabel="parameters", ylabel="decode tokens/s", title="speed against parameters")
    b.set(xscale="log", yscale="log", xlabel="parameters", ylabel="MB", title="memory against parameters")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(plt, fig, path)


def rebuild(out: Path, cfg: LadderConfig) -> dict:
    """Rewrite the report from ladder.json's rows (after a change to the report code or threshold)."""
    from fabulist.ladder.config import misses

    rows = json.loads((out / "ladder.json").read_text())["rows"]
    for r in rows:
        metrics = {**r["quality"], "valid_loss": r["valid_loss"]}
        r["misses"] = misses(metrics, cfg.threshold)
        r["meets"] = not r["misses"]
    return write(cfg, rows, out)
