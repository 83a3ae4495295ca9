"""The method contract: a pruning method is a dataclass of hyperparameters with a ``run(ctx)``.

A plugin subclasses ``Method`` as a ``@dataclass`` (fields are its hyperparameters with the
paper's defaults), states its place in the taxonomy of Hoefler et al. 2021 (``when``: at init,
during training, after training, dynamic; ``criterion``: magnitude, gradient, ...), cites its
paper, and registers one name per variant with ``@register_method(name, **defaults)``.

``run(ctx)`` reads like the paper's algorithm box: score, prune, train, rewind. It sees only
training data; the harness evaluates on the test split after ``run`` returns, counts the zeros
in the weights and the training spent.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Callable, ClassVar, Iterator

import torch
from torch import nn

from sparsebench.core.masks import Masks
from sparsebench.core.task import to_device
from sparsebench.core.train import Trainer, lr_factor


@dataclasses.dataclass
class Method:
    """Base class of method plugins."""

    version: ClassVar[str] = "1"
    when: ClassVar[str]        # "none", "init", "during", "after" or "dynamic"
    criterion: ClassVar[str]   # "none", "random", "magnitude", "gradient", "second-order", ...
    structure: ClassVar[str] = "weights"  # what is removed: "weights", "filters" (units), "n:m" blocks
    paper: ClassVar[str]
    prunes: ClassVar[bool] = True          # False only for the dense reference
    exact_sparsity: ClassVar[bool] = True  # False where the sparsity reached is learned (STR)
    # the hyperparameters the tuning track searches (sparsebench.core.space), each range holding
    # the paper's default; a method that declares none says why in ``untuned``
    search_space: ClassVar[dict] = {}
    untuned: ClassVar[str] = ""
    # the valid values of numeric hyperparameters, as intervals: {"alpha": "(0, 1]", "delta_t": "[1, inf)"}
    # (merged with those of the base classes; checked with the fields' types before a sweep starts)
    bounds: ClassVar[dict[str, str]] = {}

    def run(self, ctx: "Context") -> None:
        raise NotImplementedError

    def hparams(self) -> dict:
        return dataclasses.asdict(self)

    def check_target(self, sparsity: float) -> None:
        """Raise ``ValueError`` if this method cannot reach ``sparsity`` (e.g. a fixed N:M pattern)."""

    def space(self, sparsity: float) -> dict:
        """The search space at a target sparsity (by default ``search_space``)."""
        return dict(self.search_space)


class Context:
    """What a method sees: the model, its masks, the target, and the harness's training loop."""

    def __init__(self, model: nn.Module, masks: Masks, sparsity: float, trainer: Trainer):
        self.model, self.masks, self.sparsity = model, masks, sparsity
        self._trainer = trainer

    @property
    def step(self) -> int:
        """Optimizer steps taken so far in this trial."""
        return self._trainer.step

    @property
    def total_steps(self) -> int:
        """Steps of one training under the task's recipe."""
        return self._trainer.total_steps

    @property
    def steps_per_epoch(self) -> int:
        return self._trainer.steps_per_epoch

    @property
    def final_lr_factor(self) -> float:
        """The recipe's learning-rate multiplier at its last step (fine-tuning at the final rate)."""
        return lr_factor(self._trainer.recipe, self.total_steps - 1, self.total_steps)

    @property
    def train_examples(self) -> int:
        """Examples in one epoch of the training split (the N of a per-example penalty)."""
        return self._trainer.train_split.epoch_examples(self._trainer.recipe.batch_size)

    @property
    def batch_size(self) -> int:
        """Examples per training step under the task's recipe."""
        return self._trainer.recipe.batch_size

    def train(self, epochs: float | None = None, steps: int | None = None, every: int | None = None,
              callback: Callable[[int], None] | None = None, lr_scale: float = 1.0, from_step: int = 0,
              lr_schedule: bool = True) -> None:
        """Train with the task's recipe: the full budget by default, or ``epochs``/``steps``.

        ``callback(i)`` runs every ``every`` steps of this call, after backward (the dense
        gradient is in ``param.grad``) and before the optimizer step. ``from_step`` resumes the
        recipe's learning-rate schedule there (rewinding): ``steps`` then defaults to the rest.
        """
        if steps is None:
            steps = self.total_steps - from_step if epochs is None else max(1, round(epochs * self.steps_per_epoch))
        self._trainer.train(steps, every=every, callback=callback, lr_scale=lr_scale, from_step=from_step,
                            lr_schedule=lr_schedule)

    def charge(self, examples: int, dense: bool = True) -> None:
        """Count a forward and backward pass over ``examples`` that the method makes itself, at
        dense cost (e.g. RigL's dense gradient) or at the current masks' cost."""
        self._trainer.charge(examples, dense)

    def charge_dense_gradient(self, examples: int) -> None:
        """Count a step's dense weight gradient (over ``examples``) that the method reads from
        ``param.grad`` in a callback: f_D - f_S per example on top of the sparse step."""
        self._trainer.charge_dense_weight_gradient(examples)

    def fresh_model(self, seed: int) -> nn.Module:
        """A new draw of the task's initial model under ``seed`` (for re-initialization)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._trainer.task.model().to(self._trainer.device)

    def batches(self, n: int, forward_only: bool = False) -> Iterator:
        """``n`` shuffled training batches for data-driven scores, each charged as a dense
        forward and backward pass, or as a forward pass alone (``forward_only``: calibration
        data of post-training methods)."""
        trainer = self._trainer
        split, size = trainer.train_split, trainer.recipe.batch_size
        given = 0
        while given < n:
            for batch in split.batches(size, shuffle=True, generator=trainer.generator):
                if given >= n:
                    return
                examples = trainer.task.batch_size_of(batch)
                trainer.charge_forward(examples) if forward_only else trainer.charge(examples)
                given += 1
                yield to_device(batch, trainer.device)

    def example(self):
        """The first training batch, for tracing the model's structure: no data a method learns
        from, so not charged."""
        trainer = self._trainer
        return to_device(next(iter(trainer.train_split.batches(trainer.recipe.batch_size))), trainer.device)

    def loss(self, batch) -> torch.Tensor:
        """The task's training loss of ``model`` on ``batch``."""
        return self._trainer.task.loss(self.model, batch)

    def examples(self, batch) -> Iterator:
        """``batch`` as batches of one example each, for per-example statistics (no charge:
        the passes over them are charged with ``batch``)."""
        return self._trainer.task.examples(batch)

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of the model's weights, for rewinding."""
        return copy.deepcopy(self.model.state_dict())

    def restore(self, snapshot: dict[str, torch.Tensor]) -> None:
        """Load weights from ``snapshot``, then zero those the current masks prune."""
        self.model.load_state_dict(snapshot)
        self.masks.apply()
