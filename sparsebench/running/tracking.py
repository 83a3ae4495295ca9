"""MLflow: every trial is a run; the runs are the one source of truth. (The only module that
imports mlflow.)

Experiments are named ``sparsebench/<task>``; runs ``<method>-s<sparsity>-seed<seed>``, nested
under one parent run per sweep and task. Params hold the spec and the resolved hyperparameters;
tags hold the config id, code version, status (``running``, ``completed``, ``failed``,
``interrupted``) and failure reason, the metric's name and direction, the method's taxonomy;
``final/...`` metrics hold the result, ``layers.json`` the per-layer densities.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # reading layers.json run by run: no bars

import mlflow  # noqa: E402
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from sparsebench.running import records, store_checks
from sparsebench.running.figures import layer_densities_svg
from sparsebench.running.claims import is_alive, owner, owner_dead  # noqa: F401 (the claims a run's tags make)
from sparsebench.running.records import (INFRA_ATTEMPTS, UNWRITTEN, code_version, is_done,  # noqa: F401
                                         is_tuning_spec, result_metrics, unwritten)
from sparsebench.errors import StoreError

EXPERIMENT_PREFIX = "sparsebench/"
TERMINAL = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


def tracking_uri(uri: str | None = None) -> str:
    """``uri``, else ``MLFLOW_TRACKING_URI``, else a SQLite file ``mlflow.db`` in the working directory."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def open_store(uri: str) -> str:
    """Make the store at ``uri`` ready before anything is run or read, and return ``uri``.

    A SQLite file is created and migrated by one process at a time, under a lock beside it (two
    sweeps starting on a fresh file otherwise race in MLflow's schema migration and leave it
    half-migrated), and a half-migrated file is refused with the way out; so is a folder that cannot be
    written or whose disk is nearly full (``STORE_MIN_FREE_MB``). A tracking server must answer within
    seconds (MLflow's client would retry for minutes), and answer as MLflow does."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.parent.is_dir():
            raise StoreError(f"cannot create the MLflow store {path}: folder {path.parent} does not exist")
        lock = store_checks.open_lock(path)
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            store_checks.refuse_half_migrated(path)
            try:
                MlflowClient(uri).search_experiments(max_results=1)  # creates and migrates the schema
            except Exception as exc:
                raise StoreError(f"cannot open the MLflow store {path}: {type(exc).__name__}: {exc}"
                                 f"{store_checks.WAY_OUT.format(path=path)}") from None
    elif uri.startswith(("http://", "https://")):
        store_checks.probe_server(uri)
    READY.add(uri)
    return uri


READY: set[str] = set()  # stores this process has opened


def store_client(uri: str) -> MlflowClient:
    """A client of the store at ``uri``, opened (:func:`open_store`) the first time in this process."""
    if uri not in READY:
        open_store(uri)
    return MlflowClient(uri)


def experiment(client: MlflowClient, task: str) -> str:
    name = EXPERIMENT_PREFIX + task
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    uri = client.tracking_uri
    artifacts = None
    if uri.startswith("sqlite:///"):  # keep artifacts beside the database, not in the working directory
        artifacts = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    try:  # a model-training experiment, not a GenAI one, for MLflow 3's experiment-kind selector
        return client.create_experiment(name, artifact_location=artifacts,
                                        tags={"mlflow.experimentKind": "custom_model_development"})
    except mlflow.exceptions.MlflowException:  # created meanwhile by another worker
        return client.get_experiment_by_name(name).experiment_id


def start_sweep(uri: str, tasks: list[str], name: str, params: dict) -> dict[str, str]:
    """One parent run per task for this sweep; returns task -> parent run id."""
    client = store_client(uri)
    parents = {}
    for task in tasks:
        run = client.create_run(experiment(client, task), run_name=name,
                                tags={"sb.kind": "sweep", "sb.code_version": code_version(),
                                      "sb.heartbeat": str(int(time.time())),
                                      **{f"sb.{k}": v for k, v in owner().items()}})
        client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        parents[task] = run.info.run_id
    return parents


def beat_sweep(uri: str, parents: dict[str, str]) -> None:
    """Say that the sweep owning ``parents`` is alive (see :func:`end_dead_sweeps`)."""
    client = store_client(uri)
    for run_id in parents.values():
        client.set_tag(run_id, "sb.heartbeat", str(int(time.time())))


def end_sweep(uri: str, parents: dict[str, str], status: str = "FINISHED") -> None:
    """End the sweep's parent runs; where the store cannot take it (a full disk), say so and leave
    them to the next sweep (:func:`end_dead_sweeps`): the sweep still ends with its summary."""
    client = store_client(uri)
    try:
        for run_id in parents.values():
            client.set_terminated(run_id, status)
    except Exception as exc:
        print(f"sparsebench: warning: the sweep's parent runs were not ended: {first_line(exc)}", file=sys.stderr)


def first_line(exc: Exception) -> str:
    """``exc`` in one line (MLflow's database errors go on with SQLAlchemy's notes and the SQL)."""
    lines = [line for line in str(exc).strip().splitlines() if not line.startswith("(raised as a result of")]
    return f"{type(exc).__name__}: {(lines or [''])[0]}"


def end_dead_sweeps(uri: str, tasks: list[str]) -> int:
    """End as KILLED the parent runs of the tasks' sweeps whose driver died (killed, machine lost)
    without ending them; returns how many."""
    client = store_client(uri)
    experiments = [e.experiment_id for t in tasks if (e := client.get_experiment_by_name(EXPERIMENT_PREFIX + t))]
    if not experiments:
        return 0
    dead = [run for run in client.search_runs(experiments, "tags.`sb.kind` = 'sweep' and attributes.status = 'RUNNING'",
                                              max_results=10000)
            if not is_alive(run.data.tags, run.info.start_time)]
    for run in dead:
        client.set_terminated(run.info.run_id, "KILLED")
    return len(dead)


class TrialRun:
    """The MLflow run of one trial, opened when the trial starts."""

    def __init__(self, uri: str, spec, config_id: str, describe: dict, parent_id: str | None = None):
        self.client = store_client(uri)
        tags = {**records.start_tags(spec, config_id, describe), "sb.heartbeat": str(int(time.time()))}
        if parent_id:
            tags[MLFLOW_PARENT_RUN_ID] = parent_id
        run = self.client.create_run(experiment(self.client, spec.task), run_name=spec.run_name, tags=tags)
        self.run_id, self.uri, self.start_time = run.info.run_id, uri, run.info.start_time
        self.refused: Exception | None = None  # the first write the store refused while the trial ran
        self.experiment_id, self.config_id = run.info.experiment_id, config_id
        params = records.start_params(spec, config_id)
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in params.items()])

    def beat(self) -> None:
        """Say that this run's worker is alive (a run whose heartbeat stops is reclaimed)."""
        store_client(self.uri).set_tag(self.run_id, "sb.heartbeat", str(int(time.time())))

    def rival(self, rerun_stale: bool = False) -> str | None:
        """The id of a run that holds this trial instead of this one: finished (with ``rerun_stale``,
        by this checkout's code), or running (with a live heartbeat) and claimed first. Claims are
        taken by creating the run and then looking: of two live claims the earlier one (by start
        time, then id) wins, as both sides see."""
        from sparsebench.running import provenance
        client = store_client(self.uri)
        for other in client.search_runs([self.experiment_id], f"tags.`sb.config_id` = '{self.config_id}'",
                                        max_results=1000):
            tags = other.data.tags
            if other.info.run_id == self.run_id or tags.get("sb.kind") != "trial":
                continue
            whole = (is_done(tags) and not unwritten(tags, other.data.metrics)
                     and not (rerun_stale and provenance.staleness(tags)))
            if whole or (tags.get("sb.status") == "running" and is_alive(tags, other.info.start_time)
                         and (other.info.start_time, other.info.run_id) < (self.start_time, self.run_id)):
                return other.info.run_id
        return None

    def withdraw(self) -> None:
        """Give the trial up to its rival: this run is deleted, not recorded as a result."""
        store_client(self.uri).delete_run(self.run_id)

    def log(self, metrics: dict, step: int) -> None:
        """Record per-epoch metrics; a write the store refuses (a full disk) is no failure of the
        method: the trial goes on, and :meth:`finish` records it as not written whole."""
        try:
            self._write(metrics, step)
        except Exception as exc:
            self.refused = self.refused or exc

    def _write(self, metrics: dict, step: int) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def finish(self, result: dict) -> dict:
        """Record the result (params, metrics, ``layers.json``, traceback), then its status and
        reason, last: a run tagged completed holds all it records. Returns the result as recorded;
        never raises. Where the store refuses a write (a full disk, a store gone), the run is marked
        interrupted, an infrastructure failure with the reason, so that the next sweep runs the trial
        again (where even that cannot be written, it stays ``running`` until its claim lapses)."""
        try:
            if self.refused is not None:  # a per-epoch metric is missing
                raise self.refused
            self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in records.finish_params(result).items()])
            self._write(records.recorded_metrics(result), step=0)
            if result.get("layers"):
                log_layers(self.client, self.run_id, result["layers"])
            if result.get("traceback"):
                self.client.log_text(self.run_id, result["traceback"], "traceback.txt")
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in records.finish_tags(result).items()])
        except Exception as exc:
            reason = f"the store could not take the result ({first_line(exc)}); run the sweep again"
            try:
                set_status(self.uri, self.run_id, "interrupted", reason[:1000], failure="infrastructure")
            except Exception:  # the run stays ``running``: its claim lapses, and the trial is run again
                pass
            return {**result, "status": "interrupted", "reason": reason}
        try:
            self.client.set_terminated(self.run_id, TERMINAL[result["status"]])
        except Exception:  # recorded whole already: the run's MLflow state is only for its UI
            pass
        return result


