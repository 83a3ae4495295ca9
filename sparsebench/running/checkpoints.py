"""The checkpoint store: trainings done once and reused by every trial that needs them.

A training without a callback is a pure function of the state it starts from and of what the
state does not hold: the task, its version and profile, the recipe, and the code of the harness
and of the task plugin (:meth:`sparsebench.core.train.Trainer.train` hashes them all into a
key). So the dense training that ``dense``, ``magnitude``, ``magnitude-layerwise``,
``magnitude-finetune`` and ``lottery`` all start with runs once per task, profile and seed, and
so does each level of iterative magnitude pruning that several targets share.

Checkpoints live in MLflow, as the artifact ``checkpoint.pt`` of runs tagged
``sb.kind=checkpoint`` in the task's experiment (so remote workers of a tracking server share
them), and in a local cache, ``$SPARSEBENCH_CACHE/checkpoints`` (default
``~/.cache/sparsebench/checkpoints``), that spares downloads. They are a cache: clearing either
costs time, never results (results are in the runs bundle); any change of the harness's or the
task's code makes new keys (``sparsebench/core``, ``sparsebench/data`` and the task's files, by
their syntax: comments and docstrings do not count, nor the task's other profiles).
A training in progress is claimed: a trial that misses a key locks ``<key>.lock`` in the local
cache (``flock``, released when it stores the checkpoint, when its trial ends or when its process
dies), and a trial on the same machine that needs the same key meanwhile waits for that checkpoint
instead of training it again (at most :data:`WAIT_S`; then it trains it too, as before). Workers on
other machines of a cluster do not see each other's locks: two that need one checkpoint at once
both train it and both write it (atomically); either copy is the same. A sweep also starts such
trials apart (:func:`sparsebench.running.sweep.apart_by_training`).

Every copy is checked against the SHA-256 of what was written, kept apart from the bytes it
protects: in the local file's name (``<key>.<sha256>.pt``, written in one atomic rename with its
bytes) and in the MLflow run's tag ``sb.checkpoint_sha256`` (the artifact lives elsewhere). A copy
that does not match (a flipped byte of a weight loads fine and changes results) is discarded, with
one warning line, and the training is fetched or run again.
"""
from __future__ import annotations

import hashlib
import time
import io
import os
import re
import sys
import tempfile
from pathlib import Path

import torch

from sparsebench.data import cache_dir
from sparsebench.running import provenance

ARTIFACT = "checkpoint.pt"
WAIT_S = 3 * 3600.0  # the longest wait for another trial's training of a key (a LSTM's is about 45 minutes)
POLL_S = 2.0

try:
    import fcntl
except ImportError:  # no flock (Windows): trainings in progress are not claimed
    fcntl = None


def code_digest(task) -> str:
    """A hash of the code a training of ``task`` runs, of its syntax (comments, docstrings and layout
    do not count): the harness's contracts, training loop and data (``sparsebench/core``,
    ``sparsebench/data``) and the task's files without its other profiles' recipes
    (:func:`sparsebench.running.provenance.profile_digest`: a new recipe keeps the others' checkpoints)."""
    harness = provenance.source_digest(sorted([*provenance.PACKAGE.glob("core/*.py"),
                                               *provenance.PACKAGE.glob("data/*.py")]))
    return provenance.combine([("harness", harness), ("task", provenance.profile_digest(type(task), task.profile))])


def identity(task) -> str:
    """What a training's outcome depends on beyond the state it starts from (the task's code by its
    digest, not by its module's name, which names the file's place on this machine)."""
    return (f"{type(task).__qualname__} v{task.version} {task.profile} {task.recipe!r} "
            f"code {code_digest(task)} torch {torch.__version__} {task.device}")


