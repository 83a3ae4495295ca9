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
import math
import textwrap
from pathlib import Path

import pandas as pd

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from sparsebench.report.ranking import MIN_SEEDS
from sparsebench.report.formatting import mean_std

MARKERS = "osDP*Xh<>p"  # no triangles: ▲▼ mark results off the scale
COLORS = [colormaps["tab10"](i) for i in (0, 1, 2, 3, 4, 6)]  # the best methods' colours
GREY = "0.7"  # the others'


LEGEND_ROW_INCHES = 0.19  # one entry of a "small" legend


def legend_beside(fig: Figure, ax) -> None:
    """The legend right of the axes, in as many columns as its entries need to fit the figure's
    height (the figure widened for each column beyond the first)."""
    handles = ax.get_legend_handles_labels()[0]
    if not handles:
        return
    columns = math.ceil(len(handles) / max(1, int(fig.get_figheight() / LEGEND_ROW_INCHES) - 1))
    fig.set_figwidth(fig.get_figwidth() + 1.8 * (columns - 1))
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, ncols=columns)


def styles(methods: list[str]):
    """(marker, colour, line width, z-order) per method, best first: the first few in colour, the rest grey."""
    markers = itertools.cycle(MARKERS)
    return {m: (next(markers), COLORS[i], 1.6, 3) if i < len(COLORS) else (next(markers), GREY, 1.0, 2)
            for i, m in enumerate(methods)}


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as the PNG file ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def clear(folder: Path) -> None:
    """Remove the plots of an earlier build, so that a task without runs leaves no stale picture."""
    if folder.is_dir():
        for old in folder.glob("*.png"):
            old.unlink()


def _percent(v: float) -> str:
    return f"{v * 100:.3g}%"


def hollow(ax, x, y, which, marker: str, color, z: int) -> bool:
    """Redraw the markers of cells with fewer than three seeds hollow (shown, not ranked); whether any was."""
    pick = [i for i, w in enumerate(which) if w]
    if pick:
        ax.plot([x[i] for i in pick], [y[i] for i in pick], linestyle="none", marker=marker, markersize=6,
                markerfacecolor="white", markeredgecolor=color, zorder=z + 1)
    return bool(pick)


def title(section) -> str:
    """A plot's title: the section's, and a second line where it has no dense reference."""
    return section.title.replace("`", "") + ("" if section.dense is not None else "\n(no dense run under this profile)")


def heading(fig: Figure, text: str) -> None:
    """``text`` over the whole figure, wrapped to its width (over the axes alone, beside a legend, a
    long title runs off the figure's left edge)."""
    fig.suptitle("\n".join(textwrap.fill(line, 90) for line in text.split("\n")), fontsize="medium")


def fence(means: pd.Series, higher_is_better: bool) -> float:
    """Tukey's fence on the bad side: 1.5 interquartile ranges below the first quartile (above the
    third where lower is better)."""
    q1, q3 = means.quantile([0.25, 0.75])
    return q1 - 1.5 * (q3 - q1) if higher_is_better else q3 + 1.5 * (q3 - q1)


