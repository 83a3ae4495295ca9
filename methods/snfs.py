"""Sparse momentum, SNFS (Dettmers & Zettlemoyer 2019, "Sparse Networks from Scratch: Faster
Training without Losing Performance", arXiv:1907.04840), Algorithm 1.

Random sparse connectivity, every layer at the target density. At the end of each epoch:
each layer's share of the regrowth is its mean momentum magnitude over active weights,
normalized over layers; each layer removes the prune rate p of its active weights, smallest
magnitude first; the K removed in all are regrown where the momentum magnitude of inactive
connections is largest, round(K * share) per layer (capped by the layer's free connections, the
excess passed to the other layers). p = 0.5 decays to zero with a cosine over training. The
momentum is the exponentially smoothed dense gradient, M = β M + (1 - β) g with β = 0.9 (the
paper's SGD momentum), kept by the method so that it is the same under any optimizer; computing
it needs the dense weight gradient at every step, charged f_D - f_S per example per step
(Evci et al. 2020, Appendix H). New connections start at zero (``sparsebench.library.dynamic``).
"""
from dataclasses import dataclass

import torch

from sparsebench import Method, Uniform, register_method
from sparsebench.library import dynamic as dst


def regrowth_counts(total: int, share: dict[str, float], free: dict[str, int]) -> dict[str, int]:
    """Split ``total`` among layers by ``share``, at most ``free[n]`` each, the excess redistributed."""
    counts, open_ = {n: 0 for n in share}, {n for n in share if free[n] > 0}
    left = total
    while left > 0 and open_:
        weight = sum(share[n] for n in open_) or len(open_)
        raw = {n: left * (share[n] if sum(share[n] for n in open_) else 1.0) / weight for n in open_}
        add = {n: min(free[n] - counts[n], int(raw[n])) for n in open_}
        for n in sorted(open_, key=lambda n: raw[n] - int(raw[n]), reverse=True):  # largest remainders
            if sum(add.values()) >= left:
                break
            if add[n] < free[n] - counts[n]:
                add[n] += 1
        for n in open_:
            counts[n] += add[n]
        left -= sum(add.values())
        open_ = {n for n in open_ if counts[n] < free[n]}
    return counts


@register_method("snfs")
@dataclass
class SparseMomentum(Method):
    prune_rate: float = 0.5   # p, decayed with a cosine to zero at the end of training
    beta: float = 0.9         # momentum smoothing
    rule: str = "uniform"
    bounds = {"rule": ("uniform", "er", "erk"), "prune_rate": "(0, 1]", "beta": "[0, 1)"}

    # the prune rate p (Dettmers & Zettlemoyer 2019 §4: 0.5; they report it robust in 0.2-0.7)
    search_space = {"prune_rate": Uniform(0.2, 0.7)}

    when = "dynamic"
    criterion = "magnitude/momentum"
    paper = "Dettmers & Zettlemoyer 2019, Sparse Networks from Scratch: Faster Training without Losing Performance"

    def run(self, ctx):
        dst.random_masks(ctx.masks, ctx.sparsity, self.rule)
        momentum = {n: torch.zeros_like(p) for n, p in ctx.masks.params.items()}

        def step(_):
            for n, param in ctx.masks.params.items():  # the dense gradient, before the harness masks it
                if param.grad is not None:
                    momentum[n].mul_(self.beta).add_(param.grad, alpha=1 - self.beta)
            ctx.charge_dense_gradient(ctx.batch_size)
            t = ctx.step
            if t > 0 and t % ctx.steps_per_epoch == 0:
                p = dst.cosine_fraction(self.prune_rate, t, ctx.total_steps)
                active = {n: m.bool() for n, m in ctx.masks.masks.items()}
                mean = {n: momentum[n].abs()[active[n]].mean().item() if active[n].any() else 0.0 for n in active}
                share = {n: m / (sum(mean.values()) or 1.0) for n, m in mean.items()}
                removed = {n: int(p * int(a.sum())) for n, a in active.items()}
                free = {n: a.numel() - int(a.sum()) + removed[n] for n, a in active.items()}
                counts = regrowth_counts(sum(removed.values()), share, free)
                dst.drop_and_grow(ctx.masks, dst.magnitude(ctx.masks), {n: m.abs() for n, m in momentum.items()},
                                  p, grow_counts=counts)

        ctx.train(every=1, callback=step)
