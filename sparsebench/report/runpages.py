"""One small HTML page per run on the board (``run/<run id>.html``): its spec, final metrics,
per-epoch curves (inline SVG), layer densities and the other seeds of its cell.

Written beside the page by :mod:`sparsebench.report.board`, so that every board (the committed one
and one written with ``--out``) carries what its cells link to; the run id is the one a run has in
every store (its origin's), so links survive an export and an import.
"""
from __future__ import annotations

import json
from html import escape
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import pandas as pd

from sparsebench.report.htmlkit import Links
from sparsebench.report.formatting import percent
from sparsebench.report.tables import slug, track_title
from sparsebench.running import tracking

FOLDER = "run"
CURVES = ("val/", "train/loss", "train/density")  # the per-epoch metrics drawn
STYLE = """body { font: 14px/1.4 system-ui, sans-serif; color: #1d232a; margin: 1rem auto; max-width: 980px; }
table { border-collapse: collapse; margin: .3rem 0 .8rem; } td, th { padding: .15rem .5rem; border-bottom: 1px solid #e6e9ed;
text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; } .bar { background: #1a5fb4;
height: .7em; display: inline-block; } .eff { background: #9aa3ad; } figure { display: inline-block; margin: .3rem; }
figcaption { font-size: .85em; color: #3d4650; } code { background: #eceff3; padding: 0 .2em; }"""


def svg_curve(points: list[tuple[int, float]], width: int = 300, height: int = 130) -> str:
    """A line chart of (epoch, value) with its range labelled; no scripts, no external files."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad, sx = 34, (width - 44) / ((x1 - x0) or 1)
    sy = (height - 30) / ((y1 - y0) or 1)
    coords = " ".join(f"{pad + (x - x0) * sx:.1f},{height - 18 - (y - y0) * sy:.1f}" for x, y in points)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'<rect x="{pad}" y="10" width="{width - 44}" height="{height - 28}" fill="#fafbfc" stroke="#dde2e8"/>'
            f'<polyline fill="none" stroke="#1a5fb4" stroke-width="1.6" points="{coords}"/>'
            f'<text x="2" y="16" font-size="10">{y1:.4g}</text><text x="2" y="{height - 18}" font-size="10">{y0:.4g}</text>'
            f'<text x="{pad}" y="{height - 4}" font-size="10">epoch {x0}</text>'
            f'<text x="{width - 10}" y="{height - 4}" font-size="10" text-anchor="end">{x1}</text></svg>')


def rows(pairs) -> str:
    return "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in pairs)


def layer_table(layers: dict) -> str:
    out = ['<table><tr><th>layer</th><th>shape</th><th>density</th><th>effective</th><th></th><th>dead units</th></tr>']
    for name, d in layers.items():
        density, effective = d.get("density", float("nan")), d.get("effective_density", float("nan"))
        out.append(f"<tr><td><code>{escape(name)}</code></td><td>{escape('×'.join(map(str, d.get('shape', []))))}</td>"
                   f'<td class="num">{density:.4f}</td><td class="num">{effective:.4f}</td>'
                   f'<td><span class="bar" style="width:{200 * density:.0f}px"></span><br>'
                   f'<span class="bar eff" style="width:{200 * effective:.0f}px"></span></td>'
                   f'<td class="num">{d.get("dead_units", "")}</td></tr>')
    return "".join(out) + "</table>"


def page(trial: pd.Series, run, history: dict, layers: dict | None, siblings: list[tuple[int, str]],
         back: str, ui_link: str | None) -> str:
    """The HTML of one run's page."""
    title = (f"{trial['task']} · {trial['profile']} · {trial['method']} at {percent(trial['sparsity'])} · seed "
             f"{trial['seed']}" + (f" · {track_title(trial['track'])}" if trial["track"] != "default" else ""))
    tags = run.data.tags
    spec = tags.get("sb.spec", "")
    try:
        spec = json.dumps(json.loads(spec), indent=1) if spec else ""
    except ValueError:
        pass
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>",
             f'<p><a href="{escape(back)}">← {"its section" if "sections/" in back else "the board"}</a>'
             + (' · <a href="../index.html">the board</a>' if "sections/" in back else "")
             + (f' · <a href="{escape(ui_link)}">this run in the MLflow UI</a>' if ui_link else "") + "</p>",
             f"<h1>{escape(title)}</h1>",
             f"<p>run <code>{escape(trial['run_id'])}</code>; config id <code>{escape(tags.get('sb.config_id', ''))}"
             f"</code>; {escape(trial['metric'])} <strong>{trial['value']:.4g}</strong></p>"]
    if len(siblings) > 1:
        parts.append("<p>Seeds of this cell: " + ", ".join(
            f"<strong>seed {s}</strong>" if rid == trial["run_id"] else
            f'<a href="{escape(quote(rid))}.html">seed {s}</a>' for s, rid in siblings) + "</p>")
    parts += ["<h2>Spec</h2>", f"<pre>{escape(spec)}</pre>" if spec else "",
              "<table>" + rows(sorted(run.data.params.items())) + "</table>"]
    curves = {k: v for k, v in history.items() if len(v) > 1}
    if curves:
        parts.append("<h2>Per epoch</h2>")
        parts += [f"<figure>{svg_curve(points)}<figcaption>{escape(key)}</figcaption></figure>"
                  for key, points in sorted(curves.items())]
    if layers:
        parts += ["<h2>Layer densities</h2>", layer_table(layers)]
    final = sorted((k, f"{v:.6g}") for k, v in run.data.metrics.items())
    # the origin id is the page's own name; the heartbeat says when it last beat, not what it is
    shown = sorted((k, v) for k, v in tags.items() if k.startswith("sb.") and k not in (
        "sb.spec", tracking.ORIGIN, "sb.heartbeat"))
    parts += ["<h2>Metrics (final values)</h2>", "<table>" + rows(final) + "</table>",
              "<h2>Tags</h2>", "<table>" + rows(shown) + "</table>", "</body></html>"]
    return "\n".join(parts)


