"""The plugin catalog: what commands need to know of every plugin, without importing it.

Importing the plugins imports torch (seconds); ``sparsebench list`` and the checks of ``run``'s
arguments (names, profiles, ``--set`` values) need only names, files, hyperparameters and
profiles. The catalog holds those. It is built by importing every plugin once
(:func:`registry.discover`) and kept in the cache (``catalog/<key>.json``) under a key made of
the content of every plugin file and of the sparsebench package, and of the entry points (name,
target, distribution version): a change to any of them builds it again. A file whose import hung
is listed as broken, and not imported again by this process (:data:`registry.HUNG`). A cache that
cannot be written (read-only, full) is told in one line, before anything else is done.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
from importlib.metadata import entry_points
from pathlib import Path

from sparsebench.core import registry
from sparsebench.core.hparams import check_hparams, check_sparsity
from sparsebench.data import cache_dir
from sparsebench.errors import SparsebenchError

FORMAT = "1"
KEEP = 16  # catalogs kept in the cache (one per set of plugin roots and code state)
MIN_FREE_MB = 8  # the cache's disk must have this much free for a command to start


class Catalog:
    """Methods and tasks by name, as plain data (see :func:`build`)."""

    def __init__(self, data: dict):
        self.methods, self.tasks, self.broken = data["methods"], data["tasks"], data["broken"]

    def method(self, name: str) -> dict:
        if name not in self.methods:
            raise registry.unknown("method", name, self.methods, self.broken["method"])
        return self.methods[name]

    def task(self, name: str, profile: str | None = None) -> dict:
        if name not in self.tasks:
            raise registry.unknown("task", name, self.tasks, self.broken["task"])
        task = self.tasks[name]
        if profile is not None and profile not in task["profiles"]:
            raise ValueError(f"task {name!r} has no profile {profile!r}; profiles: {', '.join(task['profiles'])}")
        return task

    def check(self, tasks: list[str], profiles: list[str | None], methods: list[str], sparsities: list[float],
              overrides: dict) -> None:
        """Raise the error a sweep of this grid would raise for an unknown name, a profile a task
        lacks, a sparsity outside [0, 1), or an override a method does not take or of a bad type or
        value. (A target that one method cannot reach, e.g. N:M's, is told once the plugins load.)"""
        for sparsity in sparsities:
            check_sparsity(sparsity)
        for task in tasks:
            for profile in profiles:
                self.task(task, profile)
        for method in methods:
            check_hparams(method, self.method(method)["schema"], overrides)


def load(extra_roots: list[str] | None = None) -> Catalog:
    """The catalog of the plugin roots (:func:`registry.plugin_roots`), from the cache or built."""
    roots = registry.plugin_roots(extra_roots)
    folder = writable_cache()
    path = folder / f"{key(roots)}.json"
    try:
        return hung(Catalog(json.loads(path.read_text())))
    except (OSError, ValueError, KeyError):
        pass
    data = build(extra_roots)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))  # field order kept: `list` shows it
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SparsebenchError(f"cannot write the cache {folder}: {exc.strerror or exc}") from None
    for old in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP:]:
        old.unlink(missing_ok=True)
    return Catalog(data)


def writable_cache() -> Path:
    """The catalog's folder of the cache, once the cache is known writable with ``MIN_FREE_MB`` free;
    else the one-line error that says so (every command reads the catalog first)."""
    import shutil
    import tempfile

    way_out = "set SPARSEBENCH_CACHE to a writable folder with free space"
    try:
        folder = cache_dir("catalog")
        tempfile.TemporaryFile(dir=folder).close()
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise SparsebenchError(f"cannot write the cache {exc.filename or os.environ.get('SPARSEBENCH_CACHE', '')}: "
                               f"{exc.strerror or exc}; {way_out}") from None
    if free < MIN_FREE_MB * 2**20:
        raise SparsebenchError(f"the cache {folder.parent} has {free / 2**20:.1f} MB free on its disk, "
                               f"under the {MIN_FREE_MB} MB a command needs; free space or {way_out}")
    return folder


def hung(listed: Catalog) -> Catalog:
    """``listed``, its plugin files that hung when it was built kept from being imported again."""
    registry.HUNG.update(where for broken in listed.broken.values() for where, error in broken.items()
                         if error.startswith(registry.HANGS))
    return listed


def key(roots: list[Path]) -> str:
    digest = hashlib.sha256(FORMAT.encode())
    package = Path(__file__).resolve().parents[1]
    files = sorted(package.rglob("*.py")) + [path for root in roots for folder in ("methods", "tasks")
                                             for path in sorted((root / folder).glob("*.py"))]
    for path in files:
        digest.update(f"{path}\0{path.stat().st_size}\0".encode() + path.read_bytes())
    for reg in (registry.METHODS, registry.TASKS):
        for ep in entry_points(group=reg.group):
            digest.update(f"{ep.name}={ep.value} {ep.dist.version if ep.dist else ''}\n".encode())
    return digest.hexdigest()[:24]


def build(extra_roots: list[str] | None = None) -> dict:
    """Import the plugins and describe those of the roots (and entry points) as plain data."""
    from sparsebench.core.hparams import schema
    from sparsebench.core.space import describe

    registry.discover(extra_roots)
    roots = [str(r) for r in registry.plugin_roots(extra_roots)]

    def ours(reg, name, cls) -> bool:  # this process may hold plugins of other roots too
        return (any(inspect.getsourcefile(cls).startswith(r + os.sep) for r in roots)
                or name in {ep.name for ep in entry_points(group=reg.group)})

    methods, tasks = {}, {}
    for name in registry.METHODS.names():
        cls, defaults = registry.METHODS.entries[name]
        if not ours(registry.METHODS, name, cls):
            continue
        method = cls(**defaults)
        space = method.space(0.9) if cls.prunes else {}
        methods[name] = {"file": inspect.getsourcefile(cls), "prunes": cls.prunes, "schema": schema(cls),
                         "hparams": {k: repr(v) for k, v in method.hparams().items()},
                         "tuned": describe(space) if space else None, "untuned": cls.untuned}
    for name in registry.TASKS.names():
        cls, _ = registry.TASKS.entries[name]
        if ours(registry.TASKS, name, cls):
            tasks[name] = {"file": inspect.getsourcefile(cls), "profiles": list(cls.profiles)}
    broken = {reg.kind: {where: error.strip().splitlines()[-1] for where, error in reg.broken.items()
                         if where.startswith("entry point") or any(where.startswith(r + os.sep) for r in roots)}
              for reg in (registry.METHODS, registry.TASKS)}
    return {"methods": methods, "tasks": tasks, "broken": broken}
