"""The runs bundle: every result of a store as plain files in the repository, so results outlive
the machine (and the ``mlflow.db``) they were run on.

``export_bundle`` writes each finished trial run (completed or failed) of a store — params, tags,
final and per-epoch metrics, ``layers.json`` — as one JSON line in ``<folder>/<task>.jsonl``,
sorted by config id, start time and run id, so that a diff shows what changed. ``import_bundle``
loads a bundle into any MLflow store (SQLite or a tracking server); a run already there (by its
origin run id) is skipped, so importing twice changes nothing. The leaderboard is built from the
store after the import, and a sweep skips every config id the bundle already holds.

An import is all or nothing: every record is checked first (:mod:`sparsebench.running.bundle_checks`:
well-formed, consistent, values in range, no conflict with another record or with the store's
runs), then the records are written under a lock on the store (two imports at once write each run
once), and a write that fails deletes what the import had written. Records of plugins this
checkout does not have, or of older plugin versions, are imported as history but never shown on
the board (``strict=True`` rejects them instead). A submitted bundle from a method author is
checked the same way, then re-run in part by ``sparsebench verify``.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sparsebench.running import tracking
from sparsebench.running import provenance
from sparsebench.running.bundle_checks import COMPLETED_METRICS, check, conflicts  # noqa: F401 (COMPLETED_METRICS: the API)
from sparsebench.running.records import BundleError, bundle_line, read_file  # noqa: F401 (BundleError: the API)

DEFAULT_FOLDER = Path("leaderboard/runs")


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


def export_bundle(uri: str | None = None, folder: str | Path = DEFAULT_FOLDER, current: bool = False,
                  methods: list[str] | None = None, tasks: list[str] | None = None,
                  drop_superseded: bool = False) -> dict[str, int]:
    """Write every finished trial run of the store at ``uri`` into ``folder``, one file per task
    (merged with the records already there, by run id); returns records written per task. With
    ``current``, only runs of this checkout's code are kept (plugin versions and code digests: what
    the board shows without a stale mark); with ``drop_superseded``, only runs of this checkout's
    plugin versions, whatever code made them, a stale run left out where a run of this checkout's
    code has the same config id (what the board shows, stale or not). ``methods`` and
    ``tasks`` keep only those runs (a method author's submission: ``--method mine``); the dense
    references of the tasks come along, as the submission's cells are read against them."""
    uri = tracking.open_store(tracking.tracking_uri(uri))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_task: dict[str, dict[str, dict]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        by_task[path.stem] = {r["run_id"]: r for r in read_file(path)}
    for record in tracking.export_records(uri):
        task, method = record["params"]["task"], record["params"]["method"]
        if (tasks and task not in tasks) or (methods and method not in methods and method != "dense"):
            continue
        by_task.setdefault(task, {})[record["run_id"]] = record
    written = {}
    for task, records in sorted(by_task.items()):
        if current or drop_superseded:
            stale = {i for i, r in records.items() if provenance.staleness(r["tags"])}
            redone = {r["tags"].get("sb.config_id") for i, r in records.items()  # a run of this code replaces others
                      if i not in stale and r["tags"].get("sb.status") == "completed"}
            records = {i: r for i, r in records.items() if check(r) is None and not (
                i in stale and (current or r["tags"].get("sb.config_id") in redone))}
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


def import_bundle(source: str | Path = DEFAULT_FOLDER, uri: str | None = None, strict: bool = False) -> ImportSummary:
    """Check every record of the bundle at ``source``, then write those the store at ``uri`` lacks,
    all or none."""
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
                spec = json.loads(record["tags"]["sb.spec"])
                what = f"run {record['run_id']} ({spec.get('method')} on {spec.get('task')})"
                raise BundleError(f"{what} is {why} than this checkout has" if "unknown" not in why else
                                  f"{what}: {why[len('of unknown '):-1]} {spec.get(why[len('of unknown '):-1])!r} is "
                                  "not in this checkout (a plugin of yours? pass its folder: --plugins DIR)")
            summary.stale[why] += 1
    with tracking.store_lock(uri, "import"):
        existing = tracking.trial_records(uri)
        clashes = conflicts([*existing, *records])
        if clashes:
            raise BundleError(f"{len(clashes)} conflicting results, nothing imported (two runs of one config by "
                              f"the same code and processor carry different results): " + "; ".join(clashes[:3]))
        known = {r["run_id"] for r in existing}
        written = []
        try:
            for record in sorted(records, key=lambda r: (r["params"]["task"], *sort_key(r))):
                if record["run_id"] in known:
                    summary.skipped += 1
                    continue
                written.append(tracking.import_record(uri, record))
                summary.imported += 1
        except BaseException:
            tracking.delete_runs(uri, written)
            raise
    return summary
