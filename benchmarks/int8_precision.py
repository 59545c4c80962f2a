"""Dynamic INT8 in onnxruntime's accurate mode (`session.x64quantprecision`, fabulist/ort_session.py) against
its default mode: validation numbers and decode speed, measured in the same run.

    .venv/bin/python benchmarks/int8_precision.py MODEL_DIR [--emulate EPYC-Rome-v2] [--tokens 128]

MODEL_DIR is a trained model folder exported with `fabulist export MODEL_DIR --format onnx --quant int8`
(onnx/model_int8.onnx beside config.json and model.safetensors). For each mode: KLD, top-1 and max |logit
difference| against the PyTorch fp32 model on export validation's held-out fables (the export gate: top-1
>= 97%, KLD <= 0.01), and greedy decode tokens/s (one thread and two, one prefill then --tokens steps
through the KV cache, median of 3). With --emulate CPU, the validation numbers are measured a second time
on that CPU model under qemu-user (default EPYC-Rome-v2: AVX2 without VNNI), where the two modes differ;
timings under emulation mean nothing and are not taken.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fabulist.export import validate as va
from fabulist.export.onnx import OnnxLM, optimum_path

MODES = {"accurate": True, "default": False}


def references(model_dir: Path) -> tuple[list[list[int]], list[np.ndarray]]:
    ref = va.Reference(model_dir)  # export validation's own texts and PyTorch logits
    return ref.seqs, ref.logits


def validation(model_dir: Path, seqs: list[list[int]], refs: list[np.ndarray]) -> dict:
    out = {}
    for mode, accurate in MODES.items():
        lm = OnnxLM(model_dir / optimum_path("int8"), accurate_int8=accurate)
        got = [lm.logits(ids) for ids in seqs]
        targets = np.concatenate([np.asarray(ids[1:]) for ids in seqs])
        ref = np.concatenate([r[:-1] for r in refs])
        test = np.concatenate([g[:-1] for g in got])
        metrics = va.compare_logits(ref, test, targets)
        top1, kld = va.GATES["int8"]
        metrics["gate"] = "pass" if metrics["top1"] >= top1 and metrics["kld"] <= kld else "miss"
        out[mode] = {k: round(v, 5) if isinstance(v, float) else v for k, v in metrics.items()}
    return out


def speed(model_dir: Path, prompt: list[int], tokens: int, threads: int) -> dict:
    out = {}
    for mode, accurate in MODES.items():
        lm = OnnxLM(model_dir / optimum_path("int8"), threads=threads, accurate_int8=accurate)
        lm.greedy(prompt, 8)  # warm-up
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            lm.greedy(prompt, tokens)
            runs.append(tokens / (time.perf_counter() - t))
        out[mode] = round(statistics.median(runs), 1)
    out["accurate/default"] = round(out["accurate"] / out["default"], 3)
    return out


def emulated(model_dir: Path, cpu: str) -> dict:
    """This script's validation step on an emulated CPU (qemu-user), as JSON."""
    cmd = ["qemu-x86_64", "-cpu", cpu, sys.executable, __file__, str(model_dir), "--validation-only"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"emulated run failed: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--emulate", default="EPYC-Rome-v2", help="qemu CPU model of the second run ('': none)")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--validation-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path)
    opts = ap.parse_args()
    if not (opts.model / optimum_path("int8")).is_file():
        raise SystemExit(f"{opts.model}: no {optimum_path('int8')}; run fabulist export MODEL --quant int8")
    seqs, refs = references(opts.model)
    here = validation(opts.model, seqs, refs)
    if opts.validation_only:
        print(json.dumps(here))
        return
    result = {"model": str(opts.model), "validation": {"this CPU": here}}
    if opts.emulate:
        result["validation"][f"emulated {opts.emulate}"] = emulated(opts.model, opts.emulate)
    prompt = seqs[0][:16]
    result["decode_tok_s"] = {f"{t} thread(s)": speed(opts.model, prompt, opts.tokens, t) for t in (1, 2)}
    print(f"{'CPU':<26}{'mode':<10}{'top-1':>8}{'KLD':>9}{'max |d|':>9}{'gate':>6}")
    for cpu, modes in result["validation"].items():
        for mode, m in modes.items():
            print(
                f"{cpu:<26}{mode:<10}{m['top1']:>8.2%}{m['kld']:>9.5f}{m['max_abs_diff']:>9.3f}{m['gate']:>6}"
            )
    for threads, s in result["decode_tok_s"].items():
        print(f"decode, {threads}: accurate {s['accurate']} tok/s, default {s['default']} tok/s, "
              f"ratio {s['accurate/default']:.3f}")  # fmt: skip
    if opts.json:
        opts.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
