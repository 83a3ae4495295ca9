"""The conformance check of one method plugin file: ``sparsebench check path/to/method.py``.

Runs each method that the file registers through the harness (``run_trial``, no Ray or MLflow) on
two tiny made-up tasks — an MLP and a convnet on Gaussian blobs drawn as 1-channel 8×8 images —
and checks what the contract promises: the trial completes; the test split is read by the
harness only, after the method returned; the sparsity counted in the final weights reaches the
target (methods with exact sparsity); the training spent is counted; the same seed gives the same
result; the taxonomy and the paper are declared. A few seconds a method.
"""
from __future__ import annotations

import dataclasses
import inspect
import multiprocessing
from pathlib import Path

import torch
from torch import nn

from sparsebench.core import registry
from sparsebench.core.masks import check_sparsity
from sparsebench.core.task import Recipe, Splits, Task, TensorSplit
from sparsebench.running.trial import SPARSITY_TOLERANCE, TrialSpec, run_trial

WHEN = {"none", "init", "during", "after", "dynamic"}
TARGET = 0.8


class _Watched(TensorSplit):
    """A test split that notes every read in ``log``."""

    log: list[str] = []

    def batches(self, *args, **kwargs):
        self.log.append("test")
        return super().batches(*args, **kwargs)


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 64, generator=torch.Generator().manual_seed(0)) * 2
    y = torch.randint(0, 4, (n,), generator=g)
    return (centers[y] + torch.randn(n, 64, generator=g)).view(n, 1, 8, 8), y


class _Blobs(Task):
    dataset = "Gaussian blobs (made up by the conformance check)"
    paper = "—"
    profiles = {"quick": Recipe(batch_size=32, lr=0.05, epochs=2, momentum=0.9, weight_decay=5e-4)}

    def load(self, data_root):
        (x, y), (xv, yv), (xt, yt) = _blobs(512, 1), _blobs(128, 2), _blobs(256, 3)
        return Splits(TensorSplit(x, y), TensorSplit(xv, yv), _Watched(xt, yt))


class CheckMLP(_Blobs):
    family = "mlp"

    def model(self):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))


class CheckCNN(_Blobs):
    family = "cnn"

    def model(self):
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


TASKS = {"check-mlp": CheckMLP, "check-cnn": CheckCNN}


def methods_of(path: str | Path) -> list[str]:
    """The method names the plugin file at ``path`` registers (loaded like any plugin)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ValueError(f"no plugin file at {path}")
    before = set(registry.METHODS.entries)
    registry.load_file(registry.METHODS, path)
    if str(path) in registry.METHODS.broken:
        raise ValueError(f"{path} does not import:\n{registry.METHODS.broken[str(path)].strip()}")
    found = [n for n, (cls, _) in registry.METHODS.entries.items()
             if n not in before or Path(inspect.getsourcefile(cls)).resolve() == path]
    if not found:
        raise ValueError(f"{path} registers no method (decorate a Method subclass with @register_method)")
    return sorted(found)


def declared(name: str) -> list[str]:
    """What method ``name`` fails to declare: its place in the taxonomy, its paper, its fields."""
    method_cls, _ = registry.METHODS.get(name)
    problems = []
    if method_cls.when not in WHEN:
        problems.append(f"when = {method_cls.when!r}: one of {', '.join(sorted(WHEN))}")
    if not (isinstance(getattr(method_cls, "criterion", None), str) and isinstance(getattr(method_cls, "paper", None), str)):
        problems.append("declare `criterion` and `paper` (strings) on the class")
    if not dataclasses.is_dataclass(method_cls):
        problems.append("a method is a @dataclass: its fields are its hyperparameters")
    return problems


def trials(name: str) -> list[str]:
    """The contract's failures of method ``name``'s trials on the tiny tasks (empty: it conforms)."""
    for task_name, cls in TASKS.items():
        if task_name not in registry.TASKS.entries:
            registry.TASKS.register(task_name)(cls)
    method_cls, defaults = registry.METHODS.get(name)
    target = TARGET if method_cls.prunes else 0.0
    try:
        method_cls(**defaults).check_target(target)
    except ValueError:  # a method of one sparsity (an N:M pattern): its own
        target = 0.5
    return [f"{task}: {p}" for task in TASKS for p in _check_trial(name, method_cls, task, target)]


def _check_trial(name: str, method_cls, task: str, target: float) -> list[str]:
    original, log = method_cls.run, _Watched.log

    def run_and_mark(self, ctx):
        original(self, ctx)
        log.append("method returned")

    log.clear()
    method_cls.run = run_and_mark
    try:
        result = run_trial(TrialSpec(task, name, check_sparsity(target), 0))
    finally:
        method_cls.run = original
    if result["status"] != "completed":
        return [f"the trial failed: {result['reason']}"]
    problems = []
    if log != ["method returned", "test"]:
        problems.append(f"the test split was read before the method returned ({log})")
    m = result["metrics"]
    if method_cls.exact_sparsity and abs(m["final/sparsity"] - target) > SPARSITY_TOLERANCE:
        problems.append(f"sparsity counted in the weights is {m['final/sparsity']:.4f}, the target {target}")
    if not m["cost/train_steps"] > 0:
        problems.append("no training was counted: train through ctx.train()")
    again = run_trial(TrialSpec(task, name, check_sparsity(target), 0))
    if again.get("layers") != result["layers"] or again["metrics"].get("final/test_accuracy") != m["final/test_accuracy"]:
        problems.append("the same seed gave another result: draw randomness from torch's seeded generators")
    return problems


def check_file(path: str | Path) -> dict[str, list[str]]:
    """Method name -> its failures, for every method of the plugin file at ``path``; each method is
    checked in a child process, so that one that ends its process is a failure, not the check's end."""
    torch.set_num_threads(1)
    fork = multiprocessing.get_context("fork")
    out = {}
    for name in methods_of(path):
        out[name] = declared(name)
        receive, send = fork.Pipe(duplex=False)
        child = fork.Process(target=_check_into, args=(name, send))
        child.start()
        send.close()
        child.join(timeout=600)
        if child.is_alive():
            child.kill()
            out[name].append("the check took more than 10 minutes")
        else:
            try:
                out[name] += receive.recv()
            except EOFError:  # nothing sent: the process ended inside the method
                out[name].append(f"the method ended the process (exit code {child.exitcode})")
    return out


def _check_into(name: str, send) -> None:
    try:
        send.send(trials(name))
    except Exception as exc:  # the harness turns a method's errors into results: this is the check's own
        send.send([f"the check itself raised {type(exc).__name__}: {exc}"])
