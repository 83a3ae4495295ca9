"""The task contract: model, data splits, training recipe per profile, metric, prunable weights.

A task plugin subclasses ``Task`` and registers itself with ``@register_task("name")``. Its
``profiles`` map a profile name to a ``Recipe``: ``full`` is the reference paper's recipe, smaller
ones fit a laptop CPU. The profile is part of every result, so numbers of different profiles
are never mixed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Iterator, Protocol

import torch
from torch import nn
import torch.nn.functional as F

from sparsebench.core.masks import default_prunable


@dataclass(frozen=True)
class Recipe:
    """How one dense training runs: optimizer, learning-rate schedule, batch size, budget.

    The budget is ``epochs`` (may be fractional) or ``steps``. ``schedule`` is ``constant``,
    ``step`` (multiply by ``gamma`` at each of ``milestones``, fractions of training) or
    ``cosine``; ``warmup`` is a fraction of training with a linear ramp.
    """

    batch_size: int
    lr: float
    epochs: float | None = None
    steps: int | None = None
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    # weight decay on one-dimensional parameters too (biases, normalization scales and shifts); False: on
    # the weight matrices and kernels alone ("no bias decay", He et al. 2019, Bag of Tricks, §3.1)
    decay_vectors: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    warmup: float = 0.0
    grad_clip: float | None = None
    train_subset: int | None = None  # use only the first N training examples
    # mixed precision of the training steps' forward pass and the per-epoch validation: None (float32) or
    # "bfloat16" (torch.autocast; weights, optimizer state and masks stay float32, and so do the final
    # validation and test of a trial)
    autocast: str | None = None
    # label smoothing of the training loss (Szegedy et al. 2016); evaluation is unaffected
    label_smoothing: float = 0.0
    eval_batch_size: int = 1000
    # the training steps' forward pass through ``torch.compile`` (TorchInductor: fused kernels; it needs a
    # C++ compiler on CPUs, and trains in eager mode with a warning where it cannot compile)
    compile: bool = False
    # bumped when this recipe alone changes: it joins the task's ``version`` in the config id of this
    # profile's trials only, so the other profiles' results stay current (``Task.version_of``)
    version: str = ""
    # wall-clock seconds a trial of this profile may run, whatever its method, before it is ended and recorded
    # as failed (kind "timeout"; ``sparsebench run --trial-timeout`` overrides); None: ``Task.trial_budget``'s
    # default. No part of a result: left out of the recipe's repr, which keys stored trainings
    budget_s: float | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("a recipe sets exactly one of epochs and steps")
        if self.autocast not in (None, "bfloat16"):
            raise ValueError(f"autocast is None or 'bfloat16', got {self.autocast!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing is in [0, 1), got {self.label_smoothing!r}")
        if self.budget_s is not None and not self.budget_s > 0:
            raise ValueError(f"budget_s is a number of seconds above 0, got {self.budget_s!r}")

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.steps if self.steps is not None else max(1, round(self.epochs * steps_per_epoch))


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool


class Split(Protocol):
    """A data split the trainer can batch."""

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None) -> Iterator: ...

    def num_batches(self, batch_size: int) -> int: ...

    def epoch_examples(self, batch_size: int) -> int:
        """The examples (as ``Task.batch_size_of`` counts them) of one epoch of batches."""


@dataclass
class TensorSplit:
    """Examples preloaded as tensors; ``augment`` (if any) transforms a training batch's inputs."""

    inputs: torch.Tensor
    targets: torch.Tensor
    augment: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def num_batches(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)

    def epoch_examples(self, batch_size: int) -> int:
        return len(self)

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None):
        if not shuffle:  # views, not copies
            for start in range(0, len(self), batch_size):
                yield self.inputs[start:start + batch_size], self.targets[start:start + batch_size]
            return
        order = torch.randperm(len(self), generator=generator)
        for start in range(0, len(self), batch_size):
            idx = order[start:start + batch_size]
            x = self.inputs.index_select(0, idx)  # the rows ``inputs[idx]`` gathers, in half its time
            if self.augment is not None:
                x = self.augment(x, generator)
            yield x, self.targets.index_select(0, idx)

    def subset(self, n: int | None) -> "TensorSplit":
        return self if n is None else TensorSplit(self.inputs[:n], self.targets[:n], self.augment)


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    info: dict = field(default_factory=dict)  # e.g. {"dataset_variant": "cifar10-jpeg"}