def runs_frame(uri: str, experiments: list[str] | None = None) -> pd.DataFrame:
    """All trial runs of sparsebench experiments (or the named tasks), one row each."""
    client = store_client(uri)
    names = [EXPERIMENT_PREFIX + t for t in experiments] if experiments else None
    exps = [e for e in client.search_experiments() if e.name.startswith(EXPERIMENT_PREFIX)
            and (names is None or e.name in names)]
    if not exps:
        return pd.DataFrame()
    mlflow.set_tracking_uri(uri)
    return _unwritten_as_interrupted(mlflow.search_runs([e.experiment_id for e in exps], output_format="pandas",
                                                        filter_string="tags.`sb.kind` = 'trial'"))


def _unwritten_as_interrupted(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with those tagged completed but not whole (:func:`unwritten`) read as interrupted
    infrastructure failures with the reason, and marked in the column ``unwritten``."""
    if runs.empty or "tags.sb.status" not in runs:
        return runs
    runs = runs.assign(unwritten=False)
    done = runs[runs["tags.sb.status"] == "completed"]
    kinds = pd.DataFrame({"metric": done.get("tags.sb.metric", pd.Series(None, index=done.index, dtype=object)),
                          "tuning": done.get("tags.sb.spec", pd.Series(None, index=done.index, dtype=object)).map(is_tuning_spec)})
    lacks = pd.Series("", index=done.index)
    for (metric, tuning), rows in kinds.fillna({"metric": "None"}).groupby(["metric", "tuning"]).groups.items():
        for key in result_metrics(None if metric == "None" else metric, tuning):
            column = f"metrics.{key}"
            absent = rows if column not in runs else rows[runs.loc[rows, column].isna().to_numpy()]
            lacks[absent] += ", " + key
    bad = lacks.index[lacks != ""]
    if len(bad):
        runs.loc[bad, ["tags.sb.status", "tags.sb.failure", "unwritten"]] = ["interrupted", "infrastructure", True]
        runs.loc[bad, "tags.sb.reason"] = [UNWRITTEN.format(text[2:]) for text in lacks[bad]]
    return runs


def set_status(uri: str, run_id: str, status: str, reason: str, failure: str = "") -> None:
    """Mark a run as ``failed`` (``failure``: "method" or "infrastructure") or ``interrupted``
    with its reason, and end it."""
    client = store_client(uri)
    client.log_batch(run_id, tags=[RunTag("sb.status", status), RunTag("sb.reason", reason[:5000]),
                                   RunTag("sb.failure", failure)])
    client.set_terminated(run_id, TERMINAL[status])


# --- the runs bundle: trial runs as plain records (see :mod:`sparsebench.running.bundle`) ---------

ORIGIN = "sb.origin_run_id"  # on an imported run: the run id it had in the store it was exported from
FINISHED = {"completed", "failed"}


def origin_id(run) -> str:
    """The id a run is known by in every store: its origin's, else its own."""
    return run.data.tags.get(ORIGIN, run.info.run_id)


def trial_runs(uri: str) -> list:
    """Every finished trial run (completed, and whole: :func:`unwritten`; or failed) of the sparsebench
    experiments."""
    client = store_client(uri)
    exps = [e.experiment_id for e in client.search_experiments() if e.name.startswith(EXPERIMENT_PREFIX)]
    if not exps:
        return []
    runs = client.search_runs(exps, "tags.`sb.kind` = 'trial'", max_results=50_000)
    return [r for r in runs if r.data.tags.get("sb.status") in FINISHED and not unwritten(r.data.tags, r.data.metrics)]


def run_layers(client: MlflowClient | str, run_id: str) -> dict | None:
    """A run's ``layers.json`` (per-layer shape, density, effective density, dead units), if it has one."""
    client = store_client(client) if isinstance(client, str) else client
    if not any(f.path == "layers.json" for f in client.list_artifacts(run_id)):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(run_id, "layers.json", tmp)).read_text())


