"""What a runs-bundle record must satisfy before anything of its bundle is written to a store: the
checks that need no re-run (those that do are :mod:`sparsebench.running.verify`'s).

A record has a run id, a status, its spec, config id, plugin versions and code version; the config
id is the hash of its spec and versions, and its params and tags name the same trial as its spec. A
completed record carries its test metric together with the run that produced it (sparsity counted,
cost counted, per-epoch validation, layers), and a failed one its reason. Every metric value is a
finite number in its range (an accuracy in [0, 100], a perplexity at least 1, a sparsity or density
in [0, 1], costs, counts and times at least 0), and the sparsities agree with the per-layer counts
they are computed from. Among the records of a bundle and the runs of the store, two completed runs
of one config id made by the same code on the same kind of processor carry the same results: a
second run that carries others is a conflict (a tampered copy or a broken determinism), never an
extra seed.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict

from sparsebench.core import registry
from sparsebench.running.records import COMPLETED_METRICS, BundleError, result_metrics  # noqa: F401 (the API)
from sparsebench.running.trial import config_hash

REQUIRED_TAGS = ("sb.config_id", "sb.spec", "sb.status", "sb.code_version", "sb.method_version",
                 "sb.task_version", "sb.metric")
FRACTIONS = ("final/sparsity", "final/effective_sparsity", "final/sparsity_target", "final/group_sparsity",
             "train/density", "inference/flops_rel")
NON_NEGATIVE = ("cost/", "params/", "time/", "inference/", "collapse/", "checkpoints/", "calibration/")
SPARSITY_SLACK = {"final/sparsity": ("density", 1e-6), "final/effective_sparsity": ("effective_density", 1e-4)}


def deterministic(key: str) -> bool:
    """Whether a metric is a pure function of the trial's code and spec on one kind of processor
    (times, latencies, speedups and the checkpoint cache's hits are not; a tuned run's ``tuning/`` notes
    come from its search, not from the trial)."""
    return (not key.startswith(("time/", "checkpoints/", "tuning/")) and "latency" not in key
            and "speedup" not in key)


def check(record: dict) -> str | None:
    """Raise ``BundleError`` if ``record`` is malformed, inconsistent or impossible; return why it is
    not current in this checkout (unknown plugin, other version), or None if it is."""
    where = f"run {record.get('run_id', '?')}"
    for key in ("run_id", "run_name", "start_time", "params", "tags", "metrics", "history"):
        if key not in record:
            raise BundleError(f"{where}: the record has no {key!r}")
    tags, metrics = record["tags"], record["metrics"]
    missing = [t for t in REQUIRED_TAGS if t not in tags]
    if missing:
        raise BundleError(f"{where}: the record has no tag {', '.join(missing)}")
    try:
        spec = json.loads(tags["sb.spec"])
    except json.JSONDecodeError:
        raise BundleError(f"{where}: sb.spec is not JSON") from None
    if config_hash(spec, tags["sb.method_version"], tags["sb.task_version"]) != tags["sb.config_id"]:
        raise BundleError(f"{where}: config id {tags['sb.config_id']} is not the hash of its spec and versions")
    for key in ("task", "method", "profile", "seed", "sparsity"):
        named = {str(spec.get(key)), str(record["params"].get(key, spec.get(key))), str(tags.get(f"sb.{key}", spec.get(key)))}
        if len(named) > 1:
            raise BundleError(f"{where}: its spec, params and tags name different {key}s ({', '.join(sorted(named))})")
    check_values(where, record, tags["sb.metric"])
    status, test = tags["sb.status"], f"final/test_{tags['sb.metric']}"
    tuning = spec.get("track") == "tuning"
    if tuning and test in metrics:
        raise BundleError(f"{where}: a tuning run with a test {tags['sb.metric']} (tuning sees validation only)")
    if status == "completed":
        absent = [m for m in result_metrics(tags["sb.metric"], tuning) if m not in metrics]
        if absent:
            raise BundleError(f"{where}: a completed run without {', '.join(absent)}")
        if not record["history"].get(f"val/{tags['sb.metric']}") or not record.get("layers"):
            raise BundleError(f"{where}: a test {tags['sb.metric']} without the run that produced it "
                              "(per-epoch validation and layers.json)")
        check_sparsity(where, metrics, record["layers"])
    elif status == "failed":
        if not tags.get("sb.reason"):
            raise BundleError(f"{where}: a failed run without its reason")
        if test in metrics:
            raise BundleError(f"{where}: a failed run with a test {tags['sb.metric']}")
    else:
        raise BundleError(f"{where}: status {status!r} is not a result (completed or failed)")
    for reg, name, version in ((registry.METHODS, spec.get("method"), tags["sb.method_version"]),
                               (registry.TASKS, spec.get("task"), tags["sb.task_version"])):
        if name not in reg.entries:
            return f"of unknown {reg.kind}s"
        if reg.version(name, spec.get("profile")) != version:
            return f"of other {reg.kind} versions"
    return None


def check_values(where: str, record: dict, metric: str) -> None:
    """Every metric value (final and per epoch) a finite number within its range."""
    values = [(k, v) for k, v in record["metrics"].items()]
    for key, points in record["history"].items():
        if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
            raise BundleError(f"{where}: the history of {key} is not a list of [step, value] pairs")
        values += [(key, v) for _, v in points]
    for key, value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BundleError(f"{where}: {key} is {value!r}, not a finite number")
        low, high = value_range(key, metric)
        if not low <= value <= high:
            raise BundleError(f"{where}: {key} = {value} is outside [{low}, {high}]")


def value_range(key: str, metric: str) -> tuple[float, float]:
    """The values a metric can take."""
    name = key.rsplit("/", 1)[-1]
    if name in (f"test_{metric}", f"val_{metric}", metric, "chance", "best_val"):
        return (0.0, 100.0) if metric == "accuracy" else (1.0, math.inf) if metric == "perplexity" else (-math.inf, math.inf)
    if key in FRACTIONS:
        return 0.0, 1.0
    if key.startswith(NON_NEGATIVE):
        return 0.0, math.inf
    return -math.inf, math.inf


def check_sparsity(where: str, metrics: dict, layers: dict) -> None:
    """The sparsities a run reports agree with its per-layer densities (they are counted from them)."""
    try:
        total = sum(layer["params"] for layer in layers.values())
        for key, (field, slack) in SPARSITY_SLACK.items():
            counted = 1.0 - sum(layer[field] * layer["params"] for layer in layers.values()) / total
            if abs(counted - metrics[key]) > slack:
                raise BundleError(f"{where}: {key} = {metrics[key]} but its layers count {counted:.6f}")
    except (KeyError, TypeError, ZeroDivisionError, AttributeError):
        raise BundleError(f"{where}: layers.json is malformed") from None


def maker(tags: dict) -> tuple:
    """Who made a run: its code (digests, else the code version) and the kind of processor."""
    code = tuple(tags.get(f"sb.code.{k}") for k in ("method", "task", "harness"))
    return (code if all(code) else tags.get("sb.code_version")), tags.get("sb.cpu", "")


def conflicts(records: list[dict]) -> list[str]:
    """Config ids that have two completed runs (two run ids) by the same maker whose deterministic
    final results differ (compared on the metrics both record)."""
    seen: dict[tuple, dict] = {}
    found = defaultdict(set)
    for record in records:
        tags = record["tags"]
        if tags.get("sb.status") != "completed":
            continue
        key = (tags["sb.config_id"], maker(tags))
        results = {k: v for k, v in record["metrics"].items() if deterministic(k)}
        first = seen.setdefault(key, {"run_id": record["run_id"], "results": results})
        differ = sorted(k for k in results.keys() & first["results"].keys() if results[k] != first["results"][k])
        if first["run_id"] != record["run_id"] and differ:
            found[tags["sb.config_id"]].add(f"runs {first['run_id']} and {record['run_id']} differ in "
                                            f"{', '.join(differ[:3])}")
    return [f"config id {c}: {'; '.join(sorted(why))}" for c, why in found.items()]