# the default trial budgets (``Task.trial_budget``): ``quick`` profiles train for seconds to a couple of minutes
# a training on a CPU (a 98 % lottery ticket, 18 trainings, under half an hour: README's task table); the
# others (``medium``, ``full``: up to hours a training) get days
DEFAULT_BUDGETS_S = {"quick": 2 * 3600.0}
DEFAULT_BUDGET_S = 72 * 3600.0


class Task:
    """Base class of task plugins. Subclasses set the class attributes and ``model``/``load``."""

    version: ClassVar[str] = "1"  # bump when a change alters results (``Recipe.version``: one profile's alone)
    family: ClassVar[str]  # "mlp", "cnn", "rnn" or "transformer"
    dataset: ClassVar[str]
    paper: ClassVar[str]
    metric: ClassVar[Metric] = Metric("accuracy", higher_is_better=True)
    profiles: ClassVar[dict[str, Recipe]]
    resources: ClassVar[dict[str, float]] = {"cpu": 1}
    device: torch.device = torch.device("cpu")  # set by the harness

    def __init__(self, profile: str = "quick"):
        if profile not in self.profiles:
            name = next(iter(getattr(type(self), "registered_names", ())), type(self).__name__)
            raise ValueError(f"task {name!r} has no profile {profile!r}; profiles: {', '.join(self.profiles)}")
        self.profile = profile
        self.recipe = self.profiles[profile]

    @classmethod
    def trial_budget(cls, profile: str) -> float:
        """Wall-clock seconds a trial of ``profile`` may run: its recipe's ``budget_s``, else
        ``DEFAULT_BUDGETS_S`` of the profile's name (a bound on hangs, several times the longest
        trial measured: lottery tickets to 98 %, 17 rounds of training), else ``DEFAULT_BUDGET_S``."""
        recipe = cls.profiles[profile]
        return recipe.budget_s if recipe.budget_s is not None else DEFAULT_BUDGETS_S.get(profile, DEFAULT_BUDGET_S)

    @classmethod
    def version_of(cls, profile: str) -> str:
        """The version that identifies this task's trials of ``profile``: the task's, and the
        recipe's where it has one."""
        recipe = cls.profiles.get(profile)
        return f"{cls.version}+{profile}.{recipe.version}" if recipe and recipe.version else cls.version

    def model(self) -> nn.Module:
        raise NotImplementedError

    def load(self, data_root: Path | None) -> Splits:
        """Load (downloading and checking if needed) the train, validation and test splits."""
        raise NotImplementedError

    def prunable(self, model: nn.Module) -> list[str]:
        """Names of the prunable parameters; by default conv and linear weights."""
        return default_prunable(model)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y, label_smoothing=self.recipe.label_smoothing)

    def batch_size_of(self, batch) -> int:
        return len(batch[-1])

    def examples(self, batch) -> Iterator:
        """``batch`` split into batches of one example each (per-example statistics)."""
        for i in range(self.batch_size_of(batch)):
            yield tuple(t[i:i + 1] for t in batch)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: Split) -> float:
        """The task's metric on ``split`` (default: top-1 accuracy in percent)."""
        correct = total = 0
        for x, y in split.batches(self.recipe.eval_batch_size):
            x, y = to_device(x, self.device), to_device(y, self.device)
            correct += (model(x).argmax(-1) == y).sum().item()
            total += len(y)
        return 100.0 * correct / total


def to_device(obj, device: torch.device):
    """Move a tensor, or the tensors of a tuple or list, to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(o, device) for o in obj)
    return obj