def section_plot(section, path: Path) -> Path | None:
    """Draw ``section`` (a :class:`sparsebench.report.tables.Section`) into the PNG file ``path``: the
    metric against density, or, at a single sparsity, a dot per method; nothing without a pruned cell."""
    if section.rows.empty:
        return None
    if section.rows["sparsity"].nunique() == 1:
        return dot_plot(section, path)
    fig = Figure(figsize=(7.2, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    style = styles(section.methods)
    densities: set[float] = set()
    higher = section.higher_is_better
    dense = [] if section.dense is None else [section.dense["mean"]]
    edge = fence(pd.concat([section.rows["mean"], pd.Series(dense, dtype=float)]), higher)
    off_scale = few = False
    for method in section.methods:
        rows = section.rows[section.rows["method"] == method].sort_values("sparsity")
        x = (1.0 - rows["sparsity"]).to_numpy()
        densities.update(x.tolist())
        marker, color, width, z = style[method]
        off = (rows["mean"] < edge if higher else rows["mean"] > edge).to_numpy()
        y = rows["mean"].clip(lower=edge) if higher else rows["mean"].clip(upper=edge)
        ax.errorbar(x, y, yerr=rows["std"].fillna(0.0).where(~off, 0.0), marker=marker, color=color, capsize=3,
                    markersize=5, linewidth=width, label=method, markevery=list(~off), zorder=z)
        if off.any():
            off_scale = True
            ax.plot(x[off], y[off], linestyle="none", marker="v" if higher else "^", color=color, markersize=8)
        few |= hollow(ax, x, y.to_numpy(), (rows["n"] < MIN_SEEDS).to_numpy() & ~off, marker, color, z)
    if few:
        ax.plot([], [], linestyle="none", marker="o", markerfacecolor="white", color="0.4", label="hollow: n < 3, not ranked")
    if off_scale:  # a legend entry for the triangles
        ax.plot([], [], linestyle="none", marker="v" if higher else "^", color="0.4", markersize=8,
                label=f"{'below' if higher else 'above'} {edge:.3g}: off the scale (axis cut)")
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
    heading(fig, title(section))
    ax.grid(True, which="major", alpha=0.3)
    legend_beside(fig, ax)
    return save(fig, path)


def dot_plot(section, path: Path) -> Path:
    """One sparsity: a dot (± std) per method, best on top, the dense reference as a line and band."""
    rows = section.rows.set_index("method").loc[section.methods[::-1]]
    fig = Figure(figsize=(7.2, 0.9 + 0.32 * len(rows)), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    style = styles(section.methods)
    for y, (method, r) in enumerate(rows.iterrows()):
        marker, color, _, z = style[method]
        ax.errorbar(r["mean"], y, xerr=0.0 if pd.isna(r["std"]) else r["std"], marker=marker, color=color,
                    capsize=3, linestyle="none", zorder=z)
        hollow(ax, [r["mean"]], [y], [r["n"] < MIN_SEEDS], marker, color, z)
    if section.dense is not None:
        mean, std = section.dense["mean"], section.dense["std"]
        if std == std:
            ax.axvspan(mean - std, mean + std, color="0.6", alpha=0.25, linewidth=0)
        ax.axvline(mean, color="0.35", linestyle="--", linewidth=1.2, label=f"dense {mean_std(mean, std)}")
        ax.legend(fontsize="small", loc="lower right" if section.higher_is_better else "lower left", frameon=False)
    ax.set_yticks(range(len(rows)), rows.index)
    ax.set_xlabel(f"test {section.metric} ({section.direction}) at {_percent(rows['sparsity'].iloc[0])} sparsity")
    heading(fig, title(section))
    ax.grid(True, axis="x", alpha=0.3)
    return save(fig, path)


def speedup_plot(section, path: Path) -> Path:
    """The metric against the measured speedup at the evaluation batch (log scale), one marker per
    method and sparsity, labelled with the sparsity; the dense model at 1× as a band."""
    fig = Figure(figsize=(7.2, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _scatter(ax, section, "speedup")
    ax.axvline(1.0, color="0.6", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("measured speedup over the dense form (evaluation batch, one thread; log scale)")
    ax.set_ylabel(f"test {section.metric} ({section.direction})")
    heading(fig, title(section))
    ax.grid(True, which="both", alpha=0.3)
    legend_beside(fig, ax)
    return save(fig, path)


def _scatter(ax, section, x: str) -> None:
    """The section's cells as points of ``x`` against the metric with ± std error bars, the best
    methods' points labelled by sparsity (grey ones unlabelled, so that labels do not pile up); the
    dense line, which the axis includes; the methods without ``x`` named under the axes."""
    style = styles(section.methods)
    missing = []
    for method in section.methods:
        rows = section.rows[(section.rows["method"] == method) & section.rows[x].notna()]
        marker, color, _, z = style[method]
        if rows.empty:
            missing.append(method)
            continue
        ax.errorbar(rows[x], rows["mean"], yerr=rows["std"].fillna(0.0), marker=marker, color=color, label=method,
                    zorder=z, linestyle="none", capsize=2, markersize=5)
        for _, r in rows.iterrows() if color != GREY else ():
            ax.annotate(_percent(r["sparsity"]), (r[x], r["mean"]), fontsize="x-small",
                        xytext=(4, 3), textcoords="offset points", color=color)
    if missing:  # the same methods as the section's plot: those without a value are named
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        ax.plot([], [], linestyle="none", label=f"not measured: {shown}")
    if section.dense is not None:
        ax.axhline(section.dense["mean"], color="0.35", linestyle="--", linewidth=1.2,
                   label=f"dense {mean_std(section.dense['mean'], section.dense['std'])}")


def pareto_plot(section, path: Path) -> Path:
    """The metric against training FLOPs relative to one dense training (log scale), every method and
    sparsity a point, and the Pareto front: the cells no other cell beats at lower or equal cost."""
    fig = Figure(figsize=(7.2, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _scatter(ax, section, "train_cost_rel")
    front = pareto_front(section.rows, section.higher_is_better)
    if len(front) > 1:
        ax.step(front["train_cost_rel"], front["mean"], where="post", color="0.2", linewidth=1, zorder=1,
                label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs relative to one dense training (log scale)")
    ax.set_ylabel(f"test {section.metric} ({section.direction})")
    heading(fig, section.title.replace("`", "") + " — cost")
    ax.grid(True, which="both", alpha=0.3)
    legend_beside(fig, ax)
    return save(fig, path)


def pareto_front(rows: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """The rows not beaten by a cheaper (or equally cheap) row, by training cost ascending."""
    ranked = rows[rows["train_cost_rel"].notna()].sort_values(["train_cost_rel", "mean"],
                                                               ascending=[True, not higher_is_better])
    best, keep = None, []
    for i, r in ranked.iterrows():
        if best is None or (r["mean"] > best if higher_is_better else r["mean"] < best):
            best = r["mean"]
            keep.append(i)
    return ranked.loc[keep]


def layers_plot(section, layers: dict[str, dict], path: Path) -> Path:
    """Per-layer density (bars) and effective density (dots) of one run per method — ``layers`` maps
    a method to its run's ``layers.json`` — at the section's highest sparsity, layers as the file lists them."""
    methods = [m for m in section.methods if m in layers][:len(COLORS)]
    names = list(next(iter(layers.values())))
    fig = Figure(figsize=(7.2, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(methods))
    style = styles(section.methods)
    for k, method in enumerate(methods):
        x = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(names))]
        density = [layers[method].get(n, {}).get("density", float("nan")) for n in names]
        effective = [layers[method].get(n, {}).get("effective_density", float("nan")) for n in names]
        ax.bar(x, density, width, color=style[method][1], label=method)
        ax.plot(x, effective, linestyle="none", marker="_", color="0.1", markersize=max(3, 30 * width))
    ax.plot([], [], linestyle="none", marker="_", color="0.1", label="effective density")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), [n.removesuffix(".weight") for n in names], rotation=60, ha="right",
                  fontsize="x-small")
    ax.set_ylabel("density of the layer's weights (log scale)")
    sparsity = section.rows["sparsity"].max()
    heading(fig, f"{section.title.replace('`', '')} — layers at {_percent(sparsity)}")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    legend_beside(fig, ax)
    return save(fig, path)
