"""SR-STE: training N:M-sparse networks from scratch with the sparse-refined straight-through estimator.

Zhou, Ma, Zhu, Liu, Zhang, Yuan, Sun & Li 2021, "Learning N:M Fine-grained Structured Sparse
Neural Networks From Scratch" (ICLR); code: github.com/aojunzz/NM-sparsity
(``devkit/sparse_ops/sparse_ops.py``: the ``Sparse`` autograd function of ``SparseConv`` and
``SparseLinear``). Algorithm (their §4, Eq. 6): keep dense weights W; every forward pass uses
W ⊙ M(W), M keeping the N largest |w| of every M consecutive weights along the input dimension,
recomputed at every step; the backward pass hands the gradient to the dense W unchanged (the
straight-through estimator) plus the sparse-refined term λ_W (1 − M(W)) ⊙ W, which decays the
weights the mask removes so that the mask settles; λ_W = 2e-4 (the code's ``decay``). At the end
the weights are masked by M(W): exactly N:M.

Here: the N:M forward is a parametrization of each prunable weight for the whole training (so
per-epoch validation sees the N:M network), the sparse-refined term is added to the gradient after
backward and before each optimizer step; Linear and Conv2d weights only (others make the method
raise). Charged as dense training: every step computes every weight's gradient (the 2:4 forward
that sparse tensor cores could halve is not discounted). The target sparsity must be 1 − N/M.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from sparsebench import Method, register_method
from sparsebench.library.structures import check_pattern, check_pattern_target, nm_mask


class _NMForward(torch.autograd.Function):
    """W ⊙ M(W) forward; the gradient passes to W unchanged (straight-through)."""

    @staticmethod
    def forward(ctx, w, n, m):
        return w * nm_mask(w.detach().abs(), n, m)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


class NMForward(nn.Module):
    def __init__(self, n: int, m: int):
        super().__init__()
        self.n, self.m = n, m

    def forward(self, w):
        return _NMForward.apply(w, self.n, self.m)


@contextmanager
def nm_forward(model: nn.Module, names: list[str], n: int, m: int):
    """Run ``model`` with its ``names`` weights N:M-masked in the forward pass, dense underneath."""
    modules = [model.get_submodule(name.rpartition(".")[0]) for name in names]
    for name, module in zip(names, modules):
        if not isinstance(module, (nn.Linear, nn.Conv2d)) or not name.endswith(".weight"):
            raise ValueError(f"SR-STE masks Linear and Conv2d weights in their forward pass; {name} is in a "
                             f"{type(module).__name__}")
    for module in modules:
        parametrize.register_parametrization(module, "weight", NMForward(n, m), unsafe=True)
    try:
        yield
    finally:
        for module in modules:
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)


@register_method("sr-ste", n=2, m=4)
@register_method("sr-ste-4:8", n=4, m=8)
@dataclass
class SRSTE(Method):
    n: int = 2
    m: int = 4
    decay: float = 2e-4  # λ_W, the sparse-refined decay (the code's default)
    bounds = {"n": "[1, inf)", "m": "[2, inf)", "decay": "[0, inf)"}

    when = "dynamic"
    criterion = "magnitude"
    structure = "n:m"
    paper = "Zhou et al. 2021, Learning N:M Fine-grained Structured Sparse Neural Networks From Scratch (ICLR)"
    untuned = "the pattern is the hardware's (2:4); λ_W is the paper's"

    def __post_init__(self):
        check_pattern(self.n, self.m)

    def check_target(self, sparsity):
        check_pattern_target(sparsity, self.n, self.m)

    def run(self, ctx):
        self.check_target(ctx.sparsity)
        weights = ctx.masks.params

        def refine(i):  # the sparse-refined term: decay the weights the mask removes
            with torch.no_grad():
                for p in weights.values():
                    if p.grad is not None:
                        p.grad.add_(self.decay * (1.0 - nm_mask(p.abs(), self.n, self.m)) * p)

        with nm_forward(ctx.model, list(weights), self.n, self.m):
            ctx.train(every=1, callback=refine)
        ctx.masks.set({name: nm_mask(p.detach().abs(), self.n, self.m) for name, p in weights.items()})
