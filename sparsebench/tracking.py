"""MLflow: every trial is a run; the runs are the one source of truth. (The only module that
imports mlflow.)

Experiments are named ``sparsebench/<task>``; runs ``<method>-s<sparsity>-seed<seed>``, nested
under one parent run per sweep and task. Params hold the spec and the resolved hyperparameters;
tags hold the config id, code version, status (``running``, ``completed``, ``failed``,
``interrupted``) and failure reason, the metric's name and direction, the method's taxonomy;
``final/...`` metrics hold the result, ``layers.json`` the per-layer densities.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from .registry import PROJECT_ROOT

EXPERIMENT_PREFIX = "sparsebench/"
TERMINAL = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


def tracking_uri(uri: str | None = None) -> str:
    """``uri``, else ``MLFLOW_TRACKING_URI``, else a SQLite file ``mlflow.db`` in the working directory."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def code_version() -> str:
    """The git commit of the harness (with ``-dirty`` for local changes), else the package version."""
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        return rev or "unknown"
    except (OSError, subprocess.SubprocessError):
        from . import __version__
        return __version__


def _experiment(client: MlflowClient, task: str) -> str:
    name = EXPERIMENT_PREFIX + task
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    uri = client.tracking_uri
    artifacts = None
    if uri.startswith("sqlite:///"):  # keep artifacts beside the database, not in the working directory
        artifacts = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except mlflow.exceptions.MlflowException:  # created meanwhile by another worker
        return client.get_experiment_by_name(name).experiment_id


def start_sweep(uri: str, tasks: list[str], name: str, params: dict) -> dict[str, str]:
    """One parent run per task for this sweep; returns task -> parent run id."""
    client = MlflowClient(uri)
    parents = {}
    for task in tasks:
        run = client.create_run(_experiment(client, task), run_name=name,
                                tags={"sb.kind": "sweep", "sb.code_version": code_version()})
        client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        parents[task] = run.info.run_id
    return parents


def end_sweep(uri: str, parents: dict[str, str], status: str = "FINISHED") -> None:
    client = MlflowClient(uri)
    for run_id in parents.values():
        client.set_terminated(run_id, status)


class TrialRun:
    """The MLflow run of one trial, opened when the trial starts."""

    def __init__(self, uri: str, spec, config_id: str, describe: dict, parent_id: str | None = None):
        self.client = MlflowClient(uri)
        tags = {"sb.config_id": config_id, "sb.status": "running", "sb.code_version": code_version(),
                "sb.kind": "trial", **{f"sb.{k}": str(v) for k, v in describe.items()},
                # the spec again as tags, so that the MLflow UI shows and filters them as columns
                "sb.task": spec.task, "sb.profile": spec.profile, "sb.method": spec.method,
                "sb.sparsity": str(spec.sparsity), "sb.seed": str(spec.seed)}
        if parent_id:
            tags[MLFLOW_PARENT_RUN_ID] = parent_id
        run = self.client.create_run(_experiment(self.client, spec.task), run_name=spec.run_name, tags=tags)
        self.run_id = run.info.run_id
        params = {"task": spec.task, "profile": spec.profile, "method": spec.method,
                  "sparsity": spec.sparsity, "seed": spec.seed, "config_id": config_id}
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def log(self, metrics: dict, step: int) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def finish(self, result: dict) -> None:
        """Record the result, its status and reason, and end the run."""
        params = [Param(f"hp.{k}", str(v)) for k, v in result.get("hparams", {}).items()]
        tags = [RunTag("sb.status", result["status"]), RunTag("sb.reason", result.get("reason", "")[:5000])]
        tags += [RunTag(f"sb.{k}", str(v)) for k, v in result.get("info", {}).items()]
        self.client.log_batch(self.run_id, params=params, tags=tags)
        self.log(result.get("metrics", {}), step=0)
        if result.get("layers"):
            self.client.log_dict(self.run_id, result["layers"], "layers.json")
        if result.get("traceback"):
            self.client.log_text(self.run_id, result["traceback"], "traceback.txt")
        self.client.set_terminated(self.run_id, TERMINAL[result["status"]])


def runs_frame(uri: str, experiments: list[str] | None = None) -> pd.DataFrame:
    """All trial runs of sparsebench experiments (or the named tasks), one row each."""
    client = MlflowClient(uri)
    names = [EXPERIMENT_PREFIX + t for t in experiments] if experiments else None
    exps = [e for e in client.search_experiments() if e.name.startswith(EXPERIMENT_PREFIX)
            and (names is None or e.name in names)]
    if not exps:
        return pd.DataFrame()
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs([e.experiment_id for e in exps], filter_string="tags.`sb.kind` = 'trial'",
                              output_format="pandas")


def set_status(uri: str, run_id: str, status: str, reason: str) -> None:
    """Mark a run as ``failed`` or ``interrupted`` with its reason, and end it."""
    client = MlflowClient(uri)
    client.set_tag(run_id, "sb.status", status)
    client.set_tag(run_id, "sb.reason", reason[:5000])
    client.set_terminated(run_id, TERMINAL[status])
