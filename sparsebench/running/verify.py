"""Verification: a result counts once it reproduces. ``sparsebench verify`` re-runs a seeded random
sample of a bundle's runs on this machine and compares every recorded result with the re-run;
``sparsebench compare`` sets a store's results (those ``make bench`` made here) beside a bundle's.

The re-runs are trials in plain processes (:mod:`sparsebench.running.standalone`) writing to a
scratch folder, never to the user's store, and without the checkpoint cache (reuse changes no
result, and a corrupt cache cannot vouch for itself). Compared are the deterministic results
(:func:`sparsebench.running.bundle_checks.deterministic`: final metrics, costs, counts, FLOPs, and
the per-epoch validation), not times or latencies.

- On the **same kind of processor** as the record names (``sb.cpu``), a trial is a pure function of
  its spec and code: every value must be equal to the last bit.
- On **another kind** (or a record that names none), other kernels round differently and a short
  training amplifies it like a change of seed (ResNet-20 ``quick``, dense: 34.86 % on an AMD EPYC,
  34.33 % on an Intel Xeon). So a value agrees when it differs by at most twice the standard
  deviation of the same metric over the cell's seeds in the bundle (the measured run-to-run
  spread; at least 1e-4 of its size, for counts that a tie in the last bit can move); with fewer
  than two seeds recorded, a difference cannot be judged there ("unverifiable").
"""
from __future__ import annotations

import json
import math
import random
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sparsebench.running.bundle_checks import check, deterministic
from sparsebench.running.records import cpu_name

VERDICTS = ("equal", "within noise", "unverifiable", "MISMATCH", "failed")
RELATIVE_FLOOR = 1e-4


def cell_key(record: dict) -> tuple:
    """A record's cell: its spec without the seed."""
    spec = json.loads(record["tags"]["sb.spec"])
    spec.pop("seed", None)
    return json.dumps(spec, sort_keys=True), record["tags"].get("sb.method_version"), record["tags"].get("sb.task_version")


def spreads(records: list[dict]) -> dict[tuple, dict[str, float]]:
    """Per cell, the standard deviation of each final metric over the cell's completed seeds (cells with two or more)."""
    values: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["tags"].get("sb.status") == "completed":
            for k, v in r["metrics"].items():
                values[cell_key(r)][k].append(v)
    return {cell: {k: statistics.stdev(v) for k, v in metrics.items() if len(v) >= 2}
            for cell, metrics in values.items()}


def select(records: list[dict], sample: int | None = None, tasks=None, methods=None, seeds=None,
           draw: int = 0, profiles=None, stale: bool = False) -> list[dict]:
    """The completed runs of current plugins matching the filters (with ``stale``, only those made by
    other code than this checkout's); ``sample`` of them drawn with seed ``draw``."""
    from sparsebench.running import provenance
    chosen = [r for r in records if r["tags"].get("sb.status") == "completed" and check(r) is None
              and (not tasks or r["params"]["task"] in tasks) and (not methods or r["params"]["method"] in methods)
              and (not seeds or int(r["params"]["seed"]) in seeds)
              and (not profiles or r["params"]["profile"] in profiles)
              and (not stale or provenance.staleness(r["tags"]))]
    chosen.sort(key=lambda r: r["run_id"])
    return random.Random(draw).sample(chosen, sample) if sample is not None and sample < len(chosen) else chosen


@dataclass
class Comparison:
    record: dict
    verdict: str
    key: str = ""            # the metric that decided (the largest difference)
    recorded: float = math.nan
    rerun: float = math.nan
    tolerance: float = 0.0
    notes: list = field(default_factory=list)

    def line(self) -> str:
        name = f"{self.record['params']['task']} {self.record['run_name']} ({self.record['tags']['sb.config_id']})"
        if self.verdict == "failed":
            return f"{name}: re-run FAILED: {'; '.join(self.notes)}"
        what = f"{self.key} recorded {self.recorded:.6g}, re-run {self.rerun:.6g}, difference {self.rerun - self.recorded:+.3g}"
        if self.verdict != "equal":
            what += f" (tolerance {self.tolerance:.3g})"
        return f"{name}: {what}: {self.verdict}"


def values(record: dict) -> dict[str, float]:
    """The deterministic results of a record: final metrics, and the per-epoch validation by step."""
    out = {k: v for k, v in record["metrics"].items() if deterministic(k)}
    metric = record["tags"].get("sb.metric", "")
    for step, v in record.get("history", {}).get(f"val/{metric}", []):
        out[f"val/{metric}@{int(step)}"] = v
    return out


