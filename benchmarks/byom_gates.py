"""Does the 8-bit gate (top-1 >= 97%, KLD <= 0.01 against PyTorch) pass for other architectures once their
weights are trained? Random weights give near-flat next-token distributions, where top-1 agreement
measures noise (a tiny random Gemma 3's 8-bit top-1 is ~94%); a few hundred steps of training peak them
as a real checkpoint's are.

    nice -n 10 .venv/bin/python -m fabulist.bench.byom_gates             # five architectures, minutes each
    .venv/bin/python -m fabulist.bench.byom_gates --only gemma3 --steps 300

Per architecture: the tiny folder of tests/export/test_architectures.py (published config shrunk, random
weights, seed 0) is exported to ONNX int8 and GGUF q8_0 and validated (export.validate: the held-out
fables, never trained on); then transformers' AutoModelForCausalLM is trained on the frozen calibration
fables (export/calib.json, the training region) and the same exports are validated again. Results:
benchmarks/results/byom/gates.md and gates.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

NAMES = ("smollm2", "mobilellm", "qwen2.5", "qwen3", "gemma3")  # test_architectures.CONFIGS
OUT = Path("benchmarks/results/byom")
KEYS = (("onnx", "int8"), ("gguf", "q8_0"))
STEPS = 300


def train(folder: Path, steps: int, lr: float = 2e-3, seed: int = 0) -> float:
    """AdamW on the calibration fables, saved in fp32; the last loss (architectures.train_briefly)."""
    from fabulist.bench.architectures import train_briefly

    return train_briefly(folder, steps, lr, seed)


def validated(folder: Path) -> dict:
    """{"onnx int8": metrics + gate, "gguf q8_0": ...} from one export of both, against one reference."""
    from fabulist.export import validate as va
    from fabulist.export.gguf import export_gguf
    from fabulist.export.onnx import export_onnx

    ref = va.Reference(folder)
    results = export_onnx(folder, ["int8"], ref=ref, progress=False, fast=False)
    results += export_gguf(folder, ["q8_0"], ref=ref, progress=False)
    out = {}
    for r in results:
        v = r["validation"]
        out[f"{r['format']} {r['quant']}"] = {"top1": v["top1"], "kld": v["kld"], "ppl_ratio": v["ppl_ratio"],
                                              "positions": v["positions"], "gate": r["gate"]}  # fmt: skip
    return out


def measure(name: str, steps: int, random: bool) -> dict:
    """The trained folder's validations, and with `random` the same folder's before training."""
    from fabulist.bench.architectures import make_folder

    with tempfile.TemporaryDirectory(prefix=f"byom-gate-{name}-") as tmp:
        folder = make_folder(name, Path(tmp) / "model")
        record = {"random": validated(folder)} if random else {}
        t = time.perf_counter()
        record["loss"] = train(folder, steps)
        record["train_s"] = round(time.perf_counter() - t, 1)
        record["trained"] = validated(folder)
    record["steps"] = steps
    return record


def _cell(m: dict | None) -> str:
    if m is None:
        return "-"
    verdict = "pass" if m["gate"] is None else f"**miss**: {m['gate']}"
    return f"{m['top1']:.1%} / {m['kld']:.4f} / {m['ppl_ratio']:.3f} ({verdict})"


def table(results: dict) -> str:
    lines = [
        "# The 8-bit gate on trained weights, per architecture",
        "",
        "Gate: top-1 >= 97% and KLD <= 0.01 against PyTorch fp32 on the held-out fables (export.validate). "
        "Tiny folders of tests/export/test_architectures.py (published config shrunk, seed 0), validated "
        "with random weights, then after training AutoModelForCausalLM on the calibration fables. Cells: "
        "top-1 / KLD / perplexity ratio (verdict); -: not run. `python -m fabulist.bench.byom_gates` "
        "rebuilds it.",
        "",
        "| architecture | steps | final loss | random: ONNX int8 | random: GGUF q8_0 | trained: ONNX int8 "
        "| trained: GGUF q8_0 |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | | | failed: {r['error']} | | | |")
            continue
        cells = [_cell(r.get(k, {}).get(f"{f} {q}")) for k in ("random", "trained") for f, q in KEYS]
        lines.append(f"| {name} | {r['steps']} | {r['loss']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated of " + ", ".join(NAMES))
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--random", action="store_true", help="also validate each folder before training")
    args = p.parse_args()
    names = args.only.split(",") if args.only else list(NAMES)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "gates.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        print(f"[gates] {time.strftime('%H:%M:%S')} {name}", file=sys.stderr, flush=True)
        key = name if args.steps == STEPS else f"{name}, {args.steps} steps"
        try:
            earlier = {k: v for k, v in results.get(key, {}).items() if k != "error"}  # --random later
            results[key] = earlier | measure(name, args.steps, args.random)
        except Exception as e:  # one architecture failing leaves the others' rows
            results[key] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        path.write_text(json.dumps(results, indent=1))
        (OUT / "gates.md").write_text(table(dict(sorted(results.items()))))
    print(table(dict(sorted(results.items()))))


if __name__ == "__main__":
    main()
