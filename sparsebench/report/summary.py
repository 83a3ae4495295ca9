"""The summary's average ranks: methods compared on the same tasks of one family.

Tasks of different families (an MLP and a transformer) are never averaged together: a method that
leads on one family and trails on another would otherwise average into a misleading first. Within a
task and sparsity, the rank is the noise-respecting group rank of :mod:`sparsebench.report.ranking`
(methods within noise share it); cells with fewer than three seeds, collapsed or at chance are not
ranked, and a method with such a cell in a column is not ranked in that column.
"""
from __future__ import annotations

import pandas as pd

from sparsebench.report.ranking import MIN_SEEDS, group_ranks
from sparsebench.report.formatting import AT_CHANCE, COLLAPSED, OFF_TARGET, percent
from sparsebench.report.tables import track_title

FEW = f"n < {MIN_SEEDS}"  # the mark of a column where some of the method's cells have too few seeds


def ranks(table: pd.DataFrame) -> pd.DataFrame:
    """Average group ranks of pruning methods compared on the same tasks of one family.

    For each profile, variant, track and family, methods are compared in *comparisons*: one per set
    of tasks that some method ran on, holding every method that ran on all of them (a set of a
    single task only where there is no other). At each sparsity, a comparison ranks its methods
    within each of its tasks where all of them have a result and averages over those tasks. Columns:
    profile, variant, track, family, comparison (its tasks, comma-separated), method, sparsity, rank,
    tasks, of (methods ranked per task, on average), collapsed, at_chance, off_target, few (tasks where
    the cell has fewer than three seeds). A comparison where no method is ranked in any column is left out.
    """
    columns = ["profile", "variant", "track", "family", "comparison", "method", "sparsity", "rank", "tasks", "of",
               "collapsed", "at_chance", "off_target", "few"]
    pruned = table[(table["method"] != "dense") & table["mean"].notna()]
    if "family" not in pruned:
        pruned = pruned.assign(family="")
    out = []
    for (profile, variant, track, family), group in pruned.groupby(["profile", "variant", "track", "family"],
                                                                   sort=True):
        coverage = group.groupby("method")["task"].agg(frozenset)
        sets = sorted(set(coverage), key=lambda t: (-len(t), sorted(t)))
        for tasks in [t for t in sets if len(t) > 1] or sets:
            methods = sorted(m for m, c in coverage.items() if c >= tasks)
            if len(methods) < 2:
                continue
            name = ", ".join(sorted(tasks))
            found = []
            for sparsity, cells in group[group["method"].isin(methods) & group["task"].isin(tasks)].groupby("sparsity"):
                shared = [t for t in sorted(tasks) if set(cells.loc[cells["task"] == t, "method"]) >= set(methods)]
                cells = cells[cells["task"].isin(shared)]
                if cells.empty:
                    continue
                rank = pd.concat([group_ranks(c, bool(c["higher_is_better"].iloc[0])) for _, c in cells.groupby("task")])
                count = rank.notna().groupby(cells["task"]).sum()
                for method in methods:
                    mine = cells[cells["method"] == method]
                    collapsed, chance = int((mine["collapsed"] > 0).sum()), int(mine["at_chance"].sum())
                    off = int(mine["off_target"].sum()) if "off_target" in mine else 0
                    few = int((mine["n"] < MIN_SEEDS).sum())
                    mean = rank[mine.index]
                    found.append({"profile": profile, "variant": variant, "track": track, "family": family,
                                  "comparison": name, "method": method, "sparsity": sparsity, "tasks": len(shared),
                                  "rank": mean.mean() if mean.notna().all() else float("nan"),
                                  "of": count.mean(), "collapsed": collapsed, "at_chance": chance,
                                  "off_target": off, "few": few})
            if any(r["rank"] == r["rank"] for r in found):
                out += found
    return pd.DataFrame(out, columns=columns)


def rank_text(r: pd.Series) -> str:
    """A summary cell: '1.50 · 2 tasks', or why it is not ranked ('⚠ collapsed on 1 of 2 tasks', 'n < 3 on 1 of 1 tasks')."""
    tasks = int(r["tasks"])
    for key, mark in (("collapsed", COLLAPSED), ("at_chance", AT_CHANCE), ("off_target", OFF_TARGET), ("few", FEW)):
        if r.get(key, 0):
            return f"{mark} on {int(r[key])} of {tasks} task{'s' * (tasks != 1)}"
    return f"{r['rank']:.2f} · {tasks} task{'s' * (tasks != 1)}"


def rank_grid(ranked: pd.DataFrame) -> pd.DataFrame:
    """One comparison's average ranks: one row per method (best first, by the mean of its ranked
    columns), one column per sparsity (:func:`rank_text`)."""
    values = ranked.assign(cell=[rank_text(r) for _, r in ranked.iterrows()])
    order = ranked.groupby("method")["rank"].mean().sort_values(na_position="last").index
    grid = values.pivot(index="method", columns="sparsity", values="cell").reindex(order).fillna("—")
    grid.columns = [percent(c) for c in grid.columns]
    return grid


def title(profile: str, variant: str, track: str, family: str, comparison: str) -> str:
    """A comparison's heading (plain text; Markdown and HTML add their markup)."""
    return (f"{family or 'no family'} — profile {profile}" + (f" — data: {variant}" if variant != "official" else "")
            + (f" — {track_title(track)}" if track != "default" else "") + f" — on {comparison}")
