"""Search spaces: the few hyperparameters of a method worth tuning, and their ranges.

A method declares ``search_space`` (a class attribute: hyperparameter name -> dimension), or
overrides ``Method.space(sparsity)`` where a range depends on the target. The paper's default must
lie inside every range (checked before a tuning run starts). Dimensions are plain data here and
become Ray Tune domains (``ray.tune.uniform``, ...) only in the tuner, so plugins import no Ray.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float
    log: bool = False  # sample log-uniformly (scales, rates, regularization strengths)

    def __post_init__(self):
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"bad range {self}: needs low < high (and low > 0 on a log scale)")

    def contains(self, value) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def to_tune(self):
        from ray import tune
        return (tune.loguniform if self.log else tune.uniform)(self.low, self.high)


@dataclass(frozen=True)
class Integer:
    low: int
    high: int  # inclusive
    log: bool = False

    def __post_init__(self):
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"bad range {self}: needs low < high (and low > 0 on a log scale)")

    def contains(self, value) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high

    def to_tune(self):
        from ray import tune
        return (tune.lograndint if self.log else tune.randint)(self.low, self.high + 1)


@dataclass(frozen=True)
class Choice:
    values: tuple

    def __init__(self, *values):
        if len(values) < 2:
            raise ValueError("a choice needs at least two values")
        object.__setattr__(self, "values", tuple(values))

    def contains(self, value) -> bool:
        return value in self.values

    def to_tune(self):
        from ray import tune
        return tune.choice(list(self.values))


Dimension = Uniform | Integer | Choice


def check_space(method: str, space: dict[str, Dimension], defaults: dict) -> None:
    """Every name is a hyperparameter of the method and every range holds its default."""
    for name, dim in space.items():
        if name not in defaults:
            raise ValueError(f"search space of {method!r} names {name!r}, which is not one of its "
                             f"hyperparameters ({', '.join(sorted(defaults)) or 'none'})")
        if not dim.contains(defaults[name]):
            raise ValueError(f"search space of {method!r}: {name} = {dim} excludes the default {defaults[name]!r}")


def space_digest(space: dict[str, Dimension]) -> str:
    """A short hash of a space: tuned results record the space they were chosen from."""
    text = json.dumps({k: [type(d).__name__, repr(d)] for k, d in sorted(space.items())})
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def describe(space: dict[str, Dimension]) -> str:
    """``alpha in [0.1, 0.5], delta_t in {50, 100, 200}`` (for the CLI and the board)."""
    def one(d):
        if isinstance(d, Choice):
            return "{" + ", ".join(map(str, d.values)) + "}"
        return f"[{d.low:g}, {d.high:g}]" + (" log" if d.log else "")
    return ", ".join(f"{k} in {one(d)}" for k, d in space.items()) or "nothing"


def rounded(value):
    """Sampled floats to 4 significant digits, so that configs read well and hash stably."""
    return float(f"{value:.4g}") if isinstance(value, float) and math.isfinite(value) else value
