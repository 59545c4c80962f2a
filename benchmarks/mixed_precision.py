"""Mixed 4/8-bit ONNX (export/mixed.py, `fabulist export --quant auto`) on one trained model: the whole
size-vs-KLD curve of the walk, the plans it gives for several --max-kld targets, against all-4-bit GPTQ,
GPTQ with an 8-bit LM head, and all-8-bit.

    .venv/bin/python benchmarks/mixed_precision.py [MODEL_DIR] [--targets 0.005,0.003,0.002] [--proxy-check]

MODEL_DIR is a trained model folder (default: /root/fabulist-work/run4, the shipped fable-5m v2.2), copied
into a scratch folder first, so it is never written. The walk promotes every matrix in turn (no target
stops it), each step assembled and measured on export validation's held-out positions; a target's plan is
the first step that meets it, as `--quant auto --max-kld` chooses (the order does not depend on the target).
--proxy-check also measures the sensitivities on all 64 calibration fables and reports how far the export's
cheaper 8-fable order (mixed.SENSITIVITY_TEXTS) is from it (Spearman's rho, top-10 overlap).
Writes benchmarks/results/quant_methods/<model>-mixed.json, .md and .png. No timings: nothing to rerun
quietly, the numbers are the same on any machine (onnxruntime CPU kernels, fixed calibration).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from fabulist.bench.quant_methods import OUT, working_copy
from fabulist.export import mixed
from fabulist.export import onnx as ox
from fabulist.export import validate as va

DEFAULT_MODEL = Path("/root/fabulist-work/run4")


def curve(model_dir: Path, targets: list[float], proxy_check: bool) -> dict:
    """The walk's every step, the plan of each target, the reference graphs and (optionally) the proxy."""
    with tempfile.TemporaryDirectory(prefix="mixed-precision-") as tmp:
        work = working_copy(model_dir, Path(tmp))
        ref = va.Reference(work)
        fp32 = ox._export_fp32(work, work / "onnx", progress=False)
        model = ox.load_proto(fp32)
        feeds, _ = ox._calibration(work, None, fp32)
        solved = mixed.solve_all(model, feeds, fp32.parent)
        graph = mixed.Graph(model, solved, Path(tmp), ref, None)
        plan = mixed.Plan({"max_kld": None, "max_bytes": None})
        plan.sensitivity = mixed.sensitivities(model, feeds[: mixed.SENSITIVITY_TEXTS], solved, fp32.parent)
        plan.steps.append(graph.measure(set(), None))
        mixed.walk(plan, graph, progress=True)
        plan.all_8bit = graph.measure(set(solved), None)
        record = {
            "model": str(model_dir),
            "matrices": len(solved),
            "all_4bit_gptq": plan.steps[0],
            "gptq_8bit_lm_head": graph.measure({ox.LM_HEAD}, ox.LM_HEAD),
            "all_8bit_rtn": plan.all_8bit,
            "plans": [plan_for(plan, t) for t in targets],
            "steps": plan.steps,
            "sensitivity": plan.sensitivity,
        }
        if proxy_check:
            full = mixed.sensitivities(model, feeds, solved, fp32.parent)
            record["proxy_check"] = compare_orders(plan.sensitivity, full, len(feeds))
    plan.chosen = next((p["step"] for p in record["plans"] if p["step"] is not None), 0)
    plan.target["max_kld"] = targets[0] if targets else None
    record["_plan"] = plan
    return record


def plan_for(plan: mixed.Plan, target: float) -> dict:
    """The plan `--max-kld target` gives: the first step of the walk that meets it."""
    step = next((i for i, s in enumerate(plan.steps) if s["kld"] <= target), None)
    if step is None:
        return {"max_kld": target, "step": None}
    return {"max_kld": target, "step": step, **plan.steps[step],
            "eight_bit": [s["promoted"] for s in plan.steps[1 : step + 1]]}  # fmt: skip


def compare_orders(cheap: list[dict], full: list[dict], texts: int) -> dict:
    """Spearman's rho between the two sensitivity orders (by KLD per added byte) and their top-10 overlap."""
    names = [r["matmul"] for r in full]
    rank_full = {n: i for i, n in enumerate(names)}
    rank_cheap = {r["matmul"]: i for i, r in enumerate(cheap)}
    a = np.array([rank_full[n] for n in names], dtype=float)
    b = np.array([rank_cheap[n] for n in names], dtype=float)
    rho = 1 - 6 * ((a - b) ** 2).sum() / (len(a) * (len(a) ** 2 - 1))
    top = len({r["matmul"] for r in cheap[:10]} & set(names[:10]))
    return {
        "texts": [mixed.SENSITIVITY_TEXTS, texts],
        "spearman_rho": round(float(rho), 4),
        "top10_overlap": top,
    }


def markdown(record: dict) -> str:
    name = Path(record["model"]).name
    lines = [
        f"Mixed 4/8-bit ONNX on `{name}` ({record['matrices']} weighted MatMuls; KLD and top-1 against "
        "PyTorch fp32 on export validation's held-out positions)",
        "",
        "| graph | 8-bit matrices | size MB | KLD | top-1 |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = [
        ("all 4-bit GPTQ", 0, record["all_4bit_gptq"]),
        ("GPTQ + 8-bit LM head", 1, record["gptq_8bit_lm_head"]),
    ]
    rows += [
        (f"auto --max-kld {p['max_kld']}", len(p["eight_bit"]), p)
        for p in record["plans"]
        if p["step"] is not None
    ]
    rows.append(("all 8-bit RTN", record["matrices"], record["all_8bit_rtn"]))
    for label, n, r in rows:
        lines.append(f"| {label} | {n} | {r['bytes'] / 1e6:.3f} | {r['kld']:.5f} | {r['top1']:.1%} |")
    lines += [
        f"| auto --max-kld {p['max_kld']} | - | - | not reached | - |"
        for p in record["plans"]
        if p["step"] is None
    ]
    if "proxy_check" in record:
        pc = record["proxy_check"]
        lines += ["", f"Sensitivity order on {pc['texts'][0]} vs {pc['texts'][1]} calibration fables: "
                  f"Spearman rho {pc['spearman_rho']}, top-10 overlap {pc['top10_overlap']}/10"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, nargs="?", default=DEFAULT_MODEL if DEFAULT_MODEL.exists() else None)
    ap.add_argument("--targets", default="0.005,0.003,0.002", help="--max-kld values, comma-separated")
    ap.add_argument("--proxy-check", action="store_true", help="also rank matrices on all calibration fables")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.model is None:
        raise SystemExit("pass a trained model folder (the default, /root/fabulist-work/run4, is absent)")
    record = curve(args.model, [float(t) for t in args.targets.split(",")], args.proxy_check)
    plan = record.pop("_plan")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{args.model.name}-mixed"
    Path(f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    Path(f"{stem}.md").write_text(markdown(record))
    mixed.draw(plan, Path(f"{stem}.png"), f"{args.model.name}: mixed 4/8-bit ONNX, size against KLD")
    print(markdown(record))


if __name__ == "__main__":
    main()
