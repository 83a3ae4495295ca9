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

Calibration data (:func:`input_norms`, for criteria that weigh weights by their inputs) comes from
the training split through ``ctx.batches(n, forward_only=True)``, charged as forward passes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sparsebench.core.method import Method
from sparsebench.core.space import Uniform

RETRAIN = ("lr-rewind", "finetune", "none")


@dataclass
class PruneAfterTraining(Method):
    """Train, prune once by ``score`` (at ``rule``'s layer densities), retrain as ``retrain`` says."""

    rule: str = "global"            # global | uniform (every layer at the target)
    retrain: str = "lr-rewind"      # lr-rewind | finetune | none (Renda et al. 2020)
    retrain_fraction: float = 1.0   # t, retraining steps as a fraction of one training
    lr_scale: float = 1.0           # the retraining's learning rate relative to the rule's (1: as published)

    when = "after"

    def __post_init__(self):
        if self.retrain not in RETRAIN:
            raise ValueError(f"unknown retrain {self.retrain!r}; choose one of {', '.join(RETRAIN)}")
        if not 0.0 < self.retrain_fraction <= 10.0:
            raise ValueError(f"retrain_fraction must be in (0, 10], got {self.retrain_fraction}")
        if not self.lr_scale > 0:
            raise ValueError(f"lr_scale must be positive, got {self.lr_scale}")

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

    def run(self, ctx):
        ctx.train()
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


def layer_inputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The inputs a layer's weight multiplies, one row per use: a Linear's input vectors; a
    Conv2d's receptive fields (im2col, features ordered as ``weight.view(out, -1)``)."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, module.in_features)
    if isinstance(module, nn.Conv2d) and module.groups == 1:
        cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    raise ValueError(f"a {type(module).__name__} is not a Linear or ungrouped Conv2d layer: its weight's "
                     "inputs cannot be read from a forward hook")


@torch.no_grad()
def input_statistics(ctx, examples: int, statistic) -> dict[str, torch.Tensor]:
    """The sum over ``examples`` training examples (whole batches, forward passes only, the model
    in eval mode) of ``statistic(rows)`` for the inputs of every prunable weight, one row per use
    (:func:`layer_inputs`), in float64."""
    modules = dict(ctx.model.named_modules())
    owners = {}
    for name in ctx.masks:
        module_name, _, tensor = name.rpartition(".")
        module = modules[module_name]
        if tensor != "weight" or not (isinstance(module, nn.Linear) or
                                      (isinstance(module, nn.Conv2d) and module.groups == 1)):
            raise ValueError(f"input-weighted scores need the inputs of {name} (in a {type(module).__name__}); "
                             "they apply to the weights of Linear and Conv2d layers only")
        owners[name] = module
    sums: dict[str, torch.Tensor] = {}

    def hook(name):
        def accumulate(module, args, out):  # returns None: the output is left as it is
            value = statistic(layer_inputs(module, args[0]).double()).cpu()
            sums[name] = value if name not in sums else sums[name] + value
        return accumulate

    handles = [m.register_forward_hook(hook(n)) for n, m in owners.items()]
    was_training = ctx.model.training
    ctx.model.eval()
    try:
        for batch in ctx.batches(max(1, -(-examples // ctx.batch_size)), forward_only=True):
            ctx.loss(batch)
    finally:
        for h in handles:
            h.remove()
        ctx.model.train(was_training)
    return sums


def input_norms(ctx, examples: int) -> dict[str, torch.Tensor]:
    """‖X_j‖₂ of every input feature j of every prunable weight over the calibration inputs."""
    return {n: s.sqrt().float() for n, s in input_statistics(ctx, examples, lambda x: x.pow(2).sum(0)).items()}


def input_covariances(ctx, examples: int) -> dict[str, torch.Tensor]:
    """XᵀX / rows of every prunable weight's calibration inputs (the layer-wise Hessian of the
    reconstruction error, up to a factor 2), in float64."""
    sums = input_statistics(ctx, examples, lambda x: torch.cat([x.T @ x, x.new_full((1, x.shape[1]), len(x))]))
    return {n: s[:-1] / s[-1, 0] for n, s in sums.items()}
