"""The leaderboard as Markdown (``leaderboard/README.md``): first how to read it and the
recommendation table, then the summary's ranks, then per section its plots, the metric at each
sparsity and the costs."""
from __future__ import annotations

import re

import pandas as pd

from sparsebench.report.recommend import FAMILIES, how_to_read, leader_lines, recommendations, track_name, where
from sparsebench.report.summary import rank_grid, title as comparison_title
from sparsebench.report.formatting import COLLAPSED, cell, percent
from sparsebench.report.tables import (OFF_TARGET_FACTOR, Section, cost_table, results_grid, system_card,
                                       tuning_table)


def markdown_section(section: Section) -> str:
    """Markdown of one task/profile/variant: the plot, the metric per sparsity, costs and size."""
    lines = [f"## {section.title}", "",
             f"Test {section.metric} ({section.direction}), mean ± std (n seeds; 95% CI) at each target sparsity, "
             "its shared rank (#1 in bold: the leaders' group)" + (f"; budget {section.budget}." if section.budget else ".")]
    if section.dense is not None:
        d = section.dense
        lines.append(f"Dense reference: **{cell(d['mean'], d['std'], d['n'])}**.")
    else:
        lines.append(f"Dense reference: no dense run under the profile `{section.profile}`; Δ vs dense is not shown.")
    for name, methods in (section.merged or {}).items():
        lines.append(f"{name}: identical results at every sparsity (the same algorithm under this recipe), one row.")
    lines.append(f"System: {system_card(section)}.")
    if section.plot:
        lines += ["", f"![{section.metric} against density, {section.title}]({section.plot})"]
    grid = results_grid(section)
    lines += ["", grid.to_markdown() if not grid.empty else "_no pruned runs yet_", "",
              "Cost and size: sparsity achieved (zeros counted in the final weights) and effective sparsity "
              "(zeros and weights on no input–output path), training FLOPs and optimizer steps relative to one "
              "dense training (counted by the harness), inference FLOPs per example relative to the dense model, "
              "the measured inference speedup over the dense form at batch 1 and at the evaluation batch (one "
              "thread, the fastest form: dense, compacted or with sparse CSR Linear layers; "
              "`sparsebench.core.inference`), the smallest form's stored size relative to the dense model, "
              "parameters left nonzero, a trial's wall time (mean over seeds; cached trainings load in seconds "
              "but are charged in the FLOPs); what collapsed, if anything.", "",
              cost_table(section).to_markdown(index=False), ""]
    if section.layers_plot:
        lines += [f"![per-layer densities, {section.title}]({section.layers_plot})", ""]
    if section.pareto_plot:
        lines += [f"![{section.metric} against training FLOPs, {section.title}]({section.pareto_plot})", ""]
    if section.speedup_plot:
        lines += [f"![{section.metric} against measured speedup, {section.title}]({section.speedup_plot})", ""]
    if section.track == "tuned":
        lines += ["Tuning: the configuration chosen on validation among those searched (the paper's defaults "
                  "first, then random draws from the method's space; a method with a small space uses fewer than "
                  "the budget), the search's training FLOPs relative to one dense training, and the result "
                  "beside the default track's (gain in the metric's direction). The two tracks' runs may come from "
                  "different machines, whose CPU kernels round differently: the same configuration and seed can "
                  "differ by a few tenths of a point, so gains of that size are noise.", "",
                  tuning_table(section).to_markdown(index=False), ""]
    return "\n".join(lines)


def markdown_summary(ranked: pd.DataFrame) -> str:
    lines = ["## Summary: average rank within a family", "",
             "Shared rank of each method among the pruning methods of a task at one sparsity (1 = the leaders' "
             "group; methods within noise share a rank), averaged over the tasks of a comparison: the methods that "
             "ran on all of those tasks of one family (families are never averaged together). Profiles, dataset "
             "variants and tracks are ranked separately; a cell with fewer than 3 seeds, a collapsed network, a "
             f"result at chance or a sparsity reached more than {OFF_TARGET_FACTOR}x off its target (in density) is "
             "not ranked.", ""]
    for key, group in ranked.groupby(["profile", "variant", "track", "family", "comparison"], sort=False):
        lines += [f"### {comparison_title(*key)}", "", rank_grid(group).to_markdown(), ""]
    return "\n".join(lines)


def markdown_front(sections: list[Section]) -> str:
    """How to read, then the recommendation table (one line per leader of a group)."""
    lines = ["## How to read", ""] + [f"- **{term}**: {text}" for term, text in how_to_read(sections)] + [""]
    lines += ["## Recommendation: the leading group per family, track and sparsity", "",
              "| family | track | sparsity | from (task · profile) | leading group | metric | Δ vs dense | train cost "
              "| speedup | n |", "|---|---|---|---|---|---|---|---|---|---|"]
    for entry in recommendations(sections):
        for i, line in enumerate(leader_lines(entry)):
            first = i == 0
            lines.append("| " + " | ".join([
                FAMILIES.get(entry["family"], entry["family"]) if first else "", track_name(entry["track"]) if first else "",
                percent(entry["sparsity"]) if first else "", where(entry) if first else "",
                line["method"] + ("" if entry["ranked"] else " ○ not ranked"), line["metric"], line["delta"],
                line["cost"], line["speedup"], str(line["n"])]) + " |")
    below = ", ".join(f"[{s.title.replace('`', '')}](#{anchor(s.title)})" for s in sections)
    return "\n".join(lines + ["", "Below: [the summary's ranks](#summary-average-rank-within-a-family), then each "
                               f"section (plots, full tables, system card): {below}.", ""])


def anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


HEADER = ["# sparsebench leaderboard", "",
          "Generated by `make leaderboard` from the MLflow runs; every number comes from a run. "
          f"`{COLLAPSED} k/n` marks a cell where k of n seeds lost a whole layer or an output (such cells are not "
          "ranked). Built from the MLflow runs (for the committed board: the runs bundle in `runs/`, imported "
          "first). Also as HTML pages (sortable tables, a page per task and per run): `index.html`. Does sparsebench reproduce the "
          "papers? Each published figure a CPU can re-run beside ours: [`reproduction.md`](reproduction.md).", ""]
