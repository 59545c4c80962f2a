"""Choosing the next token from logits: greedy, temperature, top-k, top-p, repetition penalty.

    fabulist generate --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1

Pure numpy. With the same seed and the same logits, the same tokens come out.
"""

from __future__ import annotations

import math
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
        for name in ("temperature", "top_p", "repetition_penalty"):
            if not math.isfinite(getattr(self, name)):  # NaN passes every comparison below
                raise ValueError(f"{name} must be a finite number, not {getattr(self, name)}")
        if any(not s for s in self.stop):
            raise ValueError("a stop string must not be empty (it would stop before the first token)")
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise ValueError("need temperature >= 0, top_k >= 0, 0 < top_p <= 1 and repetition_penalty > 0")
        if self.max_new_tokens < 1 or self.min_new_tokens < 0:
            raise ValueError("max_new_tokens must be at least 1 and min_new_tokens at least 0")


# Named settings, so every command that samples starts from the same numbers for the same purpose.
PRESETS = {
    "fable": {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 400},  # generate, a trained run's default
    "quality": {"temperature": 0.8, "top_p": 1.0, "max_new_tokens": 400},  # eval quality: the bar's setting
    "judge": {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 400},  # eval run: the judged protocol
    "greedy": {"temperature": 0.0, "max_new_tokens": 400},
}
# The fields of a Hugging Face generation_config.json that are sampling settings here.
_GENERATION_FIELDS = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens")


def preset(name: str, **overrides) -> SamplingParams:
    """SamplingParams of a named preset (PRESETS), with any field overridden."""
    return SamplingParams(**{**PRESETS[name], **overrides})


def generation_defaults(model_dir, fallback: str = "fable") -> dict:
    """The sampling settings a model folder asks for in its generation_config.json (what `fabulist train`
    writes, or what a published model ships: Qwen's top_k 20, say), over the named preset; a folder
    without one, or a field that is missing or not a number, keeps the preset's. do_sample false means
    greedy."""
    from pathlib import Path

    from fabulist.records import read_json_or_empty

    out = dict(PRESETS[fallback])
    config = read_json_or_empty(Path(model_dir) / "generation_config.json")
    for key in _GENERATION_FIELDS:
        value = config.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = int(value) if key in ("top_k", "max_new_tokens") else float(value)
    if config.get("do_sample") is False:
        out["temperature"] = 0.0
    return out


def prompt_seed(seed: int, index: int) -> int:
    """The seed of the index-th prompt of a run seeded `seed` (`eval run`, `eval quality`, the training-time
    probe): distinct per prompt and per run seed, so a resumed or partial run draws what a whole one does."""
    return seed * 100_003 + index


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
    return int(next_tokens(logits[None, :], params, [rng], [seen])[0])


def next_tokens(
    logits: np.ndarray, params: SamplingParams, rngs: list, seen: list | None = None
) -> np.ndarray:
    """One token id per row of (n, V) logits, row i drawing from rngs[i]; a batch of one gives the same
    token as the row alone, so n sequences sampled together equal the n sampled one by one."""
    logits = _penalised(logits, params, seen)
    if params.temperature == 0:
        return np.argmax(logits, axis=1)
    probs = _weights(logits, params)
    if params.top_p < 1.0 or params.top_k:
        return np.array(
            [_draw_sparse(row, rng) for row, rng in zip(probs, rngs, strict=True)], dtype=np.int64
        )
    cumulative = np.cumsum(probs, axis=1)
    # inverse CDF: one uniform draw per row, as rng.choice(p=...) does, without its validation passes
    u = np.array([rng.random() for rng in rngs]) * cumulative[:, -1]
    return np.minimum((cumulative <= u[:, None]).sum(axis=1), probs.shape[1] - 1)


def _draw_sparse(probs: np.ndarray, rng: np.random.Generator) -> int:
    """The inverse-CDF draw above for one row that top-k or top-p left mostly zero, over its nonzero ids
    only. Bit for bit the same token: the running sum only grows at nonzero ids (adding 0.0 is exact), so
    the first id whose sum passes u is the first nonzero one; u at or past the total gives the last id."""
    ids = np.flatnonzero(probs)
    cumulative = np.cumsum(probs[ids])
    k = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return int(ids[k]) if k < len(ids) else len(probs) - 1


