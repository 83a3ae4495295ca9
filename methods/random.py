"""Random pruning at initialization with a per-layer density rule, then training.

The naive baseline of Liu et al. 2022, "The Unreasonable Effectiveness of Random Pruning:
Return of the Most Naive Baseline for Sparse Training" (ICLR), which shows that its quality
depends on the layer-wise densities: ``uniform`` or ERK (Evci et al. 2020, "Rigging the
Lottery: Making All Tickets Winners", ICML). ``random-structured``: its structured twin, the
sanity baseline of structured pruning — at initialization, remove a random ``sparsity`` fraction
of the units of every group (filters, neurons: :mod:`sparsebench.library.structures`), then train.
"""
from dataclasses import dataclass

import torch

from sparsebench import Method, register_method
from sparsebench.library.structures import structured_masks


@register_method("random", rule="uniform")
@register_method("random-erk", rule="erk")
@dataclass
class RandomPruning(Method):
    rule: str = "uniform"  # uniform | er | erk
    bounds = {"rule": ("uniform", "er", "erk")}

    when = "init"
    criterion = "random"
    paper = "Liu et al. 2022, The Unreasonable Effectiveness of Random Pruning (ICLR)"
    untuned = "the sanity baseline has no hyperparameter: its per-layer rule is what names the variant"

    def run(self, ctx):
        scores = {n: torch.rand(p.shape) for n, p in ctx.masks.params.items()}
        ctx.masks.prune(scores, ctx.sparsity, rule=self.rule)
        ctx.train()


@register_method("random-structured")
@dataclass
class RandomStructured(Method):
    shared: bool = False  # as l1-filter: units of one producing layer only (not residual streams)

    when = "init"
    criterion = "random"
    structure = "filters"
    exact_sparsity = False  # the target is a fraction of units; the weights' sparsity follows from it
    paper = "Liu et al. 2022, The Unreasonable Effectiveness of Random Pruning (ICLR); structured: Li et al. 2017"
    untuned = "the sanity baseline has no hyperparameter"

    def run(self, ctx):
        scores = {n: torch.rand(p.shape) for n, p in ctx.masks.params.items()}
        ctx.masks.set(structured_masks(ctx, scores, ctx.sparsity, shared=self.shared))
        ctx.train()
