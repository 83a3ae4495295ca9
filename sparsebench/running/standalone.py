"""Trials without Ray or MLflow: a grid run by plain processes, each result appended to a runs
bundle (``sparsebench run ... --bundle DIR --workers N``; then ``sparsebench import DIR`` where the
store is).

For a machine that has torch and nothing else of the stack (a lent GPU machine where nothing can
be installed). The trial is the function a Ray worker runs (``run_trial``) and its record the one
an exported MLflow run has (:mod:`sparsebench.running.records`), so the bundle imports and is
checked like any other. Each trial runs in a process of its own (``spawn``: CUDA starts in the
children only), at most ``workers`` at once; the parent alone writes the bundle, one line per
finished trial, so an interruption loses only the trials running at that moment (stopped by SIGINT or
SIGTERM, the run ends them; killed outright, they end themselves within :data:`ORPHAN_POLL_S`). The terminal
shows each trial as it starts, each epoch it finishes (from a progress file the child rewrites),
a line at least every :data:`QUIET_S` seconds while a trial is silent, each finished trial (test
metric, wall time, Δ vs the bundle's dense runs of its task and profile) and, in a terminal, a table
of the run's cells at the end.
Trials the bundle already holds (completed, or failed by the method) are skipped; a trial whose process died
is recorded as an infrastructure failure and run again by the next call, up to ``INFRA_ATTEMPTS``
runs in all. Trainings are shared through the local checkpoint store, as in a Ray sweep (the dense
model a suite's post-training trials prune is trained once), unless ``--no-checkpoints``.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from multiprocessing.connection import wait
from pathlib import Path

from sparsebench.core import registry
from sparsebench.running import provenance, records
from sparsebench.running.trial_lines import POLL_S, finished_words, profile_epochs, results_text, trial_line
from sparsebench.running.trial import TrialSpec

QUIET_S = 600.0  # a running trial's line at least this often, epochs or not
ORPHAN_POLL_S = 2.0  # how often a trial's process checks that the run that started it is still there


def pending(specs: list[TrialSpec], folder: Path, rerun_stale: bool = False) -> list[TrialSpec]:
    """The specs without a finished record in the bundle at ``folder`` (with ``rerun_stale``, one
    made by this checkout's code)."""
    done, infra = set(), Counter()
    for record in (r for path in sorted(folder.glob("*.jsonl")) for r in records.read_file(path)):
        config_id = record["tags"].get("sb.config_id")
        if rerun_stale and provenance.staleness(record["tags"]):
            continue
        if records.is_done(record["tags"]):
            done.add(config_id)
        elif record["tags"].get("sb.failure") == "infrastructure":
            infra[config_id] += 1
    done |= {c for c, n in infra.items() if n >= records.INFRA_ATTEMPTS}
    return [s for s in specs if s.config_id() not in done]


def append(folder: Path, record: dict) -> None:
    with open(folder / f"{record['params']['task']}.jsonl", "a") as f:
        f.write(records.bundle_line(record) + "\n")


def trial_process(spec_json: dict, data_root: str | None, device: str, threads: int, plugin_roots: list[str],
                  out: str, checkpoints: bool = True, parent: int | None = None) -> None:
    """A child of the run ``parent``: run one trial and write its record to ``out``."""
    exit_with(parent or os.getppid())
    import torch

    from sparsebench.running.checkpoints import run_with_checkpoints

    registry.discover(plugin_roots)
    torch.set_num_threads(threads)
    spec = TrialSpec.from_json(spec_json)
    history: dict[str, list] = defaultdict(list)
    progress = progress_file(Path(out))

    def log(metrics: dict, step: int) -> None:
        for key, value in metrics.items():
            history[key].append([step, float(value)])
        try:  # what the parent shows; never worth failing the trial for
            progress.with_suffix(".tmp").write_text(json.dumps({"epoch": step, **metrics}))
            progress.with_suffix(".tmp").replace(progress)
        except OSError:
            pass
    started = time.time()
    result = run_with_checkpoints(spec, data_root, log, device, None, checkpoints)  # the local cache alone
    result["metrics"]["time/trial_seconds"] = time.time() - started
    record = records.bundle_record(spec, result, history, int(started * 1000), int(time.time() * 1000),
                                   {**records.describe(spec), **records.where()})
    Path(out + ".tmp").write_text(json.dumps(record))
    Path(out + ".tmp").replace(out)


def exit_with(parent: int) -> None:
    """End this process when ``parent`` is gone (killed before it could end its trials): a watching thread."""
    def watch():
        while os.getppid() == parent:
            time.sleep(ORPHAN_POLL_S)
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def terminated(signum, frame):
    """SIGTERM as an exit, so that ``run_bundle`` ends its running trials on the way out."""
    raise SystemExit(128 + signum)


def progress_file(out: Path) -> Path:
    """Where the child running the trial whose result goes to ``out`` keeps its latest epoch's metrics."""
    return out.with_name(out.stem + ".progress.json")


class Shown:
    """A running trial as the terminal last showed it."""

    def __init__(self, spec: TrialSpec, out: Path):
        self.spec, self.progress, self.started = spec, progress_file(out), time.time()
        self.latest, self.epoch, self.said = {"epoch": 0}, 0, self.started

    def line(self, now: float) -> str | None:
        """Its line where it finished an epoch since the last one, or was silent for :data:`QUIET_S`."""
        try:
            self.latest = json.loads(self.progress.read_text())
        except (OSError, ValueError):  # no epoch yet, or a write under way: what was read before
            pass
        if self.latest["epoch"] == self.epoch and now - self.said < QUIET_S:
            return None
        self.epoch, self.said = self.latest["epoch"], now
        metric, value = next(((k[len("val/"):], v) for k, v in self.latest.items() if k.startswith("val/")),
                             ("", None))
        spec = self.spec
        return "sparsebench: " + trial_line(spec.task, spec.method, spec.sparsity, spec.seed, self.epoch,
                                            profile_epochs(spec.task, spec.profile), metric, value,
                                            now - self.started).strip()


def died(spec: TrialSpec, exitcode: int | None) -> dict:
    """The record of a trial whose process ended without a result."""
    now = int(time.time() * 1000)
    result = {"status": "failed", "failure": "infrastructure", "metrics": {},
              "reason": f"the trial's process died (exit code {exitcode}) before it recorded a result"}
    return records.bundle_record(spec, result, {}, now, now, {**records.describe(spec), **records.where()})


def run_bundle(specs: list[TrialSpec], folder: str | Path, workers: int = 1, data_root: str | None = None,
               device: str = "cpu", threads: int = 1, plugin_roots: list[str] | None = None,
               checkpoints: bool = True, rerun_stale: bool = False) -> Counter:
    """Run the ``specs`` the bundle at ``folder`` lacks, ``workers`` at a time; returns how many
    trials ended in each status (and ``skipped``)."""
    if workers < 1 or threads < 1:
        raise ValueError(f"--workers and --threads are at least 1, got {workers} and {threads}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    todo = pending(specs, folder, rerun_stale)
    counts = Counter(skipped=len(specs) - len(todo))
    scratch = folder / ".running"
    scratch.mkdir(exist_ok=True)
    spawn = multiprocessing.get_context("spawn")
    running: dict = {}  # sentinel -> (process, spec, result file, what the terminal showed of it)
    main = threading.current_thread() is threading.main_thread()  # where a signal handler can be set
    previous = signal.signal(signal.SIGTERM, terminated) if main else None
    try:
        while todo or running:
            while todo and len(running) < workers:
                spec = todo.pop(0)
                out = scratch / f"{spec.config_id()}.json"
                for stale in (out, progress_file(out)):
                    stale.unlink(missing_ok=True)
                process = spawn.Process(target=trial_process, args=(spec.to_json(), data_root, device, threads,
                                                                    list(plugin_roots or []), str(out), checkpoints,
                                                                    os.getpid()))
                process.start()
                running[process.sentinel] = (process, spec, out, Shown(spec, out))
                print(f"sparsebench: started {spec.task} {spec.run_name} ({len(running)} running)", flush=True)
            ready = wait(list(running), timeout=POLL_S)
            for sentinel, (_, _, _, shown) in running.items():
                if sentinel not in ready and (line := shown.line(time.time())):
                    print(line, flush=True)
            for sentinel in ready:
                process, spec, out, shown = running.pop(sentinel)
                process.join()
                record = json.loads(out.read_text()) if out.exists() else died(spec, process.exitcode)
                for done in (out, shown.progress, shown.progress.with_suffix(".tmp")):  # a killed child's too
                    done.unlink(missing_ok=True)
                append(folder, record)
                status = record["tags"]["sb.status"]
                counts[status] += 1
                words = finished_words({**record["metrics"], "status": status, "reason": record["tags"].get("sb.reason")},
                                       dense_reference(folder, spec, record["tags"]["sb.metric"]),
                                       is_dense=spec.method == "dense")
                print(f"sparsebench: [{sum(counts.values()) - counts['skipped']}/{len(specs) - counts['skipped']}] "
                      f"{spec.task} {spec.run_name}: {words}", flush=True)
    finally:
        for process, *_ in running.values():  # interrupted: the running trials are not recorded
            process.terminate()
        if main:
            signal.signal(signal.SIGTERM, previous)
    if sys.stdout.isatty() and (table := results_text(bundle_rows(folder, specs))):
        print("sparsebench: results of this run (test metric over seeds)\n" + table, flush=True)
    return counts


def completed(folder: Path, task: str) -> list[dict]:
    """The bundle's completed records of ``task``."""
    path = folder / f"{task}.jsonl"
    return [r for r in records.read_file(path) if r["tags"].get("sb.status") == "completed"] if path.exists() else []


def dense_reference(folder: Path, spec: TrialSpec, metric: str) -> float | None:
    """The mean test metric of the bundle's completed dense runs of ``spec``'s task and profile."""
    values = [r["metrics"][f"final/test_{metric}"] for r in completed(folder, spec.task)
              if r["tags"].get("sb.method") == "dense" and r["tags"].get("sb.profile") == spec.profile
              and f"final/test_{metric}" in r["metrics"]]
    return sum(values) / len(values) if values else None


def bundle_rows(folder: Path, specs: list[TrialSpec]) -> list[tuple]:
    """:func:`~sparsebench.running.trial_lines.results_text`'s rows for ``specs``: the bundle's latest
    completed record of each."""
    ids = {s.config_id(): s for s in specs if s.track != "tuning"}
    latest = {r["tags"]["sb.config_id"]: r for task in sorted({s.task for s in ids.values()})
              for r in completed(folder, task) if r["tags"].get("sb.config_id") in ids}
    rows = []
    for config_id, record in latest.items():
        spec, metric = ids[config_id], record["tags"]["sb.metric"]
        rows.append((spec.task, spec.profile, spec.track, spec.method, spec.sparsity, metric,
                     record["metrics"].get(f"final/test_{metric}", float("nan"))))
    return rows
