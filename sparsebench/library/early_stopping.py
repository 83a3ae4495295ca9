"""Early stopping as Frankle & Carbin 2019 measure it: the validation loss every 100 iterations of a
training, the iteration of its minimum, and the network's weights there.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis" (ICLR), §2 and Appendix: "we use the
iteration of minimum validation loss as a proxy for the speed at which a network learns" (the early-
stopping iteration), and report test accuracy at that iteration; validation is a held-out part of the
training set (5,000 MNIST images here, as theirs). The harness validates once an epoch for its own
log; this helper validates at the paper's finer grain during one training, through the training
loop's callback (the weights after ``i`` steps, before step ``i + 1``), and counts no training cost:
like the harness's per-epoch validation, it is monitoring.
"""
from __future__ import annotations

import math

import torch

from sparsebench.core.task import to_device


@torch.no_grad()
def validation_loss(ctx) -> float:
    """The task's training loss on the whole validation split, per example, in evaluation mode."""
    trainer, model = ctx._trainer, ctx.model
    task, training = trainer.task, model.training
    model.eval()
    total, count = 0.0, 0
    for batch in trainer.val_split.batches(task.recipe.eval_batch_size):
        batch = to_device(batch, trainer.device)
        examples = task.batch_size_of(batch)
        total += task.loss(model, batch).item() * examples
        count += examples
    model.train(training)
    return total / count


class EarlyStopping:
    """Tracks one training at a time: ``train()`` runs it, validating every ``every`` iterations, and
    returns the iteration of minimum validation loss; ``restore()`` loads the weights seen there."""

    def __init__(self, ctx, every: int = 100):
        if every < 1:
            raise ValueError(f"every must be a positive number of iterations, got {every}")
        self.ctx, self.every = ctx, every
        self.best_loss, self.best_step, self.best_weights = math.inf, -1, None

    def __call__(self, i: int) -> None:
        loss = validation_loss(self.ctx)
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.best_weights = loss, i, self.ctx.snapshot()

    def train(self) -> int:
        """One training under the task's recipe, tracked; its early-stopping iteration."""
        self.best_loss, self.best_step, self.best_weights = math.inf, -1, None
        self.ctx.train(every=self.every, callback=self)
        if self.ctx.total_steps % self.every == 0:
            self(self.ctx.total_steps)  # the final weights are a point of the grid too
        return self.best_step

    def restore(self) -> None:
        """The last training's weights at its early-stopping iteration (the masks as they are)."""
        if self.best_weights is None:
            raise RuntimeError("no tracked training to restore")
        self.ctx.restore(self.best_weights)
