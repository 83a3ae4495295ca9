"""The runs bundle: every result of a store as plain files in the repository, so results outlive
the machine (and the ``mlflow.db``) they were run on.

``export_bundle`` writes each finished trial run (completed or failed) of a store — params, tags,
final and per-epoch metrics, ``layers.json`` — as one JSON line in ``<folder>/<task>.jsonl``,
sorted by config id, start time and run id, so that a diff shows what changed. ``import_bundle``
loads a bundle into any MLflow store (SQLite or a tracking server); a run already there (by its
origin run id) is skipped, so importing twice changes nothing. The leaderboard is built from the
store after the import, and a sweep skips every config id the bundle already holds.

A bundle is checked before anything is written (a submitted bundle from a method author is
checked the same way): each record has a run id, a status, its spec, config id, plugin versions
and code version; the config id is the hash of its spec and versions; a completed record carries
its test metric together with the run that produced it (sparsity counted, cost counted,
per-epoch validation, layers), and a failed one its reason. Records of plugins this checkout does
not have, or of older plugin versions, are imported as history but never shown on the board
(``strict=True`` rejects them instead).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sparsebench.core import registry
from sparsebench.running import tracking
from sparsebench.running.records import BundleError, bundle_line, read_file  # noqa: F401 (BundleError: the API)
from sparsebench.running.trial import config_hash

DEFAULT_FOLDER = Path("leaderboard/runs")
REQUIRED_TAGS = ("sb.config_id", "sb.spec", "sb.status", "sb.code_version", "sb.method_version",
                 "sb.task_version", "sb.metric")
COMPLETED_METRICS = ("final/sparsity", "final/effective_sparsity", "cost/train_steps", "cost/train_cost_rel")


@dataclass
class ImportSummary:
    records: int = 0
    imported: int = 0
    skipped: int = 0                        # already in the store
    stale: Counter = field(default_factory=Counter)  # reason -> records not current here

    def __str__(self) -> str:
        text = f"{self.records} runs in the bundle: {self.imported} imported, {self.skipped} already in the store"
        if self.stale:
            text += "; not shown on the leaderboard: " + ", ".join(f"{n} {why}" for why, n in self.stale.items())
        return text


def sort_key(record: dict) -> tuple:
    return record["tags"].get("sb.config_id", ""), record.get("start_time") or 0, record["run_id"]


def export_bundle(uri: str | None = None, folder: str | Path = DEFAULT_FOLDER, current: bool = False) -> dict[str, int]:
    """Write every finished trial run of the store at ``uri`` into ``folder``, one file per task
    (merged with the records already there, by run id); returns records written per task. With
    ``current``, only runs of this checkout's plugins and versions are kept (what the board shows):
    a superseded run leaves the bundle when its plugin's version changes."""
    uri = tracking.open_store(tracking.tracking_uri(uri))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_task: dict[str, dict[str, dict]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        by_task[path.stem] = {r["run_id"]: r for r in read_file(path)}
    for record in tracking.export_records(uri):
        by_task.setdefault(record["params"]["task"], {})[record["run_id"]] = record
    written = {}
    for task, records in sorted(by_task.items()):
        if current:
            records = {i: r for i, r in records.items() if check(r) is None}
        lines = [bundle_line(r) for r in sorted(records.values(), key=sort_key)]
        target = folder / f"{task}.jsonl"
        tmp = target.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        tmp.replace(target)
        written[task] = len(lines)
    return written


def read_bundle(source: str | Path) -> list[dict]:
    """The records of a bundle folder, or of one ``.jsonl`` file."""
    source = Path(source)
    if source.is_dir():
        files = sorted(source.glob("*.jsonl"))
    elif source.is_file():
        files = [source]
    else:
        raise BundleError(f"no runs bundle at {source}")
    return [r for path in files for r in read_file(path)]


def check(record: dict) -> str | None:
    """Raise ``BundleError`` if ``record`` is malformed or inconsistent; return why it is not
    current in this checkout (unknown plugin, other version), or None if it is."""
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
    if record["params"].get("task") != spec.get("task"):
        raise BundleError(f"{where}: params and spec name different tasks")
    status, test = tags["sb.status"], f"final/test_{tags['sb.metric']}"
    tuning = spec.get("track") == "tuning"
    if tuning and test in metrics:
        raise BundleError(f"{where}: a tuning run with a test {tags['sb.metric']} (tuning sees validation only)")
    if status == "completed":
        result = f"final/val_{tags['sb.metric']}" if tuning else test
        absent = [m for m in (result, *COMPLETED_METRICS) if m not in metrics]
        if absent:
            raise BundleError(f"{where}: a completed run without {', '.join(absent)}")
        if not record["history"].get(f"val/{tags['sb.metric']}") or not record.get("layers"):
            raise BundleError(f"{where}: a test {tags['sb.metric']} without the run that produced it "
                              "(per-epoch validation and layers.json)")
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


def import_bundle(source: str | Path = DEFAULT_FOLDER, uri: str | None = None, strict: bool = False) -> ImportSummary:
    """Check every record of the bundle at ``source``, then write those the store at ``uri`` lacks."""
    uri = tracking.open_store(tracking.tracking_uri(uri))
    records = read_bundle(source)
    summary = ImportSummary(records=len(records))
    ids = Counter(r.get("run_id") for r in records)
    twice = [i for i, n in ids.items() if n > 1]
    if twice:
        raise BundleError(f"run ids recorded twice in the bundle: {', '.join(map(str, twice[:5]))}")
    for record in records:
        why = check(record)
        if why:
            if strict:
                raise BundleError(f"run {record['run_id']} is {why} than this checkout has")
            summary.stale[why] += 1
    known = tracking.known_run_ids(uri)
    for record in sorted(records, key=lambda r: (r["params"]["task"], *sort_key(r))):
        if record["run_id"] in known:
            summary.skipped += 1
            continue
        tracking.import_record(uri, record)
        summary.imported += 1
    return summary
