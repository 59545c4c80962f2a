"""Benchmark results as files: results.json (everything, with machine information), results.md (the tables)
and four plots: decode tokens/s, decode latency and peak RSS against parameters, latency against context.

    fabulist bench run --quick --out /tmp/bench    # writes these into /tmp/bench
"""

from __future__ import annotations

import json
from pathlib import Path

PLOTS = ("tok_s_vs_params.png", "latency_vs_params.png", "rss_vs_params.png", "latency_vs_context.png")


def write(results: dict, out: Path) -> None:
    from fabulist.bench import fit
    from fabulist.records import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    results["fit"] = fit.measured_vs_estimate(results)
    write_atomic(out / "results.json", json.dumps(results, indent=1))
    write_atomic(out / "results.md", markdown(results))
    plot(results, out)


def _cell(row: dict, key: str, scale: float = 1.0, spec: str = ",.0f") -> str:
    if key not in row:
        return "-"
    lo, hi = row["spread"].get(key, (None, None)) if "spread" in row else (None, None)
    text = format(row[key] * scale, spec)
    return (
        text
        if lo is None or row.get("repeats", 1) < 2
        else f"{text} ({lo * scale:{spec}}-{hi * scale:{spec}})"
    )


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Fabulist benchmarks",
        "",
        f"{m['cpu']}, {m['cores']} cores, {(m['memory_bytes'] or 0) / 2**30:.0f} GiB; Python {m['python']}; "
        f"{m['date']}; {results['seconds']} s. Batch 1, greedy, end-of-text suppressed; median of "
        f"{results['options']['repeats']} after a warm-up, (min-max). ttft: 64-token prompt; pp: prefill; "
        "tg128: 128 decoded tokens; RSS: each row's own process.",
        "",
        *pivot(results, "tg128_tok_s", "decode tok/s (tg128)"),
        *pivot(results, "peak_rss_mb", "peak RSS MB"),
        "## Every row",
        "",
        "| size | params | row | thr | MB | bits/w | load s | ttft ms | pp128 tok/s | pp512 tok/s "
        "| tg128 tok/s | RSS MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        head = f"| {r['size']} | {r['parameters'] / 1e6:.1f}M | {r['name']} | {r['threads']} "
        size = f"| {r['bytes'] / 1e6:.1f} | {r['bits_per_weight']:.2f} " if "bytes" in r else "| - | - "
        if "skipped" in r:
            lines.append(head + size + f"| skipped: {r['skipped']} ||||||")
            continue
        cells = [f"{r['load_s']:.2f}", _cell(r, "ttft_s", 1000, ".1f"), _cell(r, "pp128_tok_s"),
                 _cell(r, "pp512_tok_s"), _cell(r, "tg128_tok_s"), f"{r['peak_rss_mb']:.0f}"]  # fmt: skip
        lines.append(head + size + "| " + " | ".join(cells) + " |")
    lines += ["", "## Ours against each peer (same weights, same run)", "",
              "| size | thr | ours | peer | decode x | prefill x | ttft x (>1: ours sooner) | RSS x |",
              "|---|---:|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for q in results["ratios"]:
        lines.append(f"| {q['size']} | {q['threads']} | {q['ours']} | {q['peer']} | {q['tg128_x']:.2f} "
                     f"| {q['pp128_x']:.2f} | {q['ttft_x']:.2f} | {q['rss_x']:.2f} |")  # fmt: skip
    lines += ["", "## Memory estimate (export/plan.py) against measured peak RSS", "",
              "| size | row | thr | KV tokens | estimate MB | measured MB | error % |",
              "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for f in results.get("fit", []):
        lines.append(f"| {f['size']} | {f['name']} | {f['threads']} | {f['context']} "
                     f"| {f['estimate_mb']:.0f} "
                     f"| {f['measured_mb']:.0f} | {f['error_pct']:+.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def pivot(results: dict, key: str, label: str) -> list[str]:
    """Markdown lines: one metric at the most threads measured, rows x sizes (the table to read first)."""
    rows = [r for r in results["rows"] if "skipped" not in r]
    if not rows:
        return []
    top = max(r["threads"] for r in rows)
    sizes = list(results["sizes"])
    value = {(r["name"], r["size"]): r[key] for r in rows if r["threads"] == top}
    lines = [f"## {label}, {top} thread(s)", "", "| row | " + " | ".join(sizes) + " |",
             "|---|" + "---:|" * len(sizes)]  # fmt: skip
    for name in dict.fromkeys([*results["options"]["rows"], *(r["name"] for r in rows)]):
        if not any(n == name for n, _ in value):
            continue
        cells = [f"{value[(name, s)]:,.0f}" if (name, s) in value else "-" for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [{**r, "decode_ms": 1000 / r["tg128_tok_s"]} for r in results["rows"] if "skipped" not in r]
    top = max((r["threads"] for r in rows), default=1)
    for filename, key, label in (("tok_s_vs_params.png", "tg128_tok_s", "decode tokens/s (tg128)"),
                                 ("latency_vs_params.png", "decode_ms", "ms per decoded token (tg128)"),
                                 ("rss_vs_params.png", "peak_rss_mb", "peak RSS (MB)")):  # fmt: skip
        fig, ax = plt.subplots(figsize=(8, 5))
        for i, name in enumerate(dict.fromkeys(r["name"] for r in rows)):
            pts = sorted((r["parameters"], r[key]) for r in rows if r["name"] == name and r["threads"] == top)
            # matplotlib cycles ten colours: each further ten rows get a new marker and line style
            style = {"marker": "osD^"[i // 10 % 4], "linestyle": ("-", "--", ":", "-.")[i // 10 % 4]}
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, **style)
        ax.set(
            xscale="log", yscale="log", xlabel="parameters", ylabel=label, title=f"{label}, {top} thread(s)"
        )
        ax.legend(fontsize=7)
        fig.savefig(out / filename, dpi=120, bbox_inches="tight")
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        sweep = r.get("decode_ms_by_context")
        if sweep:
            ax.plot(
                [int(c) for c in sweep], list(sweep.values()), marker="o", label=f"{r['size']}: {r['name']}"
            )
    ax.set(xscale="log", xlabel="context (prompt tokens)", ylabel="ms per decoded token",
           title="decode latency vs context")  # fmt: skip
    ax.legend(fontsize=7)
    fig.savefig(out / "latency_vs_context.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