def probabilities(logits: np.ndarray, params: SamplingParams, seen: list | None = None) -> np.ndarray:
    """(n, V): the distribution `next_tokens` draws each row from, normalised (greedy: all mass on the
    argmax). Speculative decoding compares a draft's and a target's with it."""
    logits = _penalised(logits, params, seen)
    if params.temperature == 0:
        out = np.zeros(logits.shape, dtype=np.float64)
        out[np.arange(len(logits)), np.argmax(logits, axis=1)] = 1.0
        return out
    probs = _weights(logits, params)
    return probs / probs.sum(axis=1, keepdims=True)


def _penalised(logits: np.ndarray, params: SamplingParams, seen: list | None) -> np.ndarray:
    if params.repetition_penalty == 1.0:
        return logits
    ids = [np.unique(np.asarray(s() if callable(s) else s, dtype=np.int64)) for s in seen]
    return np.stack([penalise(row, i, params.repetition_penalty) for row, i in zip(logits, ids, strict=True)])


def _weights(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """Unnormalised sampling weights of (n, V) logits: temperature, then top-k, then top-p."""
    x = logits.astype(np.float64) / params.temperature
    vocab = x.shape[1]
    if params.top_k and params.top_k < vocab:
        kth = np.partition(x, -params.top_k, axis=1)[:, -params.top_k]
        x[x < kth[:, None]] = -np.inf
    probs = np.exp(x - x.max(axis=1, keepdims=True))
    if params.top_p < 1.0:
        probs = nucleus_rows(probs, params.top_p)
    return probs


def nucleus_rows(probs: np.ndarray, top_p: float, first: int = 64) -> np.ndarray:
    """(n, V) probabilities with everything outside each row's nucleus (see `nucleus`) set to zero.

    Rows whose `first` most likely tokens do not settle the nucleus try 8 times as many before a full
    sort: a small model at temperature 0.8 often spreads 95% of its mass over a few hundred tokens, and
    sorting whole 4,096-token rows made sampling a third of a 10-row decode step (fable-5m, genai int4)."""
    n, vocab = probs.shape
    out = np.zeros_like(probs)
    if first >= vocab:
        for j in range(n):
            keep = nucleus(probs[j], top_p, first)
            out[j, keep] = probs[j, keep]
        return out
    target = top_p * probs.sum(axis=1)
    rows = np.arange(n)
    while len(rows) and first < vocab:
        rows = _settle_nucleus(probs, target, rows, first, out)
        first *= 8
    for j in rows:  # rare: a flat distribution; sort the whole row
        keep = _sorted_nucleus(probs[j], target[j])
        out[j, keep] = probs[j, keep]
    return out


def _settle_nucleus(probs: np.ndarray, target: np.ndarray, rows: np.ndarray, first: int, out: np.ndarray):
    """Write into `out` the nucleus of each of `rows` that its `first` most likely tokens settle (their mass
    reaches the row's target and no token outside ties the last one); return the rows left unsettled.
    The prefix sums run in the full sort's order (probability down, ties lower id first), so the cut is
    the full sort's, bit for bit."""
    sub, goal = probs[rows], target[rows]
    top = np.sort(np.argpartition(-sub, first, axis=1)[:, :first], axis=1)
    top_p_vals = np.take_along_axis(sub, top, 1)
    rank = np.argsort(-top_p_vals, axis=1, kind="stable")
    order, ranked = np.take_along_axis(top, rank, 1), np.take_along_axis(top_p_vals, rank, 1)
    cumulative = np.cumsum(ranked, axis=1)
    boundary = ranked[:, -1:]
    whole_ties = (sub == boundary).sum(axis=1) == (top_p_vals == boundary).sum(axis=1)
    enough = (cumulative[:, -1] >= goal) & whole_ties
    cut = (cumulative < goal[:, None]).sum(axis=1) + 1
    kept = np.zeros_like(sub)
    np.put_along_axis(kept, order, np.where(np.arange(first) < cut[:, None], ranked, 0.0), axis=1)
    out[rows[enough]] = kept[enough]
    return rows[~enough]


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
    return _sorted_nucleus(probs, target)


def _sorted_nucleus(probs: np.ndarray, target: float) -> np.ndarray:
    """The nucleus by a full stable sort of the row: the smallest prefix whose mass reaches target."""
    order = np.argsort(-probs, kind="stable")
    return order[: int(np.searchsorted(np.cumsum(probs[order]), target)) + 1]
