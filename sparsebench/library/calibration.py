"""Targets of methods whose sparsity is learned: a strength per target from a calibrated table."""
from __future__ import annotations

import math

import numpy as np


def from_table(rows: tuple[tuple[float, float], ...], sparsity: float) -> float:
    """The strength for a target from ``rows`` of (sparsity reached, strength), both increasing:
    log-linear in the strength and in the density (1 - sparsity) between rows, the end rows' values
    beyond them."""
    log_density = [math.log(1 - s) for s, _ in reversed(rows)]
    log_strength = [math.log(v) for _, v in reversed(rows)]
    return math.exp(float(np.interp(math.log(1 - sparsity), log_density, log_strength)))
