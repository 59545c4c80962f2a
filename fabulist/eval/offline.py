"""Judge-free metrics of an evaluation run: always computed, and the whole report when there is no judge.

    fabulist eval report runs/eval/int4

Per completion (on the whole fable, beginning included): the checks of `fabulist.eval.quality` (moral
line, character, setting, moral stated, 4-gram repetition), Flesch reading ease and length in words.
Per run: their means, distinct-1/2 over all fables (the data stage's definition), and self-BLEU-4 of each
fable against the other completions of the same prompt (how alike the n samples are), averaged.

Flesch reading ease = 206.835 - 1.015 words/sentence - 84.6 syllables/word, with syllables counted as
vowel groups (a final silent "e" dropped, at least one per word): the usual approximation.
"""

from __future__ import annotations

import re
from collections import defaultdict

from fabulist.data import metrics
from fabulist.eval import quality

COVERAGE = quality.CHECKS  # element coverage and the reader-visible glitch checks


def syllables(word: str) -> int:
    word = word.lower()
    groups = re.findall(r"[aeiouy]+", word)
    count = len(groups) - (
        1 if word.endswith("e") and not word.endswith(("le", "ee")) and len(groups) > 1 else 0
    )
    return max(1, count)


def flesch(text: str) -> float:
    words = re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)?", text)
    if not words:
        return 0.0
    sentences = max(1, len(re.findall(r"[.!?]+(?:\s|$)", text.strip() + " ")))
    syll = sum(syllables(w) for w in words)
    return 206.835 - 1.015 * len(words) / sentences - 84.6 * syll / len(words)


def per_fable(fable: str, elements: dict) -> dict:
    row = quality.check(fable, elements)
    row["flesch"] = flesch(fable)
    row["words"] = len(quality.words(fable))
    return row


def self_bleu_by_prompt(fables: dict[str, list[str]]) -> float:
    """Mean self-BLEU-4 of each fable against the other fables of its prompt (prompts with >= 2 only)."""
    scores = []
    for texts in fables.values():
        for i, t in enumerate(texts):
            others = texts[:i] + texts[i + 1 :]
            if others:
                scores.append(metrics.self_bleu([t], others))
    return sum(scores) / len(scores) if scores else 0.0


def summarize(rows: list[dict]) -> dict:
    """rows: {'prompt_id', 'fable', **per_fable}. Run-level judge-free metrics."""
    n = len(rows)
    out = {k: sum(r[k] for r in rows) / n for k in COVERAGE}
    for k in ("repetition_4gram", "flesch", "words"):
        out[k] = sum(r[k] for r in rows) / n
    fables = [r["fable"] for r in rows]
    out["distinct_1"] = metrics.distinct_n(fables, 1)
    out["distinct_2"] = metrics.distinct_n(fables, 2)
    by_prompt = defaultdict(list)
    for r in rows:
        by_prompt[r["prompt_id"]].append(r["fable"])
    out["self_bleu_4"] = self_bleu_by_prompt(by_prompt)
    out["fables"] = n
    return out
