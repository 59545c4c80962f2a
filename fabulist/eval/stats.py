"""Confidence intervals for evaluation scores where the n completions of one prompt are not independent.

    fabulist eval report runs/eval/int4          # per-dimension means with 95% CIs clustered by prompt
    fabulist eval compare runs/eval/fp32 runs/eval/int4

- `clustered_ci`: the mean of all scores with a cluster-robust (CR1) standard error, clusters = prompts:
  se^2 = G/(G-1) * sum_g (sum_i (y_gi - mean))^2 / N^2, and mean +- 1.96 se (normal approximation; with
  the 50 prompts of the evaluation set, Student's t would widen it by 2.5%).
- `paired_bootstrap`: per-prompt differences (B - A of the prompt means), resampled over prompts
  (percentile interval, seeded).
- `verdict`: "no measurable loss" when the interval's lower end is above -margin, "loss" when its
  upper end is below -margin, "inconclusive" otherwise.
"""

from __future__ import annotations

import numpy as np

Z95 = 1.959964


def clustered_ci(groups: list[list[float]]) -> dict:
    """{'mean', 'lo', 'hi', 'se', 'n', 'clusters'} over all values, clustered by group."""
    groups = [g for g in groups if len(g)]
    values = np.concatenate([np.asarray(g, dtype=float) for g in groups]) if groups else np.zeros(0)
    n, k = len(values), len(groups)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "se": None, "n": 0, "clusters": 0}
    mean = float(values.mean())
    if k < 2:
        return {"mean": mean, "lo": None, "hi": None, "se": None, "n": n, "clusters": k}
    sums = np.array([np.sum(np.asarray(g, dtype=float) - mean) for g in groups])
    se = float(np.sqrt(k / (k - 1) * np.sum(sums**2)) / n)
    return {"mean": mean, "lo": mean - Z95 * se, "hi": mean + Z95 * se, "se": se, "n": n, "clusters": k}


def paired_bootstrap(diffs: list[float], resamples: int = 10_000, seed: int = 0) -> dict:
    """{'mean', 'lo', 'hi', 'prompts'}: 95% percentile bootstrap interval of the mean paired difference."""
    d = np.asarray(diffs, dtype=float)
    if len(d) == 0:
        return {"mean": None, "lo": None, "hi": None, "prompts": 0}
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(d.mean()), "lo": float(lo), "hi": float(hi), "prompts": len(d)}


def verdict(ci: dict, margin: float) -> str:
    if ci["mean"] is None:
        return "no data"
    if ci["lo"] >= -margin:
        return "no measurable loss"
    if ci["hi"] < -margin:
        return "loss"
    return "inconclusive"