def export_records(uri: str) -> list[dict]:
    """Each finished trial run as a record: ids, times, params, tags, final metrics, per-epoch
    metrics and ``layers.json``."""
    client = store_client(uri)
    records = []
    for run in trial_runs(uri):
        info, data = run.info, run.data
        history = {}
        for key in data.metrics:
            points = client.get_metric_history(info.run_id, key)
            if any(m.step != 0 for m in points) or len(points) > 1:
                history[key] = sorted([m.step, m.value] for m in points)
        layers = run_layers(client, info.run_id)
        records.append({
            "run_id": origin_id(run), "run_name": info.run_name, "start_time": info.start_time,
            "end_time": info.end_time, "params": dict(data.params),
            "tags": {k: v for k, v in data.tags.items() if not k.startswith("mlflow.") and k != ORIGIN},
            "metrics": {k: v for k, v in data.metrics.items() if k not in history},
            "history": history, "layers": layers})
    return records


def known_run_ids(uri: str) -> set[str]:
    """Origin ids of the trial runs a store holds, so that an import never duplicates one."""
    return {origin_id(r) for r in trial_runs(uri)}


def trial_records(uri: str) -> list[dict]:
    """The store's finished trial runs as records of ids, tags and final metrics (without the
    history and layers that :func:`export_records` reads run by run)."""
    return [{"run_id": origin_id(r), "tags": dict(r.data.tags), "metrics": dict(r.data.metrics)}
            for r in trial_runs(uri)]


