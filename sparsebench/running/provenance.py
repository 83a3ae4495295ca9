"""Provenance: which code made a run, so that every number is bound to the code that made it.

A config id names a *cell* (task, profile, method, hyperparameters, sparsity, seed and the plugins'
declared versions); these digests say whether a run of it was made by the code of this checkout.
Each trial run records (tags, written when it starts):

- ``sb.code.method``: the method plugin's file (and the plugin files of its base classes);
- ``sb.code.task``: the task plugin's file;
- ``sb.code.harness``: the harness code — ``sparsebench/core``, ``data``, ``library`` and
  ``running/trial.py`` (what the checkpoint store's keys hash too, and the scores and schedules
  methods share);
- ``sb.code.reached``: the harness files a trial of this method on this task can run — those its
  imports reach from ``running/trial.py`` and the two plugins' files (:func:`reached_files`): a
  change to a library module that a method does not import leaves its runs current;
- ``sb.code.profile``: the task's files with the other profiles' entries of its ``profiles`` dict
  left out (:func:`profile_digest`): adding or changing one recipe leaves the others' runs current;
- ``sb.commit`` and ``sb.dirty``: the git commit and whether the tree had local changes.

A digest is of the code's syntax tree, not its bytes: comments, docstrings and layout do not count,
anything that can change a number does. The tree is written out by :func:`canonical` (node types
and field values, empty fields left out), not by ``ast.dump``, whose output changes between Python
releases. A run whose digests differ from this checkout's (or that has none: recorded before
provenance) is *stale*: the board marks its cell, ``export --current`` leaves it out, and
``sparsebench verify`` tells whether it still reproduces. Runs recorded before ``sb.code.reached``
are judged by the same rule through ``harness_history.json``: for each of their ``sb.code.harness``
digests, the per-file digests it was computed from, and ``task_history.json``: for each of their
``sb.code.task`` digests, the task files' sources (both checked against the digest when read, so an
entry can only be true).
"""
from __future__ import annotations

import ast
import base64
import contextvars
import hashlib
import inspect
import json
import subprocess
import zlib
from functools import lru_cache
from pathlib import Path

from sparsebench.core import registry
from sparsebench.core.registry import PROJECT_ROOT

PACKAGE = Path(__file__).resolve().parents[1]
HARNESS = ("core/*.py", "data/*.py", "library/*.py", "running/trial.py")
KEYS = ("method", "task", "harness")
REACHED, PROFILE = "sb.code.reached", "sb.code.profile"
HISTORY = Path(__file__).with_name("harness_history.json")
TASK_HISTORY = Path(__file__).with_name("task_history.json")


def canonical(node) -> str:
    """The syntax tree ``node`` as text: node types and field values, without positions, contexts,
    docstrings, and fields that are None or empty."""
    if isinstance(node, ast.AST):
        body = getattr(node, "body", None)
        fields = []
        for name, value in ast.iter_fields(node):
            if name == "ctx" or value is None or value == []:
                continue
            if name == "body" and isinstance(body, list) and _docstring(node):
                value = value[1:]
            fields.append(f"{name}={canonical(value)}")
        return f"{type(node).__name__}({','.join(fields)})"
    if isinstance(node, list):
        return "[" + ",".join(canonical(v) for v in node) + "]"
    return repr(node)


def _docstring(node) -> bool:
    return (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
            and isinstance(node.body[0].value.value, str))


@lru_cache(maxsize=None)
def _file_digest(path: str, mtime_ns: int) -> str:
    return _source_digest(Path(path).read_text())


_AS_LOADED = contextvars.ContextVar("as_loaded", default=False)
_FIRST_SEEN: dict[str, int] = {}


def stamp(path: Path) -> int:
    """The version of a file that digests are of: its modification time, the key of their caches —
    while a trial's tags are made (:func:`tags`), the time this process first recorded it, so that a
    long-lived worker (Ray's are reused across trials) records the code it loaded even after the
    file changed on disk."""
    now = Path(path).stat().st_mtime_ns
    return _FIRST_SEEN.setdefault(str(path), now) if _AS_LOADED.get() else now


def file_digest(path: Path) -> str:
    """The digest of one Python file's code."""
    return _file_digest(str(path), stamp(path))


def combine(named: list[tuple[str, str]]) -> str:
    """One digest of (file name, file digest) pairs, in order."""
    digest = hashlib.sha256()
    for name, file in named:
        digest.update(name.encode() + file.encode())
    return digest.hexdigest()[:16]


def source_digest(paths) -> str:
    """One digest of the code of the Python files ``paths`` (named by file name, in order)."""
    return combine([(Path(p).name, file_digest(Path(p))) for p in paths])


def harness_files() -> list[Path]:
    return sorted({p for pattern in HARNESS for p in PACKAGE.glob(pattern)})


def plugin_files(cls: type) -> list[Path]:
    """The files of a plugin class and of its base classes outside the harness package."""
    files = []
    for klass in cls.__mro__:
        try:
            path = Path(inspect.getsourcefile(klass)).resolve()
        except (TypeError, OSError):  # built-in bases (object)
            continue
        if PACKAGE not in path.parents and path not in files:
            files.append(path)
    return files


