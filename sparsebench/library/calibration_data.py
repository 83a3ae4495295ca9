"""Calibration data of post-training methods: a random draw from the training split, counted exactly.

The papers calibrate on 128 random sequences of 2,048 tokens (SparseGPT's and Wanda's ``nsamples
128``, C4: 262,144 tokens). Here a sequence model's calibration is a token count
(``DEFAULT_TOKENS``, or the whole split where it holds fewer): windows of the task's length drawn
without replacement from the training stream, each from an empty recurrent state; an image or
sentence classifier's is an example count (``DEFAULT_EXAMPLES``), examples drawn without
replacement (no augmentation). The draw uses the trial's generator, so it is a function of the
seed. Each pass over the set is charged as a forward pass per example; what was drawn is recorded
on the method (``calibration/examples``, ``calibration/tokens``, :meth:`Calibration.record`) and
thence on the run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sparsebench.core.task import to_device

DEFAULT_TOKENS = 262_144  # 128 × 2,048
# An example count for classifiers, not the papers' 128: a layer's Hessian XᵀX/N is full rank only with
# at least as many rows as inputs, and an MLP on images sees one row per image, so 128 images leave
# LeNet-300-100's 784-wide first layer at rank 128. Measured (SparseGPT at 50 %, LeNet-300-100 full, seed 0;
# magnitude 97.84): 128 images 96.74, 180 97.97, 512 97.92, 1,024 97.87. 1,024 is the smallest power of two
# above the widest input of the MLP tasks (784), and OBD's count too; the posttraining suite's sensitivity
# block runs 1/16, 1/4 and 4 x of it.
DEFAULT_EXAMPLES = 1024


@dataclass
class Calibration:
    """A calibration set: its batches (on the model's device), examples and tokens (None for images)."""

    batches: list
    examples: int
    tokens: int | None

    def passes(self, ctx):
        """The batches, each charged to ``ctx`` as one forward pass."""
        for batch in self.batches:
            ctx._trainer.charge_forward(ctx._trainer.task.batch_size_of(batch))
            yield batch

    def record(self, method) -> None:
        """Note the set's size on ``method`` (its ``metrics``, which the harness adds to the run)."""
        method.metrics = {**getattr(method, "metrics", {}), "calibration/examples": self.examples,
                          **({} if self.tokens is None else {"calibration/tokens": self.tokens})}


def draw(ctx, examples: int = DEFAULT_EXAMPLES, tokens: int = DEFAULT_TOKENS) -> Calibration:
    """A calibration set from ``ctx``'s training split: ``tokens`` tokens for a token stream,
    else ``examples`` examples."""
    trainer = ctx._trainer
    split, size, g = trainer.train_split, trainer.recipe.batch_size, trainer.generator
    if hasattr(split, "tokens") and hasattr(split, "seq_len"):
        return _windows(split, tokens, size, g, trainer.device)
    if hasattr(split, "inputs"):
        order = torch.randperm(len(split), generator=g)[:examples]
        batches = [(split.inputs.index_select(0, i), split.targets.index_select(0, i)) for i in order.split(size)]
        return Calibration(to_device(batches, trainer.device), len(order), None)
    raise ValueError(f"no calibration draw for a {type(split).__name__} split")


def _windows(split, tokens: int, rows: int, g: torch.Generator, device) -> Calibration:
    """Whole windows of ``split.seq_len`` tokens (and their next-token targets), the fewest that hold
    ``tokens``, drawn without replacement from the split's grid of windows."""
    from sparsebench.data.text import Carry, Window

    t = split.seq_len
    available = (len(split.tokens) - 1) // t
    n = min(available, math.ceil(tokens / t))
    starts = torch.randperm(available, generator=g)[:n] * t
    index = starts[:, None] + torch.arange(t + 1)
    windows = split.tokens[index]
    batches = [(w[:, :-1], Window(Carry()), w[:, 1:]) for w in windows.split(rows)]
    return Calibration(to_device(batches, device), n, n * t)
