"""The range the ladder found, and which shape won at each size.

Lower bound: the smallest rung (by parameter count; the first in the config on a tie) that meets the
threshold: every threshold metric at or above its minimum (at or below for repetition_4gram and
valid_loss). No rung meeting it is reported as such, never rounded up to the nearest miss.

Upper bound, per precision (int4: ONNX int4 and GGUF q4_0; int8: ONNX int8 and GGUF q8_0): the largest
model, among the shipped presets and the ladder's own shapes, whose artifacts in both formats fit the
memory budget with their KV cache at the fit context, by the fit planner's rule (`fabulist bench fit`:
weights + KV cache + 128 MiB + 10% of the weights). Weights are the exported file's size where the
ladder made that artifact, else the estimate from the parameter count. `limited_by` says whether a
larger candidate failed to fit ("budget") or every candidate fit ("candidates": the real bound lies
above the largest shape known).

Deep against wide, per size: the rung with the lower validation loss wins (same data, tokens, tokenizer
and validation fables); closer than TIE nats is a tie. The quality score difference is reported with it.
"""

from __future__ import annotations

from fabulist.ladder.config import LadderConfig

TIE = 0.01  # nats
PRECISIONS = {"int4": {"onnx": "int4", "gguf": "q4_0"}, "int8": {"onnx": "int8", "gguf": "q8_0"}}


def lower_bound(rows: list[dict]) -> dict | None:
    """The smallest rung that meets the threshold (rows carry `meets`), or None."""
    met = [r for r in rows if r["meets"]]
    if not met:
        return None
    best = min(met, key=lambda r: r["params"])
    return {"rung": best["name"], "params": best["params"], "family": best["family"], "size": best["size"]}


def candidates(rows: list[dict], cfg: LadderConfig) -> list[dict]:
    """The presets and the ladder's shapes, each {name, kind, preset (a Preset), params, row}."""
    from fabulist.train import presets

    out = [{"name": p.name, "kind": "preset", "preset": p, "row": None} for p in presets.load().values()]
    by_name = {r["name"]: r for r in rows}
    for rung in cfg.rungs:
        out.append({"name": rung.name, "kind": "rung", "preset": rung.shape, "row": by_name.get(rung.name)})
    for c in out:
        c["params"] = c["preset"].parameters(cfg.vocab_size)
    return sorted(out, key=lambda c: c["params"])


def memory_need(c: dict, fmt: str, quant: str, cfg: LadderConfig, precision: str) -> dict:
    """The planner's memory need of one candidate's artifact (measured weights when the ladder has them)."""
    from fabulist.bench import fit
    from fabulist.export import plan as pl

    budget = pl.parse_bytes(cfg.memory_budget)
    context = cfg.fit_context or c["preset"].context
    row = c["row"]
    if row is not None and precision == cfg.quant:
        config = {
            **c["preset"].llama_config(row["vocab_size"], fit.SPECIAL),
            "max_position_embeddings": context,
        }
        est = pl.memory(config, fmt, row["artifacts"][fmt]["bytes"], context, budget)
        return est | {"source": "measured"}
    est = fit.estimate(c["preset"], fmt, quant, context, budget, pl.OVERHEAD_BYTES, cfg.vocab_size)
    return est | {"source": "estimated"}


def upper_bound(rows: list[dict], cfg: LadderConfig) -> dict:
    """Per precision: the largest candidate whose artifacts fit in both formats (see the module doc)."""
    out = {}
    for precision, quants in PRECISIONS.items():
        table, best = [], None
        for c in candidates(rows, cfg):
            needs = {fmt: memory_need(c, fmt, q, cfg, precision) for fmt, q in quants.items()}
            fits = all(n["fits"] for n in needs.values())
            table.append({"name": c["name"], "kind": c["kind"], "params": c["params"], "fits": fits,
                          "context": needs["onnx"]["context"],
                          **{f"{fmt}_bytes": n["total"] for fmt, n in needs.items()},
                          "source": needs["onnx"]["source"]})  # fmt: skip
            if fits:
                best = table[-1]
        larger_misses = best is None or any(not t["fits"] and t["params"] > best["params"] for t in table)
        out[precision] = {"largest": best, "limited_by": "budget" if larger_misses else "candidates",
                          "candidates": table}  # fmt: skip
    return out


def verdicts(rows: list[dict]) -> list[dict]:
    """Per size with both families: the best rung of each, the winner by validation loss, the gaps."""
    out = []
    for size in dict.fromkeys(r["size"] for r in rows):
        here = [r for r in rows if r["size"] == size]
        best = {}
        for fam in ("deep-thin", "wide-shallow"):
            mine = [r for r in here if r["family"] == fam]
            if mine:
                best[fam] = min(mine, key=lambda r: r["valid_loss"])
        if len(best) < 2:
            continue
        deep, wide = best["deep-thin"], best["wide-shallow"]
        gap = wide["valid_loss"] - deep["valid_loss"]  # > 0: deep is better
        winner = "tie" if abs(gap) < TIE else "deep-thin" if gap > 0 else "wide-shallow"
        quality_gap = deep["quality"]["quality_score"] - wide["quality"]["quality_score"]
        out.append({"size": size, "deep": deep["name"], "wide": wide["name"], "winner": winner,
                    "valid_loss_gap": gap, "quality_gap": quality_gap})  # fmt: skip
    return out


def overall(verdict_rows: list[dict]) -> str:
    if not verdict_rows:
        return "no size has both a deep-thin and a wide-shallow rung"
    wins = {w: sum(v["winner"] == w for v in verdict_rows) for w in ("deep-thin", "wide-shallow", "tie")}
    n = len(verdict_rows)
    lead = (
        "deep-thin"
        if wins["deep-thin"] > wins["wide-shallow"]
        else ("wide-shallow" if wins["wide-shallow"] > wins["deep-thin"] else "neither")
    )
    return (f"{lead} won" if lead != "neither" else "no shape won") + (
        f": deep-thin {wins['deep-thin']}, wide-shallow {wins['wide-shallow']}, ties {wins['tie']} "
        f"of {n} sizes (validation loss)"
    )
