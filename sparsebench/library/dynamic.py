"""Dynamic sparse training: drop and grow connections at a constant number of active weights.

The shared step of SET (Mocanu et al. 2018), SNFS (Dettmers & Zettlemoyer 2019) and RigL
(Evci et al. 2020): in each layer, drop the ``k`` active weights with the lowest drop score,
then activate the inactive connections with the highest grow score, ``k`` of them (per-layer
counts preserved) or as many as a redistribution across layers assigns. As in RigL's reference
code (``SparseSETOptimizer._get_update_op``), the grow candidates are all connections that are
inactive after the drop, those just dropped included; a weight dropped and regrown in the same
update keeps its value and optimizer state, while truly new connections start at exactly zero
with zero optimizer state (the trainer clears the state of masked weights when masks change,
and masked gradients keep it zero; ``drop_and_grow`` also zeroes the new connections' gradients
of the current step, so they stay zero through the optimizer step that follows the update).
"""
from __future__ import annotations

import math

import torch

from sparsebench.core.masks import Masks
from sparsebench.library.scores import magnitude_scores

magnitude = magnitude_scores  # |w|, the drop score of all three methods


def cosine_fraction(initial: float, t: int, t_end: int) -> float:
    """f(t) = initial / 2 (1 + cos(pi t / t_end)), the cosine decay of RigL and SNFS; 0 after t_end."""
    if t_end <= 0 or t > t_end:
        return 0.0
    return 0.5 * initial * (1.0 + math.cos(math.pi * t / t_end))


def random_masks(masks: Masks, sparsity: float, rule: str) -> None:
    """Random connectivity at ``rule``'s layer densities (uniform, er, erk)."""
    masks.prune({n: torch.rand(p.shape) for n, p in masks.params.items()}, sparsity, rule=rule)


@torch.no_grad()
def drop_and_grow(masks: Masks, drop_scores: dict[str, torch.Tensor], grow_scores: dict[str, torch.Tensor],
                  fraction: float, grow_counts: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """Drop ``floor(fraction * active)`` lowest-``drop_scores`` weights per layer, grow the
    highest-``grow_scores`` inactive connections (as many as dropped, or ``grow_counts``), and
    return the newly grown connections per layer (boolean)."""
    new, grown = {}, {}
    for name, mask in masks.masks.items():
        active = mask.bool().flatten()
        k = int(fraction * int(active.sum()))
        kept = active.clone()
        if k:
            drop = drop_scores[name].detach().flatten().float().masked_fill(~active, math.inf)
            kept[torch.topk(drop, k, largest=False).indices] = False
        g = k if grow_counts is None else grow_counts[name]
        g = min(g, int((~kept).sum()))
        out = kept.clone()
        if g:
            grow = grow_scores[name].detach().flatten().float().masked_fill(kept, -math.inf)
            out[torch.topk(grow, g).indices] = True
        new[name] = out.view_as(mask)
        grown[name] = (out & ~active).view_as(mask)
    masks.set(new)  # zeroes dropped weights; the trainer clears their optimizer state
    for name, param in masks.params.items():
        param[grown[name]] = 0.0  # new connections start at zero...
        if param.grad is not None:
            param.grad[grown[name]] = 0.0  # ...and stay there through this step's optimizer step
    return grown


def dense_grad_magnitude(masks: Masks) -> dict[str, torch.Tensor]:
    """|dL/dw| of every connection, active or not (the gradient before the harness masks it)."""
    return {n: p.grad.detach().abs() if p.grad is not None else torch.zeros_like(p) for n, p in masks.params.items()}


def random_scores(masks: Masks) -> dict[str, torch.Tensor]:
    """Uniform random grow scores (SET), from the trial's seeded generator."""
    return {n: torch.rand(p.shape) for n, p in masks.params.items()}
