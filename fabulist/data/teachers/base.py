"""What every teacher shares: the outcome of one prompt, the cost budget and the price table.

A teacher turns prompt records into `Outcome`s (a fable record or an error) through
`outcomes(prompts, budget)`; `fabulist.data.generate` writes them. `flush_every` says how many records
the writer may group into one fsync (1 for slow network teachers, more for the fast offline one).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

from fabulist.errors import FabulistError


class TeacherError(FabulistError):
    """A teacher cannot start: a missing key, a bad option."""


@dataclass
class Outcome:
    prompt: dict
    record: dict | None = None
    error: str | None = None
    attempts: int = 1


class Teacher(Protocol):
    name: str
    flush_every: int

    def outcomes(self, prompts: Iterable[dict], budget: Budget) -> Iterator[Outcome]: ...


def load_prices(path: str | None = None) -> dict[str, tuple[float, float]]:
    """USD per million (input, output) tokens by model name; the shipped table unless `path` is given."""
    if path is None:
        text = (resources.files("fabulist.data.teachers") / "prices.json").read_text(encoding="utf-8")
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise TeacherError(f"cannot read price table {path}: {exc.strerror}") from None
    try:
        table = {k: (float(v[0]), float(v[1])) for k, v in json.loads(text).items() if not k.startswith("_")}
    except (ValueError, TypeError, IndexError, KeyError, AttributeError):
        raise TeacherError(
            f"bad price table {path or 'prices.json'}: expected {{model: [usd_in, usd_out]}}"
        ) from None
    return table


def price_for(model: str, table: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The price of `model`, matching a dated name ("gpt-4o-mini-2024-07-18") by its longest prefix."""
    matches = [name for name in table if model == name or model.startswith(name + "-")]
    return table[max(matches, key=len)] if matches else None


@dataclass
class Budget:
    """Running token usage and cost; `exhausted` once `max_cost` (USD) is reached."""

    price_in: float = 0.0  # USD per million input tokens
    price_out: float = 0.0
    max_cost: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens

    @property
    def cost(self) -> float:
        return (self.input_tokens * self.price_in + self.output_tokens * self.price_out) / 1e6

    @property
    def exhausted(self) -> bool:
        return self.max_cost is not None and self.cost >= self.max_cost
