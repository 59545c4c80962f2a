"""Generation speed of Fabulist's runtime against its peers on one trained model, in one run: the short
form of `fabulist bench run` (one size, one thread count, no sweep) plus batched generation.

    .venv/bin/python benchmarks/runtime_speed.py runs/X [--threads 2] [--repeats 3] [--json out.json]

The model folder needs `fabulist export runs/X --format all --quant all`. Rows and metrics are the suite's
(suite.ROWS, worker.py: each row in its own process, batch 1, greedy, 64-token prompt for ttft, 128
decoded tokens, peak RSS). Then batching: 10 completions of one prompt batched against 10 one after
another (ours, ONNX int4). Medians over --repeats after one warm-up; ratios are to rows of the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROWS = ("ours onnx int4", "ours onnx int4 (optimum graph)", "ours gguf q4_0", "llama-cpp-python q4_0",
        "onnxruntime-genai int4", "optimum ORTModelForCausalLM int4",
        "pytorch fp32 (transformers generate)")  # fmt: skip
OURS, DECODE = "ours onnx int4", 128


def batching(model_dir: Path, threads: int, n: int = 10, repeats: int = 3) -> dict:
    """Throughput of n sampled completions batched against the same n one after another (median of
    repeats after a warm-up of each); run in a worker process."""
    from fabulist.bench.worker import prompt_ids
    from fabulist.runtime.load import load_generator
    from fabulist.runtime.sampling import SamplingParams

    gen = load_generator(model_dir, "onnx", "int4", threads, "genai")
    text = gen.tok.decode(prompt_ids(model_dir, 64), skip_special_tokens=False)
    params = SamplingParams(temperature=1.0, seed=0, max_new_tokens=DECODE, min_new_tokens=DECODE)
    runs = {"batched_tok_s": lambda: gen.generate(text, params, n=n),
            "sequential_tok_s": lambda: [gen._run(text, params, [i]) for i in range(n)]}  # fmt: skip
    speeds = {}
    for name, run in runs.items():
        run()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        speeds[name] = n * DECODE / statistics.median(times)
    return speeds


def measure_batching(model_dir: Path, threads: int) -> dict:
    cmd = [sys.executable, __file__, str(model_dir), "--batch-worker", "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return {"skipped": (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(rows: dict, batch: dict, threads: int) -> str:
    ours = rows.get(OURS, {})
    head = f"batch 1, {threads} threads, 64-token prompt, greedy, {DECODE} decode tokens; median"
    cols = f"{'':38s}{'load s':>8s}{'ttft ms':>9s}{'decode tok/s':>14s}{'min-max':>15s}{'RSS MB':>8s}"
    lines = [head, cols + f"{'ours x':>8s}"]
    for name, r in rows.items():
        if "skipped" in r:
            lines.append(f"{name:38s}  skipped: {r['skipped']}")
            continue
        ratio = ours.get("tg128_tok_s", float("nan")) / r["tg128_tok_s"]
        lo, hi = r["spread"]["tg128_tok_s"]
        lines.append(f"{name:38s}{r['load_s']:8.2f}{r['ttft_s'] * 1000:9.1f}{r['tg128_tok_s']:14,.0f}"
                     f"{f'{lo:,.0f}-{hi:,.0f}':>15s}{r['peak_rss_mb']:8.0f}{ratio:8.2f}")  # fmt: skip
    if "batched_tok_s" in batch:
        b, s = batch["batched_tok_s"], batch["sequential_tok_s"]
        lines.append(f"10 completions of one prompt (ours, onnx int4): batched {b:,.0f} tok/s, "
                     f"one by one {s:,.0f} tok/s, ratio {b / s:.2f}x")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    from fabulist.bench import suite

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--only", help="comma-separated row names (default: all)")
    ap.add_argument("--batch-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.batch_worker:
        return print(json.dumps(batching(args.model_dir, args.threads)))
    opts = suite.Options(threads=(args.threads,), repeats=args.repeats, contexts=())
    names = args.only.split(",") if args.only else ROWS
    rows = {}
    for name in names:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        rows[name] = suite.measure_row(args.model_dir, name, args.threads, opts)
    batch = measure_batching(args.model_dir, args.threads) if OURS in names else {}
    print(report(rows, batch, args.threads))
    if args.json:
        payload = {
            "model_dir": str(args.model_dir),
            "machine": suite.machine(),
            "rows": rows,
            "batching": batch,
        }
        args.json.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
