"""The top of the HTML board, the answer first: a short "how to read" and the recommendation table
(:mod:`sparsebench.report.recommend`), narrow enough for a 1,400 px window without a horizontal
scroll (long labels wrap), then links to everything else."""
from __future__ import annotations

import re
from html import escape
from typing import Callable

from sparsebench.report.htmlkit import Links, badges
from sparsebench.report.recommend import FAMILIES, how_to_read, leader_lines, recommendations, track_name, where
from sparsebench.report.formatting import percent
from sparsebench.report.tables import Section


def inline(text: str) -> str:
    """Escape ``text`` and turn its `backticks` into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def recommendation_table(sections: list[Section], links: Links, place: Callable[[Section], str]) -> str:
    """One row per family, track and sparsity: where from, the leaders' group (each leader linked to its
    section at ``place(section)``), one line per leader."""
    heads = ["family", "track", "sparsity", "from (task · profile)", "leading group", "metric", "Δ vs dense",
             "train cost", "speedup", "n"]
    tips = {"leading group": "the best method and those within noise of it (rank 1)",
            "train cost": "training FLOPs relative to one dense training",
            "speedup": "measured inference speedup at the evaluation batch, one thread"}
    head = "".join(f'<th scope="col"{f" title={chr(34)}{escape(tips[h])}{chr(34)}" if h in tips else ""}>'
                   f"{escape(h)}</th>" for h in heads)
    rows, last = [], None
    for entry in recommendations(sections):
        section, lines = entry["section"], leader_lines(entry)

        def column(key, css="num"):
            return f'<td class="{css}">' + "<br>".join(escape(str(line[key])) for line in lines) + "</td>"
        methods = "<br>".join(
            f'<a href="{escape(place(section))}">{escape(line["method"])}</a>'
            + ("" if entry["ranked"] else ' <span class="unranked" title="no cell here has 3 seeds: the best mean, '
               'not a ranked result">○ not ranked</span>') for line in lines)
        n = "<br>".join(badges(line["row"][["n", "run_ids"]], links).strip() for line in lines)
        metric = section.metric + ("" if section.higher_is_better else " ↓")
        css = ' class="family"' if entry["family"] != last else ""
        last = entry["family"]
        rows.append(f"<tr{css}><td>{escape(FAMILIES.get(entry['family'], entry['family'] or '—'))}</td>"
                    f"<td class=\"nw\">{escape(track_name(entry['track']))}</td><td class=\"num\">{percent(entry['sparsity'])}</td>"
                    f"<td>{escape(where(entry))}</td><td>{methods}</td>"
                    f'<td class="num" title="{escape(metric)}">' + "<br>".join(escape(x["metric"]) for x in lines)
                    + f"</td>{column('delta')}{column('cost')}{column('speedup')}<td class=\"num\">{n}</td></tr>")
    return (f'<table class="recommend"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def front(sections: list[Section], links: Links, nav: str, place: Callable[[Section], str]) -> str:
    read = "".join(f"<dt>{escape(term)}</dt><dd>{inline(text)}</dd>" for term, text in how_to_read(sections))
    return (f'<section id="read"><dl class="read">{read}</dl></section>'
            '<section id="recommend"><h2>Recommendation: the leading group per family, track and sparsity</h2>'
            + recommendation_table(sections, links, place)
            + '<p class="note">Then: <a href="cells.html">every cell on one table</a>, <a href="#summary">the summary'
              f"'s ranks</a> below, and each task's page (plots, full tables, system card):</p><nav>{nav}</nav></section>")
