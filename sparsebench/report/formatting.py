"""The text of the leaderboard's cells and figures, shared by every rendering: percentages, mean ±
std with its seeds and 95 % interval, the cells' marks (collapsed, at chance, not ranked, off
target, stale), counts, ratios and durations."""
from __future__ import annotations

import math

import pandas as pd
from scipy.stats import t as student_t


def percent(s: float) -> str:
    """0.9 -> '90%', 0.995 -> '99.5%'."""
    return f"{s * 100:.10g}%"


def mean_std(mean: float, std: float) -> str:
    """'97.04 ± 0.08'; the mean alone where one seed leaves the std undefined (NaN)."""
    return f"{mean:.2f}" if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"


def confidence(mean: float, std: float, n: int) -> tuple[float, float] | None:
    """The 95 % confidence interval of the mean over ``n`` seeds (Student's t), from 3 seeds on."""
    if n < 3 or pd.isna(std):
        return None
    half = float(student_t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return mean - half, mean + half


def cell(mean: float, std: float, n: int, collapsed: int = 0, at_chance: bool = False, rank: float | None = None,
         stale: bool = False, reached: float | None = None) -> str:
    """'97.04 ± 0.08 (3; 95% CI 96.84–97.24)', '97.04 ± 0.08 (2)' or '97.04 (1 seed)'; with a collapse
    mark where ``collapsed`` of the n seeds collapsed; with ``rank`` given (a section's cell), its
    shared rank ('#1') or, with fewer than three seeds, :data:`UNRANKED`; ``reached``: the sparsity
    an off-target cell reached (:func:`off_target`)."""
    interval = confidence(mean, std, n)
    count = "1 seed" if n == 1 else f"{n}; 95% CI {interval[0]:.2f}–{interval[1]:.2f}" if interval else f"{n}"
    ranked = "" if rank is None else f" #{rank:.0f}" if not pd.isna(rank) else f" {UNRANKED}" if n < 3 else ""
    return (f"{mean_std(mean, std)} ({count})" + (f" {COLLAPSED} {collapsed}/{n}" if collapsed else "")
            + (f" {AT_CHANCE}" if at_chance else "") + (f" {OFF_TARGET}: {reached:.1%} reached" if reached is not None
                                                          else "") + ranked + (f" {STALE}" if stale else ""))


COLLAPSED = "⚠ collapsed"  # a cell where a layer or an output of the network was cut off
AT_CHANCE = "≈ chance"  # a cell no better than a model that learned nothing from its inputs
UNRANKED = "○ not ranked (n < 3)"  # a cell with fewer than three seeds: shown, not ranked
OFF_TARGET = "↕ off target"  # a cell whose sparsity reached is far from its target (see :func:`off_target`)
STALE = "† stale"  # a cell whose runs' code changed since they ran (see :func:`stale`)


def count(v: float) -> str:
    """A parameter count in a few characters: 1234 -> '1.23k'."""
    if pd.isna(v):
        return "—"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.0f}"


def ratio(v: float, digits: int = 2) -> str:
    return "—" if pd.isna(v) else f"{v:.{digits}f}×"


def duration(seconds: float) -> str:
    """A trial's mean wall time: '42 s', '21.3 min', '1.5 h' (— where runs did not record it)."""
    if pd.isna(seconds):
        return "—"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def speedups(r: pd.Series) -> str:
    """Measured inference speedup at batch 1 and at the evaluation batch (runs before it was measured: —)."""
    return "—" if pd.isna(r["speedup"]) else f"{ratio(r['speedup_b1'])} / {ratio(r['speedup'])}"
