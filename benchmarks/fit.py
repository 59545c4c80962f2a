"""The memory fit planner: which preset, at which context, fits a device's memory, per format.

    fabulist bench fit --budget 6GB [--context 2048] [--results benchmarks/results/results.json]

The estimate is export/plan.py's (weights + KV cache + overhead); the overhead's fixed part is the one
measured by the last benchmark run when there is one (the largest peak RSS - weights - KV cache - 10% of
the weights over our runtime's rows of that format), else the planner's 128 MiB. For every size measured
there, the estimate is set against the measured peak RSS (error in %: positive means the estimate is high).
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

from fabulist.errors import FabulistError
from fabulist.export import plan as pl

SPECIAL = {"bos": 1, "eos": 0, "pad": 3, "story": 4}  # ids do not change the shape


class FitError(FabulistError):
    """A results.json that `bench fit` cannot read."""


# The committed benchmark run (benchmarks/results/results.json), installed with the package so that
# `fabulist bench fit` answers the same from a wheel as from a checkout, whatever the working directory.
SHIPPED = Path(str(resources.files("fabulist.bench").joinpath("results", "results.json")))


def _fmt(artifact: str) -> str | None:
    return "gguf" if artifact.startswith("gguf/") else "onnx" if artifact.startswith("onnx") else None


def measured_vs_estimate(results: dict) -> list[dict]:
    """Estimate (at the KV length the row held: see worker.py's kv_tokens) against measured peak RSS."""
    out = []
    for r in results["rows"]:
        fmt = _fmt(r["artifact"])
        if fmt is None or "skipped" in r or "bytes" not in r:
            continue
        config = results["sizes"][r["size"]]["config"]
        context = r.get("kv_tokens", config["max_position_embeddings"])
        est = pl.memory(config, fmt, r["bytes"], context, 0)
        measured = r["peak_rss_mb"] * 2**20
        fixed = measured - est["weights"] - est["kv_cache"] - est["weights"] // 10
        out.append({"size": r["size"], "name": r["name"], "threads": r["threads"], "format": fmt,
                    "context": context, "weights": r["bytes"], "kv_cache": est["kv_cache"],
                    "estimate_mb": est["total"] / 2**20, "measured_mb": r["peak_rss_mb"],
                    "error_pct": 100 * (est["total"] - measured) / measured,
                    "fixed_overhead": fixed})  # fmt: skip
    return out


def measured_overhead(results: dict | None) -> dict[str, int]:
    """Fixed runtime overhead per format from our runtime's measured rows (the planner's when none)."""
    found = {f: pl.OVERHEAD_BYTES for f in pl.FORMATS}
    if not results:
        return found
    for fmt in pl.FORMATS:
        ours = [f["fixed_overhead"] for f in results.get("fit", []) if f["format"] == fmt
                and f["name"].startswith("ours ")]  # fmt: skip
        if ours:
            found[fmt] = int(max(ours))
    return found


def estimate(preset, fmt: str, quant: str, context: int, budget: int, overhead: int, vocab: int) -> dict:
    config = {**preset.llama_config(vocab, SPECIAL), "max_position_embeddings": context}
    est = pl.estimate(config, fmt, quant, context, budget)
    est["overhead"] = overhead + est["weights"] // 10
    est["total"] = est["weights"] + est["kv_cache"] + est["overhead"]
    est["fits"] = est["total"] <= budget
    per_token = pl.estimate(config, fmt, quant, 1, budget)["kv_cache"]
    est["longest_context"] = max(0, (budget - est["weights"] - est["overhead"]) // per_token)
    return est | {"parameters": pl.parameters(config)}


def plan_fit(budget: str, context: int | None = None, results: dict | None = None, vocab: int = 4096) -> list:
    """Per (format, quant): the largest preset that fits at `context` (default: each preset's own) and the
    longest context that preset could hold within the budget."""
    from fabulist.train import presets

    limit = pl.parse_bytes(budget)
    overhead = measured_overhead(results)
    by_size = sorted(presets.load().values(), key=lambda p: p.parameters(vocab))
    rows = []
    for fmt in pl.FORMATS:
        for quant in pl.PLAN["all"][fmt]:
            best = None
            for p in by_size:
                est = estimate(p, fmt, quant, context or p.context, limit, overhead[fmt], vocab)
                if est["fits"]:
                    best = (p, est)
            row = {"format": fmt, "quant": quant, "budget": limit, "overhead_fixed": overhead[fmt]}
            if best:
                p, est = best
                row |= {"preset": p.name, "trained_context": p.context, **est}
            rows.append(row)
    return rows


def table(rows: list[dict], measured: list[dict], source: str) -> str:
    lines = [f"fixed runtime overhead: {source}",
             f"{'format':14s}{'largest preset':>16s}{'params':>9s}{'context':>9s}{'needs GB':>10s}"
             f"{'longest context':>17s}"]  # fmt: skip
    for r in rows:
        name = f"{r['format']} {r['quant']}"
        if "preset" not in r:
            lines.append(f"{name:14s}{'nothing fits':>16s}")
            continue
        lines.append(f"{name:14s}{r['preset']:>16s}{r['parameters'] / 1e6:>8.0f}M{r['context']:>9d}"
                     f"{r['total'] / 1e9:>10.2f}{r['longest_context']:>17,d}")  # fmt: skip
    if measured:
        head = f"{'size':24s}{'row':36s}{'thr':>4s}{'context':>8s}{'est MB':>9s}{'RSS MB':>9s}{'error':>8s}"
        lines += ["", "estimate vs measured peak RSS (last benchmark run)", head]
        for m in measured:
            lines.append(f"{m['size']:24s}{m['name']:36s}{m['threads']:>4d}{m['context']:>8d}"
                         f"{m['estimate_mb']:>9.0f}{m['measured_mb']:>9.0f}"
                         f"{m['error_pct']:>+7.1f}%")  # fmt: skip
    return "\n".join(lines)


# The fields of results.json's "fit" rows that `bench fit` reads, and their types.
_FIT_FIELDS = {"size": str, "name": str, "format": str, "threads": int, "context": int, "estimate_mb": float,
               "measured_mb": float, "error_pct": float, "fixed_overhead": float}  # fmt: skip


def _read_results(path: Path) -> dict:
    """A benchmark run's results.json with its "fit" rows checked, or a FitError naming the file."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise FitError(f"{path}: not UTF-8 text (not a benchmark results.json)") from None
    except (ValueError, RecursionError) as exc:
        raise FitError(f"{path}: not valid JSON ({str(exc)[:80]})") from None
    rows = results.get("fit") if isinstance(results, dict) else None
    if not isinstance(rows, list):
        raise FitError(f"{path}: expected a JSON object with a list of fit rows (`fabulist bench run`)")
    for i, row in enumerate(rows, 1):
        row = row if isinstance(row, dict) else {}
        bad = [k for k, kind in _FIT_FIELDS.items() if not _is(row.get(k), kind)]
        if bad:
            raise FitError(f"{path}: fit row {i}: {', '.join(bad)} missing or of the wrong type")
    return results


def _is(value, kind: type) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if kind is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, kind)


def fit_report(budget: str, context: int | None, results_path: Path | None) -> tuple[list, list, str]:
    """(fit rows, estimate-vs-measured rows, printed table) for `fabulist bench fit`."""
    results = _read_results(results_path) if results_path and results_path.exists() else None
    rows = plan_fit(budget, context, results)
    measured = (results or {}).get("fit", [])
    source = f"measured in {results_path}" if results else "the planner's 128 MiB (no benchmark results)"
    return rows, measured, table(rows, measured, source)
