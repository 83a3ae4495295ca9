"""The leaderboard's plots: the metric against density for one task, profile and dataset variant,
and against the measured inference speedup where the runs measured it.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state):
x is the density (1 − sparsity) on a log scale, one line per method with the standard deviation
over seeds as error bars, the dense reference as a horizontal band (mean ± std). Results that
collapse (beyond Tukey's fence on the bad side) are drawn as triangles on the plot's edge, so that
they do not squash the differences between the others; the tables have their values.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from sparsebench.report.tables import mean_std

MARKERS = "osD^vP*Xh<>"
COLORS = [colormaps["tab20"](i) for i in [*range(0, 20, 2), *range(1, 20, 2)]]  # 20 distinct: dark ones first


def clear(folder: Path) -> None:
    """Remove the plots of an earlier build, so that a task without runs leaves no stale picture."""
    if folder.is_dir():
        for old in folder.glob("*.png"):
            old.unlink()


def _percent(v: float) -> str:
    return f"{v * 100:.3g}%"


def fence(means: pd.Series, higher_is_better: bool) -> float:
    """Tukey's fence on the bad side: 1.5 interquartile ranges below the first quartile (above the
    third where lower is better)."""
    q1, q3 = means.quantile([0.25, 0.75])
    return q1 - 1.5 * (q3 - q1) if higher_is_better else q3 + 1.5 * (q3 - q1)


def section_plot(section, path: Path) -> Path:
    """Draw ``section`` (a :class:`sparsebench.report.tables.Section`) into the PNG file ``path``."""
    fig = Figure(figsize=(7.2, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    styles = zip(itertools.cycle(MARKERS), itertools.cycle(COLORS))
    densities: set[float] = set()
    higher = section.higher_is_better
    dense = [] if section.dense is None else [section.dense["mean"]]
    edge = fence(pd.concat([section.rows["mean"], pd.Series(dense, dtype=float)]), higher)
    off_scale = False
    for method in section.methods:
        rows = section.rows[section.rows["method"] == method].sort_values("sparsity")
        x = (1.0 - rows["sparsity"]).to_numpy()
        densities.update(x.tolist())
        marker, color = next(styles)
        off = (rows["mean"] < edge if higher else rows["mean"] > edge).to_numpy()
        y = rows["mean"].clip(lower=edge) if higher else rows["mean"].clip(upper=edge)
        ax.errorbar(x, y, yerr=rows["std"].fillna(0.0).where(~off, 0.0), marker=marker, color=color, capsize=3,
                    markersize=5, linewidth=1.5, label=method, markevery=list(~off))
        if off.any():
            off_scale = True
            ax.plot(x[off], y[off], linestyle="none", marker="v" if higher else "^", color=color, markersize=8)
    if off_scale:  # a legend entry for the triangles
        ax.plot([], [], linestyle="none", marker="v" if higher else "^", color="0.4", markersize=8,
                label=f"{'below' if higher else 'above'} {edge:.3g}: off the scale")
    if section.dense is not None:
        mean, std = section.dense["mean"], section.dense["std"]
        if std == std:  # NaN with a single seed: no band
            ax.axhspan(mean - std, mean + std, color="0.6", alpha=0.25, linewidth=0)
        ax.axhline(mean, color="0.35", linestyle="--", linewidth=1.2,
                   label=f"dense {mean_std(mean, std)} ({int(section.dense['n'])})")
    if densities:
        ticks = sorted(densities)
        ax.set_xlim(min(ticks) / 1.35, max(ticks) * 1.35)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ticks, [_percent(d) for d in ticks])
        top = ax.secondary_xaxis("top")
        top.set_xticks(ticks, [_percent(1.0 - d) for d in ticks])
        top.xaxis.set_minor_locator(NullLocator())
        top.set_xlabel("sparsity")
    ax.set_xlabel("density (1 − sparsity), log scale")
    ax.set_ylabel(f"test {section.metric} ({section.direction})")
    ax.set_title(section.title.replace("`", ""), fontsize="medium")
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def speedup_plot(section, path: Path) -> Path:
    """The metric against the measured speedup at the evaluation batch (log scale), one marker per
    method and sparsity, labelled with the sparsity; the dense model at 1× as a band."""
    fig = Figure(figsize=(7.2, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    styles = zip(itertools.cycle(MARKERS), itertools.cycle(COLORS))
    for method in section.methods:
        rows = section.rows[(section.rows["method"] == method) & section.rows["speedup"].notna()]
        marker, color = next(styles)
        if rows.empty:
            continue
        ax.scatter(rows["speedup"], rows["mean"], marker=marker, color=color, label=method, zorder=3)
        for _, r in rows.iterrows():
            ax.annotate(_percent(r["sparsity"]), (r["speedup"], r["mean"]), fontsize="x-small",
                        xytext=(4, 3), textcoords="offset points", color=color)
    if section.dense is not None:
        ax.axhline(section.dense["mean"], color="0.35", linestyle="--", linewidth=1.2,
                   label=f"dense {mean_std(section.dense['mean'], section.dense['std'])}")
    ax.axvline(1.0, color="0.6", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("measured speedup over the dense form (evaluation batch, one thread; log scale)")
    ax.set_ylabel(f"test {section.metric} ({section.direction})")
    ax.set_title(section.title.replace("`", ""), fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