def delete_runs(uri: str, run_ids: list[str]) -> None:
    """Delete runs (an import that failed part-way takes back what it wrote)."""
    client = store_client(uri)
    for run_id in run_ids:
        client.delete_run(run_id)


@contextmanager
def store_lock(uri: str, name: str):
    """Hold a lock named ``name`` on a SQLite store (a file beside it) for the block; on a tracking
    server, nothing: MLflow's REST API has no lock (run one import at a time against a server)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri[len("sqlite:///"):])
    with open(path.with_name(f"{path.name}.{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def log_layers(client: MlflowClient, run_id: str, layers: dict) -> None:
    """A run's ``layers.json`` and its figure, ``layers.svg``."""
    client.log_dict(run_id, layers, "layers.json")
    client.log_text(run_id, layer_densities_svg(layers), "layers.svg")


def import_record(uri: str, record: dict) -> str:
    """Write one record as a new run of the store (tagged with its origin id); returns the new id."""
    client = store_client(uri)
    tags = {**record["tags"], ORIGIN: record["run_id"]}
    run = client.create_run(experiment(client, record["params"]["task"]), start_time=record["start_time"],
                            run_name=record["run_name"], tags=tags)
    run_id, when = run.info.run_id, record["start_time"]
    metrics = [Metric(k, float(v), when, 0) for k, v in record["metrics"].items()]
    metrics += [Metric(k, float(v), when, int(step)) for k, points in record["history"].items() for step, v in points]
    params = [Param(k, v) for k, v in record["params"].items()]
    for i in range(max(len(params) // 100, len(metrics) // 1000) + 1):  # at most 100 params, 1000 metrics a batch
        client.log_batch(run_id, params=params[i * 100:(i + 1) * 100], metrics=metrics[i * 1000:(i + 1) * 1000])
    if record.get("layers"):
        log_layers(client, run_id, record["layers"])
    client.set_terminated(run_id, TERMINAL[record["tags"]["sb.status"]], end_time=record["end_time"])
    return run_id
