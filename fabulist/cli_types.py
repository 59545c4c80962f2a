"""Click parameter types every command shares, so a bad value is a usage error at parse time.

    --seed -1      -> error: Invalid value for '--seed': -1 is not in the range 0<=x<=4294967295.
    --timeout nan  -> error: Invalid value for '--timeout': nan is not a finite number.

Python's float() accepts 'nan' and 'inf', and click's FloatRange lets NaN through (every comparison with
NaN is false), so a numeric option that must be a real number uses FINITE.
"""

from __future__ import annotations

import math

import click

# numpy's generators take seeds in [0, 2**32): one range for every --seed.
SEED = click.IntRange(0, 2**32 - 1)


class Finite(click.ParamType):
    """A float that is neither NaN nor infinite, optionally at least `low` (above it when `open_low`) and at
    most `high`."""

    name = "float"

    def __init__(self, low: float | None = None, high: float | None = None, open_low: bool = False):
        self.low, self.high, self.open_low = low, high, open_low

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.low is not None and (number <= self.low if self.open_low else number < self.low):
            self.fail(
                f"{number:g} is not {'above' if self.open_low else 'at least'} {self.low:g}", param, ctx
            )
        if self.high is not None and number > self.high:
            self.fail(f"{number:g} is above {self.high:g}", param, ctx)
        return number


FINITE = Finite()
NON_NEGATIVE = Finite(low=0.0)  # delays, costs, prices, margins
POSITIVE = Finite(low=0.0, open_low=True)  # timeouts, learning rates, epochs
UNIT = Finite(low=0.0, high=1.0, open_low=True)  # nucleus (top-p) mass
