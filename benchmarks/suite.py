"""The benchmark matrix: model sizes x artifacts x threads, with the peers on the same weights.

    fabulist bench run --quick                                   # CI: a tiny random model, one thread
    fabulist bench run --model runs/f5m                          # the full matrix into benchmarks/results
    fabulist bench run --model runs/f5m --presets fable-5m,mobilellm-125m --threads 1,2

Sizes are the trained model given with --model (its exported artifacts, as `fabulist export --format all
--quant all` leaves them) and random-weight presets built and exported under the work folder. Every row
runs in its own process (worker.py). Ratios compare rows of the same size and thread count measured in
this run: our runtime against each peer on the same artifact.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fabulist import artifacts
from fabulist.errors import FabulistError
from fabulist.model_folder import read_config


class BenchError(FabulistError):
    """A benchmark request that cannot run: unknown preset, missing model folder, bad option."""


def _at(fmt: str, quant: str, graph: str | None = None) -> str:
    return artifacts.get(fmt, quant, graph).path


ROWS = {  # name -> (engine, artifact); "ours" is fabulist.runtime
    "pytorch fp32 (transformers generate)": ("torch", artifacts.WEIGHTS),
    "ours onnx fp32": ("ours", _at("onnx", "fp32", "genai")),
    "ours onnx int8": ("ours", _at("onnx", "int8", "optimum")),
    "ours onnx int4": ("ours", _at("onnx", "int4", "genai")),
    "ours onnx int4 (optimum graph)": ("ours", _at("onnx", "int4", "optimum")),
    "ours gguf f16": ("ours", _at("gguf", "f16")),
    "ours gguf q8_0": ("ours", _at("gguf", "q8_0")),
    "ours gguf q4_0": ("ours", _at("gguf", "q4_0")),
    "ours gguf q4_k_m": ("ours", _at("gguf", "q4_k_m")),
    "llama-cpp-python q4_0": ("llama", _at("gguf", "q4_0")),
    "onnxruntime-genai int4": ("genai", _at("onnx", "int4", "genai")),
    "optimum ORTModelForCausalLM int4": ("optimum", _at("onnx", "int4", "optimum")),
}
RATIOS = (  # (ours, peer): the same weights in both
    ("ours onnx int4", "onnxruntime-genai int4"),
    ("ours onnx int4", "optimum ORTModelForCausalLM int4"),
    ("ours onnx int4 (optimum graph)", "optimum ORTModelForCausalLM int4"),
    ("ours gguf q4_0", "llama-cpp-python q4_0"),
    ("ours onnx fp32", "pytorch fp32 (transformers generate)"),
)
SWEEP_ROWS = ("ours onnx int4", "ours gguf q4_0")  # decode latency against context
CONTEXTS = (64, 128, 256, 512, 1024, 2048)
BENCH_CONTEXT = 2048 + 64  # random models: room for the 2048 sweep point and its decoded tokens
PRESETS = ("fable-1m", "fable-5m", "fable-15m", "fable-50m", "mobilellm-125m", "mobilellm-350m")


@dataclass
class Options:
    out: Path = Path("benchmarks/results")
    work: Path = Path("benchmarks/work")  # random-weight models (ignored by git)
    model: Path | None = None
    presets: tuple[str, ...] = PRESETS
    threads: tuple[int, ...] = (1, 2)
    repeats: int = 3
    rows: tuple[str, ...] = tuple(ROWS)
    contexts: tuple[int, ...] = CONTEXTS
    quick: bool = False
    timeout: int = 1800
    log: bool = True


def quick_options(out: Path, work: Path = Path("benchmarks/work")) -> Options:
    """--quick: the whole suite on one tiny random model, one thread, one repetition."""
    return Options(out=out, work=work, presets=("tiny",), threads=(1,), repeats=1,
                   contexts=(64, 256, 1024), quick=True, timeout=300)  # fmt: skip


def sizes(opts: Options) -> dict[str, Path]:
    """name -> model folder: the trained model, then the random presets (built and exported as needed)."""
    from fabulist.bench import models
    from fabulist.runtime.plain import is_fable_folder
    from fabulist.train import presets

    found = {}
    if opts.model is not None:
        if not (opts.model / "config.json").exists():
            raise BenchError(f"{opts.model} is not a model folder (no config.json)")
        read_config(opts.model)  # checked before any preset is built: one line naming a bad config.json
        found[f"trained ({opts.model.name})"] = opts.model
    for name in opts.presets:
        preset = models.TINY if name == "tiny" else presets.get(name)
        _log(opts, f"preparing {name} (random weights, context {BENCH_CONTEXT})")
        vocab = 512 if name == "tiny" and opts.model is None else 4096
        # presets are fable models: another model's tokenizer (a SmolLM2's, a Gemma's) is not theirs
        source = opts.model if opts.model is not None and is_fable_folder(opts.model) else None
        found[name] = models.prepare(opts.work / name, preset, BENCH_CONTEXT, source, vocab)
    return found


def measure_row(model_dir: Path, name: str, threads: int, opts: Options) -> dict:
    """One row in its own process, or {"skipped": why}."""
    engine, artifact = ROWS[name]
    if not (model_dir / artifact).exists():
        if not (model_dir / artifacts.WEIGHTS).exists():  # a packed model: only what it ships
            return {"skipped": f"{artifact} not in this folder (it carries only its shipped artifacts)"}
        return {"skipped": f"{artifact} missing (fabulist export {model_dir} --format all --quant all)"}
    contexts = list(opts.contexts) if name in SWEEP_ROWS and threads == max(opts.threads) else []
    spec = {"model_dir": str(model_dir), "engine": engine, "artifact": artifact, "threads": threads,
            "repeats": opts.repeats, "contexts": contexts}  # fmt: skip
    cmd = [sys.executable, "-m", "fabulist.bench.worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=opts.timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {opts.timeout} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return {"skipped": f"failed (exit {proc.returncode}): {last[:200]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def artifact_info(model_dir: Path, artifact: str, params: int) -> dict:
    """File size (graph + external data) and bits per weight of an artifact."""
    path = model_dir / artifact
    if not path.exists():
        return {}
    files = [path, *path.parent.glob(path.name + ".data")] if path.suffix == ".onnx" else [path]
    size = sum(f.stat().st_size for f in files)
    return {"bytes": size, "bits_per_weight": round(size * 8 / params, 3)}


def run_suite(opts: Options) -> dict:
    """Measure the matrix and write results.json, results.md and the plots into opts.out."""
    from fabulist.bench import report
    from fabulist.export import plan as pl

    started = time.perf_counter()
    results = {"machine": machine(), "options": _options(opts), "sizes": {}, "rows": []}
    done = _measured(opts)
    for size, model_dir in sizes(opts).items():
        config = read_config(model_dir)
        params = pl.parameters(config)
        results["sizes"][size] = {"model_dir": str(model_dir), "parameters": params, "config": config,
                                  "random_weights": (model_dir / "preset.json").exists()}  # fmt: skip
        for threads in opts.threads:
            for name in opts.rows:
                _log(opts, f"{size} / {name} / {threads} thread(s)")
                row = {"size": size, "name": name, "engine": ROWS[name][0], "artifact": ROWS[name][1],
                       "threads": threads, "parameters": params}  # fmt: skip
                row |= artifact_info(model_dir, ROWS[name][1], params)
                key, t0 = (size, name, threads), time.perf_counter()
                if key not in done:
                    row |= measure_row(model_dir, name, threads, opts)
                    row["wall_s"] = round(time.perf_counter() - t0, 1)
                results["rows"].append(done.get(key, row))
                _checkpoint(opts, results)
    results["ratios"] = ratios(results["rows"])
    earlier = sum(r.get("wall_s", 0) for r in done.values())  # rows an interrupted run measured
    results["seconds"] = round(time.perf_counter() - started + earlier, 1)
    report.write(results, opts.out)
    (opts.out / PARTIAL).unlink(missing_ok=True)
    return results


PARTIAL = "results.partial.json"  # rows measured so far: an interrupted run resumes from them


def _measured(opts: Options) -> dict[tuple, dict]:
    """Rows an interrupted run with the same options already measured (skipped rows are measured again)."""
    path = opts.out / PARTIAL
    if not path.exists():
        return {}
    try:
        partial = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if partial.get("options") != json.loads(json.dumps(_options(opts))):  # tuples come back as lists
        _log(opts, f"{path} was measured with other options: starting over")
        return {}
    done = {(r["size"], r["name"], r["threads"]): r for r in partial["rows"] if "skipped" not in r}
    _log(opts, f"resuming: {len(done)} row(s) already measured in {path}")
    return done


def _checkpoint(opts: Options, results: dict) -> None:
    from fabulist.records import write_atomic

    opts.out.mkdir(parents=True, exist_ok=True)
    write_atomic(opts.out / PARTIAL, json.dumps(results, indent=1))


def ratios(rows: list[dict]) -> list[dict]:
    """Ours / peer for decode and prefill speed and TTFT, per size and thread count, same run only."""
    index = {(r["size"], r["threads"], r["name"]): r for r in rows if "skipped" not in r}
    out = []
    for size, threads, name in index:
        for ours, peer in RATIOS:
            if name == ours and (size, threads, peer) in index:
                a, b = index[(size, threads, ours)], index[(size, threads, peer)]
                out.append({"size": size, "threads": threads, "ours": ours, "peer": peer,
                            "tg128_x": a["tg128_tok_s"] / b["tg128_tok_s"],
                            "pp128_x": a.get("pp128_tok_s", 0) / b.get("pp128_tok_s", 1),
                            "ttft_x": b["ttft_s"] / a["ttft_s"],  # > 1: ours answers sooner
                            "rss_x": a["peak_rss_mb"] / b["peak_rss_mb"]})  # fmt: skip
    return out


def machine() -> dict:
    from fabulist.export.run import tool_versions

    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    mem = next((int(line.split()[1]) * 1024 for line in _read("/proc/meminfo").splitlines()
                if line.startswith("MemTotal")), None)  # fmt: skip
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem, "system": platform.platform(),
            "python": platform.python_version(), "tools": tool_versions(),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _options(opts: Options) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items() if k != "log"}


def _log(opts: Options, msg: str) -> None:
    if opts.log:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)