class CheckpointStore:
    """``get``/``put`` trainings by key: the local cache first, then the MLflow store at ``uri``."""

    def __init__(self, uri: str | None, task_name: str, folder: Path | None = None):
        self.uri, self.task_name = uri, task_name
        self.folder = Path(folder) if folder else cache_dir("checkpoints")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0
        self.waited_s = 0.0  # time spent waiting for other trials' trainings
        self._claims: dict[str, int] = {}  # key -> the descriptor of its locked claim file

    def _path(self, key: str, digest: str) -> Path:
        return self.folder / f"{key}.{digest}.pt"

    def get(self, key: str) -> dict | None:
        """The stored training of ``key``, else None, and the caller trains it and ``put``s it: then
        ``key`` is claimed (waiting first, where another trial on this machine is training it)."""
        if key in self._claims:  # ours to train
            return None
        done = self._find(key)
        if done is None and self._claim(key):  # another trial trained it while we waited
            done = self._find(key)
            if done is not None:
                self._release(key)
        if done is None:
            self.misses += 1
            return None
        self.hits += 1
        return done

    def _claim(self, key: str) -> bool:
        """Lock ``key``'s claim file, waiting while another process holds it (at most :data:`WAIT_S`);
        True if another process held it (its checkpoint may be stored now)."""
        if fcntl is None:
            return False
        try:
            fd = os.open(self.folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only cache: no claim, train it
            return False
        started, waited = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started > WAIT_S:
                    _warn(f"checkpoint {key}: another trial has been training it for over {WAIT_S:.0f} s; training it here too")
                    os.close(fd)
                    return True
                waited = True
                time.sleep(POLL_S)
            except OSError:  # a file system without locks
                os.close(fd)
                return False
        self.waited_s += time.monotonic() - started
        self._claims[key] = fd
        return waited

    def _release(self, key: str) -> None:
        fd = self._claims.pop(key, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor drops its lock

    def metrics(self) -> dict[str, float]:
        """What a trial's run records of its use of the store."""
        return {"checkpoints/hits": self.hits, "checkpoints/misses": self.misses,
                "checkpoints/waited_seconds": self.waited_s}

    def release(self) -> None:
        """Drop every claim still held (a trial that ended without storing what it claimed)."""
        for key in list(self._claims):
            self._release(key)

    def _find(self, key: str) -> dict | None:
        for path in sorted(self.folder.glob(f"{key}.*.pt")):  # the local cache
            if (done := self._load(path, path.name[len(key) + 1:-len(".pt")], f"checkpoint {path}")) is not None:
                return done
        for _ in range(3) if self.uri else ():  # then MLflow: each stored copy of the key in turn
            from sparsebench.running import checkpoint_store
            try:
                fetched = checkpoint_store.fetch_checkpoint(self.uri, self.task_name, key, ARTIFACT, self.folder)
                if fetched is None:
                    break
                local, digest, run_id = fetched
                path = self._path(key, digest if re.fullmatch("[0-9a-f]{64}", digest) else "unrecorded")
                os.replace(local, path)
            except Exception as exc:  # a cache: never a reason for a trial to fail
                _warn(f"checkpoint {key} not fetched from {self.uri}: {exc}")
                break
            if (done := self._load(path, digest, f"checkpoint {key} of MLflow run {run_id}")) is not None:
                return done
            try:
                checkpoint_store.discard_checkpoint(self.uri, run_id)
            except Exception:
                break
        return None

    @staticmethod
    def _load(path: Path, digest: str, what: str) -> dict | None:
        """The checkpoint at ``path`` if its bytes have the SHA-256 ``digest``, else None (the file removed)."""
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(blob).hexdigest() == digest:
            try:
                return torch.load(io.BytesIO(blob), weights_only=True)
            except Exception:  # unreadable although whole: written by another torch, say
                pass
        _warn(f"{what} is corrupt (its SHA-256 is not the one recorded when it was written): discarded")
        path.unlink(missing_ok=True)
        return None

    def put(self, key: str, payload: dict) -> None:
        try:
            buffer = io.BytesIO()
            torch.save(payload, buffer)  # now: the payload's tensors are the live model's
            blob = buffer.getvalue()
            digest = hashlib.sha256(blob).hexdigest()
            path = self._path(key, digest)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)  # atomic: a reader sees the whole file, under its digest, or none
            if self.uri:
                from sparsebench.running import checkpoint_store
                checkpoint_store.store_checkpoint(self.uri, self.task_name, key, path, ARTIFACT, digest)
        except Exception as exc:  # a cache: never a reason for a trial to fail
            _warn(f"checkpoint {key} not stored: {exc}")
        finally:
            self._release(key)


def _warn(message: str) -> None:
    print(f"sparsebench: warning: {message}", file=sys.stderr, flush=True)


def run_with_checkpoints(spec, data_root: str | None, log, device: str, uri: str | None, checkpoints: bool) -> dict:
    """One trial (:func:`~sparsebench.running.trial.run_trial`) sharing trainings through the store at
    ``uri`` (None: this machine's cache alone) unless not ``checkpoints``: its result, with the store's
    hits and misses; a task that fails to load or build is a failed result, not an exception."""
    from sparsebench.running.trial import run_trial
    store = None
    try:
        store = CheckpointStore(uri, spec.task) if checkpoints else None
        result = run_trial(spec, Path(data_root) if data_root else None, log, device, store)
        if store is not None:
            result["metrics"].update(store.metrics())
    except Exception as exc:  # the task failed to load or build: still a result
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "metrics": {}}
    finally:
        if store is not None:
            store.release()
    return result
