"""Choosing the next token from logits: greedy, temperature, top-k, top-p, repetition penalty.

    fabulist generate --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1

Pure numpy. With the same seed and the same logits, the same tokens come out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 means greedy
    top_k: int = 0  # 0: no limit
    top_p: float = 1.0
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the text (CTRL's rule)
    max_new_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = field(default=())
    min_new_tokens: int = 0  # end-of-text is suppressed until this many tokens (as transformers does)

    def __post_init__(self):
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise ValueError("need temperature >= 0, top_k >= 0, 0 < top_p <= 1 and repetition_penalty > 0")
        if self.max_new_tokens < 1 or self.min_new_tokens < 0:
            raise ValueError("max_new_tokens must be at least 1 and min_new_tokens at least 0")


def penalise(logits: np.ndarray, seen: np.ndarray, penalty: float) -> np.ndarray:
    """Divide positive and multiply negative logits of already-seen tokens by `penalty`."""
    if penalty == 1.0 or not len(seen):
        return logits
    out = logits.copy()
    picked = out[seen]
    out[seen] = np.where(picked > 0, picked / penalty, picked * penalty)
    return out


def next_token(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator, seen=()) -> int:
    """One token id from a (V,) logits vector; `seen` (the ids so far) only matters with a penalty."""
    if params.repetition_penalty != 1.0:
        seen = np.unique(np.asarray(seen() if callable(seen) else seen, dtype=np.int64))
        logits = penalise(logits, seen, params.repetition_penalty)
    if params.temperature == 0:
        return int(np.argmax(logits))
    logits = logits.astype(np.float64) / params.temperature
    if params.top_k and params.top_k < len(logits):
        kth = np.partition(logits, -params.top_k)[-params.top_k]
        logits[logits < kth] = -np.inf
    probs = np.exp(logits - logits.max())
    if params.top_p < 1.0:
        keep = nucleus(probs, params.top_p)
        kept = probs[keep]
        probs = np.zeros_like(probs)
        probs[keep] = kept
    cumulative = np.cumsum(probs)
    # inverse CDF: one uniform draw, as rng.choice(p=...) does, without its validation passes
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), len(probs) - 1))


def nucleus(probs: np.ndarray, top_p: float, first: int = 64) -> np.ndarray:
    """Ids of the smallest set of most likely tokens whose mass reaches top_p (ties: lower id first).

    Sorting a whole vocabulary every step costs more than the model on a small one, so the `first` most
    likely are sorted first; the full sort runs only when they do not reach top_p.
    """
    target = top_p * probs.sum()
    if first < len(probs):
        top = np.sort(np.argpartition(-probs, first)[:first])
        order = top[np.argsort(-probs[top], kind="stable")]
        cumulative = np.cumsum(probs[order])
        boundary = probs[order[-1]]
        if cumulative[-1] >= target and np.count_nonzero(probs == boundary) == np.count_nonzero(
            probs[top] == boundary
        ):
            return order[: int(np.searchsorted(cumulative, target)) + 1]
    order = np.argsort(-probs, kind="stable")
    return order[: int(np.searchsorted(np.cumsum(probs[order]), target)) + 1]
