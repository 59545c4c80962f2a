"""Pass or fail against thresholds, written once: the quality bar (`fabulist eval quality`, the model card)
and the ladder's per-rung threshold both ask "which of these checks fail?".

    misses({"moral_line": 0.5, "repetition_4gram": 0.2}, minima={"moral_line": 0.9},
           maxima={"repetition_4gram": 0.05})
    -> ["moral_line 0.5 < 0.9", "repetition_4gram 0.2 > 0.05"]
"""

from __future__ import annotations

from collections.abc import Callable


def _plain(value: float) -> str:
    return f"{value:.3g}"


Show = Callable[[float, float], tuple[str, str]]


def misses(values: dict, minima: dict, maxima: dict, show: Show | None = None) -> list[str]:
    """The checks `values` fails, in the thresholds' order, minima first (empty: every check holds). A
    value that was not measured (missing or None) fails its check. `show(value, limit)` formats the two
    numbers of a message (default: 3 significant digits)."""
    show = show or (lambda v, t: (_plain(v), _plain(t)))
    out = []
    for limits, bad, sign in ((minima, lambda v, t: v < t, "<"), (maxima, lambda v, t: v > t, ">")):
        for key, limit in limits.items():
            value = values.get(key)
            if value is None:
                out.append(f"{key} not measured")
            elif bad(value, limit):
                v, t = show(value, limit)
                out.append(f"{key} {v} {sign} {t}")
    return out
