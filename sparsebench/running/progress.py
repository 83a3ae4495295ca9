"""What a sweep shows in its terminal: a live status of the running trials, each finished trial's
line with its wall time and its difference from the dense reference, and a results table at the end.

The live status is read from the store (the per-epoch metrics each trial logs to its MLflow run, see
:mod:`sparsebench.core.train`), polled by the sweep driver every :data:`POLL_S` seconds, so that a
trial shows up within seconds of its run starting, long before it ends: task, method, epoch of the
profile's epochs, the latest validation metric, elapsed and an estimate of the time left (elapsed
per epoch times the epochs left). It is redrawn in place at the bottom of the terminal; where stdout
is not a terminal (CI logs) there is no live status and no table, only the one line per trial.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Callable, TextIO

import pandas as pd

from sparsebench.running import tracking
from sparsebench.running.trial_lines import (POLL_S, clock, finished_words, profile_epochs,  # noqa: F401 (the API)
                                             results_text, trial_line)



def status_line(elapsed: float, running: int, done: int, failed: int, total: int,
                seconds_left: float | None = None) -> str:
    """A running sweep's state: trials running, done (failed among them), left; elapsed; a rough
    time left once a trial has finished (``seconds_left``, else elapsed per finished trial times those left)."""
    left = total - done
    if seconds_left is None and done:
        seconds_left = elapsed / done * left
    eta = f", about {clock(seconds_left)} left" if done and left else ""
    return (f"sparsebench: {clock(elapsed)} elapsed: {running} running, {done} done ({failed} failed), "
            f"{left} to go{eta}")


def time_left(specs: list, outcomes: list, durations: dict[tuple, list[float]], running: int) -> float | None:
    """Seconds left: each unfinished trial at the mean time of the finished ones of its task and profile
    (else of all), over the trials running at once. A sweep starts its longest trials first, so the
    mean of all finished trials would overestimate the rest."""
    every = [t for times in durations.values() for t in times]
    if not every:
        return None
    finished = {spec.config_id() for spec, _ in outcomes}
    mean = {key: sum(times) / len(times) for key, times in durations.items()}
    overall = sum(every) / len(every)
    return sum(mean.get((s.task, s.profile), overall) for s in specs if s.config_id() not in finished) / max(1, running)


class Live:
    """The sweep's terminal: :meth:`poll` redraws the running trials' status (at most every
    :data:`POLL_S`), :meth:`say` prints a line above it, :meth:`finished` describes a finished trial."""

    def __init__(self, uri: str, parents: dict[str, str], out: TextIO | None = None, tty: bool | None = None,
                 clock_fn: Callable[[], float] = time.time):
        # the stream is looked up when written to (Ray Tune pickles its callbacks; a stream does not pickle)
        self.uri, self.parents, self._out = uri, parents, out
        self.tty = self.out.isatty() if tty is None else tty
        self.now = clock_fn
        self.shown = 0  # lines of the status block now on the screen
        self.last = -math.inf
        self._dense: dict[tuple[str, str], float | None] = {}
        self._typical: dict[tuple[str, str, str], float | None] = {}

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_out": None}

    # -- the live block ------------------------------------------------------------------------
    def running(self) -> list[str]:
        """The status lines of this sweep's running trials, read from the store."""
        client = tracking.store_client(self.uri)
        lines = []
        for task, parent in sorted(self.parents.items()):
            exp = client.get_run(parent).info.experiment_id
            runs = client.search_runs([exp], f"tags.`sb.status` = 'running' and tags.`mlflow.parentRunId` = '{parent}'")
            for run in sorted(runs, key=lambda r: r.info.start_time):
                tags, metric = run.data.tags, run.data.tags.get("sb.metric", "")
                history = client.get_metric_history(run.info.run_id, f"val/{metric}") if metric else []
                epoch = max((m.step for m in history), default=0)
                value = max(history, key=lambda m: (m.step, m.timestamp)).value if history else None
                method, profile = tags.get("sb.method", "?"), tags.get("sb.profile", "")
                lines.append(trial_line(task, method, float(tags.get("sb.sparsity", "nan")),
                                        int(tags.get("sb.seed", 0)), epoch, profile_epochs(task, profile), metric,
                                        value, self.now() - run.info.start_time / 1000,
                                        self.typical(client, exp, method, profile) if epoch == 0 else None))
        return lines

    def typical(self, client, experiment: str, method: str, profile: str) -> float | None:
        """The median wall time of the store's completed trials of ``method`` under ``profile`` in this
        task's experiment (read once per sweep); None without any."""
        key = (experiment, method, profile)
        if key not in self._typical:
            done = client.search_runs([experiment], f"tags.`sb.method` = '{method}' and tags.`sb.profile` = '{profile}' "
                                                    "and tags.`sb.status` = 'completed'", max_results=50)
            times = sorted(r.data.metrics["time/trial_seconds"] for r in done if "time/trial_seconds" in r.data.metrics)
            self._typical[key] = times[len(times) // 2] if times else None
        return self._typical[key]

    def poll(self, force: bool = False) -> None:
        """Redraw the status block from the store, where stdout is a terminal and it is time to."""
        if not self.tty or (not force and self.now() - self.last < POLL_S):
            return
        self.last = self.now()
        try:
            lines = self.running()
        except Exception:  # a busy store: the next poll tries again
            return
        self._clear()
        if lines:
            self.out.write("\n".join([f"running ({len(lines)}):"] + lines) + "\n")
            self.shown = len(lines) + 1
        self.out.flush()

    def _clear(self) -> None:
        if self.shown:
            self.out.write(f"\x1b[{self.shown}F\x1b[J")  # up to the block's first line, erase to the end
            self.shown = 0

    def say(self, line: str) -> None:
        """Print ``line`` above the status block (which the next poll redraws)."""
        if self.tty:
            self._clear()
            self.last = -math.inf  # redraw at the next poll
        print(line, file=self.out, flush=True)

    # -- finished trials ---------------------------------------------------------------------------
    def dense(self, task: str, profile: str, metric: str) -> float | None:
        """The mean test metric of the store's completed dense runs of ``task`` under ``profile``."""
        key = (task, profile)
        if key not in self._dense:  # read once per task and profile (again after a dense trial finishes)
            try:
                runs = tracking.runs_frame(self.uri, [task])
                column = f"metrics.final/test_{metric}"
                mine = runs[(runs["tags.sb.method"] == "dense") & (runs["tags.sb.profile"] == profile)
                            & (runs["tags.sb.status"] == "completed")] if not runs.empty else runs
                self._dense[key] = float(mine[column].mean()) if column in mine and mine[column].notna().any() else None
            except Exception:
                self._dense[key] = None
        return self._dense[key]

    def finished(self, spec, result: dict) -> str:
        """A finished trial's words (:func:`~sparsebench.running.trial_lines.finished_words`), its dense
        reference read from the store."""
        if spec.method == "dense":
            self._dense.pop((spec.task, spec.profile), None)
        metric = next((k[len("final/test_"):] for k in result if k.startswith("final/test_")), None)
        dense = self.dense(spec.task, spec.profile, metric) if metric and spec.method != "dense" else None
        return finished_words(result, dense, is_dense=spec.method == "dense")


def results_table(uri: str, specs: list) -> str:
    """The sweep's cells, one line each: task, profile, track, method, sparsity, n seeds, the test metric
    mean ± std over seeds (the store's latest completed run of each spec)."""
    specs = [s for s in specs if s.track != "tuning"]  # a search's trials have no test result to show
    runs = tracking.runs_frame(uri, sorted({s.task for s in specs})) if specs else pd.DataFrame()
    if runs.empty:
        return ""
    ids = {s.config_id(): s for s in specs}
    runs = runs[runs["tags.sb.config_id"].isin(ids) & (runs["tags.sb.status"] == "completed")]
    runs = runs.sort_values("start_time").drop_duplicates("tags.sb.config_id", keep="last")
    rows = []
    for _, r in runs.iterrows():
        spec, metric = ids[r["tags.sb.config_id"]], r.get("tags.sb.metric", "")
        value = r.get(f"metrics.final/test_{metric}", float("nan"))
        rows.append((spec.task, spec.profile, spec.track, spec.method, spec.sparsity, metric, value))
    return results_text(rows)


def print_results(uri: str, specs: list, out: TextIO | None = None) -> None:
    """At a sweep's end, in a terminal only: :func:`results_table` of its specs."""
    out = out or sys.stdout
    if not specs or not out.isatty():
        return
    try:
        table = results_table(uri, specs)
    except Exception:  # the summary line still says what happened
        return
    if table:
        print("sparsebench: results of this sweep (test metric over seeds)\n" + table, file=out, flush=True)
