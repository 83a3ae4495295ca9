"""The HTML board's building blocks: its style and sorting script, table cells and headers, and the
links of a cell (to its runs' own pages beside the board, and to the MLflow UI where one is given)."""
from __future__ import annotations

from html import escape
from urllib.parse import quote

import pandas as pd

from sparsebench.report.formatting import (AT_CHANCE, COLLAPSED, OFF_TARGET, STALE, UNRANKED, confidence,
                                           mean_std)

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1d232a;
       margin: 0; background: #f6f7f9; }
main { max-width: 1320px; margin: 0 auto; padding: .8rem 1.2rem 3rem; }
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
td.lead { font-weight: 700; }
.rank { color: #3d4650; font-size: .75em; margin-left: .2em; }
.unranked { color: #a15c00; font-size: .75em; white-space: nowrap; }
.stale { color: #7a4d00; font-size: .75em; }
.ci { color: #68717d; font-size: .75em; }
dl.read { display: grid; grid-template-columns: max-content 1fr; gap: .1rem .8rem; margin: .3rem 0 .6rem;
          font-size: .86rem; line-height: 1.3; }
dl.read dt { font-weight: 600; } dl.read dd { margin: 0; }
table.recommend { width: 100%; table-layout: auto; font-size: .88rem; }
table.recommend td, table.recommend th { white-space: normal; padding: .2rem .4rem; vertical-align: top; }
table.recommend td.num, table.recommend td.nw { white-space: nowrap; }
table.recommend tr.family td { border-top: 2px solid #c5ccd5; }
.note { color: #68717d; font-size: .85em; }
thead th { white-space: normal; min-width: 3.5em; }
td.wrap { white-space: normal; min-width: 7em; }
.sub { display: block; line-height: 1.15; white-space: normal; min-width: 8em; }
#decide .sub { min-width: 12em; }
.filters select { max-width: 16em; }
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
    """A cell's links: its runs' pages (``run/<run id>.html``, written beside the page by
    :mod:`sparsebench.report.runpages`, so that every board carries what it links to) and, with
    ``base``, the MLflow UI (its hash routes)."""

    def __init__(self, base: str | None):
        self.base = base

    def experiment(self, experiment_id) -> str | None:
        """The experiment's runs table in MLflow 3's model-training view (a bare experiment link opens
        its GenAI overview instead: traces, no metrics)."""
        return f"{self.base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning" if self.base else None

    @staticmethod
    def page(run_id: str) -> str:
        """The page of one run, relative to the board."""
        return f"run/{quote(run_id)}.html"

    def runs(self, row: pd.Series) -> str:
        """The cell's runs: without an MLflow UI the page of its first seed's run (which links to the
        others); with one, the experiment's trial runs filtered to the cell: kind, method (its version),
        profile, variant, track and sparsity, by tags, which every store holds, where run ids differ
        between stores that imported the same bundle."""
        if not self.base:
            return self.page(str(row["run_ids"]).split()[0])
        return f"{self.experiment(row['experiment_id'])}&searchFilter={quote(search_filter(row), safe='')}"


def search_filter(row: pd.Series) -> str:
    """An MLflow search filter that finds exactly a cell's runs (its seeds). Runs from before the
    track tag have none: the default track is then "no track tag" (and no tuning study). Outside the
    tuned track a cell's runs share their hyperparameter overrides (none, or ``--set``'s)."""
    method = row.get("method_name", row["method"])
    tags = {"sb.kind": "trial", "sb.status": "completed", "sb.method": method, "sb.profile": row["profile"],
            "sb.sparsity": str(float(row["sparsity"]))}
    if str(row.get("method_version") or ""):
        tags["sb.method_version"] = str(row["method_version"])
    if str(row.get("variant", "official")) != "official":
        tags["sb.dataset_variant"] = row["variant"]
    where = [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
    track = row.get("track", "default")
    if track != "default" or bool(row.get("track_tagged", False)):
        where.append(f"tags.`sb.track` = '{track}'")
    else:
        where += ["tags.`sb.track` IS NULL", "tags.`sb.study` IS NULL"]
    if track != "tuned" and isinstance(row.get("hparams"), str):
        where.append(f"tags.`sb.spec` LIKE '%\"hparams\": {row['hparams']}%'")
    return " and ".join(where)


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



def run_ids(row: pd.Series) -> list[str]:
    return str(row["run_ids"]).split()


def badges(row: pd.Series, links: Links) -> str:
    """The marks after a cell's value (raw HTML): its shared rank, n (a link to the first seed's run
    page), not ranked, collapsed, at chance, off target, stale."""
    n = int(row["n"])
    ids = run_ids(row)
    seeds = f'<a href="{escape(Links.page(ids[0]))}" title="the runs of this cell, one page each">n={n}</a>'
    out = f' <span class="n{" single" if n < 3 else ""}">{seeds}</span>'
    rank = row.get("rank", float("nan"))
    if not pd.isna(rank):
        out += f' <span class="rank" title="shared rank: within noise of the methods with the same rank">#{rank:.0f}</span>'
    elif n < 3 and "rank" in row:
        out += f' <span class="unranked" title="fewer than 3 seeds: shown, not ranked">{escape(UNRANKED)}</span>'
    collapsed = int(row.get("collapsed", 0) or 0)
    if collapsed:
        out += (f' <span class="collapsed" title="{escape(str(row["collapse"]))}">{COLLAPSED} {collapsed}/{n}'
                "</span>")
    if bool(row.get("at_chance", False)):
        out += (f' <span class="collapsed" title="no better than chance: {row["chance"]:.4g} (the majority class or '
                f'the unigram model)">{AT_CHANCE}</span>')
    if bool(row.get("off_target", False)):
        out += (f' <span class="collapsed" title="sparsity reached {row["sparsity_achieved"]:.2%}, far from the '
                f'target: shown, not ranked">{escape(OFF_TARGET)}</span>')
    if bool(row.get("stale", False)):
        out += f' <span class="stale" title="the code changed since these runs">{escape(STALE)}</span>'
    return out


def metric_cell(row: pd.Series, links: Links, lead: bool = False) -> str:
    """A result cell: ``mean ± std`` (a link to the runs), its 95 % interval printed, and :func:`badges`."""
    n = int(row["n"])
    interval = confidence(row["mean"], row["std"], n)
    ci = f' <span class="ci">[{interval[0]:.2f}, {interval[1]:.2f}]</span>' if interval else ""
    collapsed = int(row.get("collapsed", 0) or 0)
    return td(mean_std(row["mean"], row["std"]), sort=row["mean"], href=links.runs(row),
              title=f"{n} seed(s); 95% CI in brackets; run(s): {', '.join(run_ids(row))}",
              classes=("num lead" if lead and not collapsed else "num") + (" collapse" if collapsed else ""),
              extra=f'<span class="sub">{ci}{badges(row, links)}</span>')
