"""Writes the leaderboard: ``results.csv``, ``README.md``, the pages (``index.html``, ``cells.html``,
``sections/``, their ``board.css`` and ``board.js``), ``plots/`` and ``run/``, from the runs of an
MLflow store (after ``sparsebench import`` of the committed bundle, the committed board exactly).

The board is written into a temporary folder beside its own and swapped in by renames, under a lock
on a file beside the folder: of two builds into one folder at once, the folder holds one whole board
(the last swapped in), never a mix; what else the folder holds (the runs bundle) stays.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from sparsebench.report import html, plots, reproduction, runpages
from sparsebench.report.markdown import HEADER, markdown_front, markdown_section, markdown_summary
from sparsebench.report.summary import ranks
from sparsebench.report.tables import KEYS, aggregate, sections, trial_table
from sparsebench.running import tracking


def ui_url(url: str | None = None, tracking_uri: str = "") -> str | None:
    """Base URL of the MLflow UI that cells link to: ``url``, else ``$SPARSEBENCH_MLFLOW_UI``, else the
    tracking server's (an http(s) tracking URI serves the UI); None (cells link to the run pages the
    board carries, ``run/<run id>.html``) for a local store."""
    url = url or os.environ.get("SPARSEBENCH_MLFLOW_UI") or (tracking_uri if tracking_uri.startswith("http") else None)
    return url.rstrip("/") if url else None


def section_layers(uri: str, section) -> dict[str, dict]:
    """Method -> ``layers.json`` of its first seed's run at the section's highest sparsity (best six)."""
    if section.rows.empty:
        return {}
    top = section.rows[section.rows["sparsity"] == section.rows["sparsity"].max()].set_index("method")
    out = {}
    for method in [m for m in section.methods if m in top.index][:len(plots.COLORS)]:
        found = tracking.run_layers(uri, top.loc[method, "first_run"])
        if found:
            out[method] = found
    return out


def build(uri: str | None = None, out_dir: str | Path = "leaderboard", ui: str | None = None) -> pd.DataFrame:
    """Regenerate the leaderboard from the runs at ``uri``; returns the aggregated table.

    ``ui`` is the MLflow UI's base URL for the page's links (default: :func:`ui_url`; without one
    they point to the board's own run pages).
    """
    uri = tracking.open_store(tracking.tracking_uri(uri))
    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp:
        table = _write(uri, Path(tmp), ui)
        with locked(target):
            swap_in(Path(tmp), target)
    return table


@contextmanager
def locked(target: Path):
    """Hold the lock of the board folder ``target`` (a file beside it) while the block runs."""
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def swap_in(new: Path, target: Path) -> None:
    """Make ``target`` hold the board written in ``new``: a new folder is renamed into place; into an
    existing one, each entry of ``new`` is renamed over its old copy (an old folder is moved into ``new``
    first, and deleted with it); the folder's other entries stay."""
    if not target.exists():
        whole = new.with_name(new.name + ".whole")
        shutil.copytree(new, whole)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(whole, 0o777 & ~umask)  # not the temporary folder's 0700
        os.rename(whole, target)
        return
    for entry in sorted(new.iterdir()):
        if (target / entry.name).is_dir() and not (target / entry.name).is_symlink():
            os.rename(target / entry.name, new / f"{entry.name}.old")
        os.replace(entry, target / entry.name)


def _write(uri: str, out: Path, ui: str | None) -> pd.DataFrame:
    """Write the board of the store at ``uri`` into the folder ``out``; returns the aggregated table."""
    trials = trial_table(uri)
    table = aggregate(trials) if not trials.empty else pd.DataFrame(columns=KEYS)
    # experiment ids and first_run are the store's own; run ids are those of every store (origin ids)
    table.drop(columns=["experiment_id", "first_run", "track_tagged"], errors="ignore").to_csv(out / "results.csv",
                                                                                             index=False)
    reproduction.write(trials, out)  # the papers' figures beside ours: reproduction.csv, .md, .html
    parts = sections(table) if not trials.empty else []
    ranked = ranks(table) if parts else pd.DataFrame()
    plots.clear(out / "plots")
    for part in parts:
        drawn = plots.section_plot(part, out / "plots" / f"{part.slug}.png")
        part.plot = drawn.relative_to(out).as_posix() if drawn else None
        if part.rows["train_cost_rel"].notna().sum() > 1:
            part.pareto_plot = plots.pareto_plot(part, out / "plots" / f"{part.slug}--cost.png").relative_to(out).as_posix()
        layers = section_layers(uri, part)
        if layers:
            part.layers_plot = plots.layers_plot(part, layers, out / "plots" / f"{part.slug}--layers.png"
                                                 ).relative_to(out).as_posix()
        if part.rows["speedup"].notna().any():
            part.speedup_plot = plots.speedup_plot(part, out / "plots" / f"{part.slug}--speedup.png"
                                                   ).relative_to(out).as_posix()
    if not trials.empty:  # a page per run: every board carries what its cells link to
        runpages.write(uri, trials, out, {p.slug for p in parts}, ui_url(ui, uri))
    body = [markdown_front(parts)] if parts else []
    body += [markdown_summary(ranked)] if not ranked.empty else []
    body += [markdown_section(part) for part in parts] or ["_No completed runs yet._", ""]
    (out / "README.md").write_text("\n".join(HEADER + body))
    for name, text in html.pages(parts, ranked, ui_url(ui, uri), table).items():
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_text(text)
    return table
