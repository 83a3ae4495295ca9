"""The leaderboard as static HTML pages (``leaderboard/index.html`` and the pages it links to): no
server, no CDN.

Built with the standard library from the sections of :mod:`sparsebench.report.tables`: first the
answer (:mod:`sparsebench.report.htmlfront`: how to read, the recommendation table) and the summary's
ranks per family; on their own pages every cell on one filterable table, and per task, profile and
dataset variant the plots, a table of the metric at each sparsity and a table of costs and sizes.
Every table sorts by a column when its header is clicked (:mod:`sparsebench.report.htmlkit`); every
number links to its runs: their own pages beside the board, and the MLflow UI where its address is
given.
"""
from __future__ import annotations

from html import escape

import pandas as pd

from sparsebench.report.htmlfront import front
from sparsebench.report.htmlkit import SCRIPT, STYLE, Links, metric_cell, run_ids, table, td, th
from sparsebench.report.summary import rank_text, title as comparison_title
from sparsebench.report.formatting import count, duration, mean_std, percent, ratio, speedups
from sparsebench.report.tables import OFF_TARGET_FACTOR, Section, system_card, track_title, tuning_table


def results_table(section: Section, links: Links) -> str:
    """One row per method: taxonomy, then the metric at each sparsity (the leaders' group in bold)."""
    first = "descending" if section.higher_is_better else "ascending"  # a metric's first click: best first
    heads = [th("method"), th("when", title="when the method prunes"),
             th("criterion", title="what the method scores weights by")]
    heads += [th(f"{section.metric} @ {percent(s)}", first, f"test {section.metric} at target sparsity "
                 f"{percent(s)}: mean ± std over seeds, 95% CI in brackets, shared rank ({section.direction})")
              for s in section.sparsities]
    cells = {(r["method"], r["sparsity"]): r for _, r in section.rows.iterrows()}
    rows = []
    for method in section.methods:
        some = next(r for (m, _), r in cells.items() if m == method)
        row = [td(method), td(str(some["when"])), td(str(some["criterion"]))]
        for s in section.sparsities:
            r = cells.get((method, s))
            row.append(metric_cell(r, links, r["rank"] == 1) if r is not None else td("—", classes="num"))
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
        ids = run_ids(r)
        href = links.runs(r)
        tip = f"MLflow run(s): {', '.join(ids)}"

        def num(value, text):
            return td(text, sort=value, href=href, title=tip, classes="num")

        cells = [td(r["method"], title=f"prunes: {r['when']}; criterion: {r['criterion']}", classes="wrap"),
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
             f"<h2>{escape(section.task)} <span class=\"tag\">profile {escape(section.profile)}"
             + (f" · {escape(section.budget)}" if section.budget else "") + "</span>"
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
                     f'title="{escape(", ".join(run_ids(d)))}"><strong>{mean_std(d["mean"], d["std"])}</strong></a>'
                     f' <span class="n"><a href="{escape(Links.page(run_ids(d)[0]))}">n={int(d["n"])}</a></span></p>')
    else:
        parts.append(f'<p class="note">Dense reference: no dense run under the profile <code>{escape(section.profile)}'
                     "</code>; Δ vs dense is not shown.</p>")
    for name, methods in (section.merged or {}).items():
        parts.append(f'<p class="note">{escape(name)}: identical results at every sparsity (the same algorithm under '
                     f"this recipe), one row; its links reach the runs of {escape(methods[0])}.</p>")
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
        rows = [f"<tr>{''.join(td(str(v), classes='wrap') for v in r)}</tr>" for r in frame.itertuples(index=False)]
        parts += ["<h3>Tuning</h3>",
                  '<p class="muted">The configuration chosen on validation among those searched, the search\'s '
                  "training FLOPs relative to one dense training, and the result beside the default track's.</p>",
                  table([th(c) for c in frame.columns], rows, "tuning")]
    parts.append("</section>")
    return "\n".join(parts)


