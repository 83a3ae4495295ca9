"""Sweeps: a grid of trials run through Ray Tune, recorded in MLflow. (With ``tuning``, which
draws from Ray Tune's search spaces, the only module that imports Ray.)

Before Ray starts, the grid is checked (names, sparsities, data), and trials whose config id
already has a finished run (completed, or failed with a reason) are skipped, so a re-run or an
interrupted sweep only runs what is missing. Each trial receives names and numbers (JSON),
re-discovers the plugins inside its worker, claims the trial in the store (a run with a
heartbeat: a trial another live sweep holds is left to it) and writes its own MLflow run; a
trial whose worker dies is recorded as an infrastructure failure by the driver and run again by
the next sweep. A new local Ray by default (even where a ``ray start`` cluster runs), a cluster
by ``address`` or ``RAY_ADDRESS`` (``auto``: the cluster ``ray start`` began on this machine).
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import pandas as pd

from sparsebench.core import registry

from sparsebench.running import claims, guard, progress, provenance, records, tracking
from sparsebench.running.progress import status_line, time_left  # noqa: F401 (status_line: the API)
from sparsebench.running.records import describe
from sparsebench.data import data_root as resolve_data_root
from sparsebench.running.checkpoints import run_with_checkpoints
from sparsebench.running.trial import TrialSpec, make_method, make_task, plan  # noqa: F401 (plan: the grid)


@dataclass
class SweepSummary:
    planned: int
    skipped: int
    completed: int
    failed: int
    elsewhere: int = 0  # left to another live sweep that runs them

    @property
    def interrupted(self) -> int:
        """Trials neither skipped nor finished: the sweep was stopped before them."""
        return self.planned - self.skipped - self.completed - self.failed - self.elsewhere

    def __str__(self) -> str:
        return (f"{self.planned} trials planned, {self.skipped} already done and skipped, "
                f"{self.completed} completed, {self.failed} failed"
                + (f", {self.elsewhere} left to another sweep running them" if self.elsewhere else "")
                + (f", {self.interrupted} interrupted (run again to resume)" if self.interrupted > 0 else ""))


def validate(specs: list[TrialSpec], data_root) -> None:
    """Fail fast, before Ray starts: unknown names, bad hyperparameters, missing or corrupt data."""
    for spec in specs:
        if registry.METHODS.get(spec.method)[0].prunes:
            make_method(spec.method, spec.hparams).check_target(spec.sparsity)
        else:
            make_method(spec.method, spec.hparams)
    for task, profile in dict.fromkeys((s.task, s.profile) for s in specs):
        make_task(task, profile).load(data_root)


def pending(specs: list[TrialSpec], uri: str, retry_failed: bool = False,
            runs: pd.DataFrame | None = None, holders: dict | None = None,
            rerun_stale: bool = False) -> tuple[list[TrialSpec], int]:
    """Specs without a finished run (:func:`finished`), and how many others a live sweep is running;
    ``running`` runs whose heartbeat stopped are marked interrupted and their trials re-run.
    ``runs``: the store's runs of the specs' tasks, where already read; ``holders``, where given, gets
    config id -> who holds a trial left to another sweep (:func:`claims.claim_holder`)."""
    runs = tracking.runs_frame(uri, sorted({s.task for s in specs})) if runs is None else runs
    if runs.empty:
        return specs, 0
    done, live, dead = finished(runs, retry_failed, rerun_stale, holders)
    todo = [s for s in specs if s.config_id() not in done | live]
    todo_ids = {s.config_id() for s in todo}
    for config_id, run_id in dead:
        if config_id in todo_ids:
            tracking.set_status(uri, run_id, "interrupted", "the sweep was interrupted before this trial finished")
    if "unwritten" in runs and runs["unwritten"].any():  # tagged completed without all of its result: so marked
        for run_id, reason in runs.loc[runs["unwritten"].astype(bool), ["run_id", "tags.sb.reason"]].itertuples(False):
            tracking.set_status(uri, run_id, "interrupted", reason, failure="infrastructure")  # in the store
    return todo, sum(s.config_id() in live - done for s in specs)


def finished(runs: pd.DataFrame, retry_failed: bool = False, rerun_stale: bool = False,
             holders: dict | None = None) -> tuple[set, set, list]:
    """The config ids of ``runs`` (a store's, read) that are done, those a live sweep is running, and
    (config id, run id) of the running runs whose heartbeat stopped. A failure is done unless
    ``retry_failed`` or its worker died (re-run up to ``INFRA_ATTEMPTS`` runs); with ``rerun_stale``, a
    run made by other code than this checkout's (:mod:`provenance`) is not. Reads only."""
    tags = runs.filter(like="tags.").rename(columns=lambda c: c[len("tags."):]).to_dict("records")
    starts = (runs["start_time"].astype("int64") // 10**6).tolist()
    done, infra, live, dead = set(), {}, set(), []
    for run_id, tag, start in zip(runs["run_id"], tags, starts):
        config_id, status = tag.get("sb.config_id"), tag.get("sb.status")
        if rerun_stale and status in ("completed", "failed") and provenance.staleness(
                {k: v for k, v in tag.items() if isinstance(v, str)}):
            continue
        if status == "completed" or (status == "failed" and not retry_failed and tracking.is_done(tag)):
            done.add(config_id)
        elif status == "failed" and not retry_failed:
            infra[config_id] = infra.get(config_id, 0) + 1
        elif status == "running":
            (live.add(config_id) if claims.is_alive(tag, start) else dead.append((config_id, run_id)))
            if config_id in live and holders is not None:
                holders.setdefault(config_id, claims.claim_holder(tag, start))
    return done | {c for c, n in infra.items() if n >= tracking.INFRA_ATTEMPTS}, live, dead


COST_KEYS = ("task", "profile", "method", "sparsity", "track")


def longest_first(specs: list[TrialSpec], runs: pd.DataFrame) -> list[TrialSpec]:
    """The order to start ``specs`` in, so that a sweep does not end on a tail of long trials: first
    those the store has no time for, in the suite's order (its blocks are listed most expensive
    first), then the others longest first, by the median seconds of the same trial's completed runs
    (any seed), else of the method's on the same task and profile."""
    column, keys = "metrics.time/trial_seconds", [f"tags.sb.{k}" for k in ("status", *COST_KEYS)]
    if runs.empty or not {column, *keys} <= set(runs.columns):  # no times (or runs older than these tags)
        return specs
    done = runs[runs["tags.sb.status"] == "completed"]
    by_cell = done[column].groupby([done[f"tags.sb.{k}"] for k in COST_KEYS]).median().dropna().to_dict()
    by_method = done[column].groupby([done[f"tags.sb.{k}"] for k in COST_KEYS[:3]]).median().dropna().to_dict()

    def seconds(spec: TrialSpec) -> float | None:
        cell = (spec.task, spec.profile, spec.method, str(spec.sparsity), spec.track)
        return by_cell.get(cell, by_method.get(cell[:3]))
    known = sorted((s for s in specs if seconds(s) is not None), key=seconds, reverse=True)
    return [s for s in specs if seconds(s) is None] + known


def training_group(spec: TrialSpec) -> tuple:
    """Trials that may share trainings through the checkpoint store: the same task, profile and seed
    (the same initialization; e.g. the dense training of ``dense``, ``magnitude`` and ``lottery``, or
    the levels of lottery tickets to several targets)."""
    return spec.task, spec.profile, spec.seed


def apart_by_training(specs: list[TrialSpec], workers: int) -> list[TrialSpec]:
    """``specs`` reordered so that trials of one training group rarely run side by side (two that do
    both train what they share, since neither finds it stored): each next trial is, among the next
    ``4 * workers`` in order, the one whose group started longest ago (a group never started first;
    ties in order). One worker, or one group: the order unchanged."""
    left, started, order = list(specs), {}, []
    if workers < 2 or len({training_group(s) for s in specs}) < 2:
        return left
    while left:
        window = left[:4 * workers]
        pick = min(range(len(window)), key=lambda i: (started.get(training_group(window[i]), -1), i))
        started[training_group(window[pick])] = len(order)
        order.append(left.pop(pick))
    return order


def run_sweep(specs: list[TrialSpec], *, data_root=None, uri=None, address=None, name="sweep",
              retry_failed=False, device="cpu", plugin_roots=None, notes: dict | None = None,
              checkpoints: bool = True, apart: bool = True, trial_timeout: float | None = None,
              rerun_stale: bool = False) -> SweepSummary:
    """Run the specs without a finished run; ``notes`` (config id -> {"tags": ..., "metrics": ...})
    are recorded with a trial's result (e.g. a tuned trial's search). With ``checkpoints``, trials
    share their trainings through the checkpoint store (:mod:`sparsebench.running.checkpoints`),
    and, with ``apart``, those that may share one start apart (:func:`apart_by_training`).
    ``trial_timeout``: each trial's wall-clock limit in seconds (default: its task profile's budget).
    ``rerun_stale``: also run the specs whose runs were all made by other code (see :func:`pending`)."""
    if trial_timeout is not None and not trial_timeout > 0:
        raise ValueError(f"--trial-timeout takes a number of seconds above 0, got {trial_timeout}")
    uri = tracking.tracking_uri(uri)
    root = resolve_data_root(data_root)
    validate(specs, root)
    tracking.open_store(uri)
    runs = tracking.runs_frame(uri, sorted({s.task for s in specs}))
    holders: dict[str, str] = {}
    todo, elsewhere = pending(specs, uri, retry_failed, runs, holders, rerun_stale)
    for holder, count in collections.Counter(holders.values()).items():
        print(f"sparsebench: {count} trial{'s' * (count > 1)} left to {holder}", flush=True)
    todo = longest_first(todo, runs)
    summary = SweepSummary(len(specs), len(specs) - len(todo) - elsewhere, 0, 0, elsewhere)
    print(f"sparsebench: {len(specs)} trials, {len(todo)} to run, {summary.skipped} already done"
          + (f", {elsewhere} running in another sweep" if elsewhere else "") + f"; tracking at {uri}", flush=True)
    if not todo:
        return summary
    tasks = sorted({s.task for s in todo})
    tracking.end_dead_sweeps(uri, tasks)
    parents = tracking.start_sweep(uri, tasks, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
                                   {"trials": len(todo), "address": address or "local"})
    context = {"uri": uri, "data_root": str(root) if root else None, "parents": parents, "device": device,
               "checkpoints": checkpoints, "trial_timeout": trial_timeout, "rerun_stale": rerun_stale,
               "owner": claims.owner(),
               "hung_plugins": sorted(registry.HUNG),
               "plugin_roots": [str(p) for p in registry.plugin_roots(plugin_roots)]}
    results: list = []
    try:
        with heartbeat(lambda: tracking.beat_sweep(uri, parents)):
            results = _tune(todo, context, address, name, notes or {}, apart and checkpoints)
    finally:
        tracking.end_sweep(uri, parents, "FINISHED" if len(results) == len(todo) else "KILLED")
        # counted from the store, not from Tune's callbacks: an interrupt can stop those after a run finished
        outcomes = finished_since(todo, uri, parents)
        summary.completed = sum(o == "completed" for o in outcomes.values())
        summary.failed = sum(o == "failed" for o in outcomes.values())
        summary.elsewhere += sum(outcome == "elsewhere" for _, outcome in results)
    progress.print_results(uri, todo)  # in a terminal: the sweep's cells, ± over seeds
    return summary


def finished_since(specs: list[TrialSpec], uri: str, parents: dict[str, str]) -> dict[str, str]:
    """Config id -> "completed" or "failed" for the runs of ``specs`` under this sweep's ``parents``
    (task -> parent run id): another sweep's runs of the same trials are its own to count."""
    runs = tracking.runs_frame(uri, sorted({s.task for s in specs}))
    if runs.empty or "tags.mlflow.parentRunId" not in runs:
        return {}
    ids = {s.config_id() for s in specs}
    mine = runs[runs["tags.mlflow.parentRunId"].isin(set(parents.values())) & runs["tags.sb.config_id"].isin(ids)
                & runs["tags.sb.status"].isin(["completed", "failed"])].sort_values("start_time")
    return dict(zip(mine["tags.sb.config_id"], mine["tags.sb.status"]))


def trial_config(spec: TrialSpec, context: dict, note: dict | None = None) -> dict:
    return {"spec": spec.to_json(), "context": context, "note": note or {}}


def execute(config: dict) -> dict:
    """Run one trial from its JSON config and record it; never raises for a trial's failure."""
    import torch

    context = config["context"]
    registry.HUNG.update(context.get("hung_plugins", []))  # files whose import hung in the driver: not again
    registry.discover(context["plugin_roots"])
    spec = TrialSpec.from_json(config["spec"])
    torch.set_num_threads(max(1, int(os.environ.get("SPARSEBENCH_THREADS", "1"))))
    run = tracking.TrialRun(context["uri"], spec, spec.config_id(), {**describe(spec), **where(),
                                                                       **context.get("owner", {})},
                            context["parents"].get(spec.task))
    if rival := run.rival(context.get("rerun_stale", False)):
        run.withdraw()
        return {"status": "elsewhere", "reason": f"run {rival} of another sweep holds this trial", "run_id": rival}
    started = time.time()
    budget = context.get("trial_timeout") or registry.TASKS.get(spec.task)[0].trial_budget(spec.profile)
    owner = {f"sb.{k}": v for k, v in context.get("owner", {}).items()}
    with guard.Guard(budget, lambda elapsed: run.finish(guard.timeout_result(budget, elapsed)),  # a hung trial
                     lambda: claims.owner_dead(owner), every=min(5.0, budget / 4)):  # its driver killed
        with heartbeat(run.beat):
            result = run_with_checkpoints(spec, context["data_root"], run.log, context["device"], context["uri"],
                                          bool(context.get("checkpoints")))
    result["metrics"]["time/trial_seconds"] = time.time() - started
    note = config.get("note") or {}
    result["metrics"].update(note.get("metrics", {}))
    result["info"] = {**result.get("info", {}), **note.get("tags", {})}
    result = run.finish(result)  # as recorded: interrupted where the store could not take it
    return {"status": result["status"], "reason": result["reason"], "run_id": run.run_id,
            **{k: v for k, v in result["metrics"].items() if k.startswith(("final/", "time/trial_seconds"))}}


def where() -> dict:
    """Where a trial runs: the host and, under Ray, the node id."""
    node = ""
    try:
        import ray
        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    except Exception:  # outside Ray, or an older runtime context: the host still says where
        pass
    return records.where(node)


@contextmanager
def heartbeat(beat: Callable[[], None], every: float | None = None):
    """Call ``beat`` (a run's heartbeat) every ``every`` seconds (``claims.HEARTBEAT_S``) while the block runs."""
    stop = threading.Event()

    def beating():
        while not stop.wait(every or claims.HEARTBEAT_S):
            try:
                beat()
            except Exception:  # a missed beat is not a failure of the trial
                pass
    thread = threading.Thread(target=beating, name="sparsebench-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _tune(specs: list[TrialSpec], context: dict, address: str | None, name: str, notes: dict, apart: bool):
    import ray
    from ray import tune

    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not address and not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    def trainable(config):
        tune.report(execute({**config["trial"], "context": config["context"]}))

    def resources(config):
        task_cls, _ = registry.TASKS.get(config["trial"]["spec"]["task"])
        res = dict(task_cls.resources)
        return {"cpu": res.get("cpu", 1), "gpu": res.get("gpu", 0) if context["device"] != "cpu" else 0}

    outcomes: list[tuple[TrialSpec, str]] = []
    durations: dict[tuple, list[float]] = {}  # (task, profile) -> wall seconds of its finished trials
    started, last = time.monotonic(), [time.monotonic()]

    live = progress.Live(context["uri"], context["parents"])  # the running trials' status, in a terminal

    class Progress(tune.Callback):
        def on_step_begin(self, iteration, trials, **info):  # while trials run, not only when one ends
            live.poll()
            if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
                last[0] = time.monotonic()
                running = sum(t.status == "RUNNING" for t in trials)
                failed = sum(outcome != "completed" for _, outcome in outcomes)
                live.say(status_line(last[0] - started, running, len(outcomes), failed, len(specs),
                                     time_left(specs, outcomes, durations, running)))

        def on_trial_complete(self, iteration, trials, trial, **info):
            r, spec = trial.last_result or {}, TrialSpec.from_json(trial.config["trial"]["spec"])
            outcomes.append((spec, r.get("status", "failed")))
            if r.get("time_total_s"):
                durations.setdefault((spec.task, spec.profile), []).append(r["time_total_s"])
            _progress(len(outcomes), len(specs), spec, live.finished(spec, r), live.say)

        def on_trial_error(self, iteration, trials, trial, **info):
            spec = TrialSpec.from_json(trial.config["trial"]["spec"])
            error = trial.error_file and Path(trial.error_file).read_text().strip().splitlines()[-1]
            try:
                recorded = _record_crash(context, spec, f"worker died: {error or 'no error message'}"[:1000])
            except Exception as exc:  # a store that takes no write (a full disk): the next sweep runs it again
                recorded = f"worker died: {error}; not recorded ({tracking.first_line(exc)}): run the sweep again"
            outcomes.append((spec, "failed"))
            _progress(len(outcomes), len(specs), spec, f"failed: {recorded}", live.say)

    owns_ray = not ray.is_initialized()
    if owns_ray:  # a cluster only when asked for (--address, RAY_ADDRESS; "auto": the one `ray start` began)
        address = address or os.environ.get("RAY_ADDRESS") or "local"  # not a `ray start` cluster met by chance
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 **({"num_cpus": os.cpu_count()} if address == "local" else {}))
    try:
        if apart:
            specs = apart_by_training(specs, int(ray.cluster_resources().get("CPU", 1)))
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space={"trial": tune.grid_search([{"spec": s.to_json(), "note": notes.get(s.config_id(), {})}
                                                    for s in specs]), "context": context},
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(name=f"{name}-{int(time.time())}", verbose=0, callbacks=[Progress()],
                                      storage_path=str(Path(".sparsebench/ray").resolve()),
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
        with quiet(*RAY_NOISE):
            tuner.fit()
    finally:
        if owns_ray:
            ray.shutdown()
    return outcomes


# Ray Tune's own words on an interrupt (its Tuner.restore advice, metrics it could not fetch from trials it
# stopped): a sweep resumes by config id instead, and its summary, counted from the store, says what is left
RAY_NOISE = ("ray.tune.tune", "ray.tune.analysis.experiment_analysis")


@contextmanager
def quiet(*loggers: str):
    """Only errors from ``loggers`` while the block runs."""
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


PROGRESS_EVERY_S = 60  # seconds between status lines of a running sweep


def _progress(done: int, total: int, spec: TrialSpec, what: str, say: Callable[[str], None] = print) -> None:
    say(f"[{done}/{total}] {spec.task} {spec.method} sparsity {spec.sparsity} seed {spec.seed}: {what}".rstrip())


def _record_crash(context: dict, spec: TrialSpec, reason: str) -> str:
    """Record the trial of a worker that died as an infrastructure failure, unless it recorded its own
    end first; returns the reason recorded."""
    runs = tracking.runs_frame(context["uri"], [spec.task])
    if not runs.empty:
        ours = runs[(runs["tags.sb.config_id"] == spec.config_id())
                    & (runs.get("tags.mlflow.parentRunId") == context["parents"].get(spec.task))]  # not another sweep's
        mine = ours[ours["tags.sb.status"] == "running"]
        if not mine.empty:
            for run_id in mine["run_id"]:
                tracking.set_status(context["uri"], run_id, "failed", reason, failure="infrastructure")
            return reason
        if not ours.empty:  # the trial recorded its end before its worker ended (its guard: a timeout)
            return str(ours["tags.sb.reason"].iloc[-1])
    run = tracking.TrialRun(context["uri"], spec, spec.config_id(), describe(spec), context["parents"].get(spec.task))
    run.finish({"status": "failed", "reason": reason, "failure": "infrastructure"})
    return reason