def compare(recorded: dict, rerun: dict, cpu: str, spread: dict[str, float], history: bool = True) -> Comparison:
    """The verdict on one re-run against its record (module docstring): its worst metric's."""
    if rerun["tags"].get("sb.status") != "completed":
        return Comparison(recorded, "failed", notes=[rerun["tags"].get("sb.reason", "")])
    same_cpu = bool(recorded["tags"].get("sb.cpu")) and recorded["tags"]["sb.cpu"] == cpu
    old, new = values(recorded), values(rerun)
    name = recorded["tags"]["sb.metric"]
    metric = f"final/test_{name}" if f"final/test_{name}" in old else f"final/val_{name}"  # tuning: validation
    verdict, worst = "equal", (metric, old.get(metric, math.nan), new.get(metric, math.nan), 0.0)
    for key, a in sorted(old.items(), key=lambda kv: kv[0] != metric):  # on a tie, the result itself is shown
        b = new.get(key, math.nan)
        if a == b or (not history and "@" in key):
            continue
        kind, tol = judge(key, a, b, same_cpu, spread)
        if VERDICTS.index(kind) > VERDICTS.index(verdict):
            verdict, worst = kind, (key, a, b, tol)
    return Comparison(recorded, verdict, *worst)


def judge(key: str, a: float, b: float, same_cpu: bool, spread: dict[str, float]) -> tuple[str, float]:
    """Whether a value re-run as ``b`` agrees with its record ``a``, and the tolerance it was held to."""
    if same_cpu or math.isnan(b):
        return "MISMATCH", 0.0
    std = spread.get(key.split("@")[0].replace("val/", "final/val_"))
    if std is None:
        return "unverifiable", math.nan
    tol = max(2 * std, RELATIVE_FLOOR * abs(a))
    return ("within noise" if abs(b - a) <= tol else "MISMATCH"), tol


def verify(records: list[dict], bundle_records: list[dict], workers: int = 1, data_root=None,
           plugin_roots=None, say=print, keep: str | Path | None = None) -> list[Comparison]:
    """Re-run ``records`` into a scratch folder and compare each with its record (``bundle_records``:
    the whole bundle, whose seeds measure the spread). ``keep``: a bundle folder that keeps the
    re-runs (runs of this checkout's code: imported, they replace stale runs of the same config ids;
    a second call resumes, re-running only what it lacks)."""
    from sparsebench.running.records import read_file
    from sparsebench.running.standalone import run_bundle
    from sparsebench.running.trial import TrialSpec

    cpu, spread = cpu_name(), spreads(bundle_records)
    with tempfile.TemporaryDirectory(prefix="sparsebench-verify-") as scratch:
        folder = Path(keep) if keep is not None else Path(scratch)
        specs = [TrialSpec.from_json(json.loads(r["tags"]["sb.spec"])) for r in records]
        run_bundle(specs, folder, workers, data_root, plugin_roots=plugin_roots, checkpoints=False)
        reruns = {r["tags"]["sb.config_id"]: r for path in folder.glob("*.jsonl") for r in read_file(path)}
    out = []
    for record in records:
        rerun = reruns.get(record["tags"]["sb.config_id"], {"tags": {"sb.status": "failed", "sb.reason": "no record"}})
        out.append(compare(record, rerun, cpu, spread.get(cell_key(record), {})))
        say(f"sparsebench: verify: {out[-1].line()}")
    return out


def store_report(local: list[dict], committed: list[dict]) -> tuple[list[Comparison], str]:
    """``make bench``'s reproduction report: each config id finished in the store ``local`` beside
    the same config id in the bundle ``committed`` (final metrics only), and a summary."""
    cpu, spread = cpu_name(), spreads(committed)
    by_id = {r["tags"]["sb.config_id"]: r for r in committed if r["tags"].get("sb.status") == "completed"}
    out = [compare(by_id[r["tags"]["sb.config_id"]], r, cpu, spread.get(cell_key(by_id[r["tags"]["sb.config_id"]]), {}),
                   history=False)
           for r in local if r["tags"].get("sb.status") == "completed" and r["tags"]["sb.config_id"] in by_id]
    return out, summary(out, len(local), cpu)


def summary(comparisons: list[Comparison], total: int | None = None, cpu: str = "", seconds: float | None = None) -> str:
    counts = {v: sum(c.verdict == v for c in comparisons) for v in VERDICTS}
    text = (f"{len(comparisons)} runs compared" + (f" (of {total})" if total is not None else "") + " on "
            + (cpu or "this machine") + ": " + ", ".join(f"{n} {v.lower()}" for v, n in counts.items() if n))
    moved = sorted((c for c in comparisons if c.verdict not in ("equal", "failed")),
                   key=lambda c: -abs(c.rerun - c.recorded) / max(abs(c.recorded), 1e-12))[:5]
    if moved:
        text += "\nlargest differences:\n" + "\n".join(f"  {c.line()}" for c in moved)
    if seconds is not None:
        text += f"\ntook {seconds:.0f} s"
    return text


def passed(comparisons: list[Comparison]) -> bool:
    return all(c.verdict in ("equal", "within noise") for c in comparisons)


def timed(fn, *args, **kwargs):
    began = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - began