@lru_cache(maxsize=None)
def _imports(path: str, mtime_ns: int) -> tuple[str, ...]:
    """The ``sparsebench`` modules a file imports anywhere in it (also inside functions)."""
    import sparsebench
    names = set()
    for node in ast.walk(ast.parse(Path(path).read_text(), path)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "sparsebench":  # the lazy plugin API: each name's module
                names |= {sparsebench._API.get(alias.name, f"sparsebench.{alias.name}") for alias in node.names}
            else:
                names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return tuple(sorted(n for n in names if n.startswith("sparsebench.")))


def module_files(module: str) -> list[Path]:
    """The package files importing ``module`` runs: its packages' ``__init__.py`` and its own file."""
    parts, files = module.split(".")[1:], []
    for i in range(1, len(parts) + 1):
        folder = PACKAGE.joinpath(*parts[:i])
        if (folder / "__init__.py").is_file():
            files.append(folder / "__init__.py")
        elif i == len(parts) and folder.with_suffix(".py").is_file():
            files.append(folder.with_suffix(".py"))
    return files


def reached_files(roots) -> list[Path]:
    """The harness files among ``roots`` and those their imports reach, following harness files only."""
    harness, todo = set(harness_files()), [Path(r) for r in roots]
    seen = harness & set(todo)
    while todo:
        path = todo.pop()
        for module in _imports(str(path), stamp(path)):
            for file in module_files(module):
                if file in harness and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return sorted(seen)


def loaded_siblings(files) -> list[Path]:
    """Plugin files that ``files`` load by name beside themselves (``Path(__file__).with_name("x.py")``,
    as ``dsnot`` loads ``wanda.py``), and those these load."""
    out, todo = [], list(files)
    while todo:
        path = todo.pop()
        for name in _sibling_names(str(path), stamp(path)):
            sibling = path.with_name(name)
            if sibling.is_file() and sibling not in out and sibling not in files:
                out.append(sibling)
                todo.append(sibling)
    return out


@lru_cache(maxsize=None)
def _sibling_names(path: str, mtime_ns: int) -> tuple[str, ...]:
    return tuple(node.args[0].value for node in ast.walk(ast.parse(Path(path).read_text(), path))
                 if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "with_name" and node.args
                 and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).endswith(".py"))


def trial_files(method: str, task: str) -> list[Path]:
    """The code a trial of ``method`` on ``task`` runs beyond its two plugins' digests: the harness
    files it reaches (from ``running/trial.py``, the plugins' files and the plugin files these load)
    and those loaded plugin files."""
    plugins = [*plugin_files(registry.METHODS.get(method)[0]), *plugin_files(registry.TASKS.get(task)[0])]
    siblings = loaded_siblings(plugins)
    return reached_files([PACKAGE / "running" / "trial.py", *plugins, *siblings]) + siblings


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@lru_cache(maxsize=1)
def history() -> dict[str, dict[str, str]]:
    """``harness_history.json``: harness digests of earlier runs and the file digests each was made
    of (relative paths, in order); an entry whose files do not give its digest is left out."""
    entries = json.loads(HISTORY.read_text()) if HISTORY.is_file() else {}
    return {digest: files for digest, files in entries.items()
            if combine([(Path(f).name, files[f]) for f in sorted(files, key=lambda f: Path(f).parts)]) == digest}


def harness_changed(run_tags: dict, method: str, task: str, harness: str) -> bool:
    """Whether code a trial of ``method`` on ``task`` runs changed since the run, beyond its plugins'
    files: the files it reaches (``sb.code.reached``); for runs recorded without that tag, the whole
    harness, unless every harness file it reaches is as it was (``harness_history.json``)."""
    if REACHED in run_tags:
        return run_tags[REACHED] != source_digest(trial_files(method, task))
    if run_tags["sb.code.harness"] == harness:
        return False
    old = history().get(run_tags["sb.code.harness"])
    files = [f for f in trial_files(method, task) if PACKAGE in f.parents]
    return old is None or any(old.get(relative(f)) != file_digest(f) for f in files)


def only_profile(tree: ast.AST, profile: str) -> ast.AST:
    """``tree`` with the entries of its classes' ``profiles`` dicts other than ``profile`` left out
    (entries whose key is not a plain string, such as ``**base``, are kept)."""
    for node in ast.walk(tree):
        for stmt in node.body if isinstance(node, ast.ClassDef) else []:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(
                stmt, ast.AnnAssign) else []
            if any(getattr(t, "id", None) == "profiles" for t in targets) and isinstance(stmt.value, ast.Dict):
                kept = [(k, v) for k, v in zip(stmt.value.keys, stmt.value.values)
                        if not (isinstance(k, ast.Constant) and isinstance(k.value, str)) or k.value == profile]
                stmt.value.keys, stmt.value.values = [k for k, _ in kept], [v for _, v in kept]
    return tree


def _source_digest(source: str, profile: str | None = None) -> str:
    tree = ast.parse(source)
    return hashlib.sha256(canonical(tree if profile is None else only_profile(tree, profile)).encode()).hexdigest()


