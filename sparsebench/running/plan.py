"""What a run would do, told before it starts (``sparsebench run ... --plan``).

Per task, profile and method: the grid's trials, those already done, those whose runs were made by
other code than this checkout's (stale: run again only with ``--rerun-stale``), those to run, and
the core time they would take. The time is estimated from measurements, never from a formula: the
median wall time of the same cell's runs (task, profile, method, sparsity, track; any seed), else of
the method's on the task and profile, in the run's target (its store or ``--bundle``) and in the
committed runs bundle, as with an empty checkpoint cache: a training that trials share (a dense model
to prune, a lottery round) is paid by the first trial of its group, at the time of the runs that
trained it themselves, and the others at the time of the runs that reused one (:func:`estimates`).
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sparsebench.running import records
from sparsebench.running.bundle import DEFAULT_FOLDER
from sparsebench.running.progress import clock
from sparsebench.running.sweep import training_group

SECONDS, HITS = "time/trial_seconds", "checkpoints/hits"
CELL = ("task", "profile", "method", "sparsity", "track")


@dataclass
class Target:
    """What a run's target holds of its grid: the trials to run with and without ``--rerun-stale``
    (``todo``, ``current``), the measured times (:func:`bundle_times`) and where they come from."""
    todo: list
    current: list
    times: list
    sources: list[str]


def bundle_target(specs: list, folder: str | Path) -> Target:
    from sparsebench.running.standalone import pending

    folder = Path(folder)
    committed = [DEFAULT_FOLDER] if DEFAULT_FOLDER.is_dir() and DEFAULT_FOLDER.resolve() != folder.resolve() else []
    return Target(pending(specs, folder, rerun_stale=True), pending(specs, folder),
                  bundle_times([folder, *committed]),
                  [f"the bundle {folder}", *(f"the committed bundle {f}" for f in committed)])


def store_target(specs: list, uri: str | None, retry_failed: bool = False) -> Target:
    """As the sweep would count (:func:`sparsebench.running.sweep.finished`), reading the store only;
    a SQLite file that does not exist yet is an empty store, and is not made."""
    from sparsebench.running import sweep, tracking

    uri = tracking.tracking_uri(uri)
    missing = uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists()
    runs = pd.DataFrame() if missing else tracking.runs_frame(tracking.open_store(uri), sorted({s.task for s in specs}))
    lists = []
    for rerun_stale in (True, False):
        finished, live, _ = sweep.finished(runs, retry_failed, rerun_stale) if not runs.empty else (set(), set(), [])
        lists.append([s for s in specs if s.config_id() not in finished | live])
    committed = [DEFAULT_FOLDER] if DEFAULT_FOLDER.is_dir() else []
    return Target(*lists, store_times(runs) + bundle_times(committed),
                  [f"the store {uri}", *(f"the committed bundle {f}" for f in committed)])


def bundle_times(folders: list[Path]) -> list[tuple[tuple, float, bool, str]]:
    """(cell, seconds, warm, CPU) of the completed trial records in the bundles at ``folders``; warm:
    the trial reused a training from the checkpoint store."""
    out = []
    for path in (p for folder in folders if folder.is_dir() for p in sorted(folder.glob("*.jsonl"))):
        for record in records.read_file(path):
            tags, metrics = record.get("tags", {}), record.get("metrics", {})
            if tags.get("sb.kind", "trial") == "trial" and tags.get("sb.status") == "completed" and metrics.get(SECONDS):
                out.append((tuple(str(tags.get(f"sb.{k}")) for k in CELL), float(metrics[SECONDS]),
                            bool(metrics.get(HITS)), tags.get("sb.cpu", "")))
    return out


def store_times(runs: pd.DataFrame) -> list[tuple[tuple, float, bool, str]]:
    """(cell, seconds, warm, CPU) of the completed trial runs of a store's ``runs`` frame."""
    column = f"metrics.{SECONDS}"
    if runs.empty or column not in runs or "tags.sb.status" not in runs:
        return []
    done = runs[(runs["tags.sb.status"] == "completed") & runs[column].notna()]
    blank = pd.Series("", index=done.index)
    cells = zip(*(done.get(f"tags.sb.{k}", blank).astype(str) for k in CELL))
    warm = done.get(f"metrics.{HITS}", blank).fillna(0).astype(bool)
    return list(zip(cells, done[column].astype(float), warm, done.get("tags.sb.cpu", blank).fillna("")))


