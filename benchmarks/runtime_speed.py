"""Generation speed of Fabulist's runtime against its peers, on the same trained model, in one run.

    .venv/bin/python benchmarks/runtime_speed.py runs/X [--threads 2] [--repeats 3] [--json out.json]

The model folder needs `fabulist export runs/X --quant all`. Each row runs in its own process (so peak
RSS is its own): batch 1, greedy, a 64-token prompt (an element header and the start of a fable).
- ttft: time to the first new token (prefill of the 64 tokens + one sampling step);
- decode tok/s: 128 further tokens / their time (end-of-text suppressed, so every run decodes 128);
- peak RSS of the process after loading and generating.
Rows: ours (fabulist.runtime, ONNX int4 on onnxruntime-genai's graph and on optimum's graph, GGUF Q4_0),
llama-cpp-python's own `generate` on the Q4_0 GGUF, onnxruntime-genai's own generator on its int4 graph,
optimum's `ORTModelForCausalLM.generate` on onnx/model_q4.onnx and transformers' PyTorch `generate` (fp32).
Then batching: 10 completions of one prompt batched against 10 one after another (ours, ONNX int4).
Medians over --repeats after one warm-up; ratios are to rows measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROMPT_TOKENS, DECODE = 64, 128
ROWS = {  # name -> (worker, artifact)
    "fabulist onnx int4 (genai graph)": ("ours", "onnx-genai/int4/model.onnx"),
    "fabulist onnx int4 (optimum graph)": ("ours", "onnx/model_q4.onnx"),
    "fabulist gguf q4_0": ("ours", "gguf/model-q4_0.gguf"),
    "llama-cpp-python q4_0": ("llama", "gguf/model-q4_0.gguf"),
    "onnxruntime-genai int4": ("genai", "onnx-genai/int4"),
    "optimum ORTModelForCausalLM int4": ("optimum", "onnx/model_q4.onnx"),
    "transformers PyTorch fp32": ("torch", "model.safetensors"),
}


def prompt_ids(model_dir: Path) -> list[int]:
    """64 token ids: a training-format header and the start of a fable, the same for every row."""
    from tokenizers import Tokenizer

    from fabulist import fable_format as ff
    from fabulist.export.validate import heldout_texts

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    text = ff.prompt({"character": "Fox", "setting": "a river bank", "moral": "Kindness is rewarded."})
    text += " ".join(heldout_texts(3))
    return tok.encode(text, add_special_tokens=False).ids[:PROMPT_TOKENS]


def timed(run_first, run_all) -> tuple[float, float]:
    """(ttft, decode tok/s) from a 1-token run and a (1 + DECODE)-token run."""
    t = time.perf_counter()
    run_first()
    ttft = time.perf_counter() - t
    t = time.perf_counter()
    run_all()
    return ttft, DECODE / max(time.perf_counter() - t - ttft, 1e-9)


# ---------------------------------------------------------------- workers (one per process)


def work_ours(model_dir: Path, artifact: str, threads: int, ids: list[int]):
    from fabulist.runtime.load import load_generator
    from fabulist.runtime.sampling import SamplingParams

    fmt, quant, graph = {
        "onnx-genai/int4/model.onnx": ("onnx", "int4", "genai"),
        "onnx/model_q4.onnx": ("onnx", "int4", "optimum"),
        "gguf/model-q4_0.gguf": ("gguf", "q4_0", "auto"),
    }[artifact]
    gen = load_generator(model_dir, fmt, quant, threads, graph)
    text = gen.tok.decode(ids, skip_special_tokens=False)
    one = SamplingParams(temperature=0, max_new_tokens=1)
    full = SamplingParams(temperature=0, max_new_tokens=1 + DECODE, min_new_tokens=1 + DECODE)
    return gen.load_seconds, lambda: gen.generate(text, one), lambda: gen.generate(text, full), gen


def work_llama(model_dir: Path, artifact: str, threads: int, ids: list[int]):
    import llama_cpp

    t = time.perf_counter()
    llm = llama_cpp.Llama(str(model_dir / artifact), n_ctx=512, n_threads=threads, n_threads_batch=threads,
                          verbose=False)  # fmt: skip
    load = time.perf_counter() - t

    def run(n):
        llm.reset()  # or generate() reuses the cached prompt and skips the prefill
        for i, _ in enumerate(llm.generate(ids, top_k=1, temp=0.0, reset=True), 1):
            if i == n:
                break

    return load, lambda: run(1), lambda: run(1 + DECODE), None


def work_genai(model_dir: Path, artifact: str, threads: int, ids: list[int]):
    import onnxruntime_genai as og

    t = time.perf_counter()
    config = og.Config(str(model_dir / artifact))
    config.clear_providers()
    model = og.Model(config)
    load = time.perf_counter() - t

    def run(n):
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(ids) + n, min_length=len(ids) + n)
        gen = og.Generator(model, params)
        gen.append_tokens(ids)
        while not gen.is_done():
            gen.generate_next_token()

    return load, lambda: run(1), lambda: run(1 + DECODE), None


def work_optimum(model_dir: Path, artifact: str, threads: int, ids: list[int]):
    import onnxruntime as ort
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM

    torch.set_num_threads(threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    t = time.perf_counter()
    model = ORTModelForCausalLM.from_pretrained(model_dir, subfolder="onnx", file_name=Path(artifact).name,
                                                session_options=options, use_cache=True)  # fmt: skip
    load = time.perf_counter() - t
    return load, *_hf_runs(model, ids), None


def work_torch(model_dir: Path, artifact: str, threads: int, ids: list[int]):
    import torch
    from transformers import LlamaForCausalLM

    torch.set_num_threads(threads)
    t = time.perf_counter()
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    load = time.perf_counter() - t
    return load, *_hf_runs(model, ids), None


def _hf_runs(model, ids):
    import torch

    x = torch.tensor([ids])
    mask = torch.ones_like(x)

    def run(n):
        with torch.inference_mode():
            model.generate(x, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                           pad_token_id=model.config.pad_token_id)  # fmt: skip

    return lambda: run(1), lambda: run(1 + DECODE)


WORKERS = {"ours": work_ours, "llama": work_llama, "genai": work_genai, "optimum": work_optimum,
           "torch": work_torch}  # fmt: skip


def worker(args) -> None:
    ids = prompt_ids(args.model_dir)
    load, first, full, gen = WORKERS[args.worker](args.model_dir, args.artifact, args.threads, ids)
    first(), full()  # warm-up
    runs = [timed(first, full) for _ in range(args.repeats)]
    ttfts, speeds = [r[0] for r in runs], [r[1] for r in runs]
    result = {"load_s": load, "ttft_s": statistics.median(ttfts), "decode_tok_s": statistics.median(speeds),
              "decode_spread": [min(speeds), max(speeds)], "prompt_tokens": len(ids)}  # fmt: skip
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before any batch
    if args.batch and gen is not None:
        result |= batching(gen, ids)
    print(json.dumps(result))


def batching(gen, ids, n: int = 10, repeats: int = 3) -> dict:
    """Throughput of n sampled completions batched against the same n one after another (median of
    repeats after a warm-up of each)."""
    from fabulist.runtime.sampling import SamplingParams

    text = gen.tok.decode(ids, skip_special_tokens=False)
    params = SamplingParams(temperature=1.0, seed=0, max_new_tokens=DECODE, min_new_tokens=DECODE)

    def batched():
        gen.generate(text, params, n=n)

    def sequential():
        for i in range(n):
            gen._run(text, params, [i])

    speeds = {}
    for name, run in (("batched_tok_s", batched), ("sequential_tok_s", sequential)):
        run()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        speeds[name] = n * DECODE / statistics.median(times)
    return speeds


# ---------------------------------------------------------------- driver


def measure(model_dir: Path, name: str, threads: int, repeats: int, batch: bool) -> dict:
    kind, artifact = ROWS[name]
    if not (model_dir / artifact).exists():
        return {"skipped": f"{artifact} missing (fabulist export {model_dir} --quant all)"}
    cmd = [sys.executable, __file__, str(model_dir), "--worker", kind, "--artifact", artifact,
           "--threads", str(threads), "--repeats", str(repeats)] + (["--batch"] if batch else [])  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return {"skipped": f"failed: {proc.stderr.strip().splitlines()[-1][:200] if proc.stderr else '?'}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(rows: dict, threads: int) -> str:
    ours = rows["fabulist onnx int4 (genai graph)"]
    head = f"batch 1, {threads} threads, {PROMPT_TOKENS}-token prompt, greedy, {DECODE} decode tokens; median"
    cols = f"{'':36s}{'load s':>8s}{'ttft ms':>9s}{'decode tok/s':>14s}{'min-max':>15s}{'RSS MB':>8s}"
    lines = [head, cols + f"{'ours x':>8s}"]
    for name, r in rows.items():
        if "skipped" in r:
            lines.append(f"{name:36s}  skipped: {r['skipped']}")
            continue
        ratio = ours.get("decode_tok_s", float("nan")) / r["decode_tok_s"]
        spread = f"{r['decode_spread'][0]:,.0f}-{r['decode_spread'][1]:,.0f}"
        lines.append(f"{name:36s}{r['load_s']:8.2f}{r['ttft_s'] * 1000:9.1f}{r['decode_tok_s']:14,.0f}"
                     f"{spread:>15s}{r['peak_rss_mb']:8.0f}{ratio:8.2f}")  # fmt: skip
    if "batched_tok_s" in ours:
        b, s = ours["batched_tok_s"], ours["sequential_tok_s"]
        lines.append(f"10 completions of one prompt (ours, onnx int4): batched {b:,.0f} tok/s, "
                     f"one by one {s:,.0f} tok/s, ratio {b / s:.2f}x")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--only", help="comma-separated row names (default: all)")
    ap.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    ap.add_argument("--artifact", help=argparse.SUPPRESS)
    ap.add_argument("--batch", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    names = args.only.split(",") if args.only else list(ROWS)
    rows = {}
    for name in names:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        rows[name] = measure(args.model_dir, name, args.threads, args.repeats,
                             batch=name == "fabulist onnx int4 (genai graph)")  # fmt: skip
    print(report(rows, args.threads))
    if args.json:
        machine = {"python": platform.python_version(), "machine": platform.machine(),
                   "processor": platform.processor(), "threads": args.threads}  # fmt: skip
        args.json.write_text(json.dumps({"model_dir": str(args.model_dir), "machine": machine, "rows": rows},
                                        indent=1))  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
