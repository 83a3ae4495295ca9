"""Ranks that respect noise: methods whose results are not told apart by their seeds share a rank.

The test is Welch's t-test on the seeds of two cells (mean, std, n), two-sided at 5 %
(:data:`ALPHA`), with no correction for the many comparisons a board makes: with a dozen methods
some pairs will differ at 5 % by chance alone, so a lone separated pair is weak evidence. Only
cells with at least :data:`MIN_SEEDS` seeds that neither collapsed, sit at chance, nor missed their
target sparsity are ranked; the others are shown, marked, and left out.

Groups: the best remaining cell (by mean, in the metric's direction) opens a group at its position
(1 for the leader), and every remaining cell not significantly different from it joins that group;
repeat with the rest. Rank 1 is the leaders' group.
"""
from __future__ import annotations

import math

import pandas as pd
from scipy.stats import t as student_t

ALPHA = 0.05
MIN_SEEDS = 3
TEST = (f"Welch's t-test on the seeds of two cells, two-sided at {ALPHA:.0%}, no correction for multiple "
        f"comparisons (with many methods some pairs differ at {ALPHA:.0%} by chance)")


def welch_p(m1: float, s1: float, n1: int, m2: float, s2: float, n2: int) -> float:
    """Two-sided p-value of Welch's t-test between two means with their standard deviations and counts."""
    v1, v2 = (0.0 if pd.isna(s1) else s1) ** 2 / n1, (0.0 if pd.isna(s2) else s2) ** 2 / n2
    if v1 + v2 == 0:  # deterministic results: the same or not
        return 1.0 if m1 == m2 else 0.0
    t = (m1 - m2) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / ((v1 ** 2 / (n1 - 1) if v1 else 0.0) + (v2 ** 2 / (n2 - 1) if v2 else 0.0))
    return float(2 * student_t.sf(abs(t), df))


def differs(a: pd.Series, b: pd.Series) -> bool:
    """Whether two cells' means differ significantly (:data:`TEST`)."""
    return welch_p(a["mean"], a["std"], int(a["n"]), b["mean"], b["std"], int(b["n"])) < ALPHA


def unranked_reason(row: pd.Series) -> str:
    """Why a cell is not ranked ("" when it is): too few seeds, a collapse, a chance-level result, or
    a sparsity reached far from the target (:func:`sparsebench.report.tables.off_target`)."""
    if int(row.get("collapsed", 0) or 0):
        return "collapsed"
    if bool(row.get("at_chance", False)):
        return "at chance"
    if bool(row.get("off_target", False)):
        return "off target"
    if int(row["n"]) < MIN_SEEDS:
        return f"n < {MIN_SEEDS}"
    return ""


def group_ranks(cells: pd.DataFrame, higher_is_better: bool) -> pd.Series:
    """The shared rank of each of ``cells`` (one sparsity of one comparison: columns mean, std, n,
    collapsed, at_chance), NaN where a cell is not ranked (:func:`unranked_reason`)."""
    out = pd.Series(float("nan"), index=cells.index)
    ok = cells[[unranked_reason(r) == "" for _, r in cells.iterrows()]]
    left = list(ok.sort_values("mean", ascending=not higher_is_better).index)
    position = 1
    while left:
        head = cells.loc[left[0]]
        group = [left[0]] + [i for i in left[1:] if not differs(head, cells.loc[i])]
        out[group] = float(position)
        position += len(group)
        left = [i for i in left if i not in group]
    return out