@lru_cache(maxsize=None)
def _profile_file_digest(path: str, mtime_ns: int, profile: str) -> str:
    return _source_digest(Path(path).read_text(), profile)


def profile_digest(task: str | type, profile: str) -> str:
    """The digest of a task's plugin files (the task by name or its class) with its other profiles
    left out (:func:`only_profile`)."""
    cls = registry.TASKS.get(task)[0] if isinstance(task, str) else task
    return combine([(p.name, _profile_file_digest(str(p), stamp(p), profile)) for p in plugin_files(cls)])


def digests(method: str, task: str) -> dict[str, str]:
    """The code digests of a trial of ``method`` on ``task`` in this checkout."""
    return {"method": source_digest(plugin_files(registry.METHODS.get(method)[0])),
            "task": source_digest(plugin_files(registry.TASKS.get(task)[0])),
            "harness": source_digest(harness_files())}


@lru_cache(maxsize=1)
def commit() -> tuple[str, bool]:
    """The checkout's git commit and whether its tree has local changes (``("", False)`` outside git)."""
    try:
        def git(*args):
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "", False


def tags(method: str, task: str, profile: str) -> dict[str, str]:
    """A trial run's provenance tags: the digests of the code as this process first recorded it
    (:func:`stamp`)."""
    sha, dirty = commit()
    token = _AS_LOADED.set(True)
    try:
        return {**{f"sb.code.{k}": v for k, v in digests(method, task).items()},
                REACHED: source_digest(trial_files(method, task)), PROFILE: profile_digest(task, profile),
                "sb.commit": sha, "sb.dirty": str(dirty).lower()}
    finally:
        _AS_LOADED.reset(token)


def staleness(run_tags: dict, method: str | None = None, task: str | None = None) -> str:
    """Why a run's results may not be what this checkout's code gives ("" when its code is this
    checkout's): no digests recorded, or which of method, task and harness changed since (the
    harness only where a file the trial reaches changed)."""
    method, task = method or run_tags.get("sb.method"), task or run_tags.get("sb.task")
    if not all(f"sb.code.{k}" in run_tags for k in KEYS):
        return "no code digest (recorded before provenance)"
    if method not in registry.METHODS.entries or task not in registry.TASKS.entries:
        return "its plugin is not in this checkout"
    now = digests(method, task)
    changed = ["method"] if run_tags["sb.code.method"] != now["method"] else []
    if task_changed(run_tags, task, run_tags.get("sb.profile") or json.loads(run_tags.get("sb.spec", "{}")).get(
            "profile", ""), now["task"]):
        changed.append("task")
    if harness_changed(run_tags, method, task, now["harness"]):
        changed.append("harness")
    return f"code changed since ({', '.join(changed)})" if changed else ""


@lru_cache(maxsize=1)
def task_history() -> dict[str, list[tuple[str, str]]]:
    """``task_history.json``: task digests of earlier runs and the sources of the files each was made
    of ((file name, source) in order); an entry whose sources do not give its digest is left out."""
    entries = json.loads(TASK_HISTORY.read_text()) if TASK_HISTORY.is_file() else {}
    out = {}
    for digest, files in entries.items():
        sources = [(name, zlib.decompress(base64.b64decode(text)).decode()) for name, text in files]
        if combine([(name, _source_digest(source)) for name, source in sources]) == digest:
            out[digest] = sources
    return out


def task_changed(run_tags: dict, task: str, profile: str, whole: str) -> bool:
    """Whether the task's code of the run's profile changed since the run (``sb.code.profile``); for
    runs recorded without that tag, the whole task file, unless the recipe of its profile and the
    rest of the file are as they were (``task_history.json``)."""
    if PROFILE in run_tags:
        return run_tags[PROFILE] != profile_digest(task, profile)
    if run_tags["sb.code.task"] == whole:
        return False
    sources = task_history().get(run_tags["sb.code.task"])
    return sources is None or profile_digest(task, profile) != combine(
        [(name, _source_digest(source, profile)) for name, source in sources])


def record_history() -> None:
    """Add this checkout's harness digest and its file digests to ``harness_history.json`` (for the
    runs recorded before ``sb.code.reached``: run it once, at the code that made them)."""
    entries = json.loads(HISTORY.read_text()) if HISTORY.is_file() else {}
    entries[source_digest(harness_files())] = {relative(f): file_digest(f) for f in harness_files()}
    HISTORY.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")


def record_task_history() -> None:
    """Add this checkout's task digests and their files' sources to ``task_history.json`` (for the
    runs recorded before ``sb.code.profile``: run it once, at the code that made them)."""
    entries = json.loads(TASK_HISTORY.read_text()) if TASK_HISTORY.is_file() else {}
    for name in registry.TASKS.entries:
        files = plugin_files(registry.TASKS.get(name)[0])
        entries[source_digest(files)] = [[p.name, base64.b64encode(zlib.compress(p.read_bytes(), 9)).decode()]
                                         for p in files]
    TASK_HISTORY.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