def layers_of(client, run) -> dict | None:
    """The run's ``layers.json``: read in place from a local artifact store (fast), else downloaded."""
    where = urlparse(run.info.artifact_uri or "")
    if where.scheme in ("", "file"):
        path = Path(unquote(where.path)) / "layers.json"
        return json.loads(path.read_text()) if path.is_file() else None
    return tracking.run_layers(client, run.info.run_id)


def write(uri: str, trials: pd.DataFrame, out: Path, section_slugs: set[str], ui: str | None = None) -> int:
    """Write the page of every run in ``trials`` (:func:`sparsebench.report.tables.trial_table`) under
    ``out/run/``, removing pages of runs no longer on the board; returns how many were written."""
    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.html"):
        old.unlink()
    client = tracking.store_client(uri)
    keys = ["task", "profile", "variant", "track", "method", "sparsity"]
    seeds = {k: sorted(zip(g["seed"], g["run_id"])) for k, g in trials.groupby(keys, dropna=False)}
    for _, trial in trials.iterrows():
        run = client.get_run(trial["store_run_id"])
        history = {}
        for key in run.data.metrics:
            if key.startswith(CURVES):
                history[key] = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        layers = layers_of(client, run)
        parts = [trial["task"], trial["profile"], trial["variant"]] + ([trial["track"]] if trial["track"] != "default" else [])
        anchor = slug(*parts)
        back = f"../sections/{anchor}.html" if anchor in section_slugs else "../index.html"
        # by its config id, which every store that imported the run holds (run ids differ between stores)
        where = f"tags.`sb.config_id` = '{run.data.tags.get('sb.config_id', '')}' and tags.`sb.status` = 'completed'"
        link = f"{Links(ui).experiment(trial['experiment_id'])}&searchFilter={quote(where, safe='')}" if ui else None
        html = page(trial, run, history, layers, seeds[tuple(trial[k] for k in keys)], back, link)
        (folder / f"{trial['run_id']}.html").write_text(html)
    return len(trials)
