"""Speculative decoding against the target alone, in one run, on the same scorer path.

    .venv/bin/python benchmarks/speculative.py TARGET DRAFT [DRAFT ...] [--format onnx] [--quant int4]
        [--k 2,4] [--threads 2] [--tokens 128] [--prompts 4] [--json out.json]

TARGET and each DRAFT are exported model folders (or embedded names) with the same tokenizer. For each
format, the target alone decodes --tokens tokens greedily from --prompts fable prompts through the same
scorer speculative decoding uses (runtime/speculative.py: optimum's ONNX graph with a numpy cache, or
llama.cpp with every position's logits), then each draft at each k does the same; the table shows
tokens/s, the ratio to the target alone, and the share of drafted tokens the target kept. Greedy, so the
texts must be equal: the script checks that too. Wall times, best of --repeats.
Then the costs that decide whether drafting can pay, independent of acceptance (a random-weight target of
the same tokenizer serves for them, as benchmarks/work/ holds): the target's (k+1)-token call against its
1-token call (v), each draft's call against the target's (c), and the break-even acceptance per k above
which a round's yield (1 - a^(k+1)) / (1 - a) exceeds its cost k c + v.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def prompts(count: int) -> list[str]:
    from fabulist import fable_format as ff
    from fabulist.eval.quality import eval_prompts

    return [p["prompt"] for p in eval_prompts(count, seed=0)] or [ff.prompt({})]


def one_row(target, draft, gen, texts, tokens: int, k: int, repeats: int) -> dict:
    """Tokens/s over all prompts (best of repeats), kept share, and the token lists (for the check)."""
    from fabulist.runtime.sampling import SamplingParams
    from fabulist.runtime.speculative import speculate

    params = SamplingParams(temperature=0, max_new_tokens=tokens, min_new_tokens=0)
    best, outs, kept, drafted = float("inf"), [], 0, 0
    for _ in range(repeats + 1):  # the first pass warms up (caches, allocations) and is not timed
        start, outs, kept, drafted = time.perf_counter(), [], 0, 0
        for text in texts:
            if draft is None:
                outs.append(alone(target, gen.encode(text), tokens, gen.eos))
                continue
            stats = {}
            outs.append(speculate(target, draft, gen.encode(text), params, gen.eos, k, stats))
            kept, drafted = kept + stats["drafted_kept"], drafted + stats["drafted"]
        best = min(best, time.perf_counter() - start) if _ else best
    n = sum(len(o) for o in outs)
    return {"tok_s": n / best, "tokens": n, "kept": kept / drafted if drafted else None, "outputs": outs}


def same_prefix(outs: list[list[int]], base: list[list[int]]) -> str:
    """'yes' when every greedy text equals the target alone's, else how many tokens agree before the first
    difference (a k-token call's logits can differ in the last bits from one-token calls: a near-tie)."""
    if outs == base:
        return "yes"
    agree = [
        next((i for i, (a, b) in enumerate(zip(o, r, strict=False)) if a != b), min(len(o), len(r)))
        for o, r in zip(outs, base, strict=False)
    ]
    return "first difference at token " + "/".join(map(str, agree))


def break_even(k: int, c: float, v: float) -> float | None:
    """The per-token acceptance a above which drafting k tokens pays: a round costs k draft calls (c each,
    in target 1-token calls) and one (k+1)-token verifying call (v), and yields (1 - a^(k+1)) / (1 - a)
    tokens; it pays when that exceeds k c + v. None: not even a = 1 (k + 1 tokens a round) pays."""
    cost = k * c + v
    if k + 1 <= cost:
        return None
    lo, hi = 0.0, 1.0  # the yield grows with a: bisect
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sum(mid**i for i in range(k + 1)) < cost else (lo, mid)
    return hi


def alone(target, ids: list[int], tokens: int, eos: int) -> list[int]:
    """The target's greedy decode, one token per call, through the same scorer."""
    target.reset()
    logits, out = target.extend(ids)[-1], []
    while len(out) < tokens:
        tok = int(logits.argmax())
        if tok == eos:
            break
        out.append(tok)
        logits = target.extend([tok])[-1]
    return out


def call_ms(scorer, ids: list[int], n: int, repeats: int = 30) -> float:
    """Median milliseconds of one call that appends n tokens after the prompt (then cut back)."""
    import statistics

    scorer.reset()
    scorer.extend(ids)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        scorer.extend(ids[-1:] * n)
        times.append(time.perf_counter() - start)
        scorer.truncate(len(ids))
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target")
    parser.add_argument("drafts", nargs="+")
    parser.add_argument("--format", dest="fmt", default="onnx", choices=["onnx", "gguf"])
    parser.add_argument("--quant", help="the target's and the drafts' (default: the format's)")
    parser.add_argument("--k", default="2,4", help="drafted tokens per round, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()

    from fabulist.runtime.embedded import resolve
    from fabulist.runtime.load import load_generator
    from fabulist.runtime.speculative import load_scorer

    target_dir = resolve(args.target)
    gen = load_generator(target_dir, args.fmt, args.quant)
    target = load_scorer(target_dir, args.fmt, args.quant, args.threads)
    texts = prompts(args.prompts)
    base = one_row(target, None, gen, texts, args.tokens, 0, args.repeats)
    rows = [{"row": f"target alone ({Path(target_dir).name})", **base}]
    for name in args.drafts:
        draft = load_scorer(resolve(name), args.fmt, args.quant, args.threads)
        for k in (int(x) for x in args.k.split(",")):
            row = one_row(target, draft, gen, texts, args.tokens, k, args.repeats)
            row["same"] = same_prefix(row["outputs"], base["outputs"])
            rows.append({"row": f"draft {Path(resolve(name)).name}, k={k}", **row})
    setup = f"{args.fmt} {args.quant or 'default'}, {args.threads} threads"
    print(f"{setup}, {len(texts)} prompts x {args.tokens} tokens, greedy")
    print(f"{'':40s}{'tok/s':>10s}{'vs alone':>10s}{'kept':>8s}")
    for r in rows:
        kept = "" if r["kept"] is None else f"{r['kept']:.0%}"
        same = f"  same greedy text: {r['same']}" if "same" in r else ""
        print(f"{r['row']:40s}{r['tok_s']:>10.1f}{r['tok_s'] / base['tok_s']:>9.2f}x{kept:>8s}{same}")
    # why: a round costs k draft calls and one target call of k+1 tokens, and yields (1 - a^(k+1)) / (1 - a)
    # tokens at acceptance a; so with c = draft/target per call and v = the (k+1)-token call / a 1-token
    # call, speculation pays only when that yield exceeds k*c + v
    ids = gen.encode(texts[0])
    ks = [int(x) for x in args.k.split(",")]
    one = call_ms(target, ids, 1)
    verify = {k: call_ms(target, ids, k + 1) / one for k in ks}
    print(
        f"target: {one:.2f} ms per 1-token call; " + ", ".join(f"{k + 1} tokens {verify[k]:.2f}x" for k in ks)
    )
    costs = {"target_call_ms": one, "verify": verify, "drafts": {}}
    for name in args.drafts:
        draft = load_scorer(resolve(name), args.fmt, args.quant, args.threads)
        c = call_ms(draft, ids, 1) / one
        even = {k: break_even(k, c, verify[k]) for k in ks}
        costs["drafts"][Path(resolve(name)).name] = {"call": c, "break_even": even}
        print(
            f"draft {Path(resolve(name)).name}: {c:.2f}x the target's 1-token call; pays above acceptance "
            + ", ".join(f"{'never' if a is None else f'{a:.0%}'} (k={k})" for k, a in even.items())
        )
    if args.json_out:
        out = [{k: v for k, v in r.items() if k != "outputs"} for r in rows]
        Path(args.json_out).write_text(
            json.dumps({"args": vars(args), "rows": out, "costs": costs}, indent=1)
        )


if __name__ == "__main__":
    main()