FILTERS = [("family", "family"), ("profile", "profile"), ("variant", "data"), ("track", "track"),
           ("sparsity", "sparsity")]


def section_ranks(sections: list[Section]) -> dict[tuple, float]:
    """(task, profile, variant, track, method, sparsity) -> the cell's shared rank in its section (a
    merged row's rank for each of the methods it stands for)."""
    out = {}
    for s in sections:
        for _, r in s.rows.iterrows():
            for method in (s.merged or {}).get(r["method"], [r["method"]]):
                out[(s.task, s.profile, s.variant, s.track, method, r["sparsity"])] = r["rank"]
    return out


def decision_html(frame: pd.DataFrame, links: Links, ranks: dict[tuple, float] | None = None) -> str:
    """Every pruned cell on one table, filtered by family, profile, data, track and sparsity (selects
    over ``data-*`` attributes of the rows, no server), best first within a task and sparsity, with
    its shared rank (:func:`section_ranks`)."""
    cells = frame[frame["method"] != "dense"].copy()
    if ranks is not None:
        keys = zip(cells["task"], cells["profile"], cells["variant"], cells["track"], cells["method"], cells["sparsity"])
        cells["rank"] = [ranks.get(k, float("nan")) for k in keys]
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
            f" · {r['track']}" if r["track"] != "default" else "")
        cells_html = [td(r["task"], classes="wrap"), td(r["family"] or "—"), td(profile, classes="wrap"),
                      td(percent(r["sparsity"]), sort=r["sparsity"]),
                      td(r["method"], title=f"prunes: {r['when']}; criterion: {r['criterion']}", classes="wrap"),
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
    parts = ['<section id="summary"><h2>Summary: average rank within a family</h2>',
             "<p>Shared rank of each method among the pruning methods of a task at one target sparsity (1 = the "
             "leaders' group; methods within noise share a rank), averaged over the tasks of a comparison: the "
             "methods that ran on all of those tasks of one family (families are never averaged together). "
             "Profiles, dataset variants and tracks are ranked separately; a cell with fewer than 3 seeds, a "
             f"collapsed network, a result at chance or a sparsity reached more than {OFF_TARGET_FACTOR}x off its "
             "target (in density) is not ranked.</p>"]
    for key, group in ranked.groupby(["profile", "variant", "track", "family", "comparison"], sort=False):
        parts.append(f"<h3>{escape(comparison_title(*key))}</h3>")
        sparsities = sorted(group["sparsity"].unique())
        heads = [th("method")] + [th(f"rank @ {percent(s)}", title=f"average shared rank at target sparsity {percent(s)}")
                                  for s in sparsities]
        heads.append(th("mean rank", title="mean of the ranked columns"))
        cells = {(r["method"], r["sparsity"]): r for _, r in group.iterrows()}
        overall = group.groupby("method")["rank"].mean().sort_values(na_position="last")
        rows = []
        for method, mean in overall.items():
            row = [td(method)]
            for s in sparsities:
                r = cells.get((method, s))
                row.append(td("—", classes="num") if r is None else
                           td(rank_text(r), sort=r["rank"], classes="num",
                              title=f"over {int(r['tasks'])} task(s), about {r['of']:.3g} methods ranked each"))
            row.append(td("—" if pd.isna(mean) else f"{mean:.2f}", sort=mean, classes="num"))
            rows.append(f"<tr>{''.join(row)}</tr>")
        parts.append(table(heads, rows, "ranks"))
    parts.append("</section>")
    return "\n".join(parts)


def section_page(section: Section) -> str:
    """Where a section's page lies, relative to the board."""
    return f"sections/{section.slug}.html"


def shell(title: str, body: str, depth: int = 0) -> str:
    """A whole page: ``body`` with the board's style and sorting script (``board.css``, ``board.js``,
    beside ``index.html``); a page ``depth`` folders below the board resolves its links from the
    board's folder (``<base>``), as the board's own do."""
    base = f'<base href="{"../" * depth}">' if depth else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{base}<title>{escape(title)}</title>
<link rel="stylesheet" href="board.css">
</head>
<body>
<main>
{body}
</main>
<script src="board.js"></script>
</body>
</html>
"""


def pages(sections: list[Section], ranked: pd.DataFrame, ui: str | None,
          cells: pd.DataFrame | None = None) -> dict[str, str]:
    """The board's files by path: ``index.html`` (the answer first: how to read, the recommendation,
    the summary's ranks, links to the rest), ``cells.html`` (every cell on one filterable table),
    ``sections/<slug>.html`` (a task, profile and track: plots, full tables, system card) and the
    style and script they share. ``ui`` is the MLflow UI's base URL (None: cells link to the run
    pages); ``cells``, the aggregated table, feeds the table of every cell."""
    links = Links(ui)
    links_note = (f'numbers link to their runs in the MLflow UI at <a href="{escape(ui)}/">{escape(ui)}</a> '
                  "(<code>SPARSEBENCH_MLFLOW_UI</code>), each n=… to the pages of its runs beside this page." if ui else
                  "numbers link to the pages of their runs beside this page (spec, metrics, per-epoch curves, layer "
                  "densities); to link them to an MLflow UI instead, e.g. <code>make ui</code>'s, build "
                  "with <code>SPARSEBENCH_MLFLOW_UI=http://127.0.0.1:5000 make leaderboard</code>.")
    about = (f'<section id="about"><p class="note">Every number comes from an MLflow run; regenerate with '
             f"<code>make leaderboard</code>. Click a column header to sort; {links_note}</p></section>")
    assets = {"board.css": STYLE.strip() + "\n", "board.js": SCRIPT.strip() + "\n"}
    if not sections:
        return assets | {"index.html": shell("sparsebench leaderboard", '<h1>sparsebench leaderboard</h1><p class="muted">'
                                    "No completed runs yet: run <code>make bench</code>, then "
                                    "<code>make leaderboard</code>.</p>\n" + about)}
    decide = cells is not None and not cells.empty and (cells["method"] != "dense").any()
    nav = ['<a href="#read">How to read</a>', '<a href="#recommend">Recommendation</a>']
    nav += ['<a href="cells.html">Every cell</a>'] if decide else []
    nav += ['<a href="#summary">Summary</a>'] if not ranked.empty else []
    nav += [f'<a href="{escape(section_page(s))}">{escape(s.task)} · {escape(s.profile)}'
            + (f" · {escape(s.variant)}" if s.variant != "official" else "")
            + (f" · {escape(track_title(s.track))}" if s.track != "default" else "") + "</a>" for s in sections]
    jump = ('<p class="note">Jump to: <a href="#recommend">recommendation</a> · '
            + ('<a href="cells.html">every cell</a> · ' if decide else "")
            + '<a href="#summary">summary</a> · the sections (links under the recommendation) · '
            '<a href="reproduction.html">does it reproduce the papers?</a></p>')
    back = '<p class="note"><a href="index.html">← the board</a> (recommendation, summary, every section)</p>'
    out = assets | {"index.html": shell("sparsebench leaderboard", "\n".join(
        ["<h1>sparsebench leaderboard</h1>", jump, front(sections, links, "".join(nav), section_page)]
        + ([summary_html(ranked)] if not ranked.empty else []) + [about]))}
    if decide:
        out["cells.html"] = shell("sparsebench: every cell", "\n".join(
            ["<h1>sparsebench leaderboard: every cell</h1>", back, decision_html(cells, links, section_ranks(sections)),
             about]))
    for s in sections:
        out[section_page(s)] = shell(f"sparsebench: {s.title}", "\n".join(
            [f"<h1>sparsebench leaderboard: {escape(s.task)}</h1>", back, section_html(s, links), about]), depth=1)
    return out
