"""Judge-free text metrics: word tokens, distinct-n and self-BLEU.

    fabulist data stats fables.jsonl      # reports distinct-1/2 for a dataset

Definitions (kept here, in one place, because the dataset targets and later evaluations quote them):
- words: lower-cased; a word is a run of letters/digits (with inner apostrophes or hyphens), and every
  punctuation mark is a token of its own.
- distinct-n: unique n-grams / all n-grams, pooled over all texts (n-grams do not cross texts).
- self-BLEU-4: mean over hypotheses of BLEU-4 (uniform weights, clipped counts, brevity penalty against
  the closest reference length) of each hypothesis against the same set of other texts as references.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

_TOKEN = re.compile(r"[a-z0-9]+(?:['’-][a-z0-9]+)*|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens."""
    return _TOKEN.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return zip(*(tokens[i:] for i in range(n)), strict=False)


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Unique n-grams over all n-grams, pooled over `texts` (0.0 when there are none)."""
    unique: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        grams = list(ngrams(words(text), n))
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def _max_ref_counts(refs: Sequence[list[str]], n: int) -> Counter:
    best: Counter = Counter()
    for ref in refs:
        for gram, count in Counter(ngrams(ref, n)).items():
            if count > best[gram]:
                best[gram] = count
    return best


def self_bleu(hypotheses: Sequence[str], references: Sequence[str], max_n: int = 4) -> float:
    """Mean BLEU-`max_n` of each hypothesis against all `references` (corpus-free, sentence-level BLEU).

    A hypothesis that shares no n-gram of some order with the references scores 0 for that text.
    """
    refs = [words(r) for r in references]
    ref_lens = sorted(len(r) for r in refs)
    best = [_max_ref_counts(refs, n) for n in range(1, max_n + 1)]
    scores = []
    for text in hypotheses:
        hyp = words(text)
        log_p = 0.0
        for n in range(1, max_n + 1):
            counts = Counter(ngrams(hyp, n))
            total = sum(counts.values())
            clipped = sum(min(c, best[n - 1][g]) for g, c in counts.items())
            if not total or not clipped:
                log_p = -math.inf
                break
            log_p += math.log(clipped / total) / max_n
        closest = min(ref_lens, key=lambda r: (abs(r - len(hyp)), r))
        bp = 1.0 if len(hyp) > closest else math.exp(1 - closest / max(len(hyp), 1))
        scores.append(bp * math.exp(log_p))
    return sum(scores) / len(scores) if scores else 0.0
