"""Speed, diversity and length of the offline procedural teacher, on random element combinations.

    .venv/bin/python benchmarks/procedural_teacher.py [--version v2|v1] [--n 20000] [--json out.json]

Speed is generation only, on one core, with the element lists already loaded: the pipeline needs
>= 5,000 fables/s so that a 100k corpus is a matter of seconds. Diversity uses the definitions in
fabulist.data.metrics: distinct-2 pooled over 500 fables (target >= 0.30) and self-BLEU-4 of 100 fables
against 400 others (target <= 0.5). Lengths are `len(text.split())`, as the teacher counts them.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter

from fabulist import elements
from fabulist.data import metrics
from fabulist.data.teachers import procedural, procedural_v1

TARGET_PER_S = 5000
WRITERS = {"v2": procedural.write_fable, "v1": procedural_v1.write_fable}


def combinations(n: int, seed: int = 0) -> list[tuple[dict, int]]:
    """n random (elements, fable seed) pairs, reproducible from `seed`."""
    lists = elements.load_all()
    rng = random.Random(seed)
    return [({k: rng.choice(v) for k, v in lists.items()}, rng.randrange(2**31)) for _ in range(n)]


def speed(
    jobs: list[tuple[dict, int]], repeat: int = 3, version: str = "v2"
) -> tuple[float, float, list[str]]:
    """Fables/s and words/s of the version's write_fable over `jobs` (the best of `repeat` passes, because
    a shared machine only ever makes a pass slower), and the fables."""
    write = WRITERS[version]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fables = [write(e, s) for e, s in jobs]
        best = min(best, time.perf_counter() - start)
    words = sum(len(f.split()) for f in fables)
    return len(fables) / best, words / best, fables


def element_floor(jobs: list[tuple[dict, int]], lengths: list[int]) -> float:
    """Self-BLEU-4 (100 vs 400) of texts that keep only what every fable must quote verbatim (the setting
    phrase and three sights, the filled conflict and resolution clauses, the Moral line) and replace the
    rest with words that never repeat: an estimate of the floor no template wording can go below."""
    rng = random.Random(0)
    texts = []
    for (e, _), length in zip(jobs, lengths, strict=True):
        slots = {"hero": "the " + e["character"].name, "friend": "the friend", "f_he": "they",
                 "f_him": "them", "f_his": "their", **elements.PRONOUNS[e["character"].pronoun]}  # fmt: skip
        parts = [e["setting"].at, *e["setting"].sights[:3], e["conflict"].problem.format_map(slots),
                 e["conflict"].task.format_map(slots), e["resolution"].outcome.format_map(slots),
                 "Moral: " + e["moral"].text]  # fmt: skip
        filler = max(length - sum(len(p.split()) for p in parts), 0) // len(parts)
        texts.append(
            " . ".join(" ".join(f"w{rng.randrange(10**12)}" for _ in range(filler)) + " " + p for p in parts)
        )
    return metrics.self_bleu(texts[:100], texts[100:500])


def top_sentences(fables: list[str], k: int = 10) -> list[tuple[str, float]]:
    """The k most frequent sentences (split on . ! ? and line breaks) with their share of all sentences."""
    counts: Counter = Counter()
    for fable in fables:
        text = fable.replace("!", ".").replace("?", ".").replace("\n", ".")
        counts.update(s.strip(' "') for s in text.split(".") if s.strip(' "'))
    total = sum(counts.values())
    return [(s, c / total) for s, c in counts.most_common(k)]


def report(n: int, repeat: int = 3, version: str = "v2") -> dict:
    jobs = combinations(n)
    per_s, words_per_s, fables = speed(jobs, repeat, version)
    sample = fables[:500]
    lengths = [len(f.split()) for f in fables]
    return {
        "n": n,
        "repeat": repeat,
        "version": version,
        "element_counts": {k: len(v) for k, v in elements.load_all().items()},
        "fables_per_s": round(per_s),
        "words_per_s": round(words_per_s),
        "ratio_to_target": round(per_s / TARGET_PER_S, 2),
        "distinct_2": round(metrics.distinct_n(sample, 2), 4),
        "self_bleu_4": round(metrics.self_bleu(sample[:100], sample[100:500]), 4),
        "self_bleu_4_element_floor": round(element_floor(jobs[:500], lengths[:500]), 4),
        "words_min": min(lengths),
        "words_mean": round(sum(lengths) / len(lengths), 1),
        "words_max": max(lengths),
        "top_sentences": [[s, round(share, 4)] for s, share in top_sentences(fables)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", choices=sorted(WRITERS), default="v2", help="teacher version")
    parser.add_argument("--n", type=int, default=20000, help="fables to time (>= 500)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the fastest counts")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    result = report(max(args.n, 500), max(args.repeat, 1), args.version)
    print(f"procedural teacher {result['version']}; elements per kind: {result['element_counts']}")
    rows = [
        ("fables/s (1 core)", f"{result['fables_per_s']:,}", f">= {TARGET_PER_S:,}"),
        ("words/s", f"{result['words_per_s']:,}", ""),
        ("ratio to target", f"{result['ratio_to_target']}x", ">= 1x"),
        ("distinct-2 (500)", f"{result['distinct_2']:.4f}", ">= 0.30"),
        ("self-BLEU-4 (100 vs 400)", f"{result['self_bleu_4']:.4f}", "<= 0.50"),
        (
            "  floor: element text only",
            f"{result['self_bleu_4_element_floor']:.4f}",
            "(no template beats it)",
        ),
        (
            "words min/mean/max",
            f"{result['words_min']}/{result['words_mean']}/{result['words_max']}",
            "120-300",
        ),
    ]
    print(f"\n{'metric':<26} {'value':>16}  target")
    for name, value, target in rows:
        print(f"{name:<26} {value:>16}  {target}")
    print(f"\n{'share':>7}  most frequent sentences (of {result['n']:,} fables)")
    for sentence, share in result["top_sentences"]:
        print(f"{share:>7.2%}  {sentence}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
