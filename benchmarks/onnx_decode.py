"""Decode speed of every ONNX artifact in a model folder, against optimum's fp32 graph in the same run.

    .venv/bin/python benchmarks/onnx_decode.py runs/X [--threads 1,2] [--json out.json]
    .venv/bin/python benchmarks/onnx_decode.py --make-random /tmp/fable-6m   # build a 6M model, export, time

For each artifact (onnx/model*.onnx, onnx-genai/*/model.onnx) and each intra-op thread count: prefill 32
tokens, then 128 greedy tokens one at a time through the KV cache (plain onnxruntime, CPU EP, no early stop);
tokens/s counts the 128 decode steps only, best of --repeats. The ratio is to onnx/model.onnx at the same
thread count. --make-random builds hidden 256, 8 layers, 8 heads, 4 KV heads, ffn 512, vocab 4096 with
random weights (tests/export/conftest.make_model_dir) and exports fp32/int8/int4 (+ genai) unvalidated.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fabulist import artifacts
from fabulist.export.onnx import OnnxLM, export_onnx

PREFILL, DECODE = 32, 128


def present(model_dir: Path) -> list[str]:
    """The ONNX artifacts in the folder, optimum's graphs first."""
    found = [a for a in artifacts.ARTIFACTS if a.format == "onnx" and (model_dir / a.path).is_file()]
    return [a.path for a in sorted(found, key=lambda a: a.graph != "optimum")]


def decode_speed(path: Path, threads: int, repeats: int) -> float:
    """Best decode tokens/s over repeats: prefill PREFILL tokens, then DECODE single-token steps."""
    lm = OnnxLM(path, threads=threads)
    vocab = lm.session.get_outputs()[0].shape[-1]
    prompt = np.random.default_rng(0).integers(4, vocab if isinstance(vocab, int) else 256, PREFILL).tolist()
    best = 0.0
    for _ in range(repeats):
        logits, past = lm.step(prompt, None)
        t = time.perf_counter()
        for _ in range(DECODE):
            logits, past = lm.step([int(logits[-1].argmax())], past)
        best = max(best, DECODE / (time.perf_counter() - t))
    return best


def make_random(folder: Path) -> Path:
    from fabulist.bench.models import tokenizer
    from fabulist.train.folder import random_folder
    from fabulist.train.presets import Preset

    folder.mkdir(parents=True, exist_ok=True)
    shape = Preset("random", 256, 8, 8, 4, 512, context=256, lr=1e-3)
    random_folder(folder, shape, tokenizer(folder.parent, None, 4096), std=0.08)
    export_onnx(folder, ["fp32", "int8", "int4"], validate=False, progress=False)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", nargs="?", type=Path)
    ap.add_argument(
        "--make-random", type=Path, metavar="DIR", help="build and export the 6M model here first"
    )
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model_dir = make_random(args.make_random) if args.make_random else args.model_dir
    if model_dir is None:
        ap.error("give a model folder or --make-random DIR")
    threads = [int(t) for t in args.threads.split(",")]
    rows = {a: {t: decode_speed(model_dir / a, t, args.repeats) for t in threads} for a in present(model_dir)}
    base = rows.get(artifacts.get("onnx", "fp32", "optimum").path)
    print(f"decode tokens/s, prefill {PREFILL} + {DECODE} greedy tokens ({model_dir})")
    print(f"{'artifact':32s}" + "".join(f"{f'{t} thr tok/s':>14s}{'x fp32':>8s}" for t in threads))
    for a, speeds in rows.items():
        cells = "".join(f"{s:14.1f}{s / base[t] if base else float('nan'):8.2f}" for t, s in speeds.items())
        print(f"{a:32s}{cells}")
    if args.json:
        args.json.write_text(json.dumps({"model_dir": str(model_dir), "tokens_per_s": rows}, indent=2))


if __name__ == "__main__":
    main()
