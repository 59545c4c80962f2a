"""Logit metrics, defined once: export validation (every artifact against PyTorch) and held-out evaluation
(`fabulist eval run`) both measure a model's logits against reference logits with these.

    stats = LogitStats()
    stats.add(test_logits, ref_logits, targets)     # (N, V), (N, V) or None, (N,) next tokens or None
    stats.result()   # {"positions", "ppl", "ref_ppl", "ppl_ratio", "kld", "top1", "max_abs_diff"}

- kld: mean over positions of KL(P_ref || Q_test), from log-softmax in float64;
- top1: share of positions where the two argmaxes agree;
- ppl / ref_ppl: exp of the mean next-token negative log-likelihood (needs targets); ppl_ratio: their ratio;
- max_abs_diff: the largest |logit difference| (the fp32 gates are on this).
"""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


class LogitStats:
    """Running sums over positions, so texts of different lengths add up to the metrics of their union."""

    def __init__(self):
        self.positions = 0
        self.nll = self.ref_nll = self.kld = self.top1 = self.max_abs_diff = 0.0
        self.has_ref = self.has_targets = False

    def add(self, test: np.ndarray, ref: np.ndarray | None = None, targets: np.ndarray | None = None) -> None:
        """One text's logits (its first len(targets) rows when targets are given)."""
        n = len(test) if targets is None else len(targets)
        test = test[:n]
        lq = log_softmax(test)
        rows = np.arange(n)
        self.positions += n
        if targets is not None:
            self.has_targets = True
            self.nll -= lq[rows, targets].sum()
        if ref is None:
            return
        ref = ref[:n]
        if ref.shape != test.shape:
            raise ValueError(f"logit shapes differ: {ref.shape} vs {test.shape}")
        self.has_ref = True
        lp = log_softmax(ref)
        self.max_abs_diff = max(self.max_abs_diff, float(np.abs(ref.astype(np.float64) - test).max()))
        self.kld += (np.exp(lp) * (lp - lq)).sum()
        self.top1 += (lp.argmax(-1) == lq.argmax(-1)).sum()
        if targets is not None:
            self.ref_nll -= lp[rows, targets].sum()

    def result(self) -> dict:
        n = max(self.positions, 1)
        ref, nll = self.has_ref, self.has_targets
        return {
            "positions": int(self.positions),
            "ppl": float(np.exp(self.nll / n)) if nll else None,
            "ref_ppl": float(np.exp(self.ref_nll / n)) if nll and ref else None,
            "ppl_ratio": float(np.exp((self.nll - self.ref_nll) / n)) if nll and ref else None,
            "kld": float(self.kld / n) if ref else None,
            "top1": float(self.top1 / n) if ref else None,
            "max_abs_diff": float(self.max_abs_diff) if ref else None,
        }


def compare(ref: np.ndarray, test: np.ndarray, targets: np.ndarray | None = None) -> dict:
    """The metrics of test logits (N, V) against reference logits (N, V) in one call."""
    if ref.shape != test.shape:
        raise ValueError(f"logit shapes differ: {ref.shape} vs {test.shape}")
    stats = LogitStats()
    stats.add(test, ref, targets)
    out = stats.result()
    keys = ("max_abs_diff", "kld", "top1") + (("ppl_ratio",) if targets is not None else ())
    return {k: out[k] for k in keys}
