"""What a run would do, told before it starts (``sparsebench run ... --plan``).

Per task, profile and method: the grid's trials, those already done, those whose runs were made by
other code than this checkout's (stale: run again only with ``--rerun-stale``), those to run, and
the core time they would take. The time is estimated from measurements, never from a formula: the
median wall time of the same cell's runs (task, profile, method, sparsity, track; any seed), else of
the method's on the task and profile, in the run's target (its store or ``--bundle``) and in the
committed runs bundle. A trial that trains what others reuse (a dense model, a lottery round, through
the checkpoint store) took longer than those that reused it; the median of a cell's seeds holds such
trials as often as the grid order makes them, so the sum is the grid's time in that order.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import pandas as pd

from sparsebench.running import records
from sparsebench.running.progress import clock

SECONDS = "time/trial_seconds"
CELL = ("task", "profile", "method", "sparsity", "track")


def bundle_times(folders: list[Path]) -> list[tuple[tuple, float, str]]:
    """(cell, seconds, CPU) of the completed trial records in the bundles at ``folders``."""
    out = []
    for path in (p for folder in folders if folder.is_dir() for p in sorted(folder.glob("*.jsonl"))):
        for record in records.read_file(path):
            tags, seconds = record.get("tags", {}), record.get("metrics", {}).get(SECONDS)
            if tags.get("sb.kind", "trial") == "trial" and tags.get("sb.status") == "completed" and seconds:
                out.append((tuple(str(tags.get(f"sb.{k}")) for k in CELL), float(seconds), tags.get("sb.cpu", "")))
    return out


def store_times(runs: pd.DataFrame) -> list[tuple[tuple, float, str]]:
    """(cell, seconds, CPU) of the completed trial runs of a store's ``runs`` frame."""
    column = f"metrics.{SECONDS}"
    if runs.empty or column not in runs or "tags.sb.status" not in runs:
        return []
    done = runs[(runs["tags.sb.status"] == "completed") & runs[column].notna()]
    cells = zip(*(done.get(f"tags.sb.{k}", pd.Series("", index=done.index)).astype(str) for k in CELL))
    cpus = done.get("tags.sb.cpu", pd.Series("", index=done.index)).fillna("")
    return list(zip(cells, done[column].astype(float), cpus))


def cell(spec) -> tuple:
    return (spec.task, spec.profile, spec.method, str(spec.sparsity), spec.track)


def estimator(times: list[tuple[tuple, float, str]]):
    """``seconds(spec)``: the median time of the spec's cell, else of its method on its task and
    profile, else None (never measured)."""
    by_cell, by_method = defaultdict(list), defaultdict(list)
    for key, seconds, _ in times:
        by_cell[key].append(seconds)
        by_method[key[:3]].append(seconds)

    def seconds(spec) -> float | None:
        found = by_cell.get(cell(spec)) or by_method.get(cell(spec)[:3])
        return statistics.median(found) if found else None
    return seconds


def plan_rows(specs: list, todo: list, stale: set, seconds) -> pd.DataFrame:
    """One row per task, profile and method: ``trials``, ``done``, ``stale`` (done, by other code),
    ``to run``, ``core seconds`` (estimated, of those to run) and ``unmeasured`` (to run, no time)."""
    todo_ids = {s.config_id() for s in todo}
    rows = []
    for spec in specs:
        runs = spec.config_id() in todo_ids
        estimate = seconds(spec) if runs else None
        rows.append({"task": spec.task, "profile": spec.profile, "method": spec.method, "trials": 1,
                     "done": int(not runs), "stale": int(spec.config_id() in stale), "to run": int(runs),
                     "core seconds": estimate or 0.0, "unmeasured": int(runs and estimate is None)})
    frame = pd.DataFrame(rows)
    return frame.groupby(["task", "profile", "method"], sort=False, as_index=False).sum()


def span(seconds: float) -> str:
    """A rough duration: '42 s', '7:05', '3.3 hours'."""
    return f"{seconds / 3600:.1f} hours" if seconds >= 3600 else clock(seconds)


def plan_text(rows: pd.DataFrame, workers: int, rerun_stale: bool, times: list, sources: list[str]) -> str:
    """The plan as a terminal prints it: a summary line, the table, and where the times come from."""
    total, unmeasured, stale = rows["core seconds"].sum(), int(rows["unmeasured"].sum()), int(rows["stale"].sum())
    head = (f"sparsebench: plan: {int(rows['trials'].sum())} trials, {int(rows['done'].sum())} done, "
            f"{int(rows['to run'].sum())} to run"
            + (f" ({stale} of them stale)" if rerun_stale and stale else "")
            + (f"; about {span(total)} of core time" if total else "")
            + (f", {span(total / workers)} on {workers} workers" if total and workers > 1 else "")
            + (f"; {unmeasured} to run were never measured (?)" if unmeasured else ""))
    table = rows.assign(**{"core time": [clock(s) if s else ("?" if u else "") for s, u in
                                         zip(rows["core seconds"], rows["unmeasured"])]})
    columns = ["task", "profile", "method", "trials", "done", "stale", "to run", "core time"]
    lines = [head, table[columns].to_string(index=False)]
    if stale and not rerun_stale:
        lines.append(f"{stale} of the done trials are stale (made by other code than this checkout's): "
                     "--rerun-stale runs them again")
    cpus = sorted({cpu for _, _, cpu in times if cpu})
    lines.append("times: the median wall time of the same cell's completed runs (else the method's on the task "
                 f"and profile), one trial at a time, from {' and '.join(sources)}"
                 + (f", measured on {', '.join(cpus)}" if cpus else "")
                 + "; a training the checkpoint store lacks (a dense model to prune) may add its time once. "
                 "Nothing was run.")
    return "\n".join(lines)
