"""What a trial's run records, as plain data: its params and tags when it starts and ends, and its
runs-bundle record when it ran outside any store (:mod:`sparsebench.running.standalone`).

One source for both ways a trial is recorded, so that a trial run through Ray Tune into MLflow and
exported, and one run by plain processes and imported, are the same record. No MLflow or Ray here.
"""
from __future__ import annotations

import json
import platform
import socket
import subprocess
import uuid
from pathlib import Path

from sparsebench.core import registry
from sparsebench.core.registry import PROJECT_ROOT
from sparsebench.running import provenance


INFRA_ATTEMPTS = 3   # runs of a trial whose worker died before its failure is kept as a result


COMPLETED_METRICS = ("final/sparsity", "final/effective_sparsity", "cost/train_steps", "cost/train_cost_rel")
UNWRITTEN = "the result was not all written (no {}): a write failed; run the sweep again"


def unwritten(tags: dict, metrics) -> list[str]:
    """What a run tagged completed lacks of its result (:func:`result_metrics`); empty for a whole
    result, and for other statuses. A run that lacks any (written by older code, which tagged it
    completed first) is no result: never exported or shown, and run again
    (:func:`sparsebench.running.sweep.pending` marks it interrupted)."""
    if tags.get("sb.status") != "completed":
        return []
    return [m for m in result_metrics(tags.get("sb.metric"), is_tuning_spec(tags.get("sb.spec"))) if m not in metrics]


def result_metrics(metric: str | None, tuning: bool) -> tuple[str, ...]:
    """What every completed run holds: its result (``final/test_<metric>``, on the tuning track
    ``final/val_<metric>``) and ``COMPLETED_METRICS``."""
    return (f"final/{'val' if tuning else 'test'}_{metric}", *COMPLETED_METRICS)


def is_tuning_spec(spec: str | None) -> bool:
    """Whether a run's ``sb.spec`` tag is of the tuning track."""
    try:
        return json.loads(spec or "{}").get("track") == "tuning"
    except (TypeError, AttributeError, json.JSONDecodeError):
        return False


def is_done(tags: dict) -> bool:
    """A finished result: completed, or failed by the method (an infrastructure failure is re-run)."""
    return tags.get("sb.status") == "completed" or (tags.get("sb.status") == "failed"
                                                    and tags.get("sb.failure") != "infrastructure")


def code_version() -> str:
    """The git commit of the harness (with ``-dirty`` for local changes), else the package version."""
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        return rev or "unknown"
    except (OSError, subprocess.SubprocessError):
        from sparsebench import __version__
        return __version__


def cpu_name() -> str:
    """The kind of processor this runs on (``model name`` of ``/proc/cpuinfo``, else what Python knows)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def describe(spec) -> dict:
    """Tags of a trial that the leaderboard needs without the plugins: taxonomy, versions and metric."""
    method_cls, _ = registry.METHODS.get(spec.method)
    task_cls, _ = registry.TASKS.get(spec.task)
    return {"when": method_cls.when, "criterion": method_cls.criterion, "structure": method_cls.structure,
            "family": task_cls.family,
            "method_version": method_cls.version, "task_version": registry.TASKS.version(spec.task, spec.profile),
            "dataset": task_cls.dataset, "metric": task_cls.metric.name,
            "higher_is_better": task_cls.metric.higher_is_better,
            "exact_sparsity": method_cls.exact_sparsity}


def start_params(spec, config_id: str) -> dict[str, str]:
    return {k: str(v) for k, v in {"task": spec.task, "profile": spec.profile, "method": spec.method,
                                   "sparsity": spec.sparsity, "seed": spec.seed, "config_id": config_id}.items()}


def start_tags(spec, config_id: str, described: dict) -> dict[str, str]:
    """A trial run's tags when it starts (``described``: :func:`describe` and where it runs)."""
    tags = {"sb.config_id": config_id, "sb.status": "running", "sb.code_version": code_version(),
            "sb.spec": json.dumps(spec.to_json(), sort_keys=True),
            "sb.kind": "trial", **{f"sb.{k}": str(v) for k, v in described.items()},
            # the spec again as tags, so that the MLflow UI shows and filters them as columns
            "sb.task": spec.task, "sb.profile": spec.profile, "sb.method": spec.method,
            "sb.sparsity": str(spec.sparsity), "sb.seed": str(spec.seed), "sb.track": spec.track,
            **provenance.tags(spec.method, spec.task, spec.profile)}
    if spec.study:
        tags["sb.study"] = spec.study
    return tags


def finish_params(result: dict) -> dict[str, str]:
    return {f"hp.{k}": str(v) for k, v in result.get("hparams", {}).items()}


def finish_tags(result: dict) -> dict[str, str]:
    """A trial run's tags when it ends: status, reason, failure kind, collapse, the result's info."""
    return {"sb.status": result["status"], "sb.reason": result.get("reason", "")[:5000],
            "sb.failure": result.get("failure", "method") if result["status"] == "failed" else "",
            "sb.collapse": result.get("collapse", ""),
            **{f"sb.{k}": str(v) for k, v in result.get("info", {}).items()}}


def where(node: str = "") -> dict:
    """Where a trial runs: the host and, under Ray, the node id (tags ``sb.host``, ``sb.node``)."""
    return {"host": socket.gethostname(), "node": node}


def recorded_metrics(result: dict) -> dict:
    """The metrics a trial's run records: those of its result, less the test metric of a failed one
    (a trial can fail after its test, e.g. with its N:M pattern broken; a failed run shows no result)."""
    failed = result.get("status") == "failed"
    return {k: v for k, v in result.get("metrics", {}).items() if not (failed and k.startswith("final/test_"))}


def bundle_record(spec, result: dict, history: dict[str, list], start_ms: int, end_ms: int,
                  described: dict) -> dict:
    """The runs-bundle record of a trial run outside a store: what exporting its MLflow run writes
    (a metric logged per epoch and again at the end is history, its final value at step 0)."""
    config_id = spec.config_id()
    history = {k: [list(p) for p in points] for k, points in history.items()}
    metrics = {}
    for key, value in recorded_metrics(result).items():
        if key in history:
            history[key] = sorted(history[key] + [[0, value]])
        else:
            metrics[key] = value
    tags = {**start_tags(spec, config_id, described), **finish_tags(result)}
    return {"run_id": uuid.uuid4().hex, "run_name": spec.run_name, "start_time": start_ms, "end_time": end_ms,
            "params": {**start_params(spec, config_id), **finish_params(result)}, "tags": tags,
            "metrics": metrics, "history": history, "layers": result.get("layers") or None}


class BundleError(ValueError):
    """A bundle that cannot be imported as it is; nothing of it was written."""


def read_file(path: Path) -> list[dict]:
    """The records of one ``.jsonl`` file of a runs bundle."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BundleError(f"{path}:{number}: not a JSON record ({exc.msg})") from None
        if not isinstance(record, dict):
            raise BundleError(f"{path}:{number}: a record is a JSON object")
        records.append(record)
    return records


def bundle_line(record: dict) -> str:
    """A record as one JSON line of a runs bundle: keys sorted, so that a diff shows what changed,
    except the layers, which keep the order the run listed them in (the model's)."""
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v, sort_keys=k != 'layers', separators=(',', ':'))}"
                          for k, v in sorted(record.items())) + "}"
