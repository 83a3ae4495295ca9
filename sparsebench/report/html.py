"""The leaderboard as one static HTML page (``leaderboard/index.html``): no server, no CDN.

Built with the standard library from the sections of :mod:`sparsebench.report.tables`: per task,
profile and dataset variant, the plot, a table of the metric at each sparsity and a table of
costs and sizes; before them, the average rank of each method across tasks. Every table sorts
by a column when its header is clicked (a few lines of inline JavaScript; a cell's sort key is
its ``data-sort`` number, so "mean ± std" columns sort by the mean). Every number links to its
runs: in the MLflow UI where its address is given, else in the runs bundle beside the page.
"""
from __future__ import annotations

import json
from html import escape
from urllib.parse import quote

import pandas as pd

from sparsebench.report.tables import (AT_CHANCE, COLLAPSED, Section, confidence, count, duration, mean_std, percent,
                                       ratio, speedups, system_card, track_title, tuning_table)

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1d232a;
       margin: 0; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 1.2rem 1.5rem 3rem; }
h1 { font-size: 1.7rem; margin: .4rem 0 .2rem; }
h2 { font-size: 1.3rem; margin: 0 0 .3rem; }
h3 { font-size: 1.05rem; margin: 1.1rem 0 .4rem; }
p { margin: .3rem 0 .6rem; }
a { color: #1a5fb4; }
code { background: #eceff3; padding: 0 .25em; border-radius: 3px; }
nav { margin: .8rem 0 1.2rem; }
nav a { display: inline-block; margin: 0 .3rem .3rem 0; padding: .15rem .55rem; background: #fff;
        border: 1px solid #d5dae1; border-radius: 999px; text-decoration: none; font-size: .9rem; }
section { background: #fff; border: 1px solid #dde2e8; border-radius: 8px; padding: 1rem 1.2rem;
          margin: 0 0 1.4rem; }
.muted, .n { color: #68717d; }
.n { font-size: .8em; margin-left: .1em; }
.n.single { color: #a15c00; font-weight: 600; }
figure { margin: .6rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eef0f3; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: .3rem 0 .8rem; }
th, td { padding: .3rem .55rem; border-bottom: 1px solid #e6e9ed; white-space: nowrap; }
td.num { text-align: right; }
thead th { background: #eef1f5; text-align: left; vertical-align: bottom; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef5ff; }
td a { color: inherit; text-decoration: none; border-bottom: 1px dotted #9aa3ad; }
td a:hover { color: #1a5fb4; }
td.best { font-weight: 600; }
.collapsed { color: #b3261e; font-size: .8em; white-space: nowrap; }
td.collapse { background: #fdf1f0; }
tr.dense td { font-style: italic; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer;
            color: inherit; text-align: left; }
th button::after { content: " \\2195"; color: #a4acb6; font-weight: 400; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; color: #1a5fb4; }
th[aria-sort="descending"] button::after { content: " \\25BC"; color: #1a5fb4; }
.filters label { margin-right: .8rem; font-size: .9rem; }
.filters select { font: inherit; }
.tag { display: inline-block; font-size: .78rem; padding: 0 .4em; border-radius: 4px; background: #eef1f5;
       color: #3d4650; }
"""

SCRIPT = """
(function () {
  function key(row, col) {
    var cell = row.cells[col];
    if (!cell) return null;
    var v = cell.getAttribute('data-sort');
    if (v === null) v = cell.textContent.trim();
    if (v === '' || v === '\\u2014') return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function compare(a, b) {
    if (a === null) return b === null ? 0 : 1;
    if (b === null) return -1;
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    return String(a).localeCompare(String(b));
  }
  document.querySelectorAll('p.filters').forEach(function (bar) {
    var table = bar.parentNode.querySelector('table');
    var selects = bar.querySelectorAll('select');
    function apply() {
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var shown = Array.prototype.every.call(selects, function (s) {
          return s.value === '' || row.getAttribute('data-' + s.getAttribute('data-filter')) === s.value;
        });
        row.hidden = !shown;
      });
    }
    Array.prototype.forEach.call(selects, function (s) { s.addEventListener('change', apply); });
  });
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      var button = th.querySelector('button');
      if (!button) return;
      button.addEventListener('click', function () {
        var first = th.getAttribute('data-first') || 'ascending';
        var now = th.getAttribute('aria-sort');
        var dir = now === first ? (first === 'ascending' ? 'descending' : 'ascending') : first;
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', dir);
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var ka = key(a, col), kb = key(b, col);
          if (ka === null || kb === null) return compare(ka, kb);  /* missing values last */
          return dir === 'ascending' ? compare(ka, kb) : compare(kb, ka);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""


class Links:
    """Links into the MLflow UI at ``base`` (its hash routes), or, without one, into the runs bundle
    beside the page (``runs/<task>.jsonl``, whose lines hold the run ids a cell's tooltip names)."""

    def __init__(self, base: str | None):
        self.base = base

    def experiment(self, experiment_id) -> str | None:
        """The experiment's runs table (MLflow 3 opens a bare experiment link on its overview instead)."""
        return f"{self.base}/#/experiments/{experiment_id}/runs" if self.base else None

    def runs(self, row: pd.Series) -> str:
        """The experiment's runs filtered to one cell (method, profile, sparsity; every seed): by tags,
        which every store holds, where run ids differ between stores that imported the same bundle."""
        if not self.base:
            return f"runs/{quote(row['task'])}.jsonl"
        tags = {"sb.method": row["method"], "sb.profile": row["profile"], "sb.sparsity": str(float(row["sparsity"])),
                "sb.status": "completed", **({"sb.track": row["track"]} if row["track"] != "default" else {})}
        where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        return f"{self.experiment(row['experiment_id'])}?searchFilter={quote(where, safe='')}"


def td(text: str, sort=None, href: str | None = None, title: str | None = None, classes: str = "",
       extra: str = "") -> str:
    """A table cell: ``text`` (escaped), its numeric sort key, a link and a tooltip; ``extra`` is raw HTML."""
    attrs = f' class="{classes}"' if classes else ""
    if sort is not None and not pd.isna(sort):
        attrs += f' data-sort="{float(sort)!r}"'
    if title:
        attrs += f' title="{escape(title)}"'
    inner = escape(text)
    if href:
        inner = f'<a href="{escape(href)}">{inner}</a>'
    return f"<td{attrs}>{inner}{extra}</td>"


def th(label: str, first: str = "ascending", title: str | None = None) -> str:
    tip = f' title="{escape(title)}"' if title else ""
    return f'<th scope="col" data-first="{first}"{tip}><button type="button">{escape(label)}</button></th>'


def table(heads: list[str], rows: list[str], css: str) -> str:
    return (f'<div class="scroll"><table class="sortable {css}"><thead><tr>{"".join(heads)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _runs(row: pd.Series) -> list[str]:
    return str(row["run_ids"]).split()


def metric_cell(row: pd.Series, links: Links, best: bool = False) -> str:
    ids = _runs(row)
    collapsed = int(row.get("collapsed", 0) or 0)
    mark = (f' <span class="collapsed" title="{escape(row["collapse"])}">{COLLAPSED} {collapsed}/{int(row["n"])}'
            "</span>") if collapsed else ""
    if bool(row.get("at_chance", False)):
        mark += (f' <span class="collapsed" title="no better than chance: {row["chance"]:.4g} (the majority class or '
                 f'the unigram model)">{AT_CHANCE}</span>')
    n = int(row["n"])
    interval = confidence(row["mean"], row["std"], n)
    ci = f"; 95% CI {interval[0]:.2f}–{interval[1]:.2f}" if interval else "; one seed: no spread known" if n == 1 else ""
    return td(mean_std(row["mean"], row["std"]), sort=row["mean"], href=links.runs(row),
              title=f"{n} seed(s){ci}; run(s): {', '.join(ids)}",
              classes=("num best" if best and not collapsed else "num") + (" collapse" if collapsed else ""),
              extra=f' <span class="n{" single" if n == 1 else ""}">n={n}</span>{mark}')


def results_table(section: Section, links: Links) -> str:
    """One row per method: taxonomy, then the metric at each sparsity (best per column in bold)."""
    first = "descending" if section.higher_is_better else "ascending"  # a metric's first click: best first
    heads = [th("method"), th("when", title="when the method prunes"),
             th("criterion", title="what the method scores weights by")]
    heads += [th(f"{section.metric} @ {percent(s)}", first, f"test {section.metric} at target sparsity "
                 f"{percent(s)}: mean ± std over seeds ({section.direction})") for s in section.sparsities]
    cells = {(r["method"], r["sparsity"]): r for _, r in section.rows.iterrows()}
    best = {}
    for s in section.sparsities:
        means = section.rows.loc[(section.rows["sparsity"] == s) & (section.rows["collapsed"] == 0), "mean"]
        best[s] = means.max() if section.higher_is_better else means.min()
    rows = []
    for method in section.methods:
        some = next(r for (m, _), r in cells.items() if m == method)
        row = [td(method), td(str(some["when"])), td(str(some["criterion"]))]
        for s in section.sparsities:
            r = cells.get((method, s))
            row.append(metric_cell(r, links, bool(r["mean"] == best[s])) if r is not None else td("—", classes="num"))
        rows.append(f"<tr>{''.join(row)}</tr>")
    return table(heads, rows, "results")


def cost_table(section: Section, links: Links) -> str:
    """One row per method and sparsity (dense first): metric, achieved sparsity, costs, parameters.
    (The taxonomy is in :func:`results_table`; here it is the method's tooltip, to keep the table narrow.)"""
    first = "descending" if section.higher_is_better else "ascending"
    heads = [th("method"), th("sparsity", title="the target sparsity"),
             th("achieved", title="sparsity counted in the final weights (mean over seeds)"),
             th("effective", title="effective sparsity: zeros and weights on no input–output path (mean over seeds)"),
             th(section.metric, first, f"test {section.metric}, mean ± std over seeds ({section.direction})"),
             th("training FLOPs", title="training FLOPs relative to one dense training"),
             th("training steps", title="optimizer steps relative to one dense training"),
             th("inference FLOPs", title="inference FLOPs per example relative to the dense model"),
             th("measured speedup", title="measured inference speedup over the dense form, batch 1 / evaluation "
                "batch (one thread; the fastest form: dense or CSR Linear layers)"),
             th("stored size", title="bytes of the smallest form's weights relative to the dense model's"),
             th("params nonzero / total", title="parameters of the whole model left nonzero (mean over seeds)"),
             th("wall time", title="a trial's wall time, mean over seeds (trainings reused from the checkpoint store "
                "take seconds; their FLOPs are charged all the same)")]
    order = {m: i for i, m in enumerate(section.methods)}
    rest = section.rows.assign(order=section.rows["method"].map(order)).sort_values(["order", "sparsity"])
    rows = ([section.dense] if section.dense is not None else []) + [r for _, r in rest.iterrows()]
    out = []
    for r in rows:
        ids = _runs(r)
        href = links.runs(r)
        tip = f"MLflow run(s): {', '.join(ids)}"

        def num(value, text):
            return td(text, sort=value, href=href, title=tip, classes="num")

        cells = [td(r["method"], title=f"prunes: {r['when']}; criterion: {r['criterion']}"),
                 td(percent(r["sparsity"]), sort=r["sparsity"], classes="num"),
                 num(r["sparsity_achieved"], "—" if pd.isna(r["sparsity_achieved"]) else f"{r['sparsity_achieved']:.2%}"),
                 num(r["effective_sparsity"],
                     "—" if pd.isna(r["effective_sparsity"]) else f"{r['effective_sparsity']:.2%}"),
                 metric_cell(r, links),
                 num(r["train_cost_rel"], ratio(r["train_cost_rel"])),
                 num(r["train_steps_rel"], ratio(r["train_steps_rel"], 1)),
                 num(r["inference_flops_rel"], ratio(r["inference_flops_rel"], 3)),
                 num(r["speedup"], speedups(r)),
                 num(r["bytes_rel"], ratio(r["bytes_rel"], 3)),
                 td(f"{count(r['params_nonzero'])} / {count(r['params_total'])}", sort=r["params_nonzero"],
                    href=href, classes="num",
                    title=f"{r['params_nonzero']:,.0f} nonzero of {r['params_total']:,.0f} parameters"
                    if not pd.isna(r["params_total"]) else tip),
                 num(r["wall_s"], duration(r["wall_s"]))]
        css = ' class="dense"' if r["method"] == "dense" else ""
        out.append(f"<tr{css}>{''.join(cells)}</tr>")
    return table(heads, out, "costs")


def section_html(section: Section, links: Links) -> str:
    experiment = section.rows["experiment_id"].iloc[0] if not section.rows.empty else (
        section.dense["experiment_id"] if section.dense is not None else None)
    parts = [f'<section id="{escape(section.slug)}">',
             f"<h2>{escape(section.task)} <span class=\"tag\">profile {escape(section.profile)}</span>"
             + (f' <span class="tag">data: {escape(section.variant)}</span>' if section.variant != "official" else "")
             + (f' <span class="tag">{escape(track_title(section.track))}</span>' if section.track != "default" else "")
             + "</h2>",
             f"<p>Test {escape(section.metric)} ({section.direction}): mean ± std over seeds, n seeds. "
             + (f'<a href="{escape(links.experiment(experiment))}">MLflow experiment</a>'
                if experiment and links.base else "")
             + "</p>"]
    if section.dense is not None:
        d = section.dense
        parts.append(f'<p>Dense reference: <a href="{escape(links.runs(d))}" '
                     f'title="{escape(", ".join(_runs(d)))}"><strong>{mean_std(d["mean"], d["std"])}</strong></a>'
                     f' <span class="n">n={int(d["n"])}</span></p>')
    parts.append(f'<p class="muted system">System: {escape(system_card(section))}.</p>')
    if section.plot:
        parts.append(f'<figure><img src="{escape(section.plot)}" alt="{escape(section.metric)} against density, '
                     f'{escape(section.title)}"></figure>')
    if section.methods:
        parts += ["<h3>Metric at each target sparsity</h3>", results_table(section, links)]
    else:
        parts.append('<p class="muted">No pruned runs yet.</p>')
    parts += ["<h3>Cost and size</h3>",
              '<p class="muted">Training FLOPs and optimizer steps relative to one dense training, inference FLOPs per example '
              "relative to the dense model (both counted by the harness), measured inference speedup over the dense "
              "form at batch 1 / the evaluation batch (one thread, the fastest form), the smallest form's stored size, "
              "parameters left nonzero.</p>",
              cost_table(section, links)]
    for plot, against in ((section.layers_plot, "layer (densities)"), (section.pareto_plot, "training FLOPs"),
                          (section.speedup_plot, "measured speedup")):
        if plot:
            parts.append(f'<figure><img src="{escape(plot)}" alt="{escape(section.metric)} against {against}, '
                         f'{escape(section.title)}"></figure>')
    if section.track == "tuned":
        frame = tuning_table(section)
        rows = [f"<tr>{''.join(td(str(v)) for v in r)}</tr>" for r in frame.itertuples(index=False)]
        parts += ["<h3>Tuning</h3>",
                  '<p class="muted">The configuration chosen on validation among those searched, the search\'s '
                  "training FLOPs relative to one dense training, and the result beside the default track's.</p>",
                  table([th(c) for c in frame.columns], rows, "tuning")]
    parts.append("</section>")
    return "\n".join(parts)


FILTERS = [("family", "family"), ("profile", "profile"), ("variant", "data"), ("track", "track"),
           ("sparsity", "sparsity")]


def decision_html(frame: pd.DataFrame, links: Links) -> str:
    """Every pruned cell on one table, filtered by family, profile, data, track and sparsity (selects
    over ``data-*`` attributes of the rows, no server), best first within a task and sparsity."""
    cells = frame[frame["method"] != "dense"].copy()
    dense = frame[(frame["method"] == "dense") & (frame["track"] == "default")].set_index(
        ["task", "profile", "variant"])["mean"]
    cells["dense"] = [dense.get((t, p, v)) for t, p, v in zip(cells["task"], cells["profile"], cells["variant"])]
    cells["best_first"] = cells["mean"].where(cells["higher_is_better"], -cells["mean"])
    cells = cells.sort_values(["family", "task", "profile", "variant", "track", "sparsity", "best_first"],
                              ascending=[True] * 6 + [False])
    values = {key: sorted(set(cells[key].map(percent) if key == "sparsity" else cells[key].fillna("")))
              for key, _ in FILTERS}
    selects = "".join(
        f'<label>{escape(label)} <select data-filter="{key}"><option value="">all</option>'
        + "".join(f'<option value="{escape(v)}">{escape(track_title(v) or v if key == "track" else v)}</option>'
                  for v in values[key]) + "</select></label>" for key, label in FILTERS)
    heads = [th("task"), th("family"), th("profile"), th("sparsity"), th("method"), th("metric", first="descending"),
             th("Δ vs dense", first="descending", title="the cell's mean minus the dense model's, in the metric's unit"),
             th("effective sparsity", title="zeros and weights on no input–output path"),
             th("train FLOPs", title="relative to one dense training"),
             th("measured speedup", first="descending", title="batch 1 / evaluation batch, one thread")]
    rows = []
    for _, r in cells.iterrows():
        attrs = "".join(f' data-{key}="{escape(percent(r[key]) if key == "sparsity" else str(r[key] or ""))}"'
                        for key, _ in FILTERS)
        delta = r["mean"] - r["dense"] if r["dense"] is not None and not pd.isna(r["dense"]) else float("nan")
        quality = delta if r["higher_is_better"] else -delta
        profile = r["profile"] + (f" · {r['variant']}" if r["variant"] != "official" else "") + (
            f" · {track_title(r['track'])}" if r["track"] != "default" else "")
        cells_html = [td(r["task"]), td(r["family"] or "—"), td(profile), td(percent(r["sparsity"]), sort=r["sparsity"]),
                      td(r["method"], title=f"prunes: {r['when']}; criterion: {r['criterion']}"),
                      metric_cell(r, links),
                      td("—" if pd.isna(delta) else f"{delta:+.2f}", sort=quality, classes="num",
                         title=f"{r['metric']}: {'higher' if r['higher_is_better'] else 'lower'} is better"),
                      td("—" if pd.isna(r["effective_sparsity"]) else f"{r['effective_sparsity']:.2%}",
                         sort=r["effective_sparsity"], classes="num"),
                      td(ratio(r["train_cost_rel"]), sort=r["train_cost_rel"], classes="num"),
                      td(speedups(r), sort=r["speedup"], classes="num")]
        rows.append(f"<tr{attrs}>{''.join(cells_html)}</tr>")
    return ('<section id="decide"><h2>Decide: every method at every sparsity, with its cost</h2>'
            "<p>One row per task, profile, track, method and target sparsity, best first within a task and "
            "sparsity; the metric is the task's own (its direction in the tooltip), Δ vs dense in its unit. "
            "Choose a family, profile, data, track or sparsity to narrow it; click a header to sort.</p>"
            f'<p class="filters">{selects}</p>' + table(heads, rows, "decide") + "</section>")


def summary_html(ranked: pd.DataFrame) -> str:
    parts = ['<section id="summary"><h2>Summary: average rank across tasks</h2>',
             "<p>Rank of each method among the pruning methods of a task at one target sparsity (1 = best, the "
             "task metric's direction respected; ties share a rank), averaged over the tasks of a comparison: the "
             "methods that ran on all of those tasks, every rank in a column over the same tasks. Profiles, "
             "dataset variants and tracks are ranked separately; a collapsed network is not ranked.</p>"]
    for (profile, variant, track, comparison), group in ranked.groupby(
            ["profile", "variant", "track", "comparison"], sort=False):
        parts.append(f'<h3>profile <code>{escape(profile)}</code>'
                     + (f" — data: {escape(variant)}" if variant != "official" else "")
                     + (f" — {escape(track_title(track))}" if track != "default" else "")
                     + f" — on {escape(comparison)}</h3>")
        sparsities = sorted(group["sparsity"].unique())
        heads = [th("method")] + [th(f"rank @ {percent(s)}", title=f"average rank at target sparsity {percent(s)}")
                                  for s in sparsities]
        heads.append(th("mean rank", title="mean of the ranked columns"))
        cells = {(r["method"], r["sparsity"]): r for _, r in group.iterrows()}
        overall = group.groupby("method")["rank"].mean().sort_values(na_position="last")
        rows = []
        for method, mean in overall.items():
            row = [td(method)]
            for s in sparsities:
                r = cells.get((method, s))
                if r is None:
                    row.append(td("—", classes="num"))
                elif r["collapsed"]:
                    row.append(td(f"{COLLAPSED} ({int(r['collapsed'])} of {int(r['tasks'])})", classes="num",
                                  title="the network collapsed on some of these tasks: not ranked"))
                elif r["at_chance"]:
                    row.append(td(f"{AT_CHANCE} ({int(r['at_chance'])} of {int(r['tasks'])})", classes="num",
                                  title="no better than chance on some of these tasks: not ranked"))
                else:
                    row.append(td(f"{r['rank']:.2f}", sort=r["rank"], classes="num",
                                  title=f"over {int(r['tasks'])} task(s), about {r['of']:.3g} methods each",
                                  extra=f' <span class="n">{int(r["tasks"])} task{"s" * (r["tasks"] != 1)}</span>'))
            row.append(td("—" if pd.isna(mean) else f"{mean:.2f}", sort=mean, classes="num"))
            rows.append(f"<tr>{''.join(row)}</tr>")
        parts.append(table(heads, rows, "ranks"))
    parts.append("</section>")
    return "\n".join(parts)


def page(sections: list[Section], ranked: pd.DataFrame, ui: str | None, cells: pd.DataFrame | None = None) -> str:
    """The whole page; ``ui`` is the MLflow UI's base URL (None: cells link into the runs bundle);
    ``cells``, the aggregated table, feeds the decision view."""
    links = Links(ui)
    links_note = (f'numbers link to their runs in the MLflow UI at <a href="{escape(ui)}/">{escape(ui)}</a> '
                  "(<code>SPARSEBENCH_MLFLOW_UI</code>)." if ui else
                  'numbers link to their runs in the runs bundle (<code>runs/&lt;task&gt;.jsonl</code>, the run ids '
                  "in each cell's tooltip); to link them to an MLflow UI instead, e.g. <code>make ui</code>'s, build "
                  "with <code>SPARSEBENCH_MLFLOW_UI=http://127.0.0.1:5000 make leaderboard</code>.")
    decide = cells is not None and not cells.empty and (cells["method"] != "dense").any()
    nav = ['<a href="#decide">Decide</a>'] if decide else []
    nav += ['<a href="#summary">Summary</a>'] if not ranked.empty else []
    nav += [f'<a href="#{escape(s.slug)}">{escape(s.task)} · {escape(s.profile)}'
            + (f" · {escape(s.variant)}" if s.variant != "official" else "")
            + (f" · {escape(track_title(s.track))}" if s.track != "default" else "") + "</a>" for s in sections]
    body = ([decision_html(cells, links)] if decide else []) + ([summary_html(ranked)] if not ranked.empty else [])
    body += [section_html(s, links) for s in sections]
    if not sections:
        body = ['<p class="muted">No completed runs yet: run <code>make bench</code>, then '
                "<code>make leaderboard</code>.</p>"]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sparsebench leaderboard</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>sparsebench leaderboard</h1>
<p>Every number comes from an MLflow run; regenerate with <code>make leaderboard</code>. Sparsity is the
fraction of prunable weights that are zero, counted in the final weights; density is 1 − sparsity.
Click a column header to sort; {links_note} Profiles and dataset variants are never mixed in a table.</p>
<nav>{"".join(nav)}</nav>
{chr(10).join(body)}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
