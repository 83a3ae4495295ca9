"""Provenance: which code made a run, so that every number is bound to the code that made it.

A config id names a *cell* (task, profile, method, hyperparameters, sparsity, seed and the plugins'
declared versions); these digests say whether a run of it was made by the code of this checkout.
Each trial run records (tags, written when it starts):

- ``sb.code.method``: the method plugin's file (and the plugin files of its base classes);
- ``sb.code.task``: the task plugin's file;
- ``sb.code.harness``: the harness code a trial runs — ``sparsebench/core``, ``data``, ``library``
  and ``running/trial.py`` (what the checkpoint store's keys hash too, and the scores and schedules
  methods share);
- ``sb.commit`` and ``sb.dirty``: the git commit and whether the tree had local changes.

A digest is of the code's syntax tree, not its bytes: comments, docstrings and layout do not count,
anything that can change a number does. The tree is written out by :func:`canonical` (node types
and field values, empty fields left out), not by ``ast.dump``, whose output changes between Python
releases. A run whose digests differ from this checkout's (or that has none: recorded before
provenance) is *stale*: the board marks its cell, ``export --current`` leaves it out, and
``sparsebench verify`` tells whether it still reproduces.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import subprocess
from functools import lru_cache
from pathlib import Path

from sparsebench.core import registry
from sparsebench.core.registry import PROJECT_ROOT

PACKAGE = Path(__file__).resolve().parents[1]
HARNESS = ("core/*.py", "data/*.py", "library/*.py", "running/trial.py")
KEYS = ("method", "task", "harness")


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
    return hashlib.sha256(canonical(ast.parse(Path(path).read_text(), path)).encode()).hexdigest()


def source_digest(paths) -> str:
    """One digest of the code of the Python files ``paths`` (named by file name, in order)."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        digest.update(path.name.encode() + _file_digest(str(path), path.stat().st_mtime_ns).encode())
    return digest.hexdigest()[:16]


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


def tags(method: str, task: str) -> dict[str, str]:
    """A trial run's provenance tags."""
    sha, dirty = commit()
    return {**{f"sb.code.{k}": v for k, v in digests(method, task).items()}, "sb.commit": sha,
            "sb.dirty": str(dirty).lower()}


def staleness(run_tags: dict, method: str | None = None, task: str | None = None) -> str:
    """Why a run's results may not be what this checkout's code gives ("" when its code is this
    checkout's): no digests recorded, or which of method, task and harness changed since."""
    method, task = method or run_tags.get("sb.method"), task or run_tags.get("sb.task")
    if not all(f"sb.code.{k}" in run_tags for k in KEYS):
        return "no code digest (recorded before provenance)"
    if method not in registry.METHODS.entries or task not in registry.TASKS.entries:
        return "its plugin is not in this checkout"
    now = digests(method, task)
    changed = [k for k in KEYS if run_tags[f"sb.code.{k}"] != now[k]]
    return f"code changed since ({', '.join(changed)})" if changed else ""
