"""Reparametrized training: train each prunable weight through a function of it, then fold.

STR's soft threshold, L0's hard-concrete gates, sparse variational dropout's noisy weights and
movement pruning's scored masks share one procedure: register a parametrization on every prunable
weight (``torch.nn.utils.parametrize``: the module computes with f(W) while the optimizer trains W
and f's own parameters), train, then remove the parametrizations, leaving each weight f(W) — at
test time for the stochastic ones (L0's gates, sparse VD's noise) — so that its zeros become the
masks, or leaving W and setting masks the method chose (movement's last Top_v).
"""
from __future__ import annotations

from typing import Callable

from torch import nn
from torch.nn.utils import parametrize


def owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The module holding the weight ``name`` and the weight's name in it."""
    module_name, _, tensor = name.rpartition(".")
    return model.get_submodule(module_name), tensor


def reparametrize(ctx, make: Callable[[str, nn.Parameter], nn.Module]) -> dict[str, nn.Module]:
    """Register ``make(name, weight)`` as the parametrization of every prunable weight; return them by
    weight name (in the masks' order)."""
    functions = {}
    for name, weight in ctx.masks.params.items():
        functions[name] = make(name, weight)
        parametrize.register_parametrization(*owner(ctx.model, name), functions[name])
    return functions


def fold(ctx, functions: dict[str, nn.Module], test_time: bool = False, masks: dict | None = None) -> None:
    """Remove the parametrizations ``functions``. Without ``masks``, each weight keeps the value f(W)
    — in eval mode where ``test_time`` (the model is left in training mode) — and its zeros become its
    mask; with ``masks``, each weight gets W back and ``masks`` are set (zeroing what they remove)."""
    if test_time:
        ctx.model.eval()
    for name in functions:
        parametrize.remove_parametrizations(*owner(ctx.model, name), leave_parametrized=masks is None)
    if test_time:
        ctx.model.train()
    ctx.masks.set(masks if masks is not None else {n: (p != 0) for n, p in ctx.masks.params.items()})
