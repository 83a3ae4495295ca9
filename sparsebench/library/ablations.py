"""Pruning at initialization, and the sanity checks that apply to any such method.

``PruneAtInit`` is the common shape of SNIP, FORCE / Iterative SNIP, GraSP, SynFlow and magnitude
at initialization: a method supplies ``score(ctx, weights)`` and, if it prunes in rounds, its
``sparsities(ctx)``; the base class runs the algorithm box

    θ0 ← the initial weights
    for each target sparsity s_k of the schedule (one-shot: just s):
        S ← score(current masked network)          # in the mode of the authors' code; inverted: S ← -S
        masks ← keep the top-S weights at s_k (globally by default; pruned ones stay pruned,
                unless the method lets them revive, as FORCE does)
    ablation (optional): shuffle the masks within each layer, or re-initialize the weights
    weights ← θ0 ⊙ masks (or the new initialization ⊙ masks)
    train with the task's recipe

The ablations are the sanity checks of Su et al. 2020, "Sanity-Checking Pruning Methods: Random
Tickets can Win the Jackpot" (NeurIPS) and Frankle, Dziugaite, Roy & Carbin 2021, "Pruning Neural
Networks at Initialization: Why Are We Missing the Mark?" (ICLR), §5:

- ``shuffle``: permute each layer's mask at random — the per-layer densities are kept, which
  weights are kept within a layer is not (Frankle et al.'s "random shuffling", Su et al.'s
  layer-wise random tickets);
- ``reinit``: keep the masks, draw new initial weights (the task's own initialization, another
  seed drawn from the trial's seeded generator) — Frankle et al.'s "reinitialization";
- ``invert``: prune the highest-scored weights instead of the lowest (Frankle et al.'s
  "inversion"); for methods that prune in rounds every round's ranking is inverted, as in Tanaka
  et al.'s public code (``invert`` in ``prune_loop``).

``register_with_ablations("snip")`` registers ``snip`` and ``snip+shuffle``, ``snip+reinit``,
``snip+invert`` on the same class, so every variant declares the method's taxonomy and appears
beside it on the leaderboard.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from sparsebench.core.masks import top_k_masks
from sparsebench.library.scores import model_mode
from sparsebench.core.method import Method
from sparsebench.core.registry import register_method

ABLATIONS = ("none", "shuffle", "reinit", "invert")
SCORE_MODES = ("train", "eval")


def exponential_sparsities(sparsity: float, rounds: int) -> list[float]:
    """Sparsities s_1..s_n with densities (1 - s)^(k/n): the exponential schedule of SynFlow
    (Tanaka et al. 2020, Algorithm 1) and FORCE (de Jorge et al. 2021, ``mode='exp'``). Each round
    removes the same fraction of the remaining weights; the last is exactly ``sparsity``."""
    rounds = max(1, int(rounds))
    density = 1.0 - sparsity
    return [1.0 - density ** (k / rounds) for k in range(1, rounds)] + [sparsity]


def shuffled_masks(masks: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Each mask with its entries permuted at random: the same number kept in every layer."""
    out = {}
    for name, mask in masks.items():
        flat = mask.flatten()
        perm = torch.randperm(flat.numel(), generator=generator).to(flat.device)
        out[name] = flat[perm].view_as(mask)
    return out


@torch.no_grad()
def reinitialize(ctx) -> None:
    """Replace every parameter of ``ctx.model`` by a new draw of the task's initialization, under a
    seed taken from the trial's seeded generator (the trial stays a function of its seed); the
    masks stay."""
    seed = int(torch.randint(0, 2**31 - 1, (1,)))
    fresh = dict(ctx.fresh_model(seed).named_parameters())
    for name, param in ctx.model.named_parameters():
        param.copy_(fresh[name])
    ctx.masks.apply()


@dataclass
class PruneAtInit(Method):
    """Score, prune to the target (in one shot or in rounds), optionally ablate, then train."""

    ablation: str = "none"  # none | shuffle | reinit | invert (sanity checks, see the module)
    rule: str = "global"    # global top-k, as in all these papers; or uniform | er | erk
    # the model's mode while scoring: "train" (BatchNorm on batch statistics) or "eval" (running
    # statistics); each method defaults to its authors' code
    score_mode: str = "train"
    bounds = {"ablation": ABLATIONS, "rule": ("global", "uniform", "er", "erk"), "score_mode": SCORE_MODES}

    when = "init"
    revive: ClassVar[bool] = False  # may weights pruned in an earlier round come back (FORCE)?

    def __post_init__(self):
        if self.ablation not in ABLATIONS:
            raise ValueError(f"unknown ablation {self.ablation!r}; choose one of {', '.join(ABLATIONS)}")
        if self.score_mode not in SCORE_MODES:
            raise ValueError(f"unknown score_mode {self.score_mode!r}; choose one of {', '.join(SCORE_MODES)}")

    def score(self, ctx, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Saliency of every prunable weight of the current (masked) network, computed with the
        model in ``score_mode``; the highest are kept. ``weights`` are the prunable weights at initialization, dense."""
        raise NotImplementedError

    def sparsities(self, ctx) -> list[float]:
        """The schedule of target sparsities, ending at ``ctx.sparsity``; one-shot by default."""
        return [ctx.sparsity]

    def prune(self, ctx, init: dict[str, torch.Tensor]) -> None:
        weights = {n: init[n] for n in ctx.masks}
        for sparsity in self.sparsities(ctx):
            with model_mode(ctx.model, train=self.score_mode == "train"):
                scores = self.score(ctx, weights)
            if self.ablation == "invert":
                scores = {n: -s for n, s in scores.items()}
            if self.revive:
                ctx.masks.set(top_k_masks(scores, 1.0 - sparsity, self.rule))
                ctx.restore(init)  # revived weights come back with their initial values
            else:
                ctx.masks.prune(scores, sparsity, rule=self.rule)

    def run(self, ctx):
        init = ctx.snapshot()
        self.prune(ctx, init)
        if self.ablation == "shuffle":
            ctx.masks.set(shuffled_masks(ctx.masks.state()))
        ctx.restore(init)  # the initial weights, and buffers, apart from the zeros
        if self.ablation == "reinit":
            reinitialize(ctx)
        ctx.train()


def register_with_ablations(name: str, **defaults):
    """Class decorator: register ``name`` and its sanity checks ``name+shuffle``,
    ``name+reinit`` and ``name+invert`` with the same defaults. Stack it for variants."""

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, PruneAtInit)):
            raise TypeError("register_with_ablations registers subclasses of PruneAtInit")
        for ablation in reversed(ABLATIONS[1:]):
            register_method(f"{name}+{ablation}", **defaults, ablation=ablation)(cls)
        return register_method(name, **defaults)(cls)

    return decorate