def cell(spec) -> tuple:
    return (spec.task, spec.profile, spec.method, str(spec.sparsity), spec.track)


def estimates(todo: list, times: list[tuple[tuple, float, bool, str]]) -> dict[str, float | None]:
    """Config id -> the seconds each trial of ``todo`` would take with an empty checkpoint cache, in
    order. A trial's cell (else its method on the task and profile) has runs that trained everything
    themselves (cold) and runs that reused a training (warm): the first trial of a training group
    (task, profile, seed) that reuses one pays the cold median, or the warm one plus the task and
    profile's training time (the median cold-minus-warm of its cells; where no cell has both, the
    cold median of its ``dense`` runs) where its cell was never cold; the group's later trials pay the
    warm median. None: never measured."""
    found = defaultdict(list)
    for key, seconds, warm, _ in times:
        found[key, warm].append(seconds)
        found[key[:3], warm].append(seconds)
    medians = {key: statistics.median(values) for key, values in found.items()}
    training = defaultdict(list)  # (task, profile) -> what a shared training costs, cell by cell
    for (key, warm), seconds in medians.items():
        if len(key) == len(CELL) and warm and (key, False) in medians:
            training[key[:2]].append(max(0.0, medians[key, False] - seconds))
    trained, out = set(), {}
    for spec in todo:
        key, group = cell(spec), training_group(spec)
        cold = medians.get((key, False), medians.get((key[:3], False)))
        warm = medians.get((key, True), medians.get((key[:3], True)))
        if warm is None or group in trained:
            out[spec.config_id()] = warm if warm is not None else cold
            continue
        if cold is None and training[key[:2]]:
            cold = warm + statistics.median(training[key[:2]])
        elif cold is None and (key[:2] + ("dense",), False) in medians:  # only the dense run trained it
            cold = warm + medians[key[:2] + ("dense",), False]
        out[spec.config_id()] = warm if cold is None else cold
        if cold is not None:  # this one trains what the group's later trials reuse
            trained.add(group)
    return out


def plan_rows(specs: list, todo: list, stale: set, seconds: dict[str, float | None]) -> pd.DataFrame:
    """One row per task, profile and method: ``trials``, ``done``, ``stale`` (done, by other code),
    ``to run``, ``core seconds`` (estimated, of those to run) and ``unmeasured`` (to run, no time)."""
    todo_ids = {s.config_id() for s in todo}
    rows = []
    for spec in specs:
        runs = spec.config_id() in todo_ids
        estimate = seconds.get(spec.config_id()) if runs else None
        rows.append({"task": spec.task, "profile": spec.profile, "method": spec.method, "trials": 1,
                     "done": int(not runs), "stale": int(spec.config_id() in stale), "to run": int(runs),
                     "core seconds": estimate or 0.0, "unmeasured": int(runs and estimate is None)})
    frame = pd.DataFrame(rows)
    return frame.groupby(["task", "profile", "method"], sort=False, as_index=False).sum()


def span(seconds: float) -> str:
    """A rough duration: '42 s', '7 minutes', '3.3 hours'."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{round(seconds / 60)} minutes" if seconds >= 90 else clock(seconds)


def plan_text(specs: list, target: Target, rerun_stale: bool, workers: int = 1) -> str:
    """The plan as a terminal prints it: a summary line, the table, and where the times come from."""
    todo = target.todo if rerun_stale else target.current
    stale = {s.config_id() for s in target.todo} - {s.config_id() for s in target.current}
    rows = plan_rows(specs, todo, stale, estimates(todo, target.times))
    total, unmeasured, stale = rows["core seconds"].sum(), int(rows["unmeasured"].sum()), len(stale)
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
    cpus = sorted({cpu for *_, cpu in target.times if cpu})
    lines.append("times: the median wall time of the same cell's completed runs (else the method's on the task "
                 "and profile), one trial at a time with an empty checkpoint cache (a training that trials share, "
                 f"such as the dense model they prune, counted once), from {' and '.join(target.sources)}"
                 + (f", measured on {', '.join(cpus)}" if cpus else "") + ". Nothing was run.")
    return "\n".join(lines)
