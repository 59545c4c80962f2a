"""The quality bar's checks and targets, and pass or fail against thresholds, written once: the quality bar
(`fabulist eval quality`, the model card), the training curve's quality plot, and the ladder's per-rung
threshold all name the same checks and ask "which of these fail?".

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


# The judge-free checks of one fable (fabulist.eval.quality computes them), each a share of fables.
CHECKS = ("moral_line", "character", "setting", "moral_stated", "one_name", "no_glitch", "introduced")
COVERAGE = CHECKS[:4]  # the requested elements that show in the fable
TARGETS = {"moral_line": 0.95, "character": 0.95, "setting": 0.90, "moral_stated": 0.80, "one_name": 0.95,
           "no_glitch": 0.95, "introduced": 0.90}  # fmt: skip
MAX_REPETITION = 0.05  # 4-gram repetition within a fable, at most


def goals() -> list[tuple[str, str]]:
    """Every reported metric with its goal as shown to people (the CLI's table, the model card)."""
    rows = [(k, f">= {t:.0%}") for k, t in TARGETS.items()]
    return [*rows, ("repetition_4gram", f"<= {MAX_REPETITION:.0%}"), ("distinct_2", "reported")]


def verdict(summary: dict) -> list[str]:
    """The quality-bar checks that fail (empty when the bar holds)."""
    percent = lambda value, limit: (f"{value:.1%}", f"{limit:.0%}")  # noqa: E731
    return misses(summary, TARGETS, {"repetition_4gram": MAX_REPETITION}, show=percent)
