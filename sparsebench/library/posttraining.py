"""Pruning after training: train dense, score once, prune to the target, then retrain or not.

The shape shared by one-shot magnitude pruning (Han et al. 2015), Wanda (Sun et al. 2024) and
the other post-training criteria: only ``score`` (and, where the comparison group is not a
layer-density rule, ``masks``) differs between them. Retraining follows Renda et al. 2020
("Comparing Rewinding and Fine-tuning in Neural Network Pruning", ICLR; their code's
``lr_rewind`` and ``fine_tune`` modes):

- ``retrain="lr-rewind"``: retrain from the pruned weights with the last t steps of the recipe's
  learning-rate schedule (t = ``retrain_fraction`` of one training; 1 replays it all);
- ``retrain="finetune"``: t steps at the recipe's final learning rate, held constant;
- ``retrain="none"``: the pruned network as it is — post-training ("one-shot") pruning.

``lr_scale`` scales the retraining's rate (1: as published).

:class:`LayerwisePruning` is the shape of the criteria that prune each layer from its calibration
inputs (Wanda, SparseGPT and their kin): a calibration set is drawn
(:mod:`sparsebench.library.calibration_data`), and each block of layers
(:func:`~sparsebench.library.inputs.blocks`) is pruned from the inputs it receives from the already
pruned blocks before it (``order="sequential"``, the authors' ``prune_wanda`` in locuslab/wanda
``lib/prune.py`` and ``opt_sequential`` in IST-DASLab/sparsegpt ``opt.py``), or every layer from one
pass over the dense network (``order="one-pass"``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsebench.core.method import Method
from sparsebench.core.space import Uniform
from sparsebench.library import calibration_data
from sparsebench.library.inputs import blocks

RETRAIN = ("lr-rewind", "finetune", "none")
ORDERS = ("sequential", "one-pass")


@dataclass
class PruneAfterTraining(Method):
    """Train, prune once by ``score`` (at ``rule``'s layer densities), retrain as ``retrain`` says."""

    rule: str = "global"            # global | uniform (every layer at the target)
    retrain: str = "lr-rewind"      # lr-rewind | finetune | none (Renda et al. 2020)
    retrain_fraction: float = 1.0   # t, retraining steps as a fraction of one training
    lr_scale: float = 1.0           # the retraining's learning rate relative to the rule's (1: as published)
    bounds = {"retrain_fraction": "(0, 10]", "lr_scale": "(0, inf)"}

    when = "after"

    def __post_init__(self):
        if self.retrain not in RETRAIN:
            raise ValueError(f"unknown retrain {self.retrain!r}; choose one of {', '.join(RETRAIN)}")

    def space(self, sparsity):
        # Renda et al. 2020 (Fig. 4-6) vary the retraining length t; the rate scale is the practitioner's
        # other knob (Han et al. 2015 retrain at the recipe's rate, Renda et al. fine-tune at its final one)
        if self.retrain == "none":
            return {}
        return {"retrain_fraction": Uniform(0.25, 1.0), "lr_scale": Uniform(0.1, 3.0, log=True)}

    def score(self, ctx) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def masks(self, ctx, scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Masks chosen from ``scores`` in another comparison group than ``rule``'s, else None."""
        return None

    def train_dense(self, ctx) -> None:
        """The training before pruning: the recipe's (the dense training that trials share)."""
        ctx.train()

    def run(self, ctx):
        self.train_dense(ctx)
        scores = self.score(ctx)
        chosen = self.masks(ctx, scores)
        if chosen is None:
            ctx.masks.prune(scores, ctx.sparsity, rule=self.rule)
        else:
            ctx.masks.set(chosen)
        self.retrain_pruned(ctx)

    def retrain_pruned(self, ctx) -> None:
        """Retrain the pruned network as ``retrain`` says (nothing for ``none``)."""
        t = max(1, round(self.retrain_fraction * ctx.total_steps))
        if self.retrain == "lr-rewind":
            ctx.train(steps=t, from_step=max(0, ctx.total_steps - t), lr_scale=self.lr_scale)
        elif self.retrain == "finetune":
            ctx.train(steps=t, lr_scale=ctx.final_lr_factor * self.lr_scale, lr_schedule=False)


@dataclass
class LayerwisePruning(PruneAfterTraining):
    """Train, draw a calibration set, and prune block by block with ``prune_block`` (see the module)."""

    order: str = "sequential"                                # sequential (the authors') | one-pass
    calibration_tokens: int = calibration_data.DEFAULT_TOKENS  # sequence models
    calibration_examples: int = calibration_data.DEFAULT_EXAMPLES  # image and sentence classifiers
    bounds = {"order": ORDERS, "calibration_tokens": "[1, inf)", "calibration_examples": "[1, inf)"}

    def __post_init__(self):
        super().__post_init__()
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; choose one of {', '.join(ORDERS)}")

    def prune_block(self, ctx, calibration, names: list[str], sparsity: dict[str, float]) -> dict[str, torch.Tensor]:
        """The masks of the weights ``names`` (one block) at their ``sparsity``; new values are written in place."""
        raise NotImplementedError

    def sparsities(self, ctx, calibration) -> dict[str, float]:
        """Each layer's sparsity: the target, uniform (the papers'; OWL's are not)."""
        return {n: ctx.sparsity for n in ctx.masks}

    def run(self, ctx):
        self.train_dense(ctx)
        calibration = calibration_data.draw(ctx, self.calibration_examples, self.calibration_tokens)
        calibration.record(self)
        self.prune(ctx, calibration)
        self.retrain_pruned(ctx)

    def prune(self, ctx, calibration) -> None:
        """Prune every block in ``order``, each from the inputs of the network pruned so far."""
        sparsity = self.sparsities(ctx, calibration)
        for names in blocks(ctx) if self.order == "sequential" else [list(ctx.masks)]:
            with torch.no_grad():
                ctx.masks.set(self.prune_block(ctx, calibration, names, {n: sparsity[n] for n in names}))
