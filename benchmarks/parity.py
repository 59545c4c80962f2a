"""Ours / each wrapped engine's own generator, per model size x thread count: the parity table of issue 22.

    python -m fabulist.bench.parity                       # benchmarks/results/parity/parity.md + .json
    python -m fabulist.bench.parity --sizes shipped --threads 1 --repeats 9

Pairs, on the same weights: our runtime on onnxruntime-genai's builder graph (int4) against onnxruntime-
genai's own greedy loop, and our runtime on a GGUF against llama-cpp-python's own `generate` (q4_0; the
shipped model carries only q4_k_m, so both read that). Sizes: the shipped fable-5m (runtime/models) and the
random-weight fable-15m and fable-50m presets, built and exported under benchmarks/work exactly as
`fabulist bench run` builds them (benchmarks/models.py). Each cell measures decode ms/token the suite's way
(128 greedy tokens after a 64-token prompt, timed inside each engine's loop: benchmarks/engines.py) with all
variants loaded in one process and run interleaved, round after round, best of `repeats` rounds: a busy
machine slows every variant of a round alike rather than one row of the matrix.

"before" runs the backends this replaced on the same Generator: `EvalLlamaBackend` (llama-cpp-python's
`Llama.eval`, one sequence at a time) and `GenaiBefore` (the per-step path that built index arrays and
called astype). Each cell records the 1-minute load average when it ran; one above half the cores is
flagged for a quiet rerun.

Flame graphs (py-spy, native frames) of one variant, as benchmarks/results/parity/*.svg hold them:

    py-spy record --native -r 200 -o benchmarks/results/parity/ours-genai.svg -- \\
        python -m fabulist.bench.parity --profile ours-genai --sizes shipped --threads 1 --repeats 40
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from fabulist import artifacts

SHIPPED = Path(__file__).resolve().parent.parent / "runtime" / "models" / "fable-5m"
PRESETS = ("fable-15m", "fable-50m")
GENAI = artifacts.get("onnx", "int4", "genai").path
PROMPT, NEW = 64, 129  # the suite's tg128: 128 decoded tokens after the first
VARIANTS = {  # pair -> (ours now, ours before, the engine's own generator)
    "genai": ("ours-genai", "before-genai", "genai"),
    "llama": ("ours-llama", "before-llama", "llama"),
}
TARGET_GEOMEAN, TARGET_CELL = 1.0, 0.9  # the targets: >= 1.0x geometric mean, >= 0.9x in every cell


class EvalLlamaBackend:
    """The llama.cpp backend before runtime/llamacpp.py: llama-cpp-python's `Llama.eval`, one sequence."""

    batched = False

    def __init__(self, model_path: Path, context: int, threads: int):
        import llama_cpp

        exact = {"type_k": 0, "type_v": 0} if model_path.name.endswith("-f32.gguf") else {}
        self.llm = llama_cpp.Llama(str(model_path), n_ctx=context, n_threads=threads, n_threads_batch=threads,
                                   verbose=False, logits_all=False, seed=0, **exact)  # fmt: skip
        self.context, self.vocab = context, self.llm.n_vocab()

    def _last_logits(self) -> np.ndarray:
        import llama_cpp

        row = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(row, shape=(self.vocab,)).astype(np.float32)[None, :]

    def start(self, prompt_ids: list[int], n: int, new_tokens: int) -> np.ndarray:
        self.llm.reset()
        self.llm.eval(prompt_ids)
        return self._last_logits()

    def advance(self, tokens: list[int]) -> np.ndarray:
        self.llm.eval(tokens[:1])
        return self._last_logits()


def genai_before(backend):
    """The GenaiBackend's per-step path before this change, on an already loaded backend."""
    import types

    def _logits(self):
        return self.gen.get_logits()[:, -1, :].astype(np.float32, copy=False)

    def advance(self, tokens):
        rows = np.arange(len(tokens))
        self.forced[rows, tokens] = 0.0
        self.gen.set_logits(self.forced)
        self.gen.generate_next_token()
        self.forced[rows, tokens] = -np.inf
        return self._logits()

    backend._logits = types.MethodType(_logits, backend)
    backend.advance = types.MethodType(advance, backend)
    return backend


def gguf_artifact(model_dir: Path) -> str:
    paths = (artifacts.get("gguf", q).path for q in ("q4_0", "q4_k_m"))
    return next(a for a in paths if (model_dir / a).is_file())


def ours_run(gen):
    """engines.load_ours's run for a given Generator: (ttft, decode seconds) of n greedy tokens."""
    from fabulist.runtime.sampling import SamplingParams

    stamps: list[float] = []
    advance = gen.backend.advance

    def timed_advance(tokens):
        stamps.append(time.perf_counter())
        return advance(tokens)

    gen.backend.advance = timed_advance

    def run(ids: list[int], n: int) -> tuple[float, float]:
        text = gen.tok.decode(ids, skip_special_tokens=False)
        stamps.clear()
        t = time.perf_counter()
        gen.generate(text, SamplingParams(temperature=0, max_new_tokens=n, min_new_tokens=n))
        return stamps[0] - t, time.perf_counter() - stamps[0]

    return run


def load_variant(name: str, model_dir: Path, threads: int):
    """A run(ids, n) -> (ttft, decode seconds) for one variant."""
    from fabulist.bench.engines import ENGINES
    from fabulist.runtime.load import load_generator

    gguf = gguf_artifact(model_dir)
    if name in ("genai", "llama"):
        return ENGINES[name](model_dir, GENAI if name == "genai" else gguf, threads)[1]
    if name.endswith("genai"):
        gen = load_generator(model_dir, "onnx", "int4", threads, "genai")
        if name.startswith("before"):
            genai_before(gen.backend)
    else:
        gen = load_generator(model_dir, "gguf", gguf.split("-", 1)[1].removesuffix(".gguf"), threads)
        if name.startswith("before"):
            gen.backend.close()
            gen.backend = EvalLlamaBackend(model_dir / gguf, gen.backend.context, threads)
    return ours_run(gen)


