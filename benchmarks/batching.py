"""Does batching pay? The runtime's throughput for 10 completions decoded as one batch against the same 10
one after another, on the shipped fable-5m (INT4, both ONNX graphs), with onnxruntime-genai's own
generator (its own sampling, batch_size 10) as the ceiling an engine-side batch reaches.

    .venv/bin/python benchmarks/batching.py [--model fable-5m] [--threads 1 2] [--repeats 3] [--json out.json]

Two workloads, each 10 rows of exactly --tokens new tokens (min = max, so every mode decodes the same
count): one prompt with 10 seeds (`Generator.generate(prompt, params, n=10)`, one shared prefill) and 10
different prompts of ragged lengths (`Generator.generate_batch`, one padded prefill). Sequential is the
same 10 rows through `Generator.generate` one at a time. Modes are interleaved within each repeat and the
best repeat is kept, which is what a busy machine allows; ratios are to the same run's sequential rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

BEGINNINGS = [
    "Once",
    "The fox ran to the river",
    "A small owl lived in an old oak tree at the edge of the forest, and every night",
    "In winter",
    "The crow was thirsty and looked for water everywhere it could fly",
    "A hare",
    "Two friends walked along a dusty road when",
    "The lion slept in the sun while a mouse ran over his paw and woke him up. The lion",
    "Rain fell",
    "The ant worked all summer while the grasshopper sang in the grass",
]
CHARACTERS = ["Fox", "Owl", "Crow", "Hare", "Lion", "Ant", "Tortoise", "Mouse", "Wolf", "Bear"]


def prompts(n: int) -> list[str]:
    from fabulist import fable_format as ff

    return [ff.prompt({"character": CHARACTERS[i % 10]}, BEGINNINGS[i % 10]) for i in range(n)]


def workloads(gen, n: int, tokens: int) -> dict:
    """name -> a function that decodes n rows of `tokens` new tokens and returns how many it decoded."""
    from fabulist.runtime.sampling import SamplingParams

    params = SamplingParams(temperature=0.8, top_p=0.95, seed=0, max_new_tokens=tokens, min_new_tokens=tokens)
    seeded = [SamplingParams(**{**params.__dict__, "seed": s}) for s in range(n)]
    one, many = prompts(1)[0], prompts(n)

    def count(completions) -> int:
        return sum(len(c.tokens) for c in completions)

    return {
        "one prompt, batched": lambda: count(gen.generate(one, params, n)),
        "one prompt, sequential": lambda: count([c for i in range(n) for c in gen._run(one, params, [i])]),
        "10 prompts, batched": lambda: count(gen.generate_batch(many, seeded)),
        "10 prompts, sequential": lambda: count(
            [gen.generate(p, q)[0] for p, q in zip(many, seeded, strict=True)]
        ),
    }


def genai_own(backend, gen, n: int, tokens: int, ragged: bool):
    """onnxruntime-genai's own loop (its sampling, its KV buffer) over n rows: the ceiling. Its ragged batch
    is left-padded, which its GroupQueryAttention reads wrongly (runtime/backends.py), so that row is a
    speed bound only."""
    import numpy as np

    og = backend.og
    ids = [gen.encode(p) for p in (prompts(n) if ragged else prompts(1) * n)]
    width = max(map(len, ids))
    batch = np.array([[backend.pad] * (width - len(p)) + p for p in ids], dtype=np.int32)

    def run() -> int:
        params = og.GeneratorParams(backend.model)
        params.set_search_options(max_length=width + tokens, min_length=width + tokens, batch_size=n,
                                  do_sample=True, temperature=0.8, top_p=0.95, random_seed=0)  # fmt: skip
        g = og.Generator(backend.model, params)
        g.append_tokens(batch)
        while not g.is_done():
            g.generate_next_token()
        return n * tokens

    return run


def measure(model: Path, graph: str, threads: int, n: int, tokens: int, repeats: int) -> dict:
    from fabulist.runtime.backends import BackendError
    from fabulist.runtime.load import load_generator

    try:
        gen = load_generator(model, "onnx", "int4", threads, graph)
    except BackendError as exc:
        return {"skipped": str(exc)}
    runs = workloads(gen, n, tokens)
    if graph == "genai":
        runs["genai's own, one prompt, batch 10"] = genai_own(gen.backend, gen, n, tokens, ragged=False)
        runs["genai's own, 10 prompts, batch 10"] = genai_own(gen.backend, gen, n, tokens, ragged=True)
        runs["genai's own, one prompt, batch 1"] = genai_own(gen.backend, gen, 1, tokens, ragged=False)
    best = dict.fromkeys(runs, 0.0)
    for run in runs.values():  # warm-up
        run()
    for _ in range(repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            done = run()
            best[name] = max(best[name], done / (time.perf_counter() - t))
    return {name: round(v, 1) for name, v in best.items()}


def table(results: dict) -> str:
    lines = [
        "| graph | threads | workload | batched tok/s | sequential tok/s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        graph, threads = key.split("/")
        if "skipped" in r:
            lines.append(f"| {graph} | {threads} | skipped: {r['skipped']} | | | |")
            continue
        for what in ("one prompt", "10 prompts"):
            b, s = r[f"{what}, batched"], r[f"{what}, sequential"]
            lines.append(f"| {graph} | {threads} | {what} x10 | {b:,.0f} | {s:,.0f} | {b / s:.2f}x |")
        if graph == "genai":
            own1 = r["genai's own, one prompt, batch 1"]
            for what in ("one prompt", "10 prompts"):
                own = r[f"genai's own, {what}, batch 10"]
                lines.append(f"| genai's own | {threads} | {what} x10 | {own:,.0f} | {own1:,.0f} (batch 1) | "
                             f"{own / own1:.2f}x |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder or embedded name (default: fable-5m)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--graphs", nargs="+", default=["genai", "optimum"])
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from fabulist.runtime.embedded import resolve

    model = resolve(args.model)
    results = {}
    for threads in args.threads:
        for graph in args.graphs:
            results[f"{graph}/{threads}"] = measure(model, graph, threads, args.n, args.tokens, args.repeats)
            print(graph, threads, results[f"{graph}/{threads}"], flush=True)
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "tok_s": results}, indent=1)
        )


if __name__ == "__main__":
    main()
