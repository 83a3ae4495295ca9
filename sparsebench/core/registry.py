"""Plugin registries: methods and tasks, discovered from folders and Python entry points.

A plugin file registers its classes with a decorator. Discovery imports every ``*.py`` in the
``methods/`` and ``tasks/`` folders of each plugin root and every entry point of the groups
``sparsebench.methods`` and ``sparsebench.tasks``. A file that fails to import is listed as
broken (with its error) instead of breaking the run; so is a file whose import does not finish
within ``SPARSEBENCH_IMPORT_TIMEOUT`` seconds (default 120; bounded where discovery runs in a
process's main thread, as every command's does), which is not imported again by this process or
the sweep's workers (``HUNG``).
"""
from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path

from sparsebench.errors import UnknownPluginError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Registry:
    """Names to plugin classes, each name with its own default hyperparameters."""

    def __init__(self, kind: str, group: str, folder: str):
        self.kind, self.group, self.folder = kind, group, folder
        self.entries: dict[str, tuple[type, dict]] = {}
        self.broken: dict[str, str] = {}

    def register(self, name: str, **defaults):
        """Class decorator: register ``cls`` under ``name``; stack it to register variants."""

        def decorate(cls):
            known = self.entries.get(name)
            if known and (known[0].__qualname__, known[0].__module__) != (cls.__qualname__, cls.__module__):
                raise ValueError(f"{self.kind} {name!r} is already registered by {known[0].__module__}")
            self.entries[name] = (cls, defaults)
            cls.registered_names = (*getattr(cls, "registered_names", ()), name)
            return cls

        return decorate

    def get(self, name: str) -> tuple[type, dict]:
        if name not in self.entries:
            raise unknown(self.kind, name, self.entries, self.broken)
        return self.entries[name]

    def version(self, name: str, profile: str | None = None) -> str:
        """The current version of plugin ``name``; of a task's trials of ``profile`` where given."""
        cls = self.get(name)[0]
        return cls.version_of(profile) if profile is not None and hasattr(cls, "version_of") else cls.version

    def names(self) -> list[str]:
        return sorted(self.entries)


def unknown(kind: str, name: str, known, broken) -> UnknownPluginError:
    """The error for ``name``, which is not among the ``known`` names of ``kind``: close matches,
    every known name, and the plugins that failed to load (which might have registered it)."""
    hint = difflib.get_close_matches(name, known, n=3)
    msg = f"unknown {kind} {name!r}"
    msg += f"; did you mean {', '.join(map(repr, hint))}?" if hint else "."
    msg += f" Known {kind}s: {', '.join(sorted(known)) or 'none'}."
    if broken:
        msg += f" Broken {kind} plugins: {', '.join(sorted(broken))}."
    return UnknownPluginError(msg)


METHODS = Registry("method", "sparsebench.methods", "methods")
TASKS = Registry("task", "sparsebench.tasks", "tasks")
register_method = METHODS.register
register_task = TASKS.register


def plugin_roots(extra: list[str] | None = None) -> list[Path]:
    """The project root, then roots from ``SPARSEBENCH_PLUGINS`` (os.pathsep-separated), then ``extra``."""
    env = [p for p in os.environ.get("SPARSEBENCH_PLUGINS", "").split(os.pathsep) if p]
    roots = [PROJECT_ROOT, *map(Path, env), *map(Path, extra or [])]
    return list(dict.fromkeys(r.resolve() for r in roots))


HUNG: set[str] = set()  # plugin files whose import did not finish in time: never imported again here
HANGS = "hangs:"  # how a hung file's error begins


class ImportTimeout(BaseException):  # not an Exception: a plugin's ``except Exception`` does not hide it
    """A plugin file's import ran past ``import_timeout()``."""


def import_timeout() -> float:
    return float(os.environ.get("SPARSEBENCH_IMPORT_TIMEOUT") or 120)


@contextmanager
def time_limit(seconds: float):
    """Raise ``ImportTimeout`` in the block past ``seconds`` (by SIGALRM: in the main thread only; a
    timer already set, e.g. a test's, is set again afterwards)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise ImportTimeout()
    began = time.monotonic()
    handler = signal.signal(signal.SIGALRM, expire)
    outer, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - began), 1e-3), interval)


def discover(extra_roots: list[str] | None = None) -> None:
    """Import every plugin file and entry point; idempotent."""
    import sparsebench.core.method, sparsebench.core.task  # noqa: E401,F401 (torch: not in a file's time limit)
    for registry in (METHODS, TASKS):
        for root in plugin_roots(extra_roots):
            for path in sorted((root / registry.folder).glob("*.py")):
                if not path.name.startswith("_"):
                    load_file(registry, path)
        for ep in entry_points(group=registry.group):
            try:
                obj = ep.load()
                if isinstance(obj, type) and ep.name not in registry.entries:
                    registry.register(ep.name)(obj)
            except Exception:
                registry.broken[f"entry point {ep.name}"] = traceback.format_exc(limit=3)


def load_file(registry: Registry, path: Path) -> None:
    """Import the plugin file at ``path`` once; an error is kept in ``registry.broken``."""
    # one name per file in every process (``hash`` of a str is salted per process)
    module_name = f"sparsebench_plugins.{registry.folder}.{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    if module_name in sys.modules:
        return
    if str(path) in HUNG:
        registry.broken[str(path)] = f"{HANGS} its import did not finish in time before (not imported again)"
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    seconds = import_timeout()
    try:
        with time_limit(seconds):
            spec.loader.exec_module(module)
    except ImportTimeout:
        HUNG.add(str(path))
        registry.broken[str(path)] = f"{HANGS} its import did not finish within {seconds:g} s (SPARSEBENCH_IMPORT_TIMEOUT)"
        print(f"sparsebench: warning: plugin {path} {registry.broken[str(path)]}; listed as broken", file=sys.stderr,
              flush=True)
    except Exception:
        registry.broken[str(path)] = traceback.format_exc(limit=3)
