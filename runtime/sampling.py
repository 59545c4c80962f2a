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

    def __post_init__(self):
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise ValueError("need temperature >= 0, top_k >= 0, 0 < top_p <= 1 and repetition_penalty > 0")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")


def penalise(logits: np.ndarray, seen: np.ndarray, penalty: float) -> np.ndarray:
    """Divide positive and multiply negative logits of already-seen tokens by `penalty`."""
    if penalty == 1.0 or not len(seen):
        return logits
    out = logits.copy()
    picked = out[seen]
    out[seen] = np.where(picked > 0, picked / penalty, picked * penalty)
    return out


def next_token(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator, seen=()) -> int:
    """One token id from a (V,) logits vector."""
    logits = penalise(logits.astype(np.float64), np.unique(np.asarray(seen, dtype=np.int64)),
                      params.repetition_penalty)  # fmt: skip
    if params.temperature == 0:
        return int(np.argmax(logits))
    logits = logits / params.temperature
    if params.top_k and params.top_k < len(logits):
        kth = np.partition(logits, -params.top_k)[-params.top_k]
        logits = np.where(logits < kth, -np.inf, logits)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, params.top_p)) + 1]  # smallest set reaching top_p
        mask = np.zeros_like(probs)
        mask[keep] = probs[keep]
        probs = mask / mask.sum()
    return int(rng.choice(len(probs), p=probs))