def measure_cell(model_dir: Path, pair: str, threads: int, repeats: int) -> dict:
    """Best-of-`repeats` decode ms/token of the pair's three variants, run interleaved; and best-of CPU
    ms per decoded token (the process's CPU time over the whole request, prefill included: the same
    prefill work for both sides of a pair), which a busy machine inflates far less than wall time."""
    from fabulist.bench.worker import prompt_ids

    ids = prompt_ids(model_dir, PROMPT)
    runs = {name: load_variant(name, model_dir, threads) for name in VARIANTS[pair]}
    for run in runs.values():
        run(ids, 8)  # warm-up
    best, cpu = dict.fromkeys(runs, math.inf), dict.fromkeys(runs, math.inf)
    loads = []
    for r in range(repeats):
        order = list(runs)[r % 3 :] + list(runs)[: r % 3]  # no variant always first after a pause
        for name in order:
            c = time.process_time()
            best[name] = min(best[name], runs[name](ids, NEW)[1] * 1000 / (NEW - 1))
            cpu[name] = min(cpu[name], (time.process_time() - c) * 1000 / (NEW - 1))
        loads.append(os.getloadavg()[0])
    ours, before, peer = VARIANTS[pair]
    rounded = {
        "ms": {k: round(v, 4) for k, v in best.items()},
        "cpu_ms": {k: round(v, 4) for k, v in cpu.items()},
    }
    return rounded | {"ratio": best[peer] / best[ours], "ratio_before": best[peer] / best[before],
                      "cpu_ratio": cpu[peer] / cpu[ours], "cpu_ratio_before": cpu[peer] / cpu[before],
                      "load": round(max(loads), 2)}  # fmt: skip


def sizes(names: list[str], work: Path) -> dict[str, Path]:
    from fabulist.bench import models
    from fabulist.bench.suite import BENCH_CONTEXT
    from fabulist.train import presets

    found = {}
    for name in names:
        if name == "shipped":
            found["fable-5m (shipped)"] = SHIPPED
        else:
            found[name] = models.prepare(work / name, presets.get(name), BENCH_CONTEXT, SHIPPED)
    return found


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def table(cells: list[dict], cores: int) -> str:
    """The parity table in Markdown, with each pair's geometric mean and the cells to rerun."""
    head = "| size | thr | pair | ours ms/tok | before ms/tok | engine ms/tok | ours/engine | before/engine |"
    cpu = " ours/engine CPU | before/engine CPU |"
    lines = [head + cpu + " load | flag |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in cells:
        ours, before, peer = (c["ms"][v] for v in VARIANTS[c["pair"]])
        busy = c["load"] > cores / 2
        flag = ("below 0.9x; " if c["ratio"] < TARGET_CELL else "") + ("busy: rerun quiet" if busy else "")
        ms = f"{ours:.3f} | {before:.3f} | {peer:.3f}"
        ratios = " | ".join(
            f"{c[k]:.2f}x" for k in ("ratio", "ratio_before", "cpu_ratio", "cpu_ratio_before")
        )
        lines.append(
            f"| {c['size']} | {c['threads']} | {c['pair']} | {ms} | {ratios} | {c['load']:.1f} | {flag} |"
        )
    lines.append("")
    for pair in VARIANTS:
        mine = [c for c in cells if c["pair"] == pair]
        if mine:
            for kind, key in (("wall", "ratio"), ("CPU", "cpu_ratio")):
                now, was = geomean([c[key] for c in mine]), geomean([c[f"{key}_before"] for c in mine])
                worst = min(c[key] for c in mine)
                verdict = "meets" if now >= TARGET_GEOMEAN and worst >= TARGET_CELL else "misses"
                lines.append(f"- ours/{pair} ({kind}): geomean {now:.2f}x (before {was:.2f}x), worst cell "
                             f"{worst:.2f}x: {verdict} the targets")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="shipped," + ",".join(PRESETS))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--pairs", default=",".join(VARIANTS))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/parity"))
    ap.add_argument("--work", type=Path, default=Path("benchmarks/work"))
    every = [v for vs in VARIANTS.values() for v in vs]
    ap.add_argument("--profile", choices=every, help="run only this variant, `repeats` times (for py-spy)")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    found = sizes(args.sizes.split(","), args.work)
    if args.profile:
        from fabulist.bench.worker import prompt_ids

        for model_dir in found.values():
            for t in threads:
                run, ids = load_variant(args.profile, model_dir, t), prompt_ids(model_dir, PROMPT)
                for _ in range(args.repeats):
                    run(ids, NEW)
        return
    cells = []
    for size, model_dir in found.items():
        for t in threads:
            for pair in args.pairs.split(","):
                cell = {"size": size, "threads": t, "pair": pair}
                cell |= measure_cell(model_dir, pair, t, args.repeats)
                print(json.dumps(cell), file=sys.stderr, flush=True)
                cells.append(cell)
    cores = os.cpu_count() or 1
    text = table(cells, cores)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m fabulist.bench.parity " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (f"# Parity: ours / each engine's own generator\n\n`{command.strip()}`; {cores} cores; "
              f"decode ms/token, best of {args.repeats} interleaved rounds (128 greedy tokens after 64); "
              "ratio = engine ms / ours ms (> 1: ours is faster).\n\n")  # fmt: skip
    (args.out / "parity.md").write_text(header + text)
    (args.out / "parity.json").write_text(json.dumps({"cores": cores, "cells": cells}, indent=1))


if __name__ == "__main__":
    main()
